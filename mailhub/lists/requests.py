"""Placeholder until this part of the lists app lands."""

from __future__ import annotations

from typing import Any


async def handle_request(ctx: Any, mail: Any, route: Any) -> None:
    raise RuntimeError("not built yet")
