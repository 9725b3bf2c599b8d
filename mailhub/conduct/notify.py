"""The mail a case sends: every piece built here, with case addresses only.

Everything the committee or the reporter receives shows `conduct@D` or a case
address (`conduct+REF@D`, `conduct+REF-committee@D`) in From, To and Reply-To, so
reply-all can never reach a personal inbox.
"""

from __future__ import annotations

import re
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from mailhub.addresses import address as mailhub_address
from mailhub.clock import as_datetime
from mailhub.conduct.config import ConductConfig
from mailhub.context import Context
from mailhub.dates import format_date
from mailhub.messages import address, build_message, new_message_id, rewrap
from mailhub.parsing import clean

COMMITTEE_NAME = "Code of conduct committee"

_SUBJECTS = {
    "new": {"en": "New report", "cy": "Adroddiad newydd"},
    "reply": {"en": "Reply from the reporter", "cy": "Ateb gan y sawl a roddodd wybod"},
    "answer": {
        "en": "Reply from the code of conduct committee",
        "cy": "Ateb gan bwyllgor y cod ymddygiad",
    },
    "discussion": {"en": "Committee discussion", "cy": "Trafodaeth y pwyllgor"},
    "held": {"en": "Held for checking", "cy": "Wedi'i ddal yn ôl i'w wirio"},
    "released": {"en": "Released after checking", "cy": "Wedi'i ryddhau ar ôl ei wirio"},
}


def conduct_address(ctx: Context) -> str:
    return mailhub_address("conduct", ctx.domain)


def reporter_address(ctx: Context, ref: str, token: str = "") -> str:
    """The reporter's thread of a case; with a token, one person's own reply address."""
    if token:
        return mailhub_address("conduct+REF+TOKEN", ctx.domain, ref=ref, token=token)
    return mailhub_address("conduct+REF", ctx.domain, ref=ref)


def committee_address(ctx: Context, ref: str, token: str = "") -> str:
    """The committee's thread of a case; with a token, one member's own reply address."""
    if token:
        return mailhub_address("conduct+REF-committee+TOKEN", ctx.domain, ref=ref, token=token)
    return mailhub_address("conduct+REF-committee", ctx.domain, ref=ref)


def date_en(ts: float) -> str:
    """The date in English, e.g. "Monday 7 December 2026"."""
    return format_date(ts, "en")


def date_cy(ts: float) -> str:
    """The date in Welsh, e.g. "dydd Llun 7 Rhagfyr 2026": lower case, for mid-sentence."""
    return format_date(ts, "cy")


def when_en(ts: float) -> str:
    """A time in English, e.g. "14:30 UTC on Monday 30 November 2026"."""
    return f"{as_datetime(ts):%H:%M} UTC on {date_en(ts)}"


def when_cy(ts: float) -> str:
    """A time in Welsh, e.g. "14:30 UTC ddydd Llun 30 Tachwedd 2026" ("ddydd": on Monday)."""
    # "ddydd": "dydd" soft-mutated, as an adverb of time ("on Monday").
    return f"{as_datetime(ts):%H:%M} UTC d{format_date(ts, 'cy')}"


def stamp(ts: float) -> str:
    """A language-neutral time for committee notices and the console."""
    return as_datetime(ts).strftime("%Y-%m-%d %H:%M UTC")


def neutral_subject(conduct: ConductConfig, ref: str, what: str) -> str:
    words = [_SUBJECTS[what][lang] for lang in conduct.language.split("+")]
    return f"[{ref}] " + " / ".join(words)


def notice(
    ctx: Context, name: str, *, ref: str, to: str, reply_to: str, **context: Any
) -> EmailMessage:
    """A notice from the committee address, rendered from templates/LANG/NAME.txt."""
    conduct: ConductConfig = ctx.config.conduct
    text = ctx.templates.render(name, conduct.language, ref=ref, **context)
    return build_message(
        from_=address(COMMITTEE_NAME, conduct_address(ctx)),
        to=to,
        subject=text.subject,
        body=text.body,
        domain=ctx.domain,
        now=ctx.now(),
        headers={
            "Reply-To": reply_to,
            "Auto-Submitted": "auto-generated",
            "X-Conduct-Case": ref,
        },
    )


def wrapped(
    ctx: Context,
    raw: bytes,
    *,
    ref: str,
    subject: str,
    from_: str,
    to: str,
    reply_to: str,
    message_id: str | None = None,
) -> tuple[bytes, str]:
    """An original message's body, verbatim, under neutral case headers: (bytes, Message-ID).

    Each recipient's copy differs (their own reply address) but shares one Message-ID, so
    mail clients thread the copies of one message as one."""
    envelope = EmailMessage(policy=policy.SMTP)
    envelope["From"] = from_
    envelope["To"] = to
    envelope["Reply-To"] = reply_to
    envelope["Subject"] = clean(subject)
    envelope["Date"] = format_datetime(as_datetime(ctx.now()))
    envelope["Message-ID"] = message_id = message_id or new_message_id(ctx.domain)
    envelope["X-Loop"] = ctx.loop_id
    envelope["X-Conduct-Case"] = ref
    return rewrap(raw, envelope), message_id


_ATTRIBUTION = re.compile(r"(?im)^[ \t]*(on|ar)\b[^\n]{0,300}\b(wrote|ysgrifennodd)\s*:[ \t]*$")


def scrub(text: str, conduct: ConductConfig, ctx: Context) -> str:
    """A committee member's text made fit for the reporter: no member's address in it, and
    mail-client attribution lines ("On ..., Ada <ada@...> wrote:") made neutral."""
    text = _ATTRIBUTION.sub("Earlier in this case:", text)
    # A quoted personal reply address carries its owner's token: never hand it on.
    personal = re.compile(rf"conduct\+[A-Za-z0-9_+-]{{1,80}}@{re.escape(ctx.domain)}", re.I)
    text = personal.sub(conduct_address(ctx), text)
    for m in conduct.committee:
        for addr in m.addresses:
            text = re.sub(re.escape(addr), conduct_address(ctx), text, flags=re.I)
    return text
