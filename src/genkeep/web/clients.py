"""Who is on the other end of a request: the client's address, and the scheme the browser used, believing what
a proxy forwards only when the request came from one of GENKEEP_TRUSTED_PROXIES."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from starlette.types import Scope

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_address(text: str) -> Address | None:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped  # an IPv4 peer reaching a server that listens on IPv6
    return address


def peer_address(scope: Scope) -> Address | None:
    """The address of the TCP peer (the proxy, if there is one)."""
    client = scope.get("client")
    return parse_address(client[0]) if client else None


def is_trusted(address: Address | None, trusted: Sequence[Network]) -> bool:
    return address is not None and any(address in network for network in trusted)


def _header(scope: Scope, name: bytes) -> list[bytes]:
    return [value for key, value in scope["headers"] if key == name]


def client_address(scope: Scope, trusted: Sequence[Network]) -> str:
    """The client's address: the peer's, or behind trusted proxies the last X-Forwarded-For hop that is not one
    of them (hops to its left are the client's own word)."""
    peer = peer_address(scope)
    if not is_trusted(peer, trusted):
        return str(peer) if peer is not None else "unknown"
    hops = [hop.strip() for value in _header(scope, b"x-forwarded-for")
            for hop in value.decode("latin-1").split(",") if hop.strip()]
    for hop in reversed(hops):
        address = parse_address(hop)
        if address is None:
            break
        if not is_trusted(address, trusted):
            return str(address)
    return str(peer)


def forwarded_https(scope: Scope, trusted: Sequence[Network]) -> bool | None:
    """What a trusted proxy says of the browser's scheme (X-Forwarded-Proto): True for https, False for http,
    None if no trusted proxy said."""
    if not trusted or not is_trusted(peer_address(scope), trusted):
        return None
    values = _header(scope, b"x-forwarded-proto")
    if not values:
        return None
    # A chain of proxies may list several; the first is what the browser used.
    first = values[0].split(b",")[0].strip().lower()
    return first == b"https" if first in (b"https", b"http") else None
