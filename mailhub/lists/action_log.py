"""The lists' action log: who joined, left, was added, removed, invited, approved,
rejected, or expired, and which held post was accepted or discarded, by whom. Kept in the
store (`mailhub members`' history) and logged as one `membership` line each."""

from __future__ import annotations

from typing import Any

from mailhub import logs
from mailhub.context import Context
from mailhub.lists.config import ListConfig
from mailhub.store import membership as store


async def record(
    ctx: Context, lst: ListConfig, actor: str, action: str, kind: str, **kw: Any
) -> None:
    """`actor` ("" for the service itself) did `action` to a `kind` (member, request, held,
    invitation); `ref_id`, `subject_address` and `detail` say to what."""
    await store.log_action(
        ctx.tx, list_name=lst.name, actor=actor, action=action, kind=kind, now=ctx.now(), **kw
    )
    logs.event(
        "membership", list=lst.name, actor=actor, action=action, kind=kind, ref=kw.get("ref_id")
    )
