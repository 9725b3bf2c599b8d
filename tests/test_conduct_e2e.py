"""Code-of-conduct cases end to end: real server, real SQLite file, real SMTP sink."""

from __future__ import annotations

import asyncio
import base64
import logging
import re

import pytest
import pytest_asyncio

from mailhub.cli import main
from mailhub.store import bans
from mailhub.store import conduct as store
from tests.support.hub import DOMAIN, message, running_hub, start_hub

# Every test here runs on SQLite and on PostgreSQL (tests/conftest.py: backend).
pytestmark = pytest.mark.usefixtures("backend")

CONDUCT = f"conduct@{DOMAIN}"
ADA, BRYN, CARYS = "ada@example.net", "bryn@example.net", "carys@example.net"
FALLBACK = "board@example.net"
REPORTER = "rhian@reporter.example"

# English unless a test says otherwise (the shipped default is Welsh first: cy+en).
COMMITTEE_TOML = """
[conduct]
language = "en"
fallback = "board@example.net"
release_after = "0"
[[conduct.committee]]
name = "Ada Jones"
addresses = ["ada@example.net"]
aliases = ["AJ", "Ada J"]
[[conduct.committee]]
name = "Bryn Hughes"
addresses = ["bryn@example.net"]
aliases = ["Brynnie"]
[[conduct.committee]]
name = "Carys Pryce"
addresses = ["carys@example.net"]
"""


@pytest_asyncio.fixture
async def hub(tmp_path):
    async with running_hub(tmp_path, extra=COMMITTEE_TOML) as h:
        yield h


def html_base64_report(text: str, subject: str = "Something happened at the meetup") -> str:
    html = f"<html><body><p>{text}</p></body></html>"
    encoded = base64.encodebytes(html.encode()).decode()
    return (
        f"From: Rhian Report <{REPORTER}>\nTo: {CONDUCT}\nSubject: {subject}\n"
        f"Message-ID: <r-{abs(hash(text))}@reporter.example>\nMIME-Version: 1.0\n"
        "Content-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: base64\n\n" + encoded
    )


async def send(hub, sender: str, to: str, raw: str) -> None:
    code, _ = await hub.send(sender, [to], raw)
    assert code == 250
    await hub.idle()


async def write(hub, sender: str, to: str, /, **fields: str) -> None:
    """Send one message to `to`; its From: is the envelope sender unless fields name another.

    Positional-only, so that `sender=` among the fields sets the From: header alone.
    """
    fields.setdefault("sender", sender)
    await send(hub, sender, to, message(to=to, **fields))


async def write_to_case(hub, sender: str, ref: str, /, **fields: str) -> None:
    """Write to the case address conduct+REF@ (the reporter's thread)."""
    await write(hub, sender, f"conduct+{ref}@{DOMAIN}", **fields)


async def write_to_committee(hub, sender: str, ref: str, /, **fields: str) -> None:
    """Write to conduct+REF-committee@ (the committee's own thread)."""
    await write(hub, sender, f"conduct+{ref}-committee@{DOMAIN}", **fields)


def personal(hub, who: str, ref: str, thread: str = "committee") -> str:
    """`who`'s own reply address for case `ref` (its token), from the latest case mail they
    received: `thread` "committee" (conduct+REF-committee+TOKEN@) or "case" (conduct+REF+TOKEN@)."""
    suffix = "-committee" if thread == "committee" else ""
    pattern = re.compile(rf"conduct\+{ref}{suffix}\+[A-Za-z0-9_-]+@{re.escape(DOMAIN)}")
    for r in reversed(hub.sink.to(who)):
        m = r.message
        for text in (str(m["Reply-To"] or ""), m.get_body(("plain",)).get_content()):
            found = pattern.search(text)
            if found:
                return found.group(0)
    raise AssertionError(f"no {thread} address of {ref} in {who}'s mail")


async def as_member(hub, member: str, ref: str, /, thread: str = "committee", **fields: str):
    """A committee member writes through their own reply address."""
    await write(hub, member, personal(hub, member, ref, thread), **fields)


async def days_pass(hub, days: int) -> None:
    """Move the clock on and let the scheduler run once, as its next tick would."""
    hub.clock.advance(days * 86400)
    await hub.service.scheduler.run_once()
    await hub.idle()


