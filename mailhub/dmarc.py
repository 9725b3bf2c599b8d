"""DMARC by DNS (RFC 7489): the poster's published policy, and whether a list copy must carry
the list's address in From: instead of the poster's.

A list copy changes the post (subject prefix, footer), so the poster's DKIM signature no
longer verifies, and the copy comes from our servers, so the poster's SPF does not pass
either: at a member's host the unchanged From: fails DMARC, and a domain publishing
p=reject or p=quarantine asks that host to refuse it or file it as spam.

`lookup` finds the policy (§6.6.3); `must_rewrite` decides (pure). A DNS failure counts
as "rewrite": a rewritten From: is always delivered, an unrewritten one may be refused.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from publicsuffixlist import PublicSuffixList

from mailhub.resolver import Outcome, Resolver


class Disposition(StrEnum):
    REJECT = "reject"
    QUARANTINE = "quarantine"
    NONE = "none"  # a policy that asks nothing (p=none, or a record we cannot act on)
    ABSENT = "absent"  # no DMARC record: the domain has not opted in
    UNKNOWN = "unknown"  # DNS failed or timed out: we cannot tell


# The values of p= and sp= (§6.3; case-insensitive, as ABNF strings are).
POLICIES = {
    "reject": Disposition.REJECT,
    "quarantine": Disposition.QUARANTINE,
    "none": Disposition.NONE,
}


@dataclass(frozen=True)
class DmarcPolicy:
    outcome: Disposition
    from_domain: str
    source: str = ""  # the domain whose _dmarc record decided ("" when none did)
    reason: str = ""  # why, in a few words, for the log
    adkim: str = "r"  # DKIM alignment the record asks for: r (relaxed) or s (strict)
    malformed: bool = False  # several records, or one without a valid p=: "none" at best


@functools.cache
def _public_suffixes() -> PublicSuffixList:
    # The list bundled with the package (both its ICANN and private sections, as DMARC
    # receivers commonly use it: each *.github.io site is its own organisation). Read once.
    return PublicSuffixList()


def organisational_domain(domain: str) -> str:
    """RFC 7489 §3.2: the public suffix plus one label, e.g. mail.example.gov.uk →
    example.gov.uk. A name that is itself a public suffix (gov.uk) is its own."""
    domain = domain.strip().rstrip(".").lower()
    if not domain:
        return domain
    return _public_suffixes().privatesuffix(domain) or domain


def parse_record(text: str) -> dict[str, str] | None:
    """A DMARC record's tags (names lower-cased), or None when it is not one: its first tag
    must be exactly v=DMARC1 (§6.4; the version's case is significant)."""
    parts = [p.strip() for p in text.split(";")]
    tags: dict[str, str] = {}
    for i, part in enumerate(parts):
        if not part:
            continue  # "p=reject;" ends with an empty part; "; ;" is tolerated likewise
        name, sep, value = part.partition("=")
        name, value = name.strip().lower(), value.strip()
        if i == 0 and (name != "v" or value != "DMARC1" or not sep):
            return None
        if not sep:
            continue  # a tag without a value: ignored, like any tag we do not know
        tags.setdefault(name, value)
    return tags if tags.get("v") == "DMARC1" else None


def policy_of(tags: dict[str, str], subdomain: bool) -> Disposition | None:
    """The disposition a record asks for: `sp` for a subdomain found through its
    organisational domain's record, when present; else `p`. None: not valid (§6.6.3 then
    treats the record as p=none at best).

    `pct` is not consulted: it asks receivers to apply the policy to a sample of failing
    mail, and any one copy we send may be in the sample, so a copy must be safe as if
    pct were 100 (DMARCbis drops `pct` for the same reason)."""
    p = POLICIES.get(tags.get("p", "").lower())
    if p is None:
        return None
    if subdomain and "sp" in tags:
        return POLICIES.get(tags["sp"].lower())
    return p


async def _records(resolver: Resolver, domain: str) -> tuple[Outcome, list[dict[str, str]]]:
    answer = await resolver.txt(f"_dmarc.{domain}")
    if answer.outcome is not Outcome.RECORDS:
        return answer.outcome, []
    found = [tags for text in answer.texts if (tags := parse_record(text)) is not None]
    # TXT records that are not DMARC ones are discarded (§6.6.3 step 2): "no record".
    return (Outcome.RECORDS if found else Outcome.NO_RECORD), found


async def lookup(resolver: Resolver, from_domain: str) -> DmarcPolicy:
    """The policy that governs mail From: `from_domain` (RFC 7489 §6.6.3): the record at
    _dmarc.<from-domain>, else the one at _dmarc.<organisational domain> with `sp=`
    applied. Never raises."""
    domain = from_domain.strip().rstrip(".").lower()
    if not domain:
        return DmarcPolicy(Disposition.ABSENT, domain, reason="no From: domain")
    outcome, records = await _records(resolver, domain)
    source, subdomain = domain, False
    if outcome is Outcome.NO_RECORD:
        org = organisational_domain(domain)
        if org != domain:
            outcome, records = await _records(resolver, org)
            source, subdomain = org, True
    if outcome is Outcome.FAILURE:
        # A failure on the first query is not a "no": we do not know whether a record
        # exists, so the org domain's record is not consulted in its place.
        return DmarcPolicy(Disposition.UNKNOWN, domain, source, "DNS failure")
    if outcome is Outcome.NO_RECORD:
        return DmarcPolicy(Disposition.ABSENT, domain, reason="no DMARC record")
    if len(records) > 1:
        # §6.6.3 step 6: several records end the discovery, with no DMARC processing.
        return DmarcPolicy(
            Disposition.NONE, domain, source, "several DMARC records", malformed=True
        )
    disposition = policy_of(records[0], subdomain)
    if disposition is None:
        return DmarcPolicy(
            Disposition.NONE, domain, source, "malformed DMARC record", malformed=True
        )
    adkim = "s" if records[0].get("adkim", "r").lower() == "s" else "r"
    return DmarcPolicy(disposition, domain, source, adkim=adkim)


def must_rewrite(policy: DmarcPolicy, strict_domains: Iterable[str], from_domain: str) -> bool:
    """Must a list copy carry the list's address in From:? reject, quarantine, and a lookup
    that failed: yes. none and absent: only when the domain, or a domain above it (so its
    organisational domain too), is in `[dmarc] strict_domains`, the administrators'
    override for domains known to be strict."""
    if policy.outcome in (Disposition.REJECT, Disposition.QUARANTINE, Disposition.UNKNOWN):
        return True
    strict = {d.strip().rstrip(".").lower() for d in strict_domains}
    domain = from_domain.strip().rstrip(".").lower()
    while domain:
        if domain in strict:
            return True
        domain = domain.partition(".")[2]
    return False
