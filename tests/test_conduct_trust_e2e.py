"""Conduct cases against Welsh reports and attackers, end to end: real server over loopback
SMTP, real SQLite file, real SMTP sink. (Issue 8.)"""

from __future__ import annotations

import time

import pytest
import pytest_asyncio

from mailhub.store import bans
from mailhub.store import conduct as store
from tests.support.hub import DOMAIN, message, running_hub
from tests.test_conduct_e2e import (
    ADA,
    BRYN,
    CARYS,
    COMMITTEE_TOML,
    CONDUCT,
    FALLBACK,
    REPORTER,
    open_report,
    personal,
    send,
    subjects,
    write,
)

# Every test here runs on SQLite and on PostgreSQL (tests/conftest.py: backend).
pytestmark = pytest.mark.usefixtures("backend")

WINDOW_TOML = COMMITTEE_TOML.replace('release_after = "0"', 'release_after = "30m"')


@pytest_asyncio.fixture
async def hub(tmp_path):
    async with running_hub(tmp_path, extra=COMMITTEE_TOML) as h:
        yield h


@pytest_asyncio.fixture
async def window_hub(tmp_path):
    async with running_hub(tmp_path, extra=WINDOW_TOML) as h:
        yield h


def report(body: str, subject: str = "Something happened") -> str:
    return message(sender=f"Rhian <{REPORTER}>", to=CONDUCT, subject=subject, body=body)


async def case_state(hub, ref: str):
    async with hub.service.store.read() as tx:
        return (
            await store.get_case(tx, ref),
            await store.recusals(tx, ref),
            await store.audit_trail(tx, ref),
        )


# --- Welsh mutations ------------------------------------------------------------------------

WELSH = [
    # (sentence, the member it names) — one per kind of mutation
    ("Cefais fy mychanu gan Fryn Hughes yn y cyfarfod.", BRYN),  # soft b→f
    ("Roedd hi'n siarad am Garys Pryce drwy'r nos.", CARYS),  # soft c→g
    ("Mae'r broblem ym Mryn Hughes a'i ffrindiau.", BRYN),  # nasal b→m
    ("Digwyddodd yng Ngharys Pryce a'r criw, nid yma.", CARYS),  # nasal c→ngh
    ("Siaradais â Charys Pryce ar ôl y sesiwn.", CARYS),  # aspirate c→ch
    ("Roedd ei Hada Jones hi yno, meddai.", ADA),  # h- before a vowel
    ("Anfonais neges i Bryce am y peth.", CARYS),  # the surname alone, soft p→b
]


@pytest.mark.parametrize("sentence,named", WELSH)
async def test_a_welsh_report_never_reaches_the_member_it_names_in_any_mutation(
    hub, sentence, named
):
    ref = await open_report(hub, report(sentence + "\n", subject="Adroddiad"))
    assert hub.sink.to(named) == []
    others = [m for m in (ADA, BRYN, CARYS) if m != named]
    for member in others:
        assert f"[{ref}] New report" in subjects(hub, member)
    _, recusals, _ = await case_state(hub, ref)
    assert [r.member for r in recusals if r.active] == [
        {ADA: "ada-jones", BRYN: "bryn-hughes", CARYS: "carys-pryce"}[named]
    ]


# --- what cannot be read is withheld ----------------------------------------------------------

IMAGE_REPORT = (
    f"From: {REPORTER}\nTo: {CONDUCT}\nSubject: screenshot\nMessage-ID: <img-1@reporter.example>\n"
    'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="b"\n\n--b\n'
    "Content-Type: text/plain\n\nSee the picture.\n--b\nContent-Type: image/png\n"
    'Content-Transfer-Encoding: base64\nContent-Disposition: attachment; filename="shot.png"\n\n'
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==\n"
    "--b--\n"
)