async def open_report(hub, raw: str, sender: str = REPORTER) -> str:
    """Send a report; return its reference, read from the acknowledgement."""
    before = len(hub.sink.to(sender))
    await send(hub, sender, CONDUCT, raw)
    acks = hub.sink.to(sender)
    assert len(acks) == before + 1
    m = re.match(r"\[(C-[0-9A-Z]{4}-[0-9A-Z]{2})\] Report received", acks[-1].message["Subject"])
    assert m, acks[-1].message["Subject"]
    return m.group(1)


def body_of(received) -> str:
    return received.message.get_body(("plain",)).get_content()


def subjects(hub, addr: str) -> list[str]:
    return [r.message["Subject"] for r in hub.sink.to(addr)]


def last_subjects(hub, addr: str, n: int) -> set[str]:
    """The subjects of the last n messages at addr (mail sent together may arrive in any order)."""
    return set(subjects(hub, addr)[-n:])


async def test_whole_case_never_reaches_the_member_named_by_alias(hub):
    ref = await open_report(
        hub, html_base64_report("Brynnie shouted at me during the <b>workshop</b>.")
    )
    ack = hub.sink.to(REPORTER)[0]
    assert ack.mail_from == ""
    a = ack.message
    assert re.fullmatch(rf"conduct\+{ref}\+[A-Za-z0-9_-]{{22}}@{DOMAIN}", a["Reply-To"])
    assert a["Auto-Submitted"] == "auto-replied"
    ack_text = a.get_content()
    assert ref in ack_text and "within one week" in ack_text
    assert "meetup" not in a["Subject"] and "shouted" not in ack_text

    for member in (ADA, CARYS):
        got = sorted(hub.sink.to(member), key=lambda r: "details" in r.message["Subject"])
        assert [r.message["Subject"] for r in got] == [
            f"[{ref}] New report",
            f"[{ref}] Case details",
        ]
        report = got[0]
        assert report.mail_from == ""
        m = report.message
        assert m["From"] == f"Code of conduct committee <{CONDUCT}>"
        # Each member's copy carries their own reply address (a token); no two alike.
        assert re.fullmatch(rf"conduct\+{ref}-committee\+[\w-]{{22}}@{DOMAIN}", m["Reply-To"])
        assert m["To"] == m["Reply-To"]
        assert "Brynnie shouted" in m.get_content()  # the original body, decoded
        details = got[1].message.get_content()
        assert 'Bryn Hughes: alias "Brynnie"' in details
        assert REPORTER in details
    async with hub.service.store.read() as tx:
        (rec,) = await store.recusals(tx, ref)
    assert rec.member == "bryn-hughes" and not rec.possible

    # The reporter adds something: it joins the case, for Ada and Carys only.
    await write_to_case(
        hub, REPORTER, ref, subject=f"Re: [{ref}] Report received", body="It happened twice.\n"
    )
    for member in (ADA, CARYS):
        last = hub.sink.to(member)[-1].message
        assert last["Subject"] == f"[{ref}] Reply from the reporter"
        assert "It happened twice." in last.get_content()

    # Day 5: a reminder (no answer yet); day 7: escalation to the fallback.
    await days_pass(hub, 5)
    for member in (ADA, CARYS):
        assert subjects(hub, member)[-1].startswith(f"[{ref}] Reminder")
    await hub.service.scheduler.run_once()
    await hub.idle()
    assert sum("Reminder" in s for s in subjects(hub, ADA)) == 1  # once only
    assert hub.sink.to(FALLBACK) == []
    hub.clock.advance(2 * 86400)
    await hub.service.scheduler.run_once()
    await hub.service.scheduler.run_once()
    await hub.idle()
    assert [s.startswith(f"[{ref}] Escalated") for s in subjects(hub, FALLBACK)] == [True]

    # Ada answers the reporter; the committee talks; the case closes.
    await as_member(
        hub,
        ADA,
        ref,
        thread="case",
        sender=f"Ada Jones <{ADA}>",
        subject=f"Re: [{ref}] Reply from the reporter",
        body=f"Thank you, we are looking into it.\n\nOn Monday, Ada <{ADA}> wrote:\n> hi\n",
    )
    await as_member(
        hub, CARYS, ref, subject=f"Re: [{ref}] New report", body="I agree.\n#close reprimand\n"
    )
    assert last_subjects(hub, ADA, 2) == {f"Re: [{ref}] New report", f"[{ref}] Case closed"}
    await hub.idle()
    assert hub.sink.to(BRYN) == []


