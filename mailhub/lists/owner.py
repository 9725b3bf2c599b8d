"""`LIST-owner@D`: mail for the list's facilitators, forwarded to them (to the
administrators when the list has none)."""

from __future__ import annotations

from mailhub.context import Context, Incoming
from mailhub.forwarding import forward
from mailhub.lists.config import find_list
from mailhub.routing import Route


async def handle_owner(ctx: Context, mail: Incoming, route: Route) -> None:
    lst = find_list(ctx.config.lists, route.get("list"))
    if lst is None:  # the router only routes to configured lists
        return
    await forward(
        ctx,
        mail,
        via=route.address,
        to=list(lst.facilitators) or list(ctx.config.admins),
        label=f"{lst.display_name} facilitators",
        kind="lists.owner.forward",
    )
