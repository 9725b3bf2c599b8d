"""Leaving a list by a member's own token: the RFC 8058 one-click link `BASE_URL/u/TOKEN`.

The token is `LIST.MAC`, where MAC is the member's keyed leave token
(`verp.member_token(secret, LEAVE, list, address)`, the one the List-Unsubscribe mailto
already carries): nothing is stored per token, it cannot be made without the service
secret, and it names its list in the clear so a request for an unknown list is refused
before the database is touched. The address is found by comparing the MAC with each
member's (an HMAC cannot be decoded), which is why a token is bounded and shape-checked
first.

Whoever holds the token may leave on the member's behalf: it reached only that member's
mailbox, and leaving is the one action it grants (a separate purpose from the command and
VERP tokens).
"""

from __future__ import annotations

import re

from mailhub.context import Context
from mailhub.lists import action_log, notices
from mailhub.lists.config import ListConfig
from mailhub.lists.verp import LEAVE, find_member, member_token
from mailhub.store import Tx
from mailhub.store import leaving as store
from mailhub.store import lists as list_store

# A URL path segment longer than this is refused before it is looked at.
MAX_TOKEN = 200
# The MAC: base32 of verp.TOKEN_BYTES (20) bytes, lowercase, without padding.
_MAC = re.compile(r"[a-z2-7]{32}")
# A list name as [[lists]] allows it (mailhub.lists.config).
_LIST = re.compile(r"[a-z0-9](?:[a-z0-9._]|-(?!-))*")


def one_click_token(secret: bytes, list_name: str, address: str) -> str:
    return f"{list_name.lower()}.{member_token(secret, LEAVE, list_name, address)}"


def read_one_click(token: str) -> tuple[str, str] | None:
    """(list name, MAC) of a well-formed token, else None. List names may hold dots, the
    MAC never does: the last dot splits them."""
    if not token or len(token) > MAX_TOKEN:
        return None
    name, dot, mac = token.lower().rpartition(".")
    if not dot or not _LIST.fullmatch(name) or not _MAC.fullmatch(mac):
        return None
    return name, mac


async def find_leaver(tx: Tx, secret: bytes, list_name: str, mac: str) -> str | None:
    """The member of `list_name` whose leave token `mac` is, or None. Scans the members
    (an HMAC each, cached by verp.member_token): the cost of a forged token."""
    return find_member(secret, LEAVE, list_name, mac, await store.member_addresses(tx, list_name))


async def find_former(tx: Tx, secret: bytes, list_name: str, mac: str) -> str | None:
    """Someone who has left `list_name` (or was removed) and whose leave token `mac` is:
    their link, used again (a mail client may POST twice), has nothing left to do."""
    return find_member(secret, LEAVE, list_name, mac, await store.former_members(tx, list_name))


async def leave_now(ctx: Context, lst: ListConfig, address: str, how: str) -> bool:
    """Remove `address` from `lst` at once, log it and send the usual "you have left"
    notice, all in the caller's transaction. False (nothing done, no mail) when the
    address is no member (already gone)."""
    if not await list_store.remove_member(ctx.tx, lst.name, address):
        return False
    await action_log.record(
        ctx, lst, address, "left", "member", subject_address=address, detail=how
    )
    await notices.tell(ctx, lst, address, "membership_status", situation="left")
    return True
