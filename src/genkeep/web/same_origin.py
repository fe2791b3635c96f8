"""Requests another web page made a browser send: refused when they would change anything, never given an owner.

A page on another site (or another origin of the same site: a sibling subdomain, another port) can make the
user's browser send requests here: a top-level form POST carries no SameSite=Lax cookie, so it would be given a
brand-new owner and its Set-Cookie would replace the user's own; a same-site one carries the cookie and would act
as the user. Browsers say where a request comes from in Sec-Fetch-Site (all current ones) and Origin (on every
POST, PUT, PATCH and DELETE); clients that are not browsers send neither and are served as before.

A pure ASGI middleware, like the owner middleware after it: one scan of the headers per request.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from genkeep.web.problems import problem

log = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# "none": the user typed the address, used a bookmark or reloaded; no page asked for it.
SAME_ORIGIN_SITES = frozenset({b"same-origin", b"none"})
STATE_KEY = "from_another_origin"
DEFAULT_PORTS = {b"http": b":80", b"https": b":443"}


def from_another_origin(scope: Scope) -> bool:
    """True when a browser sent this request on another origin's behalf (set by SameOriginGuard)."""
    return bool(scope.get("state", {}).get(STATE_KEY))


def _origin_of(url: str) -> bytes | None:
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return None
    return _normalised(parts.scheme.encode(), parts.netloc.encode())


def _normalised(scheme: bytes, host: bytes) -> bytes:
    scheme, host = scheme.lower(), host.lower()
    default_port = DEFAULT_PORTS.get(scheme)
    if default_port and host.endswith(default_port):
        host = host[: -len(default_port)]
    return scheme + b"://" + host


class SameOriginGuard:
    """Answers 403 to an unsafe request from another origin; marks a safe one so no owner is minted for it.

    The studio's own origin is the one the browser addressed (the request's scheme and Host), and also the public
    address (GENKEEP_PUBLIC_BASE_URL) when genkeep sits behind a proxy that changes the scheme or host.
    """

    def __init__(self, app: ASGIApp, *, public_base_url: str = "") -> None:
        self.app = app
        public = _origin_of(public_base_url) if public_base_url else None
        self.public_origins = frozenset({public} if public else set())
        self._told_about_proxy = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        site = origin = host = None
        for name, value in scope["headers"]:
            if name == b"sec-fetch-site":
                site = value
            elif name == b"origin":
                origin = value
            elif name == b"host":
                host = value
        if site is None and origin is None:
            # Not a browser, or one too old to say; such a browser still sends Origin on unsafe methods.
            await self.app(scope, receive, send)
            return
        foreign = site is not None and site.strip().lower() not in SAME_ORIGIN_SITES
        if not foreign and origin is not None:
            foreign = not self._is_own(origin, scope, host)
            if foreign and site is not None and not self._told_about_proxy:
                # The browser says same-origin, yet the Origin is not the address this server sees: most likely
                # a proxy in front that changes the Host header.
                self._told_about_proxy = True
                # Quoted and cut: both are the client's words, and must not pass for lines of the log.
                log.warning("refused a same-origin browser request from %r to host %r: if a proxy in front of "
                            "genkeep changes the Host header, set GENKEEP_PUBLIC_BASE_URL to the studio's public "
                            "address", origin.decode("latin-1")[:200], (host or b"?").decode("latin-1")[:200])
        if foreign and scope["method"] not in SAFE_METHODS:
            refusal = problem(
                403, "cross_origin",
                "This request came from another web site or page, so genkeep did not act on it; use the studio's "
                "own pages to start, cancel, retry or delete generations.")
            await refusal(scope, receive, send)
            return
        if foreign:
            scope.setdefault("state", {})[STATE_KEY] = True
        await self.app(scope, receive, send)

    def _is_own(self, origin: bytes, scope: Scope, host: bytes | None) -> bool:
        scheme, _, rest = origin.strip().partition(b"://")
        if not rest:  # "null": a sandboxed frame, a file, a redirect across origins
            return False
        claimed = _normalised(scheme, rest)
        if claimed in self.public_origins:
            return True
        return host is not None and claimed == _normalised(scope.get("scheme", "http").encode(), host.strip())
