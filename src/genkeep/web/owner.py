"""Who owns a request: a signed, HttpOnly owner cookie by default, or a trusted header behind a login.

A pure ASGI middleware (no per-request task switching) so the hot status-poll path stays cheap.

The cookie is minted only for a request the studio's own pages (or the user, or a non-browser client) made: a
request another origin made the browser send never gets one (SameOriginGuard marks those), so no other site can
replace a user's cookie and with it their studio. Over https the cookie is `__Host-genkeep_owner`, which only this
host can set, over https, for the whole site: a sibling subdomain cannot plant its own owner cookie. A request
carrying several owner cookies is refused rather than resolved to one of them: choosing would hand the request to
whichever cookie a planting site arranged to come first, and clearing would delete the user's own.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from typing import Annotated

from fastapi import Depends, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from genkeep.config import PROXY_SECRET_HEADER
from genkeep.signing import Signer
from genkeep.web.clients import Network, forwarded_https, is_trusted, peer_address
from genkeep.web.problems import RequestRefused, problem
from genkeep.web.same_origin import from_another_origin

COOKIE_NAME = "genkeep_owner"
# Over https: only this host can set it (no Domain), only over https (Secure), for every path (Path=/).
SECURE_COOKIE_NAME = "__Host-genkeep_owner"
COOKIE_MAX_AGE = 365 * 24 * 3600
# Owner ids are at most 128 characters; a longer user id (or one that looks like a digest) is kept as its digest.
MAX_PLAIN_USER_CHARS = 100
DIGEST_PREFIX = "sha256:"
HEADER_OWNER_PREFIX = "h:"
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class MissingOwnerHeader(RequestRefused):
    """Header mode is on and the trusted header is absent."""

    def __init__(self) -> None:
        super().__init__(401, "unauthenticated", "Sign in first: this studio needs your login to know your tasks.")


class OwnerCookies:
    """Mints and checks signed owner ids."""

    def __init__(self, secret: str) -> None:
        self._signer = Signer.for_purpose(secret, "owner")

    def mint(self) -> tuple[str, str]:
        owner_id = secrets.token_urlsafe(18)
        return owner_id, self.value_for(owner_id)

    def value_for(self, owner_id: str) -> str:
        """The cookie's value for this owner id."""
        return f"{owner_id}.{self._signer.sign(owner_id)}"

    def verify(self, value: str) -> str | None:
        owner_id, _, signature = value.rpartition(".")
        if owner_id and self._signer.verify(owner_id, signature):
            return owner_id
        return None


def owner_for_user(user: str) -> str:
    """The owner id of a user named by the trusted header: one mapping, with no two users on one owner.

    Plain ids are kept readable ("h:alice"); long ones, and any that start like a digest, become "h:sha256:<hex>",
    which no plain id can produce.
    """
    if len(user) > MAX_PLAIN_USER_CHARS or user.startswith(DIGEST_PREFIX):
        return HEADER_OWNER_PREFIX + DIGEST_PREFIX + hashlib.sha256(user.encode()).hexdigest()
    return HEADER_OWNER_PREFIX + user


def _cookie_values(headers: Sequence[tuple[bytes, bytes]], marker: bytes) -> list[bytes]:
    """Every value of the owner cookie; a plain scan, since this runs on every request."""
    values = []
    for name, value in headers:
        if name == b"cookie" and marker in value:
            for part in value.split(b";"):
                part = part.strip()
                if part.startswith(marker):
                    values.append(part[len(marker):])
    return values


class _CookieKind:
    """The owner cookie as set over http, or over https (`__Host-`, Secure)."""

    def __init__(self, over_https: bool) -> None:
        self.name = SECURE_COOKIE_NAME if over_https else COOKIE_NAME
        self.marker = self.name.encode() + b"="
        self.attributes = f"Max-Age={COOKIE_MAX_AGE}; Path=/; HttpOnly; SameSite=Lax" + (
            "; Secure" if over_https else "")