async def test_an_unreadable_attachment_is_held_for_the_fallback_and_released(hub):
    ref = await open_report(hub, IMAGE_REPORT)
    ack = hub.sink.to(REPORTER)[0].message.get_content()
    assert "shot.png" in ack  # the reporter is told an attachment is being checked first
    for member in (ADA, BRYN, CARYS):
        got = {r.message["Subject"]: r for r in hub.sink.to(member)}
        copy = got[f"[{ref}] New report"]
        assert "See the picture." in copy.raw.decode()
        assert "image/png" not in copy.message.get_content_type() and "iVBORw0KGgo" not in (
            copy.raw.decode()
        )
        assert "shot.png" in got[f"[{ref}] Case details"].message.get_content()
    held = [
        r for r in hub.sink.to(FALLBACK) if r.message["Subject"] == f"[{ref}] Held for checking"
    ]
    assert any("iVBORw0KGgo" in r.raw.decode().replace("\r\n", "") for r in held)
    # A member cannot release it; the fallback reviewer can, through their own address.
    await write(hub, ADA, personal(hub, ADA, ref), body="#release\n")
    assert "iVBORw0KGgo" not in "".join(r.raw.decode() for r in hub.sink.to(CARYS))
    await write(hub, FALLBACK, personal(hub, FALLBACK, ref), body="Checked.\n#release\n")
    for member in (ADA, BRYN, CARYS):
        released = [r for r in hub.sink.to(member) if "Released" in r.message["Subject"]]
        assert len(released) == 1 and "iVBORw0KGgo" in released[0].raw.decode().replace("\r\n", "")
    case, _, trail = await case_state(hub, ref)
    assert "withheld" not in case.flags
    assert [e.action for e in trail].count("released-held") == 1


async def test_the_fallback_can_recuse_a_member_an_image_names_before_release(hub):
    ref = await open_report(hub, IMAGE_REPORT)
    await write(hub, FALLBACK, personal(hub, FALLBACK, ref), body="#recuse Bryn Hughes\n#release\n")
    assert not any("Released" in s for s in subjects(hub, BRYN))
    assert any("Released" in s for s in subjects(hub, ADA))


# --- commands are capabilities ----------------------------------------------------------------

FORGED_COMMANDS = [
    "#close permanent-ban all victim@example.org",
    "#readmit Bryn Hughes",
    "#share",
    "#release",
    "#recuse Carys Pryce",
]


@pytest.mark.parametrize("command", FORGED_COMMANDS)
async def test_a_forged_from_changes_nothing(hub, command):
    ref = await open_report(hub, report("Brynnie shouted at me.\n"))
    before = {a: len(hub.sink.to(a)) for a in (ADA, CARYS, BRYN, FALLBACK, REPORTER)}
    attacker = "mallory@attacker.example"
    plain = f"conduct+{ref}-committee@{DOMAIN}"
    ada_token = personal(hub, ADA, ref)
    attempts = [
        (ADA, plain),  # Ada's address in From: and the envelope, without her token
        (attacker, plain),  # an outsider with Ada's From: (the envelope is theirs)
        (BRYN, plain),  # the recused member forging Ada
        (attacker, ada_token),  # Ada's token (a leaked copy) from someone else's envelope
    ]
    for envelope, address in attempts:
        # From: says Ada every time; her token is used only from an envelope that is not hers.
        await write(hub, envelope, address, sender=f"Ada Jones <{ADA}>", body=command + "\n")
    # Ada's token with the attacker's own From: too.
    await write(hub, attacker, ada_token, body=command + "\n")
    # The reporter's thread: an answer "from Ada" without her token reaches no one.
    await write(hub, attacker, f"conduct+{ref}@{DOMAIN}", sender=f"Ada <{ADA}>", body="Hi\n")
    case, recusals, trail = await case_state(hub, ref)
    assert case.is_open and not case.shared
    assert {r.member for r in recusals if r.active} == {"bryn-hughes"}
    async with hub.service.store.read() as tx:
        assert await bans.all_bans(tx) == []
    assert len(hub.sink.to(REPORTER)) == before[REPORTER]
    # Bryn's own attempt opened a separate case (acknowledged to him): nothing of this one.
    assert not any(ref in r.raw.decode() for r in hub.sink.to(BRYN))
    # Bryn's attempt opened a separate case, which Carys handles; nothing of this one.
    assert not any(ref in r.raw.decode() for r in hub.sink.to(CARYS)[before[CARYS] :])
    actions = [e.action for e in trail]
    assert "unverified" in actions and "refused-token" in actions
    # Ada herself hears that someone used her address (at her own address, not at From:).
    assert len(hub.sink.to(ADA)) > before[ADA]
    assert all("not your own reply address" in s for s in subjects(hub, ADA)[before[ADA] :])


