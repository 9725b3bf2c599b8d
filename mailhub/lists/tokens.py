"""Capability tokens of the lists (confirmations and reviews): made from `secrets`, stored
only as a hash.

A token travels in a local part (`LIST-confirm+TOKEN@D`), so it is lowercase base32:
mail systems that lowercase local parts cannot break it, and it fits the router's
`[A-Za-z0-9_-]{6,64}` capture. 160 random bits, well above the 128 the design asks.
"""

from __future__ import annotations

import base64
import hashlib
import secrets

from mailhub.context import Context
from mailhub.lists.config import ListConfig
from mailhub.store import membership as store
from mailhub.store.membership import Token

CONFIRM_JOIN = "confirm-join"
CONFIRM_LEAVE = "confirm-leave"
# A change to a member's delivery asked without the member's own command address (a bare
# `LIST-request@D`, where From: proves nothing): it waits for the member's reply.
CONFIRM_SETTINGS = "confirm-settings"
# A review's token (the facilitators' digest): the stored purpose keeps its first name.
REVIEW = "digest"

# Why a token was refused; each has its own answer to the person who used it.
UNKNOWN = "unknown"
EXPIRED = "expired"
USED = "used"
WRONG_LIST = "wrong-list"


def new_token() -> str:
    return base64.b32encode(secrets.token_bytes(20)).decode("ascii").lower().rstrip("=")


def token_hash(token: str) -> str:
    # Lowercased first: the router keeps the case it received, some MTAs change it.
    return hashlib.sha256(token.strip().lower().encode("ascii", "replace")).hexdigest()


def token_problem(token: Token | None, list_name: str, now: float) -> str | None:
    """None if `token` may be acted on now for `list_name`, else why not (pure)."""
    if token is None:
        return UNKNOWN
    if token.list_name != list_name:
        return WRONG_LIST
    if token.used_at is not None:
        return USED
    if now >= token.expires_at:
        return EXPIRED
    return None


async def issue(
    ctx: Context,
    lst: ListConfig,
    purpose: str,
    address: str,
    ttl: float,
    *,
    request_id: int | None = None,
    review_id: int | None = None,
    detail: str = "",
) -> str:
    """A new token for `address` on `lst`, good for `ttl` seconds; only its hash is stored."""
    token = new_token()
    await store.add_token(
        ctx.tx,
        token_hash=token_hash(token),
        purpose=purpose,
        list_name=lst.name,
        address=address,
        now=ctx.now(),
        expires_at=ctx.now() + ttl,
        request_id=request_id,
        review_id=review_id,
        detail=detail,
    )
    return token
