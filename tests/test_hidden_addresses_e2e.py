"""Hidden addresses end to end (real Service over loopback SMTP, SQLite, an SMTP sink): no
member's address in any copy or digest, private replies through `LIST-reply+TOKEN@D`, the
relay's refusals, a shown list's From:, and copies whose body bytes are the poster's."""

from __future__ import annotations

import base64
import re
from email.message import Message

import pytest

from mailhub.parsing import addresses, decode_words, header
from mailhub.store import lists as store
from tests.support.hub import DOMAIN, Hub, running_hub
from tests.support.sink import Received

# Every test here runs on SQLite and on PostgreSQL (tests/conftest.py: backend).
pytestmark = pytest.mark.usefixtures("backend")

LIST = f"green@{DOMAIN}"
MEMBERS = {
    "ann@example.net": "Ann Example",
    "bob@example.org": "Bob Jones",
    "cat@example.com": "",
    "dan@example.net": "Dan Digest",
}
CONFIG = """
[autoreply]
per_hour = 100
per_day = 100

[[lists]]
name = "green"
display_name = "Green Team"
language = "en"  # English only, as this test reads it (the default is Welsh first)
facilitators = ["fac@example.net"]
delivery = "{delivery}"
{more}
"""
DAY = 86400.0


async def add_members(hub: Hub) -> None:
    async with hub.service.store.transaction() as tx:
        for addr, name in MEMBERS.items():
            await store.add_member(tx, "green", addr, name, hub.clock.now())


def hub_for(tmp_path, delivery: str = "personalised", more: str = ""):  # noqa: ANN201
    return running_hub(tmp_path, extra=CONFIG.format(delivery=delivery, more=more))


def crlf(text: str) -> bytes:
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode()


def readable(raw: bytes) -> str:
    """Everything a reader of `raw` could see: its bytes, its header block with encoded
    words decoded, and every part's payload with its transfer encoding undone."""
    msg = Received("", "", raw).message
    seen = [raw.decode("utf-8", "replace")]
    head = raw.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    seen.append(decode_words(head))
    for part in msg.walk():
        for name, value in part.items():
            seen.append(f"{name}: {value}")
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            seen.append(payload.decode("utf-8", "replace"))
    return "\n".join(seen).lower()


def assert_no_member_address(got: list[Received]) -> None:
    assert got
    for r in got:
        text = readable(r.raw)
        for member in MEMBERS:
            assert member not in text, (member, r.rcpt)
            # Nor base64 of it, in any alignment (an encoded word, a part we did not decode).
            for shift in range(3):
                chunk = base64.b64encode(b"x" * shift + member.encode())[4:-4].lower()
                assert chunk.decode() not in text.replace("\n", "")


def post_from(sender: str, subject: str, body: str = "Hello all.\n", extra: str = "") -> bytes:
    return crlf(
        f"From: {sender}\nTo: {LIST}\nSubject: {subject}\n"
        f"Message-ID: <{subject.replace(' ', '-')}@mail.example>\n{extra}\n{body}"
    )


ANN_POST = post_from(
    "Ann Example <ann@example.net>",
    "Maps",
    extra=(
        "Received: from mail.example.net by mx.example for <ann@example.net>; Mon\n"
        "DKIM-Signature: v=1; a=rsa-sha256; d=example.net; s=s1; h=from; bh=x; b=y\n"
        "Authentication-Results: mx.example; dkim=pass smtp.mailfrom=ann@example.net\n"
        "Sender: ann@example.net\nReply-To: Ann <ann@example.net>\n"
        "Cc: ann@example.net\nX-Original-From: ann@example.net\n"
        "X-Comment: =?utf-8?b?" + base64.b64encode(b"by ann@example.net").decode() + "?=\n"
    ),
)


def relay_of(msg: Message) -> str:
    pairs = addresses(msg, "reply-to")
    assert len(pairs) == 1 and re.fullmatch(rf"green-reply\+[a-z2-7]{{32}}@{DOMAIN}", pairs[0][1])
    return pairs[0][1]


