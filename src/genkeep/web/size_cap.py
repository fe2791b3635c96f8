"""A cap on request bodies, counted as they arrive, whatever the request declares."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from genkeep.errors import TooLarge


class RequestSizeCap:
    """Raises TooLarge (413) inside the route as soon as a body passes `max_bytes`."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    megabytes = self.max_bytes // (1024 * 1024)
                    raise TooLarge(f"The request is larger than {megabytes} MB; upload smaller images.",
                                   field="reference_images", sentence="request_too_large",
                                   values={"megabytes": megabytes})
            return message

        await self.app(scope, counting_receive, send)