async def test_committee_answer_reaches_reporter_from_the_committee_address(hub):
    ref = await open_report(hub, message(sender=REPORTER, to=CONDUCT, body="A problem.\n"))
    await as_member(
        hub,
        ADA,
        ref,
        thread="case",
        sender=f"Ada Jones <{ADA}>",
        subject="Your report",
        body=f"We will talk to them.\n\nOn Tue, Ada Jones <{ADA}> wrote:\n> x\nmail {ADA}\n",
    )
    answer = hub.sink.to(REPORTER)[-1]
    assert answer.mail_from == ""
    assert ADA not in answer.raw.decode().lower()
    m = answer.message
    assert m["From"] == f"Code of conduct committee <{CONDUCT}>"
    assert re.fullmatch(rf"conduct\+{ref}\+[\w-]{{22}}@{DOMAIN}", m["Reply-To"])
    assert "+" not in "".join(re.findall(r"conduct\S*", body_of(answer)))  # no token leaks
    body = m.get_content()
    assert "We will talk to them." in body and "the code of conduct committee" in body
    # The other members see a copy; Ada does not get her own answer back.
    assert subjects(hub, CARYS)[-1] == f"[{ref}] Answer sent to the reporter"
    assert len(hub.sink.to(ADA)) == 2  # the report and its details; not her own answer
    # An answer stops the reminders.
    await days_pass(hub, 8)
    assert not any("Reminder" in s for s in subjects(hub, CARYS))
    assert hub.sink.to(FALLBACK) == []


async def test_out_of_office_from_a_member_never_reaches_the_reporter(hub):
    ref = await open_report(hub, message(sender=REPORTER, to=CONDUCT, body="A problem.\n"))
    n = len(hub.sink.to(REPORTER))
    await as_member(
        hub,
        ADA,
        ref,
        thread="case",
        subject="Out of office",
        body="I am away.\n",
        headers="Auto-Submitted: auto-replied",
    )
    assert len(hub.sink.to(REPORTER)) == n
    async with hub.service.store.read() as tx:
        trail = await store.audit_trail(tx, ref)
    assert trail[-1].action == "automatic-mail"


async def test_report_naming_every_member_goes_to_the_fallback(hub):
    await open_report(
        hub,
        message(
            sender=REPORTER,
            to=CONDUCT,
            body="Ada Jones, Bryn Hughes and Carys Pryce all ignored me.\n",
        ),
    )
    for member in (ADA, BRYN, CARYS):
        assert hub.sink.to(member) == []
    got = sorted(hub.sink.to(FALLBACK), key=lambda r: "details" in r.message["Subject"])
    assert [r.message["Subject"][12:] for r in got] == ["New report", "Case details"]
    assert "fallback reviewer" in got[1].message.get_content()


async def test_non_member_on_committee_address_opens_a_separate_case(hub):
    ref = await open_report(hub, message(sender=REPORTER, to=CONDUCT, body="Report one.\n"))
    before = {a: len(hub.sink.to(a)) for a in (ADA, BRYN, CARYS)}
    outsider = "nosy@elsewhere.example"
    await write_to_committee(hub, outsider, ref, subject="hi", body="let me in")
    # A new case: acknowledged with its own reference, nothing of the first.
    acks = hub.sink.to(outsider)
    assert len(acks) == 1
    new_ref = re.search(r"C-[0-9A-Z]{4}-[0-9A-Z]{2}", acks[0].message["Subject"]).group(0)
    assert new_ref != ref and ref not in acks[0].raw.decode()
    for a in (ADA, BRYN, CARYS):
        new = hub.sink.to(a)[before[a] :]
        assert {r.message["Subject"] for r in new} == {
            f"[{new_ref}] New report",
            f"[{new_ref}] Case details",
        }
        assert all(ref not in r.raw.decode() for r in new)
    async with hub.service.store.read() as tx:
        trail = await store.audit_trail(tx, ref)
    assert trail[-1].action == "refused-writer" and trail[-1].actor == outsider


