"""Attachment N on a message's page is the N-th the index counted: one walk of the parts
(mailhub.lists.post_parts) serves both."""

from __future__ import annotations

import pytest

from mailhub.lists.archive_index import extract
from mailhub.lists.archive_render import attachment, message_view
from mailhub.parsing import parse

HEAD = "From: Ann <ann@example.net>\r\nSubject: x\r\nMIME-Version: 1.0\r\n"


def mixed(*parts: str) -> bytes:
    body = "".join(f"--b\r\n{p}\r\n" for p in parts) + "--b--\r\n"
    return (HEAD + 'Content-Type: multipart/mixed; boundary="b"\r\n\r\n' + body).encode()


TEXT = "Content-Type: text/plain; charset=utf-8\r\n\r\nHelo"
HTML = "Content-Type: text/html\r\n\r\n<p>Helo</p>"
NAMED_TEXT = 'Content-Type: text/plain; name="notes.txt"\r\n\r\nnodiadau'
INLINE_PNG = "Content-Type: image/png\r\nContent-Disposition: inline\r\n\r\n\x89PNG"
PDF = (
    'Content-Type: application/pdf\r\nContent-Disposition: attachment; filename="a.pdf"'
    "\r\n\r\n%PDF-1.4"
)
FORWARD = "Content-Type: message/rfc822\r\n\r\nSubject: hen\r\n\r\nhen neges"
SECOND_TEXT = "Content-Type: text/plain\r\n\r\nail ran"
NO_TYPE = "Content-Transfer-Encoding: 7bit\r\n\r\nheb fath"
ALTERNATIVE = (
    'Content-Type: multipart/alternative; boundary="c"\r\n\r\n'
    f"--c\r\n{TEXT}\r\n--c\r\n{HTML}\r\n--c--"
)


@pytest.mark.parametrize(
    "raw",
    [
        mixed(TEXT),
        mixed(TEXT, PDF),
        mixed(ALTERNATIVE, PDF, INLINE_PNG),
        mixed(TEXT, NAMED_TEXT, SECOND_TEXT),
        mixed(HTML, FORWARD, NO_TYPE),
        mixed(NO_TYPE, TEXT),
        mixed(*[PDF] * 250),  # past the parts looked at
    ],
)
def test_the_index_counts_what_the_page_lists(raw: bytes) -> None:
    counted = extract(parse(raw)).attachments
    listed = message_view(raw, "en").attachments
    assert counted == len(listed)
    assert [a.number for a in listed] == list(range(1, counted + 1))
    assert attachment(raw, counted + 1) is None
    if counted:
        assert attachment(raw, counted) is not None
