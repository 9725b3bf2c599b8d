"""What the lists' end-to-end tests share: the Data Visualisation list that people join
and facilitators moderate, reading where an answer goes, and taking a hub down."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from email.message import Message
from email.utils import getaddresses
from pathlib import Path
from typing import Any

from mailhub.store import lists as store
from tests.support.hub import Hub, start_hub

# The autoreply limits are raised so that a test can ask the same list many times and
# still be answered every time; "dataviz" asks facilitators to approve whoever joins.
DATAVIZ = """
[autoreply]
per_hour = 100
per_day = 100

[[lists]]
name = "dataviz"
display_name = "Data Visualisation"
description = "Sharing charts and maps made in the public sector."
subscription = "approve"
facilitators = ["fran@example.net", "gwen@example.net"]
champions = ["cai@example.net"]
"""


async def stop_hub(hub: Hub) -> None:
    """The end of a hub fixture: the service first, so nothing is still relaying to the sink."""
    await hub.service.stop()
    await hub.sink.stop()


def reply_address(msg: Message) -> str:
    """Where answering `msg` goes: its Reply-To address, or "" when it names none."""
    pairs = getaddresses([str(msg["Reply-To"] or "")])
    return pairs[0][1] if pairs else ""


async def start_list_hub(
    tmp_path: Path, members: Mapping[str, Iterable[tuple[str, str]]], **options: Any
) -> Hub:
    """A hub (`start_hub(tmp_path, **options)`, so on the `backend` fixture's database)
    whose lists have `members`: list name → (address, display name) pairs, added straight
    to the store."""
    hub = await start_hub(tmp_path, **options)
    async with hub.service.store.transaction() as tx:
        for name, people in members.items():
            for address, display_name in people:
                await store.add_member(tx, name, address, display_name, hub.clock.now())
    return hub
