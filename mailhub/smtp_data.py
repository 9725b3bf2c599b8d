"""Reading the DATA of an SMTP transaction in large pieces rather than line by line.

aiosmtpd reads DATA one line at a time (an await, a length check and an append per
line): for a typical message that is the largest part of the CPU intake spends, and
intake's speed is CPU-bound. This reader takes whatever the stream has buffered, finds
the end-of-data line with `bytes.find`, and checks lengths and undoes dot-stuffing with
whole-buffer operations. It keeps aiosmtpd's rules: a line ends with CRLF only; a line
longer than the line limit, or data past the size limit, is read to the end and then
refused (RFC 5321 4.2.5: the answer comes after the data), and refused data is not kept,
so memory stays bounded.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

END = b"\r\n.\r\n"
READ_SIZE = 1 << 16


@dataclass(frozen=True)
class Data:
    content: bytes  # empty when refused
    problem: str | None = None  # "line too long" or "too much data"


def unstuff(body: bytes) -> bytes:
    """RFC 5321 4.5.2: a line that starts with a dot loses that dot."""
    if body.startswith(b"."):
        body = body[1:]
    return body.replace(b"\r\n.", b"\r\n")


def longest_line(body: bytes) -> int:
    """The longest line's length, its CRLF included (as aiosmtpd counts it)."""
    return max(map(len, body.split(b"\r\n"))) + 2


def unread(reader: asyncio.StreamReader, data: bytes) -> None:
    """Put `data` back at the front of the stream, before whatever is still buffered.

    `feed_data` would append it after the buffered bytes, and a client that pipelined
    more than one read's worth after the end of DATA would see its commands answered out
    of order. StreamReader has no public way to push back, so this uses its buffer (a
    bytearray since Python 3.4; aiosmtpd itself clears it for STARTTLS)."""
    reader._buffer[:0] = data


async def read_data(reader: asyncio.StreamReader, size_limit: int | None, line_limit: int) -> Data:
    """The message after `354`, up to the end-of-data line, which is consumed.

    Whatever the sender pipelined after the end-of-data line (the next MAIL, QUIT) is
    put back into the stream for aiosmtpd to read, in front of anything still buffered
    (see `unread`), so the commands keep their order whatever their size.
    """
    # A CRLF in front, as if the 354 line were part of the stream, so that an empty
    # message (".\r\n" straight away) ends like any other.
    buf = bytearray(b"\r\n")
    scanned = 0
    # The limit is on the message, not on its transfer (RFC 1870): the dots stuffed in
    # front of lines do not count. They are counted as the data arrives (`counted`: how
    # far), so that data past the limit is still refused before it is all buffered.
    stuffed = counted = 0
    refused = False
    while True:
        chunk = await reader.read(READ_SIZE)
        if not chunk:
            raise ConnectionResetError("connection closed during DATA")
        buf += chunk
        end = buf.find(END, scanned)
        if end >= 0:
            excess = bytes(buf[end + len(END) :])
            if excess:
                unread(reader, excess)
            break
        # Keep scanning from where a split END could start.
        scanned = max(0, len(buf) - len(END) + 1)
        if size_limit and not refused:
            stuffed += buf.count(b"\r\n.", counted)
            counted = max(counted, len(buf) - 2)  # a CRLF. split across reads: next time
        if size_limit and len(buf) - 2 - stuffed > size_limit + len(END):
            # Too much: from here on only look for the end, keeping no more than its length.
            refused = True
            del buf[: len(buf) - len(END)]
            scanned = stuffed = 0
    if refused:
        return Data(b"", "too much data")
    body = bytes(buf[2 : end + 2])  # from the first line to the last line's CRLF
    content = unstuff(body)
    if size_limit and len(content) > size_limit:
        return Data(b"", "too much data")
    if body and longest_line(body) > line_limit:
        return Data(b"", "line too long")
    return Data(content)
