"""LIST-request@D: members' own settings by email, and muting a thread."""

from __future__ import annotations

import pytest
import pytest_asyncio

from mailhub.lists.requests import parse_commands
from mailhub.store import lists as store
from tests.support.hub import DOMAIN, message
from tests.support.lists import stop_hub
from tests.test_lists_posting_e2e import LIST, make_hub, post

# Every test here runs on SQLite and on PostgreSQL (tests/conftest.py: backend).
pytestmark = pytest.mark.usefixtures("backend")

REQUEST = f"green-request@{DOMAIN}"


def test_commands_from_subject_and_body():
    assert parse_commands("digest on", "own on\n").verbs == ("digest-on", "own-on")


def test_quoted_text_and_signature_ignored():
    body = "> nomail\nmute\n-- \nmail\n"
    assert parse_commands("Re: [Green] Tea", body).verbs == ("mute",)


def test_attribution_line_stops_reading():
    body = "mute\n\nOn Tue, Ann wrote:\nnomail\n"
    assert parse_commands("", body).verbs == ("mute",)


def test_language_commands_in_welsh_and_english():
    assert parse_commands("iaith Gymraeg", "").verbs == ("lang-cy",)
    assert parse_commands("", "language english\n").verbs == ("lang-en",)
    assert parse_commands("Re: y ddwy iaith", "").verbs == ("lang-both",)
    assert parse_commands("", "iaith arferol\n").verbs == ("lang-list",)


def test_words_in_a_sentence_are_not_commands():
    assert parse_commands("Mail settings", "Help with a form please\n").verbs == ()


def test_subscribe_goes_to_membership():
    assert parse_commands("subscribe", "").verbs == ("join",)


@pytest_asyncio.fixture
async def hub(tmp_path):
    h = await make_hub(tmp_path)
    yield h
    await stop_hub(h)


def request(sender, body, subject="", headers=""):
    return message(sender=sender, to=REQUEST, subject=subject, body=body, headers=headers)


async def member(hub, addr):
    async with hub.service.store.read() as tx:
        return await store.get_member(tx, "green", addr)


def own_address(received) -> str:
    """The member's own command address, from the List-Help of their copy."""
    value = str(received.message["List-Help"])
    return value.strip("<>").removeprefix("mailto:").split("?", 1)[0]


async def cats_own_command(hub, body: str) -> str:
    """Cat writes `body` to the address in her own copy's List-Help (her own command
    address: what she sends there acts at once); returns that address."""
    await hub.send("ann@example.net", [LIST], post())
    await hub.sink.wait_count("cat@example.org")
    cats = own_address(hub.sink.to("cat@example.org")[0])
    await hub.send("cat@example.org", [cats], message(sender="cat@example.org", to=cats, body=body))
    return cats


async def test_digest_nomail_own_settings_confirmed(hub):
    # Cat uses the address in her own copy's List-Help: her settings change at once.
    cats = await cats_own_command(hub, "nomail\nown on\n")
    await hub.sink.wait_count("cat@example.org", 2)
    # Bob writes to the bare -request address: From: proves nothing, so he confirms first.
    await hub.send("bob@example.net", [REQUEST], request("bob@example.net", "digest on\n"))
    await hub.sink.wait_count("bob@example.net", 2)
    await hub.idle()
    assert (await member(hub, "bob@example.net")).delivery == "each"
    confirmation = hub.sink.to("bob@example.net")[1].message
    assert confirmation["Subject"] == "Please confirm: change how you get Green Team"
    back = str(confirmation["Reply-To"])
    await hub.send(
        "bob@example.net", [back], message(sender="bob@example.net", to=back, body="yes\n")
    )
    await hub.sink.wait_count("bob@example.net", 3)
    await hub.idle()
    assert (await member(hub, "bob@example.net")).delivery == "digest"
    cat = await member(hub, "cat@example.org")
    assert cat.delivery == "nomail" and cat.own_posts
    reply = hub.sink.to("cat@example.org")[1]
    assert reply.mail_from == "" and "own messages" in reply.message.get_content()
    # The answer names her own address again, for the next change.
    assert cats in reply.message.get_content()
    # Neither gets the next post as it is sent.
    await hub.send("ann@example.net", [LIST], post(body="Second\n"))
    await hub.idle()
    assert len(hub.sink.to("bob@example.net")) == 3 and len(hub.sink.to("cat@example.org")) == 2


async def test_a_member_chooses_the_language_of_the_lists_mail_to_her(hub):
    cats = await cats_own_command(hub, "iaith Gymraeg\n")
    [_, done] = await hub.sink.wait_count("cat@example.org", 2)
    assert (await member(hub, "cat@example.org")).language == "cy"
    # The answer is already in Welsh only, and says so.
    body = done.message.get_content()
    assert "yn Gymraeg yn unig" in body and "Hello" not in body
    await hub.send(
        "cat@example.org", [cats], message(sender="cat@example.org", to=cats, body="help\n")
    )
    [*_, helped] = await hub.sink.wait_count("cat@example.org", 3)
    assert "iaith Gymraeg" in helped.message.get_content()
    assert "language english" in helped.message.get_content()  # the English words work too


async def test_non_member_cannot_change_settings(hub):
    await hub.send("zed@example.com", [REQUEST], request("zed@example.com", "nomail\n"))
    await hub.sink.wait_count("zed@example.com")
    assert "not a member" in hub.sink.to("zed@example.com")[0].message["Subject"]


async def test_help(hub):
    await hub.send("zed@example.com", [REQUEST], request("zed@example.com", "", subject="help"))
    await hub.sink.wait_count("zed@example.com")
    text = hub.sink.to("zed@example.com")[0].message.get_content()
    assert "digest on" in text and f"green-join@{DOMAIN}" in text


async def test_mute_stops_a_thread_for_that_member_only(hub):
    first = post(subject="Tea on Friday", body="Who is in?\n")
    await hub.send("ann@example.net", [LIST], first)
    await hub.sink.wait_count("bob@example.net")
    root = hub.sink.to("bob@example.net")[0].message["Message-ID"]
    mute = request(
        "bob@example.net",
        "mute\n",
        subject="Re: [Green Team] Tea on Friday",
        headers=f"In-Reply-To: {root}",
    )
    await hub.send("bob@example.net", [own_address(hub.sink.to("bob@example.net")[0])], mute)
    await hub.sink.wait_count("bob@example.net", 2)
    assert "conversation" in hub.sink.to("bob@example.net")[1].message.get_content()
    reply = message(
        sender="Cat <cat@example.org>",
        to=LIST,
        subject="Re: [Green Team] Tea",
        body="Me!\n",
        headers=f"In-Reply-To: {root}\nReferences: {root}",
    )
    await hub.send("cat@example.org", [LIST], reply)
    await hub.sink.wait_count("ann@example.net")
    other = post(subject="Something else", body="New topic\n")
    await hub.send("ann@example.net", [LIST], other)
    await hub.sink.wait_count("bob@example.net", 3)
    await hub.idle()
    subjects = [r.message["Subject"] for r in hub.sink.to("bob@example.net")]
    assert not any(s == "Re: [Green Team] Tea" for s in subjects)
    assert subjects[-1] == "[Green Team] Something else"
