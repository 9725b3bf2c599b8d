"""Route handlers of the lists app (placeholder until the app lands)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from mailhub.routing import ROUTES


async def _not_built(ctx: Any, mail: Any, route: Any) -> None:
    raise RuntimeError("the lists app is not built yet")


HANDLERS: dict[str, Callable[..., Awaitable[None]]] = {
    name: _not_built for _, name in ROUTES if name.startswith("lists.")
}