async def test_a_recused_member_cannot_readmit_themselves_with_a_forged_address(hub):
    ref = await open_report(hub, report("Bryn was there.\n"))  # a possible match
    _, recusals, _ = await case_state(hub, ref)
    assert recusals[0].possible
    await write(
        hub, BRYN, f"conduct+{ref}-committee@{DOMAIN}", sender=ADA, body="#readmit Bryn Hughes\n"
    )
    assert not any(ref in r.raw.decode() for r in hub.sink.to(BRYN))
    _, recusals, _ = await case_state(hub, ref)
    assert recusals[0].active


async def test_a_replayed_message_acts_once(hub):
    ref = await open_report(hub, report("A problem.\n"))
    raw = message(sender=ADA, to=personal(hub, ADA, ref), subject="Thoughts", body="Let us meet.\n")
    before = len(hub.sink.to(CARYS))
    await send(hub, ADA, personal(hub, ADA, ref), raw)
    await send(hub, ADA, personal(hub, ADA, ref), raw)
    assert len(hub.sink.to(CARYS)) == before + 1
    _, _, trail = await case_state(hub, ref)
    assert trail[-1].action == "replayed"


# --- mail that comes back stays out -----------------------------------------------------------


def dsn(ref: str) -> str:
    return (
        f"From: MAILER-DAEMON@mx.example.net\nTo: {CONDUCT}\nSubject: Undelivered Mail\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="d"\n\n'
        "--d\nContent-Type: text/plain\n\nYour message could not be delivered.\n"
        "--d\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.net\n\n"
        "Final-Recipient: rfc822; ada@example.net\nAction: failed\nStatus: 5.1.1\n\n"
        f"--d\nContent-Type: text/rfc822-headers\n\nSubject: [{ref}] New report\n--d--\n"
    )


async def test_bounces_and_out_of_office_to_any_case_address_open_nothing(hub):
    ref = await open_report(hub, report("Brynnie shouted at me.\n"))
    seen = {a: len(hub.sink.to(a)) for a in (ADA, BRYN, CARYS, FALLBACK, REPORTER)}
    addresses = [
        CONDUCT,
        f"conduct+{ref}@{DOMAIN}",
        f"conduct+{ref}-committee@{DOMAIN}",
        personal(hub, ADA, ref),
        personal(hub, REPORTER, ref, thread="case"),
        f"conduct-ada-jones@{DOMAIN}",
    ]
    for address in addresses:
        await send(hub, "", address, dsn(ref))
        oof = message(
            sender=ADA,
            to=address,
            subject=f"Out of office: [{ref}] New report",
            body="I am away until Monday.\n",
            headers="Auto-Submitted: auto-replied",
        )
        await send(hub, ADA, address, oof)
    async with hub.service.store.read() as tx:
        assert len(await store.all_cases(tx)) == 1
    assert {a: len(hub.sink.to(a)) for a in seen} == seen
    _, _, trail = await case_state(hub, ref)
    assert sum(e.action == "automatic-mail" for e in trail) == 2 * len(addresses)


async def test_a_new_case_citing_another_inherits_its_recusals(hub):
    first = await open_report(hub, report("Brynnie shouted at me.\n"))
    # Someone forwards an earlier case mail into a new report: it carries the reference.
    second = await open_report(
        hub,
        message(sender="other@example.org", to=CONDUCT, body=f"About case {first}: more.\n"),
        sender="other@example.org",
    )
    assert hub.sink.to(BRYN) == []
    _, recusals, _ = await case_state(hub, second)
    assert [r.member for r in recusals] == ["bryn-hughes"]


async def test_opening_cases_is_rate_limited_per_mailbox(hub):
    for i in range(7):
        await send(hub, f"victim+{i}@example.org", CONDUCT, report(f"Report {i}.\n"))
    acks = [r for r in hub.sink.received if r.rcpt.startswith("victim+")]
    assert len(acks) == 3  # the automatic-reply allowance of one mailbox
    assert len([s for s in subjects(hub, ADA) if s.endswith("New report")]) == 5
    async with hub.service.store.read() as tx:
        cases = await store.all_cases(tx)
    assert len(cases) == 7  # nothing is lost: the extra reports are kept, flagged
    assert sum("rate-limited" in c.flags for c in cases) == 2


