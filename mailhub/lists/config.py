"""[[lists]] in the config → ListConfig records. ([dmarc], which lists consult, is read by
the core: mailhub.config.DmarcConfig, importable from here too.)"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from mailhub.addresses import reserved_names, reserved_suffixes
from mailhub.config import DMARC_KEYS, DmarcConfig
from mailhub.errors import ConfigError
from mailhub.readers import (
    get_addresses,
    get_int,
    get_language,
    get_str,
    parse_duration,
    refuse_unknown,
)
from mailhub.web.config import parse_web

if TYPE_CHECKING:
    from mailhub.config import ServerConfig

SUBSCRIPTION = ("open", "confirm", "approve", "invite")
NON_MEMBER_ACTIONS = ("hold", "reject", "accept")
REPLY_TO = ("sender", "list")
DELIVERY = ("personalised", "bulk")
DMARC_REWRITE = ("auto", "always", "never")
# Whether members see each other's addresses: hidden (From: "Name via List", private
# replies through LIST-reply+TOKEN@D) or shown (the poster's From: kept).
ADDRESSES = ("hidden", "shown")
ARCHIVE = ("members", "public", "off")
# Every key a [[lists]] table may hold.
LIST_KEYS = (
    "name",
    "display_name",
    "display_name_cy",
    "description",
    "description_cy",
    "language",
    "subscription",
    "non_member_posts",
    "hold_first_posts",
    "facilitators",
    "champions",
    "footer",
    "reply_to",
    "delivery",
    "dmarc_rewrite",
    "addresses",
    "archive_url",
    "archive",
    "max_post_bytes",
    "max_post_recipients",
    "review_interval",
    "digest_interval",  # the review's interval by its earlier name
    "member_digest_interval",
    "request_expiry",
    "confirm_expiry",
    "bounce_threshold",
)
# Local parts the service itself answers: a list may not take them.
# Names a list may not take, and endings it may not have: they are other addresses
# (derived from the one address spec, so a new address kind reserves its name here too).
RESERVED = reserved_names()

__all__ = ["DMARC_KEYS", "DmarcConfig", "ListConfig", "find_list", "parse_list", "parse_lists"]


@dataclass(frozen=True)
class ListConfig:
    name: str
    display_name: str
    description: str = ""
    # The list's name and purpose in Welsh, for the Welsh half of its mail; without them
    # the Welsh half uses the (English) display name and leaves the purpose to the English.
    display_name_cy: str = ""
    description_cy: str = ""
    # Welsh first by default: our communities work under the Welsh Language Standards.
    language: str = "cy+en"
    subscription: str = "confirm"  # open | confirm | approve | invite
    non_member_posts: str = "hold"  # hold | reject | accept
    hold_first_posts: int = 0  # a new member's first N posts are held (0: off)
    facilitators: tuple[str, ...] = ()
    champions: tuple[str, ...] = ()
    footer: str = ""
    reply_to: str = "sender"  # sender | list
    delivery: str = "personalised"  # personalised (VERP, one copy each) | bulk
    dmarc_rewrite: str = "auto"  # auto (when the poster's domain asks) | always | never
    addresses: str = "hidden"  # hidden (no member sees another's address) | shown
    archive_url: str = ""
    # Who may read the list's archive on the web (BASE_URL/lists/NAME/): its members once
    # signed in, anyone, or nobody (posts are still kept, for digests and `mailhub archive`).
    archive: str = "members"  # members | public | off
    max_post_bytes: int = 5 * 1024 * 1024  # larger posts are held
    max_post_recipients: int = 10  # posts with more To/Cc addresses are held
    review_interval: float = 3600.0  # the facilitators' review of pending items; 0: at once
    member_digest_interval: float = 86400.0  # members in digest mode
    request_expiry: float = 14 * 86400.0  # pending requests and held posts
    confirm_expiry: float = 7 * 86400.0  # confirmation tokens
    bounce_threshold: float = 5.0  # bounce score at which a member is disabled

    @property
    def shown_name(self) -> str:
        """The name the list goes by where one name is shown (a notice's From:, a post's
        subject prefix): its Welsh name when Welsh comes first and it has one."""
        if self.language.startswith("cy") and self.display_name_cy:
            return self.display_name_cy
        return self.display_name


def _choice(t: dict[str, Any], name: str, key: str, default: str, choices: tuple[str, ...]) -> str:
    value = get_str(t, name, key, default)
    if value not in choices:
        raise ConfigError(f"{key}.{name}", f"must be one of {', '.join(choices)}, got {value!r}")
    return value


def _review_interval(t: dict[str, Any], key: str) -> float:
    """`review_interval`, or `digest_interval` as config files before the rename call it
    (both at once would be ambiguous: refused)."""
    if "review_interval" in t and "digest_interval" in t:
        raise ConfigError(f"{key}.digest_interval", "is review_interval's old name: keep one")
    if "digest_interval" in t:
        return parse_duration(t.get("digest_interval"), f"{key}.digest_interval")
    return parse_duration(t.get("review_interval", "1h"), f"{key}.review_interval")


def parse_list(t: dict[str, Any], key: str) -> ListConfig:
    if not isinstance(t, dict):
        raise ConfigError(key, "must be a table")
    refuse_unknown(t, key, LIST_KEYS)
    name = get_str(t, "name", key).lower()
    if not re.fullmatch(r"[a-z0-9](?:[a-z0-9._]|-(?!-))*", name) or name in RESERVED:
        raise ConfigError(
            f"{key}.name",
            f"{name!r} cannot be a list name (letters, digits, . _ -; "
            f"not {', '.join(sorted(RESERVED))})",
        )
    for suffix in reserved_suffixes():
        if name.endswith(suffix):
            raise ConfigError(f"{key}.name", f"{name!r} ends in {suffix}, which is a list command")
    return ListConfig(
        name=name,
        display_name=get_str(t, "display_name", key, name),
        description=get_str(t, "description", key, ""),
        display_name_cy=get_str(t, "display_name_cy", key, ""),
        description_cy=get_str(t, "description_cy", key, ""),
        language=get_language(t, "language", key),
        subscription=_choice(t, "subscription", key, "confirm", SUBSCRIPTION),
        non_member_posts=_choice(t, "non_member_posts", key, "hold", NON_MEMBER_ACTIONS),
        hold_first_posts=get_int(t, "hold_first_posts", key, 0),
        facilitators=get_addresses(t, "facilitators", key),
        champions=get_addresses(t, "champions", key),
        footer=get_str(t, "footer", key, ""),
        reply_to=_choice(t, "reply_to", key, "sender", REPLY_TO),
        delivery=_choice(t, "delivery", key, "personalised", DELIVERY),
        dmarc_rewrite=_choice(t, "dmarc_rewrite", key, "auto", DMARC_REWRITE),
        addresses=_choice(t, "addresses", key, "hidden", ADDRESSES),
        archive_url=get_str(t, "archive_url", key, ""),
        archive=_choice(t, "archive", key, "members", ARCHIVE),
        max_post_bytes=get_int(t, "max_post_bytes", key, 5 * 1024 * 1024, 1),
        max_post_recipients=get_int(t, "max_post_recipients", key, 10, 1),
        review_interval=_review_interval(t, key),
        member_digest_interval=parse_duration(
            t.get("member_digest_interval", "1d"), f"{key}.member_digest_interval"
        ),
        request_expiry=parse_duration(t.get("request_expiry", "14d"), f"{key}.request_expiry"),
        confirm_expiry=parse_duration(t.get("confirm_expiry", "7d"), f"{key}.confirm_expiry"),
        bounce_threshold=float(t.get("bounce_threshold", 5.0)),
    )


def parse_lists(raw: dict[str, Any], server: ServerConfig) -> tuple[ListConfig, ...]:
    tables = raw.get("lists", [])
    if not isinstance(tables, list):
        raise ConfigError("lists", "must be an array of tables, [[lists]]")
    out = [parse_list(t, f"lists[{i}]") for i, t in enumerate(tables)]
    names = [lst.name for lst in out]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError("lists", f"the list name {name!r} is used twice")
    web = parse_web(raw)
    if web is not None:
        # List-Archive (RFC 2369) names the web archive when the list has one and no
        # archive_url of its own says otherwise (a members-only archive too, as Mailman does:
        # the link leads to the sign-in).
        out = [
            replace(lst, archive_url=f"{web.base_url}/lists/{lst.name}/")
            if lst.archive != "off" and not lst.archive_url
            else lst
            for lst in out
        ]
    return tuple(out)


def find_list(lists: tuple[ListConfig, ...], name: str) -> ListConfig | None:
    name = name.lower()
    return next((lst for lst in lists if lst.name == name), None)
