"""Signed cookies and session lifetimes (pure: no store, no aiohttp).

A cookie's value is `VALUE.MAC`, MAC = HMAC-SHA256(key, purpose|VALUE): a cookie we did
not make is refused before any database work (a flood of made-up session cookies costs a
hash each, not a query). A session id is random (256 bits); the store keeps its hash.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from http.cookies import Morsel

SESSION_COOKIE = "mailhub_session"
# A visitor without a session gets this one, so their forms (the sign-in form) carry a
# CSRF token too (the "double submit" bound to a value only their browser holds).
PRE_SESSION_COOKIE = "mailhub_pre"
LANG_COOKIE = "lang"

# A session ends 30 days after sign-in, or after 7 days unused, whichever comes first.
SESSION_SECONDS = 30 * 24 * 3600
IDLE_SECONDS = 7 * 24 * 3600
# last_seen is written at most this often (a page view is then a read, not a write).
TOUCH_SECONDS = 3600
LANG_COOKIE_SECONDS = 365 * 24 * 3600


def new_id() -> str:
    return secrets.token_urlsafe(32)


def mac(key: bytes, purpose: str, value: str) -> str:
    digest = hmac.new(key, f"{purpose}|{value}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign(key: bytes, purpose: str, value: str) -> str:
    return f"{value}.{mac(key, purpose, value)}"


def unsign(key: bytes, purpose: str, cookie: str | None) -> str | None:
    """The value of a cookie we signed for `purpose`; None for anything else."""
    if not cookie or len(cookie) > 200:
        return None
    value, dot, tag = cookie.rpartition(".")
    if not dot or not value:
        return None
    return value if hmac.compare_digest(tag, mac(key, purpose, value)) else None


@dataclass(frozen=True)
class Lifetime:
    created_at: float
    last_seen: float
    expires_at: float


def alive(life: Lifetime, now: float) -> bool:
    """A session may be used: not past its end, not idle too long."""
    return now < life.expires_at and now - life.last_seen < IDLE_SECONDS


def needs_touch(life: Lifetime, now: float) -> bool:
    return now - life.last_seen >= TOUCH_SECONDS


@dataclass(frozen=True)
class Cookie:
    """A cookie to set on the response (max_age 0: delete it)."""

    name: str
    value: str
    max_age: int
    http_only: bool = True


def set_cookie_header(cookie: Cookie, secure: bool, path: str) -> str:
    """The Set-Cookie value. Every cookie of ours is HttpOnly (except `lang`, which says
    nothing secret), SameSite=Lax (not sent on cross-site POSTs), Secure behind TLS, and
    has one path; max_age 0 deletes it."""
    morsel: Morsel[str] = Morsel()
    morsel.set(cookie.name, cookie.value, cookie.value)
    morsel["path"] = path or "/"
    morsel["max-age"] = str(cookie.max_age)
    morsel["samesite"] = "Lax"
    if cookie.http_only:
        morsel["httponly"] = True
    if secure:
        morsel["secure"] = True
    return morsel.OutputString()
