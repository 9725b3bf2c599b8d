"""Per-member personalisation of list mail at delivery time: VERP and unsubscribe tokens.

The message is stored once; for each member the delivery worker asks `personalise`
for that member's envelope sender (`LIST-bounces+TOKEN@D`, so a bounce names its
member even when the bounce itself is unreadable) and a copy whose List-Unsubscribe
carries a token for that member.

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
from collections.abc import Iterable

from mailhub.config import Config

TOKEN_BYTES = 20  # 160 bits


# Personalised delivery asks for two tokens per member per post; the tokens never change,
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
    return f"{list_name}-bounces+{member_token(secret, 'verp', list_name, address)}@{domain}"


def unsubscribe_uri(secret: bytes, list_name: str, address: str, domain: str) -> str:
    """A mailto: whose subject carries the member's leave token, so that leaving from the
    mail client's button needs no further proof than the token."""
    token = member_token(secret, "leave", list_name, address)
    return f"mailto:{list_name}-leave@{domain}?subject=leave%20{token}"


def personalise(
    config: Config, secret: bytes, list_name: str, raw: bytes, rcpt: str
) -> tuple[str, bytes]:
    domain = config.server.domain
    envelope = verp_address(secret, list_name, rcpt, domain)
    generic = f"List-Unsubscribe: <mailto:{list_name}-leave@{domain}>".encode()
    head_end = raw.find(b"\r\n\r\n")
    at = raw.find(generic, 0, head_end if head_end >= 0 else len(raw))
    if at < 0:
        return envelope, raw
    line = f"List-Unsubscribe: <{unsubscribe_uri(secret, list_name, rcpt, domain)}>".encode()
    return envelope, raw[:at] + line + raw[at + len(generic) :]
