"""Who owns a request: a signed, HttpOnly owner cookie by default, or a trusted header behind a login.

A pure ASGI middleware (no per-request task switching) so the hot status-poll path stays cheap.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Annotated

from fastapi import Depends, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

COOKIE_NAME = "genkeep_owner"
COOKIE_MAX_AGE = 365 * 24 * 3600


class MissingOwnerHeader(Exception):
    """Header mode is on and the trusted header is absent."""


class OwnerCookies:
    """Mints and checks signed owner ids."""

    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(b"genkeep-owner:" + secret.encode()).digest()

    def _sign(self, owner_id: str) -> str:
        digest = hmac.new(self._key, owner_id.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:24]).decode().rstrip("=")

    def mint(self) -> tuple[str, str]:
        owner_id = secrets.token_urlsafe(18)
        return owner_id, f"{owner_id}.{self._sign(owner_id)}"

    def verify(self, value: str) -> str | None:
        owner_id, _, signature = value.rpartition(".")
        if owner_id and hmac.compare_digest(self._sign(owner_id), signature):
            return owner_id
        return None


def _cookie_value(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The owner cookie's value; a plain scan, since this runs on every request."""
    marker = COOKIE_NAME.encode() + b"="
    for name, value in headers:
        if name == b"cookie":
            for part in value.split(b";"):
                part = part.strip()
                if part.startswith(marker):
                    return part[len(marker):].decode("latin-1")
    return None


class OwnerMiddleware:
    """Puts the owner id in scope["state"]["owner_id"], setting a new owner cookie when there is none."""

    def __init__(self, app: ASGIApp, *, secret: str, owner_header: str = "", secure: bool = False) -> None:
        self.app = app
        self.cookies = OwnerCookies(secret)
        self.owner_header = owner_header.lower().encode()
        self.secure = secure

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        if self.owner_header:
            for name, value in scope["headers"]:
                if name == self.owner_header and value.strip():
                    user = value.decode("utf-8", "replace").strip()
                    # Owner ids are at most 128 characters: a longer user id is kept as its digest.
                    if len(user) > 100:
                        user = "sha256:" + hashlib.sha256(user.encode()).hexdigest()
                    state["owner_id"] = "h:" + user
                    break
            await self.app(scope, receive, send)
            return
        raw = _cookie_value(scope["headers"])
        owner_id = self.cookies.verify(raw) if raw else None
        if owner_id is not None:
            state["owner_id"] = owner_id
            await self.app(scope, receive, send)
            return
        owner_id, cookie = self.cookies.mint()
        state["owner_id"] = owner_id
        attributes = f"{COOKIE_NAME}={cookie}; Max-Age={COOKIE_MAX_AGE}; Path=/; HttpOnly; SameSite=Lax"
        if self.secure:
            attributes += "; Secure"

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"set-cookie", attributes.encode())]
            await send(message)

        await self.app(scope, receive, send_with_cookie)


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
