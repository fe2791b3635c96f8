"""The studio answers only to its own host names: a defence against DNS rebinding.

A page on attacker.example can make its own name resolve to 127.0.0.1 (or to a studio's address on a private
network) and then drive the studio from the user's browser: to the browser that is same-origin, so the origin
checks pass. What gives it away is the Host header, which still names attacker.example. Allowed are loopback
names and addresses (the default studio on a laptop; never the rebinding's name), the host of
GENKEEP_PUBLIC_BASE_URL, and GENKEEP_ALLOWED_HOSTS. Ports are not compared: a rebinding keeps the studio's port,
and a proxy's `Host $host` drops it. Liveness and readiness answer any host: they tell nothing, and probes address
a process by its IP.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from genkeep.web.problems import problem

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})
ANY_HOST = "*"
UNCHECKED_PATHS = frozenset({"/healthz", "/readyz"})


def host_name(host: str) -> str:
    """The name or address of a Host header's value, without its port, lower case."""
    host = host.strip().lower()
    if host.startswith("["):  # [::1]:8000
        return host[1:].partition("]")[0]
    name, _, _port = host.rpartition(":") if host.count(":") == 1 else (host, "", "")
    return name.rstrip(".")


def is_loopback(name: str) -> bool:
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class HostGuard:
    def __init__(self, app: ASGIApp, *, public_base_url: str = "", allowed_hosts: Sequence[str] = ()) -> None:
        self.app = app
        names = {host_name(name) for name in allowed_hosts if name.strip()}
        public = urlsplit(public_base_url).hostname if public_base_url else None
        if public:
            names.add(public.lower())
        self.any_host = ANY_HOST in names
        self.names = frozenset(names)

    def allows(self, host: str) -> bool:
        name = host_name(host)
        return self.any_host or name in self.names or is_loopback(name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.any_host or scope["path"] in UNCHECKED_PATHS:
            await self.app(scope, receive, send)
            return
        host = next((value for name, value in scope["headers"] if name == b"host"), None)
        # No Host at all: not a browser (every browser sends one), so no rebinding either.
        if host is not None and not self.allows(host.decode("latin-1")):
            shown = host.decode("latin-1")[:80].encode("unicode_escape").decode()
            await problem(
                400, "unknown_host",
                f"This studio does not answer to the host name {shown!r}. If that is one of its own names, add it "
                "to GENKEEP_ALLOWED_HOSTS (or set GENKEEP_PUBLIC_BASE_URL to the studio's public address).",
            )(scope, receive, send)
            return
        await self.app(scope, receive, send)
