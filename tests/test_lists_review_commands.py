"""The review reply parser (pure) and the reading of a reply's new text."""

from __future__ import annotations

from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

from mailhub.lists.replies import reply_text
from mailhub.lists.review_commands import (
    APPROVE,
    DISCARD,
    NO_NUMBER,
    RANGE,
    REJECT,
    UNCLEAR,
    UNKNOWN,
    Command,
    Problem,
    parse_line,
    parse_reply,
)
from mailhub.lists.tokens import new_token, token_hash


def cmds(text: str) -> list[tuple[str, tuple[int, ...], bool, str]]:
    return [(c.verb, c.numbers, c.all, c.reason) for c in parse_reply(text).commands]


def test_approve_several_numbers():
    assert cmds("approve 1 3\n") == [(APPROVE, (1, 3), False, "")]
    assert cmds("Approve 1, 3 and 5") == [(APPROVE, (1, 3, 5), False, "")]
    assert cmds("approve #2-4") == [(APPROVE, (2, 3, 4), False, "")]


def test_reject_keeps_the_reason():
    assert cmds("reject 2 not a public-sector employee") == [
        (REJECT, (2,), False, "not a public-sector employee")
    ]
    assert cmds("reject 2: duplicate") == [(REJECT, (2,), False, "duplicate")]
    assert cmds("reject 2 a duplicate") == [(REJECT, (2,), False, "a duplicate")]


def test_all_and_held_post_verbs():
    assert cmds("approve all\ndiscard 4\naccept 5") == [
        (APPROVE, (), True, ""),
        (DISCARD, (4,), False, ""),
        ("accept", (5,), False, ""),
    ]


def test_welsh_verbs():
    assert cmds("cymeradwyo 1 a 2\ngwrthod 3 dim yn y sector") == [
        (APPROVE, (1, 2), False, ""),
        (REJECT, (3,), False, "dim yn y sector"),
    ]


def test_quoted_lines_and_signature_are_ignored():
    text = "approve 1\n\nThanks!\n-- \nSam Facilitator\napprove 2\n> reject 3\n"
    assert cmds(text) == [(APPROVE, (1,), False, "")]
    text = "approve 1\n> approve 2\nOn Mon, 3 Mar 2025, Hub <x@y> wrote:\napprove 9\n"
    assert cmds(text) == [(APPROVE, (1,), False, "")]


def test_prose_is_not_a_command_and_bad_numbers_are_problems():
    reply = parse_reply("Thanks for this.\napprove\nreject x\napprove 1 or 2\napprove 1-9999\n")
    assert reply.commands == ()
    assert len(reply.problems) == 4
    assert parse_line("approval pending") is None
    assert parse_line("approve 12abc") == Problem("approve 12abc", NO_NUMBER)
    assert [p.code for p in reply.problems] == [NO_NUMBER, NO_NUMBER, UNCLEAR, RANGE]
    assert reply.problems[3].detail == "1-9999"


def test_a_mistyped_command_is_never_acted_on_and_the_closest_is_suggested():
    reply = parse_reply("aprove 1\nrejetc 2 not in the sector\ncymeradwyio 3\naprove all\n")
    assert reply.commands == ()
    assert [(p.line, p.code) for p in reply.problems] == [
        ("aprove 1", UNKNOWN),
        ("rejetc 2 not in the sector", UNKNOWN),
        ("cymeradwyio 3", UNKNOWN),
        ("aprove all", UNKNOWN),
    ]
    assert [(p.suggestion("en"), p.suggestion("cy")) for p in reply.problems] == [
        ("approve 1", "cymeradwyo 1"),
        ("reject 2 not in the sector", "gwrthod 2 not in the sector"),
        ("approve 3", "cymeradwyo 3"),
        ("approve all", "cymeradwyo'r cyfan"),
    ]
    assert len(parse_reply("aprove 1\n" * 150).problems) == 20  # the answer stays readable
    # Prose that merely starts like a command word has no entry number: left alone.
    assert parse_reply("Approval is up to you\nThanks 2 you\nappreciate 1 thing").problems == ()


def test_welsh_all_forms():
    expected = [(APPROVE, (), True, "")]
    for line in (
        "cymeradwyo'r cyfan",
        "cymeradwyo\u2019r cyfan",
        "cymeradwyo y cwbl",
        "cymeradwyo pawb",
        "cymeradwyo pob un",
        "cymeradwyo pob",
        "approve all",
    ):
        assert cmds(line) == expected, line
    assert cmds("derbyn pob un") == [("accept", (), True, "")]
    assert cmds("taflu'r cyfan sbam") == [(DISCARD, (), True, "sbam")]
    assert cmds("gwrthod y cyfan dim lle") == [(REJECT, (), True, "dim lle")]


def test_parse_line_returns_command():
    c = parse_line("discard 4 spam")
    assert isinstance(c, Command) and c.reason == "spam" and c.numbers == (4,)


def _parse(raw: bytes) -> EmailMessage:
    return BytesParser(policy=policy.default).parsebytes(raw)  # type: ignore[return-value]


def test_html_only_reply_drops_the_quoted_digest():
    raw = (
        b"From: f@example.net\r\nSubject: Re: digest\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/html; charset=utf-8\r\n\r\n"
        b"<html><body><div>approve 1</div><div>reject 2 spam</div>"
        b'<div class="gmail_quote">On Mon wrote:<blockquote><p>approve 3</p>'
        b"</blockquote></div></body></html>"
    )
    assert cmds(reply_text(_parse(raw))) == [
        (APPROVE, (1,), False, ""),
        (REJECT, (2,), False, "spam"),
    ]


def test_multipart_alternative_prefers_plain():
    raw = (
        b"From: f@example.net\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/alternative; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\naccept 4\r\n"
        b"--b\r\nContent-Type: text/html\r\n\r\n<p>accept 4</p>\r\n--b--\r\n"
    )
    assert cmds(reply_text(_parse(raw))) == [("accept", (4,), False, "")]


def test_tokens_are_lowercase_and_hash_ignores_case():
    token = new_token()
    assert token == token.lower() and len(token) >= 26
    assert token_hash(token.upper()) == token_hash(token)


def test_pathological_number_runs_are_read_in_linear_time():
    import time

    for line in ("approve " + "1" * 50_000 + "x", "approve " + "1 " * 50_000 + "x",
                 "approve " + " " * 200_000 + "1x", "reject " + "1, and " * 20_000 + "-"):  # fmt: skip
        t0 = time.perf_counter()
        parse_line(line)
        assert time.perf_counter() - t0 < 1.0


def test_long_lines_of_attribution_words_are_read_quickly():
    import time

    text = "ar " + "ysgrifennodd " * 100_000 + "\non " + "wrote " * 100_000 + "\napprove 1\n"
    t0 = time.perf_counter()
    parse_reply(text)
    assert time.perf_counter() - t0 < 1.0