async def test_recused_member_writing_to_the_case_opens_a_separate_case(hub):
    ref = await open_report(hub, message(sender=REPORTER, to=CONDUCT, body="About Brynnie.\n"))
    await write_to_case(hub, BRYN, ref, subject="?", body="What is this?")
    assert len(hub.sink.to(REPORTER)) == 1  # nothing reached the reporter
    async with hub.service.store.read() as tx:
        trail = await store.audit_trail(tx, ref)
        cases = await store.all_cases(tx)
    assert trail[-1].action == "refused-writer" and trail[-1].actor == BRYN
    assert len(cases) == 2


async def test_forged_or_unknown_reference_opens_a_new_case(hub):
    ref = await open_report(hub, message(sender=REPORTER, to=CONDUCT, body="Report one.\n"))
    other = "someone@else.example"
    for address in (f"conduct+C-ZZZZ-ZZ@{DOMAIN}", f"conduct+C-ZZZZ-ZZ-committee@{DOMAIN}"):
        await write(hub, other, address, body="hello\n")
    # A subject tag of a real case from a stranger to conduct@ opens a new case too.
    await write(hub, other, CONDUCT, subject=f"Re: [{ref}] Report received", body="x\n")
    acks = hub.sink.to(other)
    assert len(acks) == 3
    assert all(ref not in r.raw.decode() for r in acks)
    async with hub.service.store.read() as tx:
        cases = await store.all_cases(tx)
        first_messages = await store.messages(tx, ref)
    assert len(cases) == 4 and len(first_messages) == 1


async def test_recuse_command(hub):
    ref = await open_report(hub, message(sender=REPORTER, to=CONDUCT, body="A problem.\n"))
    committee = personal(hub, CARYS, ref)
    await write(hub, CARYS, committee, body="I know them.\n#recuse\n")
    n_carys = len(hub.sink.to(CARYS))
    await write_to_case(hub, REPORTER, ref, body="More detail.\n")
    await days_pass(hub, 8)
    assert len(hub.sink.to(CARYS)) == n_carys
    assert subjects(hub, ADA)[-1].startswith(f"[{ref}] Reminder")
    async with hub.service.store.read() as tx:
        recs = await store.recusals(tx, ref)
    assert [(r.member, r.reason) for r in recs] == [
        ("carys-pryce", "declared a conflict of interest (#recuse)")
    ]
    # Her token is revoked: her own address changes nothing now; the plain committee
    # address from her opens a separate case (she is an outsider to this one).
    await write(hub, CARYS, committee, body="Oops.\n#close no-action\n")
    await write_to_committee(hub, CARYS, ref, body="Oops.\n")
    async with hub.service.store.read() as tx:
        assert len(await store.all_cases(tx)) == 2
        assert (await store.get_case(tx, ref)).is_open
        actions = [e.action for e in await store.audit_trail(tx, ref)]
    assert "refused-token" in actions


async def test_committee_message_copied_to_a_recused_member_is_refused(hub):
    ref = await open_report(hub, message(sender=REPORTER, to=CONDUCT, body="About Brynnie.\n"))
    n_carys = len(hub.sink.to(CARYS))
    await as_member(hub, ADA, ref, headers=f"Cc: {BRYN}", body="Thoughts?\n")
    assert len(hub.sink.to(CARYS)) == n_carys
    refusal = hub.sink.to(ADA)[-1].message
    assert refusal["Subject"] == f"[{ref}] Your message was not passed on"
    assert BRYN in refusal.get_content()
    assert hub.sink.to(BRYN) == []


async def test_close_with_temporary_ban(hub):
    ref = await open_report(hub, message(sender=REPORTER, to=CONDUCT, body="A problem.\n"))
    await as_member(hub, ADA, ref, body="Agreed.\n#close temporary-ban 7d all troll@bad.example\n")
    now = hub.clock.now()
    async with hub.service.store.read() as tx:
        case = await store.get_case(tx, ref)
        assert case.state == "closed" and case.outcome == "temporary-ban 7d all troll@bad.example"
        assert await bans.active(tx, "troll@bad.example", "any-list", now + 6 * 86400)
        assert await bans.active(tx, "troll@bad.example", "any-list", now + 7 * 86400 + 1) is None
        trail = await store.audit_trail(tx, ref)
    assert (ADA, "closed") in [(e.actor, e.action) for e in trail]
    assert last_subjects(hub, CARYS, 2) == {f"[{ref}] Case closed", f"[{ref}] Committee discussion"}
    # A closed case is not escalated.
    await days_pass(hub, 8)
    assert hub.sink.to(FALLBACK) == []


