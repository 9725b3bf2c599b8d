"""Real-world mail, end to end: no message ends `failed`, whatever it holds.

The corpora are the test messages of two projects that collect odd real mail, taken
from their source distributions on PyPI at test time (never committed): flufl.bounce
(bounces and DSNs from many MTAs) and mail-parser (malformed and unusual mail). They are
cached under ~/.cache/mailhub-test-corpora; offline and without a cache, the test is
skipped. Each message is sent over SMTP as a list post, an enquiry and a conduct report.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from mailhub.store import inbound
from mailhub.store import lists as store
from tests.support.hub import DOMAIN, running_hub
from tests.test_conduct_e2e import COMMITTEE_TOML

CACHE = Path(os.environ.get("MAILHUB_CORPORA", Path.home() / ".cache" / "mailhub-test-corpora"))
PACKAGES = {"flufl.bounce": "flufl_bounce-", "mail-parser": "mail_parser-"}
# At most this many messages (a deterministic sample): the test stays well under a minute.
SAMPLE = 120
MAX_BYTES = 2_000_000

LIST_TOML = (
    """
[[lists]]
name = "corpus"
display_name = "Corpus"
facilitators = ["fac@example.net"]
delivery = "personalised"
footer = "Corpus list: leave at corpus-leave@cop.example.org"

