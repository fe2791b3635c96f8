"""Headers on every response that tell browsers what the studio never does, and redirects that stay on it.

- Content-Security-Policy: scripts, styles, images and requests from this server only (plus the blob: previews
  of images a user is about to upload), no plugins, no <base>, forms post here only, and no framing
  (frame-ancestors 'none'; X-Frame-Options DENY for browsers that predate it).
- X-Content-Type-Options nosniff: an image is never run as a page or script, whatever its bytes look like.
- Referrer-Policy same-origin: addresses (task ids) are not told to other sites; same-origin requests keep it,
  and with it the Origin header the same-origin guard reads on form posts.
- A redirect's Location is made relative: it never repeats a Host header a client sent, and never starts with
  "//" (which a browser reads as another host).

A pure ASGI middleware: the header list is built once; each response only appends it.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from genkeep.web.problems import internal_error

PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob:; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# Swagger UI draws some icons from data: URLs in its stylesheet; the rest is as strict as the pages.
DOCS_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
COMMON_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]


def relative_location(location: str) -> str:
    """The path and query of a redirect target, as a single-slash relative reference."""
    parts = urlsplit(location)
    path = "/" + parts.path.lstrip("/\\")
    return path + (f"?{parts.query}" if parts.query else "")


class SecurityHeaders:
    def __init__(self, app: ASGIApp, *, docs_path: str = "/docs") -> None:
        self.app = app
        self.docs_prefix = docs_path
        self.page_headers = [(b"content-security-policy", PAGE_POLICY.encode()), *COMMON_HEADERS]
        self.docs_headers = [(b"content-security-policy", DOCS_POLICY.encode()), *COMMON_HEADERS]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        extra = self.docs_headers if path.startswith(self.docs_prefix) else self.page_headers

        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                if 300 <= message["status"] < 400:
                    headers = [(name, relative_location(value.decode("latin-1")).encode("latin-1"))
                               if name.lower() == b"location" else (name, value) for name, value in headers]
                message["headers"] = headers + extra
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            # Starlette answers an unexpected error from its outermost layer, outside this one: the 500 is sent
            # from here instead, with the headers, and the error goes on up to be logged.
            if not started:
                languages = [value.decode("latin-1") for name, value in scope.get("headers", [])
                             if name == b"accept-language"]
                await internal_error(languages[0] if languages else None)(scope, receive, send_with_headers)
            raise