@pytest.mark.parametrize("delivery", ["personalised", "bulk"])
async def test_no_member_address_in_any_copy_or_digest(tmp_path, delivery):
    async with hub_for(tmp_path, delivery) as hub:
        await add_members(hub)
        async with hub.service.store.transaction() as tx:
            await store.set_delivery(tx, "green", "dan@example.net", "digest", hub.clock.now())
        assert (await hub.send("ann@example.net", [LIST], ANN_POST))[0] == 250
        assert (await hub.send("cat@example.com", [LIST], post_from("cat@example.com", "Tea")))[
            0
        ] == 250
        await hub.sink.wait_count("bob@example.org", 2)
        await hub.sink.wait_count("ann@example.net", 1)
        await hub.idle()
        hub.clock.advance(DAY)
        await hub.service.scheduler.run_once()
        await hub.sink.wait_count("dan@example.net")
        await hub.idle()
        assert_no_member_address(hub.sink.received)
        copies = {r.message["Subject"]: r.message for r in hub.sink.to("bob@example.org")}
        maps = copies["[Green Team] Maps"]
        assert addresses(maps, "from") == [("Ann Example via Green Team", LIST)]
        assert "DKIM-Signature" not in maps and "Authentication-Results" not in maps
        tea = copies["[Green Team] Tea"]
        assert addresses(tea, "from") == [("A member via Green Team", LIST)]
        assert relay_of(maps) != relay_of(tea)
        # The digest's contents name posters, never their addresses.
        digest = hub.sink.to("dan@example.net")[0].message
        contents = next(digest.iter_parts()).get_content()
        assert "from Ann Example" in contents and "from a member" in contents
        inner = [p.get_content() for p in list(digest.iter_parts())[1].iter_parts()]
        assert [relay_of(p) for p in inner] == [relay_of(maps), relay_of(tea)]


async def test_a_shown_list_keeps_from(tmp_path):
    async with hub_for(tmp_path, more='addresses = "shown"') as hub:
        await add_members(hub)
        await hub.send("ann@example.net", [LIST], ANN_POST)
        (got,) = await hub.sink.wait_count("bob@example.org")
        assert addresses(got.message, "from") == [("Ann Example", "ann@example.net")]
        assert "DKIM-Signature" not in got.message


async def private(hub: Hub, sender: str, to: str, subject: str, extra: str = "", **kw) -> int:
    raw = crlf(
        f"From: {kw.get('name', '')} <{sender}>\nTo: {to}\nSubject: {subject}\n"
        f"Message-ID: <{subject.replace(' ', '-')}@mail.example>\n{extra}\nJust to you.\n"
    )
    code, _ = await hub.send(kw.get("envelope", sender), [to], raw)
    return code


async def test_a_private_reply_through_the_relay_and_back(tmp_path):
    async with hub_for(tmp_path) as hub:
        await add_members(hub)
        await hub.send("ann@example.net", [LIST], ANN_POST)
        (copy,) = await hub.sink.wait_count("bob@example.org")
        ann_relay = relay_of(copy.message)
        await hub.idle()
        before = len(hub.sink.received)
        assert await private(hub, "bob@example.org", ann_relay, "Re: Maps", name="Bob Jones") == 250
        (got,) = await hub.sink.wait_count("ann@example.net")
        msg = got.message
        bob_relay = addresses(msg, "from")[0][1]
        assert addresses(msg, "from")[0][0] == "Bob Jones via Green Team"
        assert re.fullmatch(rf"green-reply\+[a-z2-7]{{32}}@{DOMAIN}", bob_relay)
        assert header(msg, "subject") == "Re: Maps" and "Just to you." in msg.get_content()
        assert got.mail_from == f"green-bounces@{DOMAIN}"
        assert "bob@example.org" not in readable(got.raw)
        # Ann answers the same way; Bob sees Ann's relay address, the one from the copy.
        assert await private(hub, "ann@example.net", bob_relay, "Re: Re: Maps", name="Ann") == 250
        await hub.sink.wait_count("bob@example.org", 2)
        back = hub.sink.to("bob@example.org")[1]
        assert addresses(back.message, "from") == [("Ann via Green Team", ann_relay)]
        assert "ann@example.net" not in readable(back.raw)
        await hub.idle()
        assert len(hub.sink.received) == before + 2  # nothing else: no answers, no copies


async def test_the_relay_refuses_strangers_forgeries_robots_and_floods(tmp_path):
    async with hub_for(tmp_path) as hub:
        await add_members(hub)
        await hub.send("ann@example.net", [LIST], ANN_POST)
        (copy,) = await hub.sink.wait_count("bob@example.org")
        ann_relay = relay_of(copy.message)
        await hub.idle()

        def to_ann() -> int:
            return len(hub.sink.to("ann@example.net"))

        # A non-member: told, not forwarded.
        assert await private(hub, "eve@example.biz", ann_relay, "Hi") == 250
        (answer,) = await hub.sink.wait_count("eve@example.biz")
        assert "Only members of the list" in answer.message.get_content()
        assert answer.message["Auto-Submitted"] == "auto-replied"
        # A member's From: with another envelope sender (a forger): not forwarded.
        assert await private(hub, "bob@example.org", ann_relay, "Hi", envelope="x@evil.test") == 250
        await hub.sink.wait_count("x@evil.test")
        # A forged token: told it is unknown, not forwarded.
        forged = f"green-reply+{'a' * 32}@{DOMAIN}"
        assert await private(hub, "cat@example.com", forged, "Hi") == 250
        unknown = (await hub.sink.wait_count("cat@example.com", 2))[1]  # after Ann's post
        assert "This address is not known" in unknown.message.get_content()
        # An out-of-office: nothing at all.
        ooo = "Auto-Submitted: auto-replied\n"
        assert await private(hub, "bob@example.org", ann_relay, "Away", extra=ooo) == 250
        await hub.idle()
        assert to_ann() == 0 and len(hub.sink.to("bob@example.org")) == 1
        # The limit: PER_HOUR forwarded, then one answer and nothing more to Ann.
        for n in range(21):
            assert await private(hub, "bob@example.org", ann_relay, f"Note {n}") == 250
        await hub.sink.wait_count("ann@example.net", 20)
        await hub.sink.wait_count("bob@example.org", 2)
        await hub.idle()
        assert to_ann() == 20
        limit = hub.sink.to("bob@example.org")[1].message
        assert "as many private messages" in limit.get_content()
        # An hour later Bob may write again; Ann's address expires after 90 days unused.
        hub.clock.advance(3601)
        assert await private(hub, "bob@example.org", ann_relay, "Later") == 250
        await hub.sink.wait_count("ann@example.net", 21)
        hub.clock.advance(91 * DAY)
        assert await private(hub, "bob@example.org", ann_relay, "Much later") == 250
        await hub.sink.wait_count("bob@example.org", 3)
        await hub.idle()
        assert to_ann() == 21
        assert "not known" in hub.sink.to("bob@example.org")[2].message.get_content()