"""
    + COMMITTEE_TOML
)

MEMBERS = ["ann@example.net", "bob@example.net"]
_HEADER_LINE = re.compile(rb"(From |[A-Za-z][A-Za-z0-9-]*:)")


def sdists() -> list[Path]:
    """The two source distributions, downloaded once (pip, with a timeout)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    found = []
    for name, prefix in PACKAGES.items():
        have = sorted(CACHE.glob(f"{prefix}*.tar.gz"))
        if not have:
            try:
                subprocess.run(
                    [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
                    + ["--disable-pip-version-check", "--timeout", "15", "-d", str(CACHE), name],
                    check=True,
                    capture_output=True,
                    timeout=120,
                )
            except (subprocess.SubprocessError, OSError) as exc:
                pytest.skip(f"corpus {name} not cached and could not be downloaded: {exc!r}")
            have = sorted(CACHE.glob(f"{prefix}*.tar.gz"))
        if not have:
            pytest.skip(f"corpus {name}: no sdist in {CACHE} after pip download")
        found.append(have[-1])
    return found


def is_message_file(name: str) -> bool:
    if "/tests/" not in name or name.endswith((".py", ".json", ".pyc")):
        return False
    base = name.rsplit("/", 1)[-1]
    return base.endswith((".eml", ".txt", ".msg")) or base.startswith("mail_")


def corpus() -> list[tuple[str, bytes]]:
    """(name, message bytes) of every message-like test file, in a stable order."""
    out = []
    for path in sdists():
        with tarfile.open(path) as tar:
            for member in tar.getmembers():
                if not member.isfile() or not is_message_file(member.name):
                    continue
                if member.size > MAX_BYTES:
                    continue
                f = tar.extractfile(member)
                data = f.read() if f is not None else b""
                if _HEADER_LINE.match(data.lstrip()):  # it starts like a message
                    out.append((member.name, data))
    out.sort()
    if len(out) > SAMPLE:  # every k-th: the same sample every run
        step = len(out) / SAMPLE
        out = [out[int(i * step)] for i in range(SAMPLE)]
    return out


def as_smtp(raw: bytes) -> bytes:
    """The message as an MTA would pass it on: CRLF lines, no mbox `From ` line, lines cut
    to the SMTP limit (an MTA would refuse longer ones before we ever saw them)."""
    raw = raw.lstrip()
    if raw.startswith(b"From "):
        raw = raw.split(b"\n", 1)[1] if b"\n" in raw else b""
    lines = re.split(rb"\r\n|\r|\n", raw.replace(b"\x00", b""))
    cut = []
    for line in lines:
        while len(line) > 990:
            cut.append(line[:990])
            line = line[990:]
        cut.append(line)
    return b"\r\n".join(cut).rstrip(b"\r\n") + b"\r\n"


def from_member(raw: bytes) -> bytes:
    """The message with its From: replaced by a member's, so it is distributed (copies with
    footer) rather than held."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    lines = [ln for ln in head.split(b"\r\n")]
    kept, skipping = [], False
    for ln in lines:
        if ln[:5].lower() == b"from:":
            skipping = True
            continue
        if skipping and ln[:1] in (b" ", b"\t"):
            continue
        skipping = False
        kept.append(ln)
    return b"\r\n".join([b"From: Ann <ann@example.net>", *kept]) + sep + body


async def test_real_world_mail_never_fails(tmp_path):
    messages = corpus()
    assert messages, "the corpora hold no message files"
    async with running_hub(tmp_path, extra=LIST_TOML, max_message_bytes=10_000_000) as hub:
        async with hub.service.store.transaction() as tx:
            for addr in MEMBERS:
                await store.add_member(tx, "corpus", addr, "", hub.clock.now())
        refused = []
        for i, (name, data) in enumerate(messages):
            raw = as_smtp(data)
            post = from_member(raw) if i % 2 == 0 else raw
            for rcpt, body in (
                (f"corpus@{DOMAIN}", post),
                (f"enquiries@{DOMAIN}", raw),
                (f"conduct@{DOMAIN}", raw),
            ):
                code, text = await hub.send("sender@example.net", [rcpt], body)
                if code != 250:
                    refused.append((name, rcpt, code, text))
        await hub.idle()
        async with hub.service.store.read() as tx:
            failed = await inbound.failed(tx, limit=1000)
        copies = hub.sink.to("bob@example.net")
    assert refused == []
    assert [(f[3], f[4]) for f in failed] == []
    # Every list copy carries the footer (inline, or as a part beside a body that cannot
    # take it), but for encrypted mail, which is left as it is.
    assert len(copies) == len(messages[::2])
    lacking = [
        c.raw.split(b"\r\n\r\n", 1)[0][:300]
        for c in copies
        if b"Corpus list: leave at" not in c.raw and b"multipart/encrypted" not in c.raw
    ]
    assert lacking == []


# --- undecodable headers: shown with replacement characters, never a failure ------------

BROKEN_SUBJECTS = [
    b"=?gb2312?B?1tDOxLXEsuLK1A==?= =?gb2312?B?gP/Q1A==?=",  # an invalid byte in a word
    b"=?gb2312?Q?\xd6\xd0\xff?=",  # raw 8-bit inside a word
    b"\xd6\xd0\xff plain 8-bit",  # raw 8-bit, not UTF-8
    b"=?utf-8?Q?=ED=A0=80?= a surrogate",  # UTF-8 of a lone surrogate
    b"=?x-unknown?B?1tD/?=",  # a charset no one knows
]


def broken(subject: bytes, sender: bytes = b"Ann <ann@example.net>") -> bytes:
    return (
        b"From: " + sender + b"\r\nTo: someone@example.org\r\nSubject: " + subject + b"\r\n"
        b"Message-ID: <b-" + str(abs(hash(subject))).encode() + b"@example.net>\r\n\r\nbody\r\n"
    )


async def test_undecodable_headers_show_replacement_characters(tmp_path):
    async with running_hub(tmp_path, extra=LIST_TOML) as hub:
        async with hub.service.store.transaction() as tx:
            for addr in MEMBERS:
                await store.add_member(tx, "corpus", addr, "", hub.clock.now())
        for subject in BROKEN_SUBJECTS:
            for sender in (b"Ann <ann@example.net>", b"=?gb2312?B?1tD/?= <ann@example.net>"):
                for rcpt in ("corpus", "enquiries", "conduct"):
                    code, _ = await hub.send(
                        "ann@example.net", [f"{rcpt}@{DOMAIN}"], broken(subject, sender)
                    )
                    assert code == 250
        await hub.idle()
        async with hub.service.store.read() as tx:
            assert await inbound.failed(tx) == []
        forwards = hub.sink.to("helper@example.net")
    assert len(forwards) == 2 * len(BROKEN_SUBJECTS)
    # An enquiry's forward starts with its reference ("[E-XXXX-XX] "): the subject after it.
    subjects = [
        re.sub(r"^\[E-[0-9A-Z]{4}-[0-9A-Z]{2}\] ", "", str(f.message["Subject"])) for f in forwards
    ]
    assert "中文的测试\ufffd\ufffd性" in subjects  # what decodes is shown, the rest replaced
    for s in subjects:
        assert "\\u" not in s and "=?" not in s