async def test_bad_command_is_explained_to_its_author(hub):
    ref = await open_report(hub, message(sender=REPORTER, to=CONDUCT, body="A problem.\n"))
    await as_member(hub, ADA, ref, body="#close banish\n")
    err = hub.sink.to(ADA)[-1].message
    assert err["Subject"] == f"[{ref}] A command could not be carried out"
    async with hub.service.store.read() as tx:
        assert (await store.get_case(tx, ref)).state == "open"


async def test_readmit_lifts_a_possible_match_only(hub):
    ref = await open_report(
        hub, message(sender=REPORTER, to=CONDUCT, body="Ada was there, and Brynnie.\n")
    )
    assert hub.sink.to(ADA) == []
    await as_member(hub, CARYS, ref, body="Not our one.\n#readmit Ada Jones\n#readmit Bryn\n")
    # Readmitted before the message is passed on, Ada gets the message too.
    assert set(subjects(hub, ADA)) == {
        f"[{ref}] New report",
        f"[{ref}] Case details",
        f"[{ref}] Committee discussion",
    }
    assert f"[{ref}] A command could not be carried out" in subjects(hub, CARYS)
    assert hub.sink.to(BRYN) == []
    async with hub.service.store.read() as tx:
        recs = {r.member: r for r in await store.recusals(tx, ref)}
        trail = await store.audit_trail(tx, ref)
    assert recs["ada-jones"].lifted_by == CARYS and recs["bryn-hughes"].active
    assert any(e.action == "readmitted" and e.actor == CARYS for e in trail)


async def test_reply_naming_a_member_recuses_them_from_then_on(hub):
    ref = await open_report(hub, message(sender=REPORTER, to=CONDUCT, body="A problem.\n"))
    n_ada = len(hub.sink.to(ADA))
    await write_to_case(hub, REPORTER, ref, body="AJ saw it too.\n")
    assert len(hub.sink.to(ADA)) == n_ada
    assert last_subjects(hub, CARYS, 2) == {
        f"[{ref}] Reply from the reporter",
        f"[{ref}] Case details",
    }


async def test_direct_report_and_share(hub):
    direct = f"conduct-carys-pryce@{DOMAIN}"
    code, _ = await hub.send(
        REPORTER, [direct], message(sender=REPORTER, to=direct, body="Dear Carys, Brynnie...\n")
    )
    assert code == 250
    await hub.idle()
    ack = hub.sink.to(REPORTER)[0].message
    ref = re.search(r"C-[0-9A-Z]{4}-[0-9A-Z]{2}", ack["Subject"]).group(0)
    assert "Carys Pryce" in ack.get_content()
    assert set(subjects(hub, CARYS)) == {f"[{ref}] New report", f"[{ref}] Case details"}
    assert hub.sink.to(ADA) == [] and hub.sink.to(BRYN) == []
    await as_member(hub, CARYS, ref, body="#share\n")
    assert {f"[{ref}] New report", f"[{ref}] Case details"} <= set(subjects(hub, ADA))
    assert hub.sink.to(BRYN) == []


async def test_no_case_text_in_the_logs(hub, caplog):
    caplog.set_level(logging.DEBUG)
    secret_subject = "Zanzibarquux incident"
    secret_body = "Flibbertigibbet behaviour by Brynnie"
    ref = await open_report(
        hub, message(sender=REPORTER, to=CONDUCT, subject=secret_subject, body=secret_body)
    )
    await write_to_case(hub, REPORTER, ref, subject=secret_subject, body="Quuxwobble more\n")
    await as_member(hub, ADA, ref, subject=secret_subject, body="Wibblewomp\n#recuse\n")
    await as_member(hub, CARYS, ref, thread="case", body="Snorklefax answer\n")
    await days_pass(hub, 8)
    text = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert "conduct.case" in text  # the flow was logged, by reference
    for secret in ("Zanzibarquux", "Flibbertigibbet", "Quuxwobble", "Wibblewomp", "Snorklefax"):
        assert secret not in text
    for name in ("Brynnie", "Bryn Hughes", "Ada Jones", "Carys"):
        assert name not in text


