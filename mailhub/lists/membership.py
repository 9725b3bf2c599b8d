"""Placeholder until this part of the lists app lands."""

from __future__ import annotations

from typing import Any


async def handle_join(ctx: Any, mail: Any, route: Any) -> None:
    raise RuntimeError("not built yet")


async def handle_leave(ctx: Any, mail: Any, route: Any) -> None:
    raise RuntimeError("not built yet")


async def handle_confirm(ctx: Any, mail: Any, route: Any) -> None:
    raise RuntimeError("not built yet")


async def handle_owner(ctx: Any, mail: Any, route: Any) -> None:
    raise RuntimeError("not built yet")
