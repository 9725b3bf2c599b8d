"""Per-member personalisation of list mail at delivery time: VERP and member tokens.

The message is stored once; for each member the delivery worker asks `personalise`
for that member's envelope sender (`LIST-bounces+TOKEN@D`, so a bounce names its
member even when the bounce itself is unreadable) and a copy whose List-Unsubscribe
carries a leave token for that member and whose List-Help names the member's own
command address (`LIST-confirm+TOKEN@D`, see `command_address`): commands sent there
from the member's address act at once, without a confirmation round trip.

Tokens are keyed HMACs of (purpose, list, address) under the service secret: nothing
is stored per token, they cannot be forged without the key, and one purpose's token
is useless for another. They are lowercase base32, so an MTA that lowercases local
parts cannot break them.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
from collections.abc import Iterable

from mailhub.config import Config

TOKEN_BYTES = 20  # 160 bits
# Purposes of member tokens: the VERP return path, the one-click leave, and the member's
# own command address (settings: nomail, mail, digest on/off, own on/off, mute).
VERP = "verp"
LEAVE = "leave"
COMMANDS = "request"


# Personalised delivery asks for three tokens per member per post; the tokens never change,
# so a list's members' tokens are kept (a few MB at the bound, for ~65,000 members).
@functools.lru_cache(maxsize=1 << 17)
def member_token(secret: bytes, purpose: str, list_name: str, address: str) -> str:
    data = f"{purpose}|{list_name.lower()}|{address.lower()}".encode()
    digest = hmac.new(secret, data, hashlib.sha256).digest()[:TOKEN_BYTES]
    return base64.b32encode(digest).decode("ascii").rstrip("=").lower()


def token_matches(secret: bytes, purpose: str, list_name: str, address: str, token: str) -> bool:
    expected = member_token(secret, purpose, list_name, address)
    return hmac.compare_digest(expected, token.strip().lower())


def find_member(
    secret: bytes, purpose: str, list_name: str, token: str, candidates: Iterable[str]
) -> str | None:
    """The candidate address whose token this is (a keyed HMAC cannot be decoded, so we
    compare against each member: microseconds each, and bounces are rare)."""
    for address in candidates:
        if token_matches(secret, purpose, list_name, address, token):
            return address.lower()
    return None


def verp_address(secret: bytes, list_name: str, address: str, domain: str) -> str:
    return f"{list_name}-bounces+{member_token(secret, VERP, list_name, address)}@{domain}"


def unsubscribe_uri(secret: bytes, list_name: str, address: str, domain: str) -> str:
    """A mailto: whose subject carries the member's leave token, so that leaving from the
    mail client's button needs no further proof than the token."""
    token = member_token(secret, LEAVE, list_name, address)
    return f"mailto:{list_name}-leave@{domain}?subject=leave%20{token}"


def command_address(secret: bytes, list_name: str, address: str, domain: str) -> str:
    """The member's own command address. It reuses the `LIST-confirm+TOKEN@D` form (the
    router already knows it; mailhub.lists.membership.handle_confirm tells a member token
    from a stored confirmation token). A command there counts at once only when From:
    (and the envelope sender) is the member the token was made for."""
    token = member_token(secret, COMMANDS, list_name, address)
    return f"{list_name}-confirm+{token}@{domain}"


def help_uri(secret: bytes, list_name: str, address: str, domain: str) -> str:
    return f"mailto:{command_address(secret, list_name, address, domain)}?subject=help"


@functools.lru_cache(maxsize=512)
def _generic(name: str, generic: str) -> re.Pattern[bytes]:
    """The header `name: generic`, folded or not (compiled once per list and header)."""
    return re.compile(
        rb"^"
        + re.escape(name.encode())
        + rb":[ \t]*(?:\r\n[ \t]+)?"
        + re.escape(generic.encode())
        + rb"[ \t]*\r\n",
        re.IGNORECASE | re.MULTILINE,
    )


def _swap(head: bytes, name: str, generic: str, value: str) -> bytes:
    """`head` (a header block ending in CRLF) with `name: generic` replaced by `name: value`."""
    m = _generic(name, generic).search(head)
    if m is None:
        return head
    return head[: m.start()] + f"{name}: {value}\r\n".encode() + head[m.end() :]


def personalise(
    config: Config, secret: bytes, list_name: str, raw: bytes, rcpt: str
) -> tuple[str, bytes]:
    domain = config.server.domain
    envelope = verp_address(secret, list_name, rcpt, domain)
    # The header block only is edited (it is small); the body is copied once, at the end.
    head_end = raw.find(b"\r\n\r\n")
    split = head_end + 2 if head_end >= 0 else len(raw)
    head = _swap(
        raw[:split],
        "List-Unsubscribe",
        f"<mailto:{list_name}-leave@{domain}>",
        f"<{unsubscribe_uri(secret, list_name, rcpt, domain)}>",
    )
    head = _swap(
        head,
        "List-Help",
        f"<mailto:{list_name}-request@{domain}?subject=help>",
        f"<{help_uri(secret, list_name, rcpt, domain)}>",
    )
    return envelope, head + raw[split:]
