"""Reply tokens: the capability in a case address that only one person's mailbox received.

Each copy of case mail carries a fresh token in its reply addresses
(`conduct+REF-committee+TOKEN@D`, `conduct+REF+TOKEN@D`), bound to one case and one
owner (a member key, the fallback reviewer, or the reporter). Only its SHA-256 is
stored, so the database alone cannot be used to act on a case. A member's tokens are
revoked the moment they are recused.
"""

from __future__ import annotations

import hashlib
import secrets

from mailhub.context import Context
from mailhub.store import conduct as store


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


async def mint(ctx: Context, ref: str, owner: str) -> str:
    """A new token (128 random bits, URL-safe) for `owner` in case `ref`."""
    token = secrets.token_urlsafe(16)
    await store.add_token(ctx.tx, token_hash(token), ref, owner, ctx.now())
    return token


async def owner_of(ctx: Context, ref: str, token: str) -> str | None:
    """Whose live token of case `ref` this is, or None."""
    if not token:
        return None
    return await store.token_owner(ctx.tx, token_hash(token), ref)


async def revoke(ctx: Context, ref: str, owner: str) -> None:
    await store.revoke_tokens(ctx.tx, ref, owner, ctx.now())