async def test_a_member_who_left_is_no_longer_reachable(tmp_path):
    async with hub_for(tmp_path) as hub:
        await add_members(hub)
        await hub.send("ann@example.net", [LIST], ANN_POST)
        (copy,) = await hub.sink.wait_count("bob@example.org")
        await hub.idle()
        async with hub.service.store.transaction() as tx:
            await store.remove_member(tx, "green", "ann@example.net")
        assert await private(hub, "bob@example.org", relay_of(copy.message), "Hi") == 250
        await hub.sink.wait_count("bob@example.org", 2)
        await hub.idle()
        assert hub.sink.to("ann@example.net") == []


# --- the body of every copy is the poster's bytes -----------------------------------------

MIXED = crlf(
    "From: Ann <ann@example.net>\nTo: green@cop.example.org\nSubject: Report\n"
    "Message-ID: <report@mail.example>\nMIME-Version: 1.0\n"
    'Content-Type: multipart/mixed; boundary="XYZ"\n\n'
    "Preamble.\n--XYZ\nContent-Type: text/plain; charset=utf-8\n"
    "Content-Transfer-Encoding: 8bit\n\nSee the report, caf\u00e9 =3D not QP.  \n"
    "--XYZ\nContent-Type: application/pdf; name=r.pdf\n"
    "Content-Disposition: attachment; filename=r.pdf\nContent-Transfer-Encoding: base64\n\n"
    + base64.encodebytes(bytes(range(256)) * 4).decode()
    + "--XYZ--\nEpilogue.\n"
)
PLAIN = crlf(
    "From: Ann <ann@example.net>\nTo: green@cop.example.org\nSubject: Plain\n"
    "Message-ID: <plain@mail.example>\nMIME-Version: 1.0\n"
    "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
    "Line one   \n\n  indented\tand tabbed\nCaf\u00e9.\n.leading dot\n"
)


def body_of(raw: bytes) -> bytes:
    return raw.split(b"\r\n\r\n", 1)[1]


def without_footer_part(body: bytes, boundary: bytes) -> tuple[bytes, bytes]:
    """(the body with the footer's MIME part taken out, that part)."""
    close = body.rindex(b"--" + boundary + b"--")
    start = body.rindex(b"--" + boundary + b"\r\n", 0, close)
    return body[:start] + body[close:], body[start:close]


@pytest.mark.parametrize("addresses_", ["hidden", "shown"])
@pytest.mark.parametrize("delivery", ["personalised", "bulk"])
async def test_body_bytes_outside_the_footer_are_the_posters(tmp_path, delivery, addresses_):
    more = f'addresses = "{addresses_}"'
    async with hub_for(tmp_path, delivery, more) as hub:
        await add_members(hub)
        for raw in (MIXED, PLAIN):
            assert (await hub.send("ann@example.net", [LIST], raw))[0] == 250
        for rcpt in ("bob@example.org", "cat@example.com", "dan@example.net"):
            await hub.sink.wait_count(rcpt, 2)
        await hub.idle()
        copies = hub.sink.received
        assert len(copies) == 6
        for got in copies:
            body = body_of(got.raw)
            if got.message["Subject"] == "[Green Team] Report":
                kept, footer = without_footer_part(body, b"XYZ")
                assert kept == body_of(MIXED)
                assert b"Content-Type: text/plain" in footer and b"conduct" in footer.lower()
            else:
                assert body.startswith(body_of(PLAIN))
                assert body[len(body_of(PLAIN)) :].startswith(b"\r\n____")
