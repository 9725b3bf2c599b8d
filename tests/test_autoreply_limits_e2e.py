"""Automatic replies are limited per mailbox, per domain and in all (no backscatter, no
bombing): real server over loopback, real SQLite file, real SMTP sink."""

from __future__ import annotations

import logging

import pytest

from mailhub.mailbox import mailbox_key
from tests.support.hub import DOMAIN, message, running_hub

# Every test here runs on SQLite and on PostgreSQL (tests/conftest.py: backend).
pytestmark = pytest.mark.usefixtures("backend")

ENQUIRIES = f"enquiries@{DOMAIN}"


async def forge(hub, sender: str, n: int = 0) -> None:
    code, _ = await hub.send(sender, [ENQUIRIES], message(sender=sender, body=f"Hi {n}\n"))
    assert code == 250


async def test_thirty_forged_sub_addresses_reach_the_victim_three_times(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="mailhub")
    async with running_hub(tmp_path) as hub:
        for n in range(30):
            # victim+1@, Victim+2@, v.ictim+3@gmail…: one mailbox, one allowance.
            await forge(hub, f"Victim+{n}@example.org", n)
        await hub.idle()
        acks = [r for r in hub.sink.received if mailbox_key(r.rcpt) == "victim@example.org"]
        assert len(acks) == 3
        suppressed = [r for r in caplog.records if "rate limit (mailbox, hour)" in r.getMessage()]
        assert len(suppressed) == 27  # every suppression is one log line


async def test_a_domain_and_the_whole_service_have_hourly_limits(tmp_path):
    top = "[autoreply]\nper_domain_per_hour = 4\ntotal_per_hour = 6\n"
    async with running_hub(tmp_path, extra=top) as hub:
        for n in range(6):
            await forge(hub, f"person{n}@victim-domain.example", n)
        for n in range(6):
            await forge(hub, f"someone{n}@elsewhere.example", n)
        await hub.idle()
        to_domain = [r for r in hub.sink.received if r.rcpt.endswith("@victim-domain.example")]
        to_other = [r for r in hub.sink.received if r.rcpt.endswith("@elsewhere.example")]
        assert len(to_domain) == 4
        assert len(to_other) == 2  # the service's hourly total (6) is reached
        hub.clock.advance(3601)
        await forge(hub, "late@elsewhere.example")
        await hub.idle()
        assert hub.sink.to("late@elsewhere.example")


def test_mailbox_keys():
    assert mailbox_key("Victim+tag@Example.ORG") == "victim@example.org"
    assert mailbox_key("v.i.c.tim+x@googlemail.com") == "victim@gmail.com"
    assert mailbox_key("first.last@example.org") == "first.last@example.org"
    assert mailbox_key("<a@b.example>") == "a@b.example"