# --- committee mail is scanned too -------------------------------------------------------------


async def test_a_committee_message_naming_a_member_recuses_them(hub):
    ref = await open_report(hub, report("A problem at the meetup.\n"))
    n_bryn, n_carys = len(hub.sink.to(BRYN)), len(hub.sink.to(CARYS))
    await write(
        hub,
        ADA,
        personal(hub, ADA, ref),
        subject=f"Re: [{ref}] New report",
        body="I think this may be about Carys Pryce.\n\nAda\n",
    )
    assert len(hub.sink.to(CARYS)) == n_carys
    assert f"Re: [{ref}] New report" in subjects(hub, BRYN)[n_bryn:]
    _, recusals, _ = await case_state(hub, ref)
    assert [(r.member, r.possible) for r in recusals] == [("carys-pryce", False)]
    # Quoting the earlier messages ("On ..., Bryn Hughes wrote:") recuses no one.
    await write(
        hub,
        ADA,
        personal(hub, ADA, ref),
        body="Agreed.\n\nOn Monday, Bryn Hughes (case) wrote:\n> Bryn Hughes here\n",
    )
    _, recusals, _ = await case_state(hub, ref)
    assert [r.member for r in recusals if r.active] == ["carys-pryce"]


# --- the reporter's window ----------------------------------------------------------------------


async def test_the_reporter_sees_who_will_read_and_can_exclude_within_the_window(window_hub):
    hub = window_hub
    ref = await open_report(hub, report("Someone at the meetup was rude.\n"))
    ack = hub.sink.to(REPORTER)[0].message
    text = ack.get_content()
    for name in ("Ada Jones", "Bryn Hughes", "Carys Pryce"):
        assert name in text
    assert "exclude" in text and "send now" in text
    assert hub.sink.to(ADA) == [] and hub.sink.to(BRYN) == []  # nothing before the window ends
    await write(hub, REPORTER, ack["Reply-To"], body="exclude Bryn Hughes\n\n> quoted ack\n")
    done = hub.sink.to(REPORTER)[-1].message.get_content()
    assert "Bryn Hughes" in done
    hub.clock.advance(31 * 60)
    await hub.service.scheduler.run_once()
    await hub.idle()
    assert f"[{ref}] New report" in subjects(hub, ADA)
    assert hub.sink.to(BRYN) == []
    _, recusals, _ = await case_state(hub, ref)
    assert [(r.member, r.reason) for r in recusals] == [("bryn-hughes", "excluded by the reporter")]


async def test_welsh_eithrio_and_anfon_nawr(window_hub):
    hub = window_hub
    ref = await open_report(hub, report("Roedd rhywun yn anghwrtais.\n"))
    reply_to = hub.sink.to(REPORTER)[0].message["Reply-To"]
    await write(hub, REPORTER, reply_to, body="eithrio Carys\nanfon nawr\n")
    assert f"[{ref}] New report" in subjects(hub, ADA)  # sent at once, without waiting
    assert hub.sink.to(CARYS) == []


async def test_exclude_without_the_reply_token_changes_nothing(window_hub):
    hub = window_hub
    ref = await open_report(hub, report("Someone was rude.\n"))
    # The plain case address and the reporter's From: — anyone can forge both.
    await write(hub, REPORTER, f"conduct+{ref}@{DOMAIN}", body="exclude Ada Jones\nsend now\n")
    assert hub.sink.to(ADA) == []  # not released early
    case, recusals, _ = await case_state(hub, ref)
    assert not case.released
    # The command did nothing; naming Ada in a reply still keeps her out (fail closed).
    assert [r.reason for r in recusals] == ['named in a reply: full name "Ada Jones"']
    assert "Nothing was changed" in subjects(hub, REPORTER)[-1]


# --- bounded scanning ---------------------------------------------------------------------------


