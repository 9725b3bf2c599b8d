"""CSRF tokens (pure): every POST form carries one, and every POST is refused without it.

The token is HMAC(key, "csrf"|holder), the holder being the visitor's session id, or before
sign-in the random value of their pre-session cookie: another site can make a browser
POST to us (SameSite=Lax stops the cookie on most of those, not all), but it cannot read
the token from our page.
"""

from __future__ import annotations

import hmac

from mailhub.web.session import mac


def csrf_token(key: bytes, holder: str) -> str:
    """The CSRF token of forms shown to the holder of a session id or pre-session value."""
    return mac(key, "csrf", holder)


def csrf_ok(key: bytes, holder: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(str(given), csrf_token(key, holder))
