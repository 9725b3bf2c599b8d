"""What the copies of a post say about its authenticity, found before the post's transaction.

A preparer (mailhub.processing): DNS and DKIM verification are slow next to a transaction,
and the store has one writer, so this runs first, bounded, and its finding travels on
`Incoming.prepared` to the handler (`of`). For a post it finds:

- the `Authentication-Results` value the copies carry, which delivery ARC-seals (RFC 8617):
  the results of a trusted MTA in front (`[dkim] trusted_authserv_ids`) when the post has
  them, else our own DKIM verification and DMARC evaluation (mailhub.authentication). Either
  way under our own authserv-id (`Config.authserv_id`): the seal speaks for our ADMD, of
  which a trusted MTA in front is part;
- the DMARC policy of the From: domain (mailhub.dmarc), from which a list whose addresses
  are shown decides whether its copies must carry the list's address in From:.

Each is looked for only when it is used: results when the list's domain has a signing key
(no key, no seal), the policy when a list the post goes to shows addresses and rewrites
From: by policy (`dmarc_rewrite = "auto"`). Nothing here stalls the queue: lookups keep to
`[dns] timeout`, verification to its own time limit, and the whole to `budget`; a failure
is `dkim=temperror` and an unknown policy, which rewrites (a rewritten From: is always
delivered, an unrewritten one may be refused).
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass

from mailhub import logs
from mailhub.authentication import TIME_LIMIT, trusted_results, verify
from mailhub.context import Incoming, Runtime
from mailhub.dmarc import Disposition, DmarcPolicy, lookup, must_rewrite
from mailhub.lists.config import ListConfig, find_list
from mailhub.messages import split_raw
from mailhub.parsing import header_values, parse, sender_address
from mailhub.routing import resolve
from mailhub.signing import missing

# The key of Incoming.prepared this preparer fills.
KEY = "lists.authenticity"
POST_ROUTE = "lists.post"


@dataclass(frozen=True)
class Authenticity:
    """What the preparer found for one post."""

    # The Authentication-Results value for the copies (our authserv-id first); None when
    # nothing would seal it (no signing key for the list's domain).
    results: str | None
    # The From: domain's DMARC policy; None when no list the post goes to asks for it.
    policy: DmarcPolicy | None
    from_domain: str = ""


def of(mail: Incoming) -> Authenticity | None:
    """The preparer's finding for `mail` (None: it did not run). A held post keeps it
    (`to_text`, stored with the post) for its release."""
    found = mail.prepared.get(KEY)
    return found if isinstance(found, Authenticity) else None


def to_text(found: Authenticity | None) -> str:
    """The finding as stored with a held post (JSON; "" for none), so that its release, days
    later, seals and rewrites as the post's own delivery would have."""
    if found is None:
        return ""
    policy = found.policy
    return json.dumps(
        {
            "results": found.results,
            "from_domain": found.from_domain,
            "policy": None if policy is None else [policy.outcome.value, policy.from_domain],
        }
    )


def from_text(text: str) -> Authenticity | None:
    """A stored finding back (None for "" or anything unreadable: the release then falls
    back to `[dmarc] strict_domains`, as before the finding was kept)."""
    try:
        data = json.loads(text) if text else None
        if not isinstance(data, dict):
            return None
        policy = data.get("policy")
        return Authenticity(
            results=data.get("results") if isinstance(data.get("results"), str) else None,
            policy=None if policy is None else DmarcPolicy(Disposition(policy[0]), str(policy[1])),
            from_domain=str(data.get("from_domain", "")),
        )
    except (ValueError, TypeError, IndexError, KeyError):
        return None


def relabelled(value: str, authserv_id: str) -> str:
    """A trusted MTA's results under our authserv-id: its resinfo kept word for word, its
    id (and version) replaced, so that one id names our ADMD in every seal we make."""
    _, sep, rest = value.partition(";")
    rest = rest.strip() if sep else "none"
    return f"{authserv_id}; {rest or 'none'}"


def rewrite_from(
    cfg: ListConfig, found: Authenticity | None, strict_domains: frozenset[str]
) -> bool | None:
    """Whether a copy on a list that shows addresses carries the list's address in From:
    (pure). The list's own `dmarc_rewrite` first; then the policy found by DNS, with
    `[dmarc] strict_domains` as the administrators' override; None when no policy was
    looked up (distribution_copy then consults strict_domains alone)."""
    if cfg.dmarc_rewrite == "always":
        return True
    if cfg.dmarc_rewrite == "never":
        return False
    if found is None or found.policy is None:
        return None
    return must_rewrite(found.policy, strict_domains, found.from_domain)


def _lists(runtime: Runtime, mail: Incoming) -> list[ListConfig]:
    lists = []
    for rcpt in mail.rcpt_tos:
        route = resolve(rcpt, runtime.book)
        if route is not None and route.name == POST_ROUTE:
            cfg = find_list(runtime.config.lists, route.get("list", ""))
            if cfg is not None:
                lists.append(cfg)
    return lists


def budget(runtime: Runtime) -> float:
    """The most a post may wait here: a DKIM key and a DMARC record looked up one after the
    other (each within [dns] timeout, plus the resolver's own margin), and verification."""
    return 2 * (runtime.config.dns.timeout + 1.0) + TIME_LIMIT


async def prepare(runtime: Runtime, mail: Incoming) -> None:
    config = runtime.config
    # The header block alone, read as the handler reads it (From: as distribution sees it),
    # without parsing the body a second time.
    head = parse(split_raw(mail.raw)[0] + b"\r\n\r\n")
    loop_id = f"mailhub@{config.server.domain}".lower()
    if any(v.strip().lower() == loop_id for v in header_values(head, "x-loop")):
        return  # our own mail coming back: the handler discards it, nothing to look up
    lists = _lists(runtime, mail)
    want_results = bool(lists) and not missing([config.server.domain], config.dkim)
    want_policy = any(c.addresses == "shown" and c.dmarc_rewrite == "auto" for c in lists)
    if not want_results and not want_policy:
        return
    from_domain = sender_address(head).rpartition("@")[2]
    try:
        async with asyncio.timeout(budget(runtime)):
            found = await _find(runtime, mail, from_domain, want_results, want_policy)
    except TimeoutError:
        # A guarantee, not the rule: the resolver and the verifier keep to their own limits.
        logs.event("list.authenticity", logging.WARNING, queue_id=mail.queue_id, outcome="timeout")
        found = Authenticity(
            f"{config.authserv_id}; dkim=temperror; dmarc=temperror" if want_results else None,
            DmarcPolicy(Disposition.UNKNOWN, from_domain, reason="time limit")
            if want_policy
            else None,
            from_domain,
        )
    mail.prepared[KEY] = found


async def _find(
    runtime: Runtime, mail: Incoming, from_domain: str, want_results: bool, want_policy: bool
) -> Authenticity:
    config = runtime.config
    results = None
    if want_results:
        trusted = trusted_results(mail.raw, config.dkim.trusted_authserv_ids)
        if trusted is not None:
            results = relabelled(trusted, config.authserv_id)
        else:
            ours = await verify(
                mail.raw,
                runtime.resolver,
                authserv_id=config.authserv_id,
                envelope_from=mail.mail_from,
            )
            results = ours.value
    # The resolver caches: after verify's own lookup of the same record this is a cache hit.
    policy = await lookup(runtime.resolver, from_domain) if want_policy else None
    return Authenticity(results, policy, from_domain)