class OwnerMiddleware:
    """Puts the owner id in scope["state"]["owner_id"], setting a new owner cookie when there is none."""

    def __init__(self, app: ASGIApp, *, secret: str, owner_header: str = "", secure: bool | None = False,
                 proxy_secret: str = "", trusted_proxies: Sequence[Network] = ()) -> None:
        self.app = app
        self.cookies = OwnerCookies(secret)
        self.owner_header = owner_header.lower().encode()
        self.proxy_secret = proxy_secret.encode()
        self.proxy_secret_header = PROXY_SECRET_HEADER.lower().encode()
        self.trusted_proxies = tuple(trusted_proxies)
        # None: told per request, by the scheme the browser used (a trusted proxy's X-Forwarded-Proto).
        self.secure = secure
        self.kinds = {over_https: _CookieKind(over_https) for over_https in (False, True)}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.owner_header:
            await self._from_header(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        kind = self.kinds[self._over_https(scope)]
        values = _cookie_values(scope["headers"], kind.marker)
        if len(values) > 1 and len(set(values)) > 1:
            refusal = problem(
                400, "several_owner_cookies",
                f"This browser sent {len(set(values))} different {kind.name} cookies (another site under the "
                "same domain may have set one), so genkeep cannot tell which studio is yours and did nothing. "
                f"Remove the {kind.name} cookies of the other sites of this domain, then reload.")
            await refusal(scope, receive, send)
            return
        owner_id = self.cookies.verify(values[0].decode("latin-1")) if values else None
        if owner_id is not None:
            state["owner_id"] = owner_id
            await self.app(scope, receive, send)
            return
        owner_id, cookie = self.cookies.mint()
        state["owner_id"] = owner_id
        if from_another_origin(scope):
            # Served as a passer-by: an owner with nothing, kept nowhere, so the user's own cookie stays.
            await self.app(scope, receive, send)
            return
        set_cookie = (b"set-cookie", f"{kind.name}={cookie}; {kind.attributes}".encode())

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), set_cookie]
            await send(message)

        await self.app(scope, receive, send_with_cookie)

    def _over_https(self, scope: Scope) -> bool:
        if self.secure is not None:
            return self.secure
        return scope.get("scheme") == "https" or forwarded_https(scope, self.trusted_proxies) is True

    async def _from_header(self, scope: Scope, receive: Receive, send: Send) -> None:
        users: list[bytes] = []
        proof = None
        for name, value in scope["headers"]:
            if name == self.owner_header:
                users.append(value)
            elif name == self.proxy_secret_header:
                proof = value
        if not users:
            # Nothing claimed: pages and health checks work, owner routes answer 401.
            await self.app(scope, receive, send)
            return
        if not self._from_the_proxy(scope, proof):
            await problem(
                403, "untrusted_proxy",
                "This request names a user but did not come through the studio's login proxy; sign in through it.",
            )(scope, receive, send)
            return
        if len(users) > 1:
            await problem(400, "several_owner_headers",
                          "The login proxy sent the user header more than once; genkeep will not guess which "
                          "user is meant. Fix the proxy so it replaces the header instead of adding to it.",
                          )(scope, receive, send)
            return
        try:
            user = users[0].decode("utf-8")
        except UnicodeDecodeError:
            user = None
        # Checked before trimming: Python's strip() would quietly drop some control characters (U+0085).
        if user is None or _CONTROL_CHARACTERS.search(user):
            await problem(400, "invalid_owner_header",
                          "The user header is not readable text (it is not UTF-8 or holds control characters); "
                          "fix what the login proxy sends.")(scope, receive, send)
            return
        user = user.strip(" ")
        if user:
            scope.setdefault("state", {})["owner_id"] = owner_for_user(user)
        await self.app(scope, receive, send)

    def _from_the_proxy(self, scope: Scope, proof: bytes | None) -> bool:
        if self.proxy_secret and (proof is None or not hmac.compare_digest(proof.strip(), self.proxy_secret)):
            return False
        return not self.trusted_proxies or is_trusted(peer_address(scope), self.trusted_proxies)


def owner_of(request: Request) -> str:
    """The request's owner; hot routes call this directly (no dependency resolution per request)."""
    owner_id: str | None = request.scope.get("state", {}).get("owner_id")
    if owner_id is None:
        raise MissingOwnerHeader()
    return owner_id


async def current_owner(request: Request) -> str:
    # async on purpose: FastAPI runs plain-def dependencies in the thread pool, a hop that costs more than a poll.
    return owner_of(request)


CurrentOwner = Annotated[str, Depends(current_owner)]
