from __future__ import annotations

import re

import pytest

from tests.support.hub import DOMAIN, message

# Every test here runs on SQLite and on PostgreSQL (tests/conftest.py: backend).
pytestmark = pytest.mark.usefixtures("backend")


async def test_enquiry_reaches_handlers_and_sender_is_acknowledged(hub):
    code, text = await hub.send(
        "sam@example.net",
        [f"enquiries@{DOMAIN}"],
        message(subject="Can I join?", body="Please tell me more.\n"),
    )
    assert code == 250 and "queued as Q" in text
    await hub.sink.wait_count("helper@example.net")
    await hub.sink.wait_count("sam@example.net")
    fwd = hub.sink.to("helper@example.net")[0].message
    assert "sam@example.net" in str(fwd["Reply-To"])
    assert re.fullmatch(r"\[E-[0-9A-Z]{4}-[0-9A-Z]{2}\] Can I join\?", fwd["Subject"])
    assert "Please tell me more." in fwd.get_content()
    ack = hub.sink.to("sam@example.net")[0]
    assert ack.mail_from == ""
    m = ack.message
    assert m["Auto-Submitted"] == "auto-replied"
    assert m["X-Auto-Response-Suppress"] == "All"
    assert m["In-Reply-To"]
    assert "Can I join" not in m["Subject"]
    assert "Please tell me more" not in m.get_content()


async def test_no_acknowledgement_for_null_sender_autoreplies_or_bulk(hub):
    cases = [
        ("", ""),
        ("sam@example.net", "Auto-Submitted: auto-replied"),
        ("sam@example.net", "Precedence: bulk"),
    ]
    for envelope, headers in cases:
        code, _ = await hub.send(envelope, [f"enquiries@{DOMAIN}"], message(headers=headers))
        assert code == 250
    await hub.sink.wait_count("helper@example.net", len(cases))
    await hub.idle()
    assert hub.sink.to("sam@example.net") == []


async def test_acknowledgements_are_rate_limited_per_sender(hub):
    for n in range(5):
        await hub.send("sam@example.net", [f"enquiries@{DOMAIN}"], message(body=f"try {n}\n"))
    await hub.sink.wait_count("helper@example.net", 5)
    await hub.idle()
    assert len(hub.sink.to("sam@example.net")) == 3  # per_hour default
    hub.clock.advance(3601)
    await hub.send("sam@example.net", [f"enquiries@{DOMAIN}"], message(body="later\n"))
    await hub.sink.wait_count("sam@example.net", 4)


async def test_our_own_mail_coming_back_is_not_forwarded_again(hub):
    headers = "X-Loop: mailhub@cop.example.org"
    await hub.send("sam@example.net", [f"enquiries@{DOMAIN}"], message(headers=headers))
    await hub.send("sam@example.net", [f"postmaster@{DOMAIN}"], message(subject="real"))
    await hub.sink.wait_count("admin@example.net")
    await hub.idle()
    assert hub.sink.to("helper@example.net") == []


async def test_bilingual_acknowledgement(tmp_path):
    from tests.support.hub import start_hub

    hub = await start_hub(tmp_path, language="cy+en")
    try:
        await hub.send("sam@example.net", [f"enquiries@{DOMAIN}"], message())
        ack = (await hub.sink.wait_count("sam@example.net"))[0].message
        body = ack.get_content()
        assert body.index("Diolch") < body.index("Thank you")
        assert "Rydym wedi derbyn" in str(ack["Subject"]) and "received" in str(ack["Subject"])
    finally:
        await hub.service.stop()
        await hub.sink.stop()


async def test_forward_carries_the_loop_trace(hub):
    headers = "Received: from mx.example.net\nX-Loop: helpdesk@example.com\nX-Mailhub-Hops: 4"
    await hub.send("sam@example.net", [f"enquiries@{DOMAIN}"], message(headers=headers))
    fwd = (await hub.sink.wait_count("helper@example.net"))[0].message
    assert fwd.get_all("X-Loop") == ["helpdesk@example.com", f"mailhub@{DOMAIN}"]
    assert fwd["X-Mailhub-Hops"] == "5"
    assert fwd.get_all("Received") == ["from mx.example.net"]
    ack = (await hub.sink.wait_count("sam@example.net"))[0].message
    assert ack["X-Mailhub-Hops"] == "5"


async def test_mail_past_the_hop_limit_is_dropped_with_one_log_line(hub, caplog):
    import logging

    from mailhub.messages import MAX_HOPS

    caplog.set_level(logging.INFO, logger="mailhub")
    received = "\n".join(f"Received: from relay{n}.example.net" for n in range(MAX_HOPS))
    await hub.send("sam@example.net", [f"enquiries@{DOMAIN}"], message(headers=received))
    await hub.send("sam@example.net", [f"postmaster@{DOMAIN}"], message(subject="real"))
    await hub.sink.wait_count("admin@example.net")
    await hub.idle()
    assert hub.sink.to("helper@example.net") == [] and hub.sink.to("sam@example.net") == []
    dropped = [r.getMessage() for r in caplog.records if "hop limit" in r.getMessage()]
    assert len(dropped) == 1 and "kind=enquiry.forward" in dropped[0]
