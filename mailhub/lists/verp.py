"""Per-member personalisation of list mail at delivery time: VERP and member tokens.

The message is stored once; for each member the delivery worker asks `personalise`
for that member's envelope sender (`LIST-bounces+TOKEN@D`, so a bounce names its
member even when the bounce itself is unreadable) and a copy whose List-Unsubscribe
carries the member's leave token and whose List-Help names the member's own command
address (`LIST-confirm+TOKEN@D`, see `command_address`): commands sent there from the
member's address act at once, without a confirmation round trip.

List-Unsubscribe (RFC 2369, RFC 8058) names the one-click URL `BASE_URL/u/LIST.MAC`
when the service has a `[web]` side, with `List-Unsubscribe-Post`, and the member's own
leave address `LIST-leave+MAC@D` (MAC: the leave token). Bulk copies are not made
here: they keep the generic `<mailto:LIST-leave@D>`, which asks for a confirmation.

Tokens are keyed HMACs of (purpose, list, address) under the service secret: nothing
is stored per token, they cannot be forged without the key, and one purpose's token
is useless for another. They are lowercase base32, so an MTA that lowercases local
parts cannot break them.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
from collections.abc import Iterable
from typing import NamedTuple
from urllib.parse import quote

from mailhub.addresses import address as mailhub_address
from mailhub.addresses import partial
from mailhub.config import Config

TOKEN_BYTES = 20  # 160 bits
# Purposes of member tokens: the VERP return path, the one-click leave, and the member's
# own command address (settings: nomail, mail, digest on/off, own on/off, mute).
VERP = "verp"
LEAVE = "leave"
COMMANDS = "request"


# Personalised delivery asks for three tokens per member per post; the tokens never change,
# so a list's members' tokens are kept (a few MB at the bound, for ~65,000 members).
@functools.lru_cache(maxsize=1 << 17)
def member_token(secret: bytes, purpose: str, list_name: str, address: str) -> str:
    data = f"{purpose}|{list_name.lower()}|{address.lower()}".encode()
    digest = hmac.new(secret, data, hashlib.sha256).digest()[:TOKEN_BYTES]
    return base64.b32encode(digest).decode("ascii").rstrip("=").lower()


def token_matches(secret: bytes, purpose: str, list_name: str, address: str, token: str) -> bool:
    expected = member_token(secret, purpose, list_name, address)
    return hmac.compare_digest(expected, token.strip().lower())


def find_member(
    secret: bytes, purpose: str, list_name: str, token: str, candidates: Iterable[str]
) -> str | None:
    """The candidate address whose token this is (a keyed HMAC cannot be decoded, so we
    compare against each member: microseconds each, and bounces are rare)."""
    for address in candidates:
        if token_matches(secret, purpose, list_name, address, token):
            return address.lower()
    return None


class _Forms(NamedTuple):
    """One list's addresses as personalisation writes them, filled in but for the token
    (`str.format` fields), and the generic header values of the stored copy."""

    verp: str  # LIST-bounces+{token}@D
    # The List-Unsubscribe line(s) that replace the generic one, with the leave token as
    # {token}: the one-click URL and the POST header first when there is a [web] side.
    unsubscribe: str
    commands: str  # LIST-confirm+{token}@D
    help: str  # mailto:LIST-confirm+{token}@D?subject=help
    generic_unsubscribe: str  # <mailto:LIST-leave@D>, as list_headers writes it
    generic_help: str  # <mailto:LIST-request@D?subject=help>


# RFC 8058 §3.1: the header that says a POST to the https URI unsubscribes at once.
ONE_CLICK_POST = "List-Unsubscribe-Post: List-Unsubscribe=One-Click"
# What a base URL may keep as it is in a header: unreserved, path and authority
# characters. Anything else (a comma, which separates RFC 2369 URIs, angle brackets,
# spaces, CR/LF) is percent-encoded.
_URL_SAFE = ":/@!$&'()*+;=%~"


@functools.lru_cache(maxsize=512)
def _forms(list_name: str, domain: str, base_url: str | None = None) -> _Forms:
    """Derived from the address spec once per list, so a copy costs a format per address."""
    leave = mailhub_address("LIST-leave", domain, list=list_name)
    request = mailhub_address("LIST-request", domain, list=list_name)
    commands = partial("LIST-confirm+TOKEN", domain, list=list_name)
    mailto = f"<mailto:{partial('LIST-leave+TOKEN', domain, list=list_name)}>"
    if base_url is None:
        unsubscribe = f"List-Unsubscribe: {mailto}\r\n"
    else:
        # RFC 8058 §3.1: the https URI (one-click) first, then the mailto, folded between
        # them (together they pass 78 characters); and the header that asks for a POST.
        url = f"{_braced(quote(base_url, safe=_URL_SAFE))}/u/{one_click_token_form(list_name)}"
        unsubscribe = f"List-Unsubscribe: <{url}>,\r\n {mailto}\r\n{ONE_CLICK_POST}\r\n"
    return _Forms(
        verp=partial("LIST-bounces+TOKEN", domain, list=list_name),
        unsubscribe=unsubscribe,
        commands=commands,
        help=f"mailto:{commands}?subject=help",
        generic_unsubscribe=f"<mailto:{leave}>",
        generic_help=f"<mailto:{request}?subject=help>",
    )


def _braced(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def one_click_token_form(list_name: str) -> str:
    """The one-click token with its MAC left as the `{token}` field: `LIST.{token}`. The
    list is named in the clear so the web side can refuse an unknown list before it looks
    at members (mailhub.lists.leaving.read_one_click)."""
    return f"{_braced(list_name.lower())}.{{token}}"


def one_click_token(secret: bytes, list_name: str, address: str) -> str:
    """`LIST.MAC`, MAC the member's leave token: the TOKEN of `BASE_URL/u/TOKEN`."""
    token = member_token(secret, LEAVE, list_name, address)
    return one_click_token_form(list_name).format(token=token)


