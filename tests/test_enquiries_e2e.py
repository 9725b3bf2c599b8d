from __future__ import annotations

from tests.support.hub import DOMAIN, message


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
    assert fwd["Subject"] == "Can I join?"
    assert "Please tell me more." in fwd.get_content()
    ack = hub.sink.to("sam@example.net")[0]
    assert ack.mail_from == ""
    m = ack.message
    assert m["Auto-Submitted"] == "auto-replied"
    assert m["X-Auto-Response-Suppress"] == "All"
    assert m["In-Reply-To"]
    assert "Can I join" not in m["Subject"]
    assert "Please tell me more" not in m.get_content()
