"""Malformed input: accepted or refused with a clear code, never a crash, never a stalled
queue, never a header injection in what we send."""

from __future__ import annotations

import pytest

from tests.support.hub import DOMAIN

# Every test here runs on SQLite and on PostgreSQL (tests/conftest.py: backend).
pytestmark = pytest.mark.usefixtures("backend")

ENQ = f"enquiries@{DOMAIN}"

CASES = {
    "broken-mime": (
        "From: sam@example.net\nSubject: broken\nMIME-Version: 1.0\n"
        'Content-Type: multipart/mixed; boundary="nope"\n\n--other\nnot really a part\n'
    ),
    "undecodable-charset": (
        "From: sam@example.net\nSubject: =?x-unknown-charset?B?aGVsbG8=?=\n"
        'Content-Type: text/plain; charset="x-unknown-charset"\n\nh\xe9llo\n'
    ),
    "eight-bit-junk": "From: sam@example.net\nSubject: caf\xe9 \xff\xfe\n\n\x80\x81\xfe junk\n",
    "dot-display-name": "From: . <user@example.org>\nSubject: dot\n\nbody\n",
    "no-headers": "\njust a body\n",
    "base64-garbage": (
        "From: sam@example.net\nSubject: b64\nContent-Transfer-Encoding: base64\n\n!!!***\n"
    ),
}


def encode(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode("latin-1")


@pytest.mark.parametrize("name", sorted(CASES))
async def test_malformed_message_is_accepted_and_handled(hub, name):
    code, _ = await hub.send("sam@example.net", [ENQ], encode(CASES[name]))
    assert code == 250
    await hub.sink.wait_count("helper@example.net")
    await hub.idle()
    async with hub.service.store.read() as tx:
        cur = await tx.execute("SELECT state, error FROM inbound")
        assert await cur.fetchall() == [("done", None)]


async def test_a_bad_message_does_not_block_the_queue(hub):
    for name in sorted(CASES):
        await hub.send("sam@example.net", [ENQ], encode(CASES[name]))
    code, _ = await hub.send(
        "sam@example.net", [ENQ], encode("From: sam@example.net\nSubject: fine\n\nfine\n")
    )
    assert code == 250
    await hub.sink.wait_count("helper@example.net", len(CASES) + 1)


async def test_encoded_subject_cannot_inject_headers(hub):
    # "=?utf-8?b?...?=" decodes to "hi\r\nBcc: victim@example.com"
    raw = (
        "From: sam@example.net\nSubject: =?utf-8?b?aGkNCkJjYzogdmljdGltQGV4YW1wbGUuY29t?=\n"
        "Message-ID: <inj@example.net>\n\nbody\n"
    )
    assert (await hub.send("sam@example.net", [ENQ], encode(raw)))[0] == 250
    fwd = (await hub.sink.wait_count("helper@example.net"))[0]
    await hub.idle()
    assert fwd.message["Bcc"] is None
    head = fwd.raw.split(b"\r\n\r\n", 1)[0]
    assert not any(line.lower().startswith(b"bcc:") for line in head.split(b"\r\n"))
    assert all(r.rcpt != "victim@example.com" for r in hub.sink.received)


async def test_display_name_with_crlf_cannot_inject_headers(hub):
    raw = (
        "From: =?utf-8?q?Sam=0D=0ABcc=3A_victim=40example=2Ecom?= <sam@example.net>\n"
        "Subject: hi\n\nbody\n"
    )
    await hub.send("sam@example.net", [ENQ], encode(raw))
    fwd = (await hub.sink.wait_count("helper@example.net"))[0]
    head = fwd.raw.split(b"\r\n\r\n", 1)[0]
    assert not any(line.lower().startswith(b"bcc:") for line in head.split(b"\r\n"))


async def test_smtputf8_address_and_8bit_body_are_stored_as_sent(hub):
    raw = (
        "From: Siân <siân@example.net>\r\nSubject: Shwmae\r\n\r\nDiolch yn fawr – ŵ ŷ\r\n".encode()
    )
    code, _ = await hub.send("siân@example.net", [ENQ], raw)
    assert code == 250
    fwd = (await hub.sink.wait_count("helper@example.net"))[0]
    assert "Diolch yn fawr – ŵ ŷ".encode() in fwd.raw