async def test_temporary_ban_stops_posting_to_lists_for_its_term(tmp_path):
    lists = '[[lists]]\nname = "chat"\nsubscription = "open"\nnon_member_posts = "accept"\n'
    hub = await start_hub(tmp_path, extra=lists + COMMITTEE_TOML)
    troll = "troll@bad.example"
    chat = f"chat@{DOMAIN}"

    async def post() -> int:
        """How many rejection notices the troll has after one more post."""
        await write(hub, troll, chat, body="hello all\n")
        return len(hub.sink.to(troll))

    try:
        assert await post() == 0
        ref = await open_report(hub, message(sender=REPORTER, to=CONDUCT, body="The troll.\n"))
        await as_member(hub, ADA, ref, body=f"#close temporary-ban 7d all {troll}\n")
        assert await post() == 1  # refused while banned
        hub.clock.advance(6 * 86400)
        assert await post() == 2
        hub.clock.advance(86400 + 1)
        assert await post() == 2  # the term is over
    finally:
        await hub.service.stop()
        await hub.sink.stop()


async def test_member_reply_to_conduct_with_the_tag_acts_on_nothing(hub):
    ref = await open_report(hub, message(sender=REPORTER, to=CONDUCT, body="A problem.\n"))
    n = len(hub.sink.to(REPORTER))
    n_carys = len(hub.sink.to(CARYS))
    await write(hub, ADA, CONDUCT, subject=f"Re: [{ref}] New report", body="Mine?\n")
    # Without her own reply address it reaches no one; she is told at her own address.
    assert len(hub.sink.to(REPORTER)) == n and len(hub.sink.to(CARYS)) == n_carys
    assert "not your own reply address" in subjects(hub, ADA)[-1]
    # The reporter's tagged reply to conduct@ joins the case.
    await write(hub, REPORTER, CONDUCT, subject=f"Re: [{ref}] Report received", body="+1\n")
    assert subjects(hub, CARYS)[-1] == f"[{ref}] Reply from the reporter"
    async with hub.service.store.read() as tx:
        assert len(await store.all_cases(tx)) == 1


async def test_bilingual_acknowledgement(tmp_path):
    toml = COMMITTEE_TOML.replace('language = "en"', 'language = "cy+en"')
    hub = await start_hub(tmp_path, extra=toml)
    try:
        await write(hub, REPORTER, CONDUCT, body="x\n")
        ack = hub.sink.to(REPORTER)[0].message
        ref = ack["X-Conduct-Case"]
        assert ack["Subject"] == (  # no leading space: never folded with an empty first line
            f"[{ref}] Mae eich adroddiad wedi dod i law / Report received"  # the tag once
        )
        body = ack.get_content()
        assert body.index("Eich cyfeirnod") < body.index("Your reference")
        assert "dydd " in body  # the Welsh date, lower case mid-sentence
        assert subjects(hub, ADA)[0].startswith(f"[{ref}]")
    finally:
        await hub.service.stop()
        await hub.sink.stop()


async def test_closing_at_the_console_tells_the_committee_but_not_the_recused(hub):
    ref = await open_report(
        hub, message(sender=REPORTER, to=CONDUCT, body="Brynnie shouted at me.\n")
    )
    had = {a: len(hub.sink.to(a)) for a in (ADA, CARYS)}
    argv = ["cases", "close", ref, "--outcome", "reprimand", "--config", str(hub.path)]
    assert await asyncio.to_thread(main, argv) == 0
    # The CLI is another process in real life, on the system clock: move the test clock past
    # its timestamps. The running service finds the CLI's mail by polling (every 5 s).
    hub.clock.advance(60)
    await hub.sink.wait_for(lambda _: all(len(hub.sink.to(a)) > n for a, n in had.items()), 15)
    assert subjects(hub, ADA)[-1] == subjects(hub, CARYS)[-1] == f"[{ref}] Case closed"
    assert "admin (console)" in hub.sink.to(CARYS)[-1].raw.decode()
    assert hub.sink.to(BRYN) == []
    async with hub.service.store.read() as tx:
        assert (await store.get_case(tx, ref)).outcome == "reprimand"
