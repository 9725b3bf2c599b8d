"""Enquiries as threads, end to end: a reply to the acknowledgement (to its Reply-To, or
to enquiries@ with the thread's ids in In-Reply-To/References) reaches the handlers as a
reply to the forward of the original, with the same subject and reference, and is not
acknowledged again; anyone else's mail, whatever it names, is an enquiry of its own."""

from __future__ import annotations

import re

import pytest

from tests.support.hub import DOMAIN, message, running_hub

# Every test here runs on SQLite and on PostgreSQL (tests/conftest.py: backend).
pytestmark = pytest.mark.usefixtures("backend")

HANDLER = "helper@example.net"
SAM = "sam@example.net"


def reply_to_ack(ack, *, body: str, to: str = "", sender: str = f"Sam Sender <{SAM}>") -> str:
    """What a mail client writes when Sam answers the acknowledgement."""
    ack_id, refs = str(ack["Message-ID"]), str(ack["References"] or "")
    return message(
        sender=sender,
        to=to or str(ack["Reply-To"]),
        subject=f"Re: {ack['Subject']}",
        body=body,
        headers=f"In-Reply-To: {ack_id}\nReferences: {refs} {ack_id}",
    )


async def open_enquiry(hub, language_marker: str = "Your reference is"):
    await hub.send(
        SAM, [f"enquiries@{DOMAIN}"], message(subject="Can I join?", body="Tell me more.\n")
    )
    fwd = (await hub.sink.wait_count(HANDLER))[0].message
    ack = (await hub.sink.wait_count(SAM))[0].message
    ref = re.search(r"E-[0-9A-Z]{4}-[0-9A-Z]{2}", str(ack["Subject"])).group(0)
    assert f"{language_marker} {ref}" in ack.get_content()
    return fwd, ack, ref


async def test_a_reply_to_the_acknowledgement_is_threaded_and_not_acknowledged(tmp_path):
    async with running_hub(tmp_path) as hub:
        fwd, ack, ref = await open_enquiry(hub)
        assert fwd["Subject"] == f"[{ref}] Can I join?"
        assert re.fullmatch(rf"enquiries\+[A-Za-z0-9_-]{{22}}@{DOMAIN}", str(ack["Reply-To"]))
        text = ack.get_content().replace("\r\n", "\n")
        words = " ".join(text.split())
        assert "your reply will be added to your enquiry, and you will not get" in words
        assert all(len(line) <= 72 for line in text.splitlines())

        await hub.send(
            SAM, [str(ack["Reply-To"])], reply_to_ack(ack, body="I forgot: I am in Cardiff.\n")
        )
        await hub.sink.wait_count(HANDLER, 2)
        second = hub.sink.to(HANDLER)[1].message
        assert second["Subject"] == f"Re: [{ref}] Can I join?"
        assert second["In-Reply-To"] == fwd["Message-ID"]
        assert str(second["References"]) == str(fwd["Message-ID"])
        assert "I forgot: I am in Cardiff." in second.get_content()
        assert SAM in str(second["Reply-To"]) and str(second["From"]).endswith(
            f"<enquiries@{DOMAIN}>"
        )

        # A client that ignores Reply-To writes to enquiries@ itself: its In-Reply-To is enough.
        await hub.send(
            SAM,
            [f"enquiries@{DOMAIN}"],
            reply_to_ack(ack, body="And one more.\n", to=f"enquiries@{DOMAIN}"),
        )
        await hub.sink.wait_count(HANDLER, 3)
        third = hub.sink.to(HANDLER)[2].message
        assert third["Subject"] == f"Re: [{ref}] Can I join?"
        assert third["In-Reply-To"] == second["Message-ID"]
        assert str(third["References"]) == f"{fwd['Message-ID']} {second['Message-ID']}"
        await hub.idle()
        assert len(hub.sink.to(SAM)) == 1  # never acknowledged again


async def test_someone_else_using_the_reply_address_opens_an_enquiry_of_their_own(tmp_path):
    async with running_hub(tmp_path) as hub:
        fwd, ack, ref = await open_enquiry(hub)
        mallory = "mallory@example.com"
        raw = reply_to_ack(ack, body="Add me to Sam's thread.\n", sender=f"M <{mallory}>")
        await hub.send(mallory, [str(ack["Reply-To"])], raw)
        await hub.sink.wait_count(HANDLER, 2)
        theirs = hub.sink.to(HANDLER)[1].message
        own = re.match(r"\[(E-[0-9A-Z]{4}-[0-9A-Z]{2})\] Re: ", str(theirs["Subject"]))
        assert own and own.group(1) != ref and theirs["In-Reply-To"] is None
        await hub.sink.wait_count(mallory)  # acknowledged: a new enquiry


async def test_the_acknowledgement_in_welsh_first_promises_what_happens(tmp_path):
    async with running_hub(tmp_path, language="cy+en") as hub:
        fwd, ack, ref = await open_enquiry(hub, "Eich cyfeirnod yw")
        assert (
            str(ack["Subject"])
            == f"[{ref}] Rydym wedi derbyn eich ymholiad / We have received your enquiry"
        )
        text = ack.get_content().replace("\r\n", "\n")
        words = " ".join(text.split())
        assert (
            "bydd eich ateb yn cael ei ychwanegu at eich ymholiad, ac ni chewch y neges hon eto"
            in words
        )
        assert "ymuno" not in text
        assert text.index("Eich cyfeirnod yw") < text.index("Your reference is")
        assert all(len(line) <= 72 for line in text.splitlines())
        await hub.send(SAM, [str(ack["Reply-To"])], reply_to_ack(ack, body="Diolch.\n"))
        second = (await hub.sink.wait_count(HANDLER, 2))[1].message
        assert second["In-Reply-To"] == fwd["Message-ID"]
        await hub.idle()
        assert len(hub.sink.to(SAM)) == 1


async def test_the_acknowledgement_in_welsh_alone(tmp_path):
    async with running_hub(tmp_path, language="cy") as hub:
        _, ack, ref = await open_enquiry(hub, "Eich cyfeirnod yw")
        assert str(ack["Subject"]) == f"[{ref}] Rydym wedi derbyn eich ymholiad"
        assert "Thank you" not in ack.get_content()
