"""A list's newest posts as an Atom 1.0 feed (RFC 4287), built with the standard library's
ElementTree (pure: entries in, bytes out).

Every value is text from mail, so it goes in as element text (escaped by ElementTree),
never as markup: the content is `type="text"`, the author a name only. Characters XML
1.0 cannot hold (most control characters) are dropped first, or the feed would not parse.
"""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime

ATOM = "http://www.w3.org/2005/Atom"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
CONTENT_TYPE = "application/atom+xml; charset=utf-8"
# An entry's text is cut here: a feed of the newest posts stays a few hundred KB at most.
MAX_ENTRY_TEXT = 20_000
# What XML 1.0 allows (§2.2), as a class of what it does not.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

ET.register_namespace("", ATOM)


@dataclass(frozen=True)
class FeedEntry:
    id: str  # a URN that never changes (`entry_id`)
    title: str
    author: str  # a name, never an address
    link: str  # the post's page
    published: float  # UTC epoch seconds
    text: str


def entry_id(base_url: str, list_name: str, message_id: int) -> str:
    """The entry's permanent id: a name-based UUID URN (RFC 4122 §4.3) of its page's URL,
    so it is the same in every fetch of the feed and unique across services."""
    url = f"{base_url}/lists/{list_name}/message/{message_id}"
    return uuid.uuid5(uuid.NAMESPACE_URL, url).urn


def rfc3339(ts: float) -> str:
    """`2026-11-30T18:52:05Z` (RFC 3339, UTC, whole seconds)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _text(value: str, limit: int = MAX_ENTRY_TEXT) -> str:
    value = _NOT_XML.sub("", value)
    return value if len(value) <= limit else value[:limit] + " …"


def _add(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, f"{{{ATOM}}}{tag}", attrs)
    if text is not None:
        element.text = _text(text)
    return element


def atom_feed(
    *,
    feed_id: str,
    title: str,
    subtitle: str,
    self_url: str,
    page_url: str,
    lang: str,
    updated: float,
    entries: list[FeedEntry],
) -> bytes:
    """The feed document. `self_url` is what the reader fetched; a private feed's token is
    the reader's own, so it is in the self link only of their own copy."""
    feed = ET.Element(f"{{{ATOM}}}feed", {XML_LANG: lang})
    _add(feed, "id", feed_id)
    _add(feed, "title", title)
    if subtitle:
        _add(feed, "subtitle", subtitle)
    newest = max((e.published for e in entries), default=updated)
    _add(feed, "updated", rfc3339(newest))
    _add(feed, "link", rel="self", type="application/atom+xml", href=_text(self_url))
    _add(feed, "link", rel="alternate", type="text/html", href=_text(page_url))
    _add(feed, "generator", "mailhub")
    for e in entries:
        entry = _add(feed, "entry")
        _add(entry, "id", e.id)
        _add(entry, "title", e.title)
        _add(entry, "updated", rfc3339(e.published))
        _add(entry, "published", rfc3339(e.published))
        author = _add(entry, "author")
        _add(author, "name", e.author)
        _add(entry, "link", rel="alternate", type="text/html", href=_text(e.link))
        _add(entry, "content", e.text, type="text")
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True)
