"""The one way a list tells a person something: compose a notice from a list template and
send it, either as an answer to a message (`answer`) or as mail a person's action caused
(`tell`).

Every list template gets the same variables: `list` (the list's names and its own
addresses, `ListVars`), `domain`, and what the template itself is about. A template that
gives a member their own command address gets it as `list.request` (`request=`).

- `answer`: to the envelope sender of `mail`, through `ctx.auto_reply`, so the RFC 3834
  rules and the per-mailbox rate limit apply (a robot is never answered).
- `tell`: straight to `to`, from a null return path (nothing can bounce back to us), and
  marked auto-generated, so out-of-office robots do not answer it (RFC 3834 §5). For mail
  that a person's action caused (a confirmation used, a facilitator's decision, a bounce
  threshold reached), whose recipient is clearly waiting for it.

A notice comes from the list's owner address (its facilitators), or from its request
address (`sender=REQUEST`) when it answers a command sent there.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from mailhub.addresses import address as mailhub_address
from mailhub.context import Context, Incoming
from mailhub.dates import Moment
from mailhub.lists.config import ListConfig
from mailhub.lists.headers import ListAddresses
from mailhub.messages import SEPARATOR, Rendered, address, build_message
from mailhub.store import lists as members

OWNER = "owner"
REQUEST = "request"


@dataclass(frozen=True)
class ListVars:
    """The list as every list template names it: `{{ list.display_name }}`, `{{ list.join }}`."""

    name: str
    display_name: str
    description: str
    footer: str
    post: str
    join: str
    leave: str
    request: str  # the list's request address, or the member's own command address
    owner: str
    conduct: str  # where to report a conduct problem: conduct@D, else the facilitators
    addresses: str = "hidden"  # whether members see each other's addresses: hidden | shown
    # The Welsh half's names: the Welsh display name, else the display name as it is; the
    # Welsh description, else "" (the Welsh half then does not pass English off as Welsh).
    display_name_cy: str = ""
    description_cy: str = ""
    languages: str = "cy+en"  # the list's languages ("cy": no English half follows)


def when(ts: float | None) -> str:
    """A time for a list template: "2026-12-07 14:05 UTC" as text, and in the reader's
    language through the template filter (`{{ expires | datetime(language) }}`)."""
    return Moment(ts) if ts is not None else "-"


def list_vars(ctx: Context, lst: ListConfig, *, request: str = "") -> ListVars:
    a = ListAddresses.of(lst.name, ctx.domain)
    return ListVars(
        name=lst.name,
        display_name=lst.display_name,
        description=lst.description,
        footer=lst.footer,
        post=a.post,
        join=a.join,
        leave=a.leave,
        request=request or a.request,
        owner=a.owner,
        conduct=mailhub_address("conduct", ctx.domain)
        if ctx.config.conduct is not None
        else a.owner,
        addresses=lst.addresses,
        display_name_cy=lst.display_name_cy or lst.display_name,
        description_cy=lst.description_cy,
        languages=lst.language,
    )


# A subject a phone shows whole: both languages only when together they fit.
SUBJECT_WIDTH = 78


def subject_of(subjects: list[str], width: int = SUBJECT_WIDTH) -> str:
    """`Cymraeg / English` when both fit in `width`, else the first language's alone (the
    body carries both in full)."""
    both = " / ".join(subjects)
    return both if len(both) <= width else subjects[0]


def notice_languages(list_language: str, member_language: str) -> str:
    """The languages of a notice to one member (pure): the list's own (`cy+en`, …) unless
    the member chose one on their page ('cy', 'en'), or both ('both': in the list's order,
    the list's first language leading)."""
    if member_language in ("cy", "en"):
        return member_language
    if member_language == "both":
        first = list_language.split("+")[0]
        return "cy+en" if first == "cy" else "en+cy"
    return list_language


def render(
    ctx: Context,
    lst: ListConfig,
    template: str,
    *,
    request: str = "",
    languages: str = "",
    **variables: Any,
) -> Rendered:
    """A list template in the list's language(s) (or `languages`, the recipient's own
    choice), the first named leading, with the one set of list variables."""
    parts = [
        ctx.templates.render_one(
            template,
            language,
            list=list_vars(ctx, lst, request=request),
            domain=ctx.domain,
            **variables,
        )
        for language in (languages or lst.language).split("+")
    ]
    return Rendered(
        subject_of([p.subject for p in parts]),
        SEPARATOR.join(p.body.rstrip() for p in parts) + "\n",
    )


def kind(template: str, situation: str = "") -> str:
    """The outbound and log kind of a notice: `lists.TEMPLATE[.SITUATION]`."""
    return f"lists.{template}.{situation}".rstrip(".")


def compose(
    ctx: Context,
    lst: ListConfig,
    template: str,
    to: str,
    *,
    sender: str = OWNER,
    reply_token: str = "",
    request: str = "",
    languages: str = "",
    **variables: Any,
) -> EmailMessage:
    """The notice as a message. `reply_token`: replying to it goes to
    `LIST-confirm+TOKEN@D`, where that token acts."""
    text = render(ctx, lst, template, request=request, languages=languages, **variables)
    a = ListAddresses.of(lst.name, ctx.domain)
    reply_to = (
        mailhub_address("LIST-confirm+TOKEN", ctx.domain, list=lst.name, token=reply_token)
        if reply_token
        else ""
    )
    return build_message(
        from_=address(lst.shown_name, a.request if sender == REQUEST else a.owner),
        to=to,
        subject=text.subject,
        body=text.body,
        domain=ctx.domain,
        now=ctx.now(),
        headers={"Reply-To": reply_to} if reply_to else None,
    )


async def languages_for(ctx: Context, lst: ListConfig, to: str) -> str:
    """The languages of a notice to `to`: their own choice when they are a member who made
    one on their page, else the list's."""
    chosen = await members.member_language(ctx.tx, lst.name, to) if to else ""
    return notice_languages(lst.language, chosen)


async def answer(
    ctx: Context,
    mail: Incoming,
    lst: ListConfig,
    template: str,
    *,
    sender: str = OWNER,
    reply_token: str = "",
    request: str = "",
    **variables: Any,
) -> bool:
    """Answer the sender of `mail` (RFC 3834 rules and rate limit apply); False if not sent."""
    msg = compose(
        ctx,
        lst,
        template,
        mail.mail_from,
        sender=sender,
        reply_token=reply_token,
        request=request,
        languages=await languages_for(ctx, lst, mail.mail_from),
        **variables,
    )
    return await ctx.auto_reply(mail, msg, kind=kind(template, variables.get("situation", "")))


async def tell(
    ctx: Context,
    lst: ListConfig,
    to: str,
    template: str,
    *,
    reply_token: str = "",
    request: str = "",
    languages: str = "",
    **variables: Any,
) -> None:
    """Mail to `to` that a person's action caused: sent directly, from a null return path.
    `languages`: for someone no longer a member, the choice they had (else looked up)."""
    languages = languages or await languages_for(ctx, lst, to)
    msg = compose(
        ctx,
        lst,
        template,
        to,
        reply_token=reply_token,
        request=request,
        languages=languages,
        **variables,
    )
    # Generated, not a reply: out-of-office robots must not answer it (RFC 3834 §5).
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"
    await ctx.send(msg, [to], kind=kind(template, variables.get("situation", "")), mail_from="")