def command_address(secret: bytes, list_name: str, address: str, domain: str) -> str:
    """The member's own command address. It reuses the `LIST-confirm+TOKEN@D` form (the
    router already knows it; mailhub.lists.confirm.handle_confirm tells a member token
    from a stored confirmation token). A command there counts at once only when From:
    (and the envelope sender) is the member the token was made for."""
    token = member_token(secret, COMMANDS, list_name, address)
    return _forms(list_name, domain).commands.format(token=token)


@functools.lru_cache(maxsize=512)
def _generic(name: str, generic: str) -> re.Pattern[bytes]:
    """The header `name: generic`, folded or not (compiled once per list and header)."""
    return re.compile(
        rb"^"
        + re.escape(name.encode())
        + rb":[ \t]*(?:\r\n[ \t]+)?"
        + re.escape(generic.encode())
        + rb"[ \t]*\r\n",
        re.IGNORECASE | re.MULTILINE,
    )


def _swap(head: bytes, name: str, generic: str, lines: str) -> bytes:
    """`head` (a header block ending in CRLF) with `name: generic` replaced by `lines`
    (whole header lines, each ending in CRLF)."""
    m = _generic(name, generic).search(head)
    if m is None:
        return head
    return head[: m.start()] + lines.encode() + head[m.end() :]


def personalise(
    config: Config, secret: bytes, list_name: str, raw: bytes, rcpt: str
) -> tuple[str, bytes]:
    """(envelope sender, copy) for one member: the stored copy with its List-Unsubscribe
    and List-Help made the member's own. Without the generic header (a message that is
    not list mail) nothing is swapped, and no one-click is claimed."""
    web = config.web
    forms = _forms(list_name, config.server.domain, web.base_url if web else None)
    envelope = forms.verp.format(token=member_token(secret, VERP, list_name, rcpt))
    # The header block only is edited (it is small); the body is copied once, at the end.
    head_end = raw.find(b"\r\n\r\n")
    split = head_end + 2 if head_end >= 0 else len(raw)
    head = _swap(
        raw[:split],
        "List-Unsubscribe",
        forms.generic_unsubscribe,
        forms.unsubscribe.format(token=member_token(secret, LEAVE, list_name, rcpt)),
    )
    head = _swap(
        head,
        "List-Help",
        forms.generic_help,
        f"List-Help: <{forms.help.format(token=member_token(secret, COMMANDS, list_name, rcpt))}>\r\n",
    )
    return envelope, head + raw[split:]
