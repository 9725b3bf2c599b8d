"""What a handler or a scheduled job gets: the open transaction and the means to send mail.

Everything a handler does through a Context lands in one transaction with the
state change that caused it (transactional outbox): either all of it commits,
or none of it does.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from functools import cached_property

from mailhub import dates, logs
from mailhub.autoreply import may_auto_reply, reply_headers
from mailhub.clock import Clock
from mailhub.config import Config
from mailhub.mailbox import mailbox_key
from mailhub.messages import Templates, new_message_id, to_bytes
from mailhub.parsing import parse
from mailhub.resolver import Resolver
from mailhub.routing import AddressBook
from mailhub.sealing import conduct_key, is_conduct_kind, seal
from mailhub.store import Tx, autoreplies, outbound

# Keys of Incoming.prepared set by the processor: the message parsed in the content worker,
# and why a message is set aside unhandled.
PARSED = "parsed"
SET_ASIDE = "set-aside"


@dataclass(frozen=True)
class Incoming:
    """One accepted message, as a handler sees it."""

    queue_id: str
    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    received_at: float
    # Results of bounded content work done for this message before its transaction
    # (e.g. the conduct scan), keyed by who did it, so a handler never redoes it.
    prepared: dict[object, object] = field(default_factory=dict, compare=False, repr=False)

    @cached_property
    def message(self) -> EmailMessage:
        parsed = self.prepared.get(PARSED)
        return parsed if isinstance(parsed, EmailMessage) else parse(self.raw)


@dataclass
class Context:
    tx: Tx
    config: Config
    clock: Clock
    templates: Templates
    book: AddressBook
    source: str
    sent: list[int] = field(default_factory=list)
    # Set by a job that deleted content (case retention): the scheduler then checkpoints
    # the WAL after the commit, so the old pages do not stay in the -wal file.
    checkpoint_after: bool = False

    def now(self) -> float:
        return self.clock.now()

    @property
    def domain(self) -> str:
        return self.config.server.domain

    @property
    def loop_id(self) -> str:
        """Our X-Loop value: mail carrying it came from us."""
        return f"mailhub@{self.domain}"

    async def send(
        self,
        msg: EmailMessage | bytes,
        rcpts: Iterable[str],
        *,
        kind: str,
        mail_from: str = "",
        message_id: str | None = None,
        personalise: str | None = None,
        case_ref: str = "",
        order_key: str = "",
    ) -> int | None:
        """Queue a message for delivery in this transaction. Returns the outbound id.

        `personalise="list:NAME"`: stored once, sent to each recipient in its own SMTP
        transaction with per-member envelope and headers (mailhub.lists.verp).

        `order_key`: messages of one key are delivered one after another in the order they
        were queued, from whichever node (a list's posts: `list:NAME`).

        Case mail (`kind` "conduct.*") is sealed with the conduct key when one is
        configured, and stored with `case_ref` (default: the message's X-Conduct-Case
        header), so retention can delete it with the case's content.
        """
        rcpt_list = [r for r in dict.fromkeys(rcpts) if r]
        if not rcpt_list:
            return None
        if isinstance(msg, EmailMessage):
            if "Message-ID" not in msg:
                msg["Message-ID"] = new_message_id(self.domain)
            if "X-Loop" not in msg:
                msg["X-Loop"] = self.loop_id
            message_id = str(msg["Message-ID"])
            raw = to_bytes(msg)
        else:
            raw = msg
        sealed = False
        if is_conduct_kind(kind):
            case_ref = (case_ref or _case_header(msg)).upper()
            raw, sealed = seal(conduct_key(self.config), raw)
        outbound_id = await outbound.insert(
            self.tx,
            message_id=message_id or "",
            mail_from=mail_from,
            rcpts=rcpt_list,
            raw=raw,
            kind=kind,
            source=self.source,
            now=self.now(),
            personalise=personalise,
            sealed=sealed,
            case_ref=case_ref,
            order_key=order_key,
        )
        self.sent.append(outbound_id)
        return outbound_id

    async def auto_reply(self, mail: Incoming, reply: EmailMessage, *, kind: str) -> bool:
        """Send `reply` to the sender of `mail` if RFC 3834 and the rate limit allow it.

        The reply goes to the envelope sender (RFC 3834 §4) from a null return path,
        so nothing can bounce back to us and start a loop.
        """
        # Case mail is logged without the address it goes to (it would tie the reporter
        # to the case): the queue id, kind and outcome say enough.
        quiet = is_conduct_kind(kind)
        verdict = may_auto_reply(mail.message, mail.mail_from, self.loop_id)
        if not verdict:
            logs.event(
                "autoreply",
                queue_id=mail.queue_id,
                **({} if quiet else {"to": mail.mail_from or "<>"}),
                kind=kind,
                outcome="suppressed",
                reason=verdict.reason,
            )
            return False
        sender = mailbox_key(mail.mail_from)
        domain = sender.rpartition("@")[2]
        now = self.now()
        reason = await self._over_autoreply_limit(sender, domain, now)
        if reason:
            logs.event(
                "autoreply",
                logging.WARNING,
                queue_id=mail.queue_id,
                **({} if quiet else {"to": sender}),
                kind=kind,
                outcome="suppressed",
                reason=reason,
            )
            return False
        for name, value in reply_headers(mail.message, self.loop_id).items():
            del reply[name]
            reply[name] = value
        await autoreplies.record(self.tx, sender, now, domain)
        await self.send(reply, [mail.mail_from], kind=kind, mail_from="")
        return True

    async def _over_autoreply_limit(self, sender: str, domain: str, now: float) -> str:
        """Which automatic-reply limit this reply would pass ('' if none)."""
        limits = self.config.autoreply
        if await autoreplies.count_since(self.tx, sender, now - 3600) >= limits.per_hour:
            return "rate limit (mailbox, hour)"
        if await autoreplies.count_since(self.tx, sender, now - 86400) >= limits.per_day:
            return "rate limit (mailbox, day)"
        if (
            await autoreplies.count_domain_since(self.tx, domain, now - 3600)
            >= limits.per_domain_per_hour
        ):
            return "rate limit (domain, hour)"
        if await autoreplies.count_all_since(self.tx, now - 3600) >= limits.total_per_hour:
            return "rate limit (all senders, hour)"
        return ""


def _case_header(msg: EmailMessage | bytes) -> str:
    """The X-Conduct-Case header of a message we built (every notice carries it)."""
    if isinstance(msg, bytes):
        msg = BytesHeaderParser(policy=policy.default).parsebytes(msg)  # type: ignore[assignment]
    value = msg.get("X-Conduct-Case")  # type: ignore[union-attr]
    return str(value).strip() if value is not None else ""


@dataclass(frozen=True)
class Runtime:
    """What every handler and scheduled job runs with, shared by the workers."""

    config: Config
    clock: Clock
    templates: Templates
    book: AddressBook
    # DNS for preparers (DMARC policies, posters' DKIM keys): one, so its cache is shared.
    resolver: Resolver = field(default_factory=Resolver)

    @classmethod
    def create(cls, config: Config, clock: Clock) -> Runtime:
        templates = Templates(config.templates_dir)
        # Every template may write dates in its own language: {{ ts | date(language) }}.
        dates.install(templates.env)
        return cls(
            config,
            clock,
            templates,
            AddressBook.from_config(config),
            Resolver(config.dns),
        )

    def context(self, tx: Tx, source: str) -> Context:
        return Context(tx, self.config, self.clock, self.templates, self.book, source)
