"""One key per mailbox, for limits that a sender must not dodge by rewriting an address.

`victim+1@example.org`, `Victim+2@EXAMPLE.org` and `victim@example.org` reach one mailbox,
so a rate limit keyed on the literal address gives each a fresh allowance. The key drops
the sub-address (`+tag`, RFC 5233) and case; for the providers that ignore dots in the
local part (Gmail), the dots too.
"""

from __future__ import annotations

_DOTLESS = frozenset({"gmail.com", "googlemail.com"})


def mailbox_key(address: str) -> str:
    local, at, domain = address.strip().strip("<>").rpartition("@")
    if not at:
        return address.strip().lower()
    local = local.split("+", 1)[0].lower()
    domain = domain.lower().rstrip(".")
    if domain in _DOTLESS:
        local = local.replace(".", "")
        domain = "gmail.com"
    return f"{local}@{domain}"
