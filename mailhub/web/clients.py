"""Who the client is, for rate limits (pure)."""

from __future__ import annotations

import ipaddress


def is_loopback(address: str | None) -> bool:
    try:
        return address is not None and ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


def client_id(peer: str | None, forwarded_for: str | None, trust_forwarded: bool) -> str:
    """The peer's address; or, when `[web] trust_forwarded` is on and the peer is loopback
    (the reverse proxy on this machine), the last hop of X-Forwarded-For that is not
    loopback. Only the proxy's own hop is trusted: the hops before it are whatever the
    client wrote, so the one the proxy appended (the rightmost untrusted) is taken."""
    peer = peer or "-"
    if not (trust_forwarded and forwarded_for and is_loopback(peer)):
        return peer
    for hop in reversed(forwarded_for.split(",")):
        hop = hop.strip()
        if hop and not is_loopback(hop):
            try:
                return str(ipaddress.ip_address(hop.strip("[]")))
            except ValueError:
                return peer  # a hop that is no address: the proxy's own word is all we have
    return peer