async def test_a_2mb_report_of_spaces_and_markup_does_not_stall_other_mail(tmp_path):
    async with running_hub(tmp_path, extra=COMMITTEE_TOML, max_message_bytes=4_000_000) as hub:
        junk = ("<b>  <i>" + " " * 120 + "</i>\r\n") * 16000  # ~2 MB, lines under 998
        raw = (
            f"From: {REPORTER}\r\nTo: {CONDUCT}\r\nSubject: big\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/html; charset=utf-8\r\n\r\n<html><body>" + junk + "Brynnie</body>"
        )
        assert len(raw) > 2_000_000
        started = time.monotonic()
        code, _ = await hub.send(REPORTER, [CONDUCT], raw)
        assert code == 250
        # Other mail keeps flowing meanwhile: each enquiry is accepted promptly.
        for i in range(5):
            t0 = time.monotonic()
            code, _ = await hub.send(
                "sam@example.net", [f"enquiries@{DOMAIN}"], f"Subject: q{i}\n\nHi\n"
            )
            assert code == 250 and time.monotonic() - t0 < 2.0
        await hub.idle()
        assert time.monotonic() - started < 15
        assert hub.sink.to(BRYN) == []
        assert any(s.endswith("New report") for s in subjects(hub, ADA))


async def test_the_acknowledgement_is_welsh_first_when_bilingual(tmp_path):
    toml = WINDOW_TOML.replace('language = "en"', 'language = "cy+en"')
    async with running_hub(tmp_path, extra=toml) as hub:
        await send(hub, REPORTER, CONDUCT, report("x\n"))
        body = hub.sink.to(REPORTER)[0].message.get_content()
        assert body.index("eithrio") < body.index("exclude")
        assert "anfon nawr" in body


async def test_a_report_over_the_scan_budget_goes_to_the_fallback_only(tmp_path):
    async with running_hub(tmp_path, extra=COMMITTEE_TOML, max_message_bytes=8_000_000) as hub:
        line = "word " * 150 + "\r\n"  # ~750 characters a line, 5.5 MB in all
        body = line * (5_500_000 // len(line)) + "Brynnie did it.\r\n"
        raw = f"From: {REPORTER}\r\nTo: {CONDUCT}\r\nSubject: long\r\n\r\n" + body
        ref = await open_report(hub, raw)
        assert "check" in hub.sink.to(REPORTER)[0].message.get_content()
        for member in (ADA, BRYN, CARYS):
            assert hub.sink.to(member) == []  # fail closed: nothing unchecked reaches anyone
        assert f"[{ref}] Held for checking" in subjects(hub, FALLBACK)
        case, _, _ = await case_state(hub, ref)
        assert "unscanned" in case.flags
        # The fallback reviewer keeps Bryn out, then releases it to the others.
        await write(hub, FALLBACK, personal(hub, FALLBACK, ref), body="#recuse Bryn\n#release\n")
        assert f"[{ref}] New report" in subjects(hub, ADA)
        assert hub.sink.to(BRYN) == []


async def test_tokens_a_recused_member_may_have_seen_are_revoked(hub):
    ref = await open_report(hub, report("A problem.\n"))
    adas_old = personal(hub, ADA, ref)  # say Bryn saw it quoted in a relayed reply
    await write(hub, BRYN, personal(hub, BRYN, ref), body="I know them.\n#recuse\n")
    # Bryn, now recused, forges Ada's From: and envelope with her old reply address.
    await write(hub, ADA, adas_old, body="#close no-action\n")
    case, _, trail = await case_state(hub, ref)
    assert case.is_open and trail[-1].action == "refused-token"
    # Ada and Carys were sent fresh addresses with the new recusal; those work.
    assert personal(hub, ADA, ref) != adas_old
    await write(hub, ADA, personal(hub, ADA, ref), body="Closing.\n#close no-action\n")
    case, _, _ = await case_state(hub, ref)
    assert not case.is_open


async def test_case_mail_past_the_hop_limit_opens_nothing(hub):
    hops = "".join(
        f"Received: from relay{i}.example by mx.example; Mon, 30 Nov 2026\n" for i in range(25)
    )
    await send(hub, REPORTER, CONDUCT, report("A problem.\n").replace("From:", hops + "From:", 1))
    async with hub.service.store.read() as tx:
        assert await store.all_cases(tx) == []
    assert hub.sink.received == []
