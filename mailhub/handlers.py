"""Route name → handler. One explicit table, no global mutable router."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from mailhub import enquiries
from mailhub.conduct.handlers import HANDLERS as CONDUCT
from mailhub.conduct.handlers import PREPARERS as CONDUCT_PREPARERS
from mailhub.context import Context, Incoming, Runtime
from mailhub.lists.handlers import HANDLERS as LISTS
from mailhub.routing import ROUTES, Route

Handler = Callable[[Context, Incoming, Route], Awaitable[None]]

Preparer = Callable[[Runtime, Incoming], Awaitable[None]]

# Route name → bounded content work done before the handler's transaction (see processing).
PREPARERS: dict[str, Preparer] = {**CONDUCT_PREPARERS}

HANDLERS: dict[str, Handler] = {
    "admin": enquiries.handle_admin,
    "enquiries": enquiries.handle_enquiry,
    **CONDUCT,
    **LISTS,
}

# Every route in the table has a handler: checked at import, not at 3 a.m.
_missing = {name for _, name in ROUTES} - HANDLERS.keys()
if _missing:
    raise RuntimeError(f"routes without a handler: {sorted(_missing)}")
