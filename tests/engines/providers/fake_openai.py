"""A fake OpenAI Images API: POST /v1/images/generations (JSON) and /v1/images/edits (multipart).

Edits accept the image as one `image` part or as repeated `image[]` parts, as the real API does.
`mode` picks the behaviour: ok, url (answer a URL to download), rate_limited, server_error, hang, malformed,
not_image, refused.

A request with stream=true (a JSON boolean for generations, the form field "true" for edits) is answered as the
real API streams: server-sent events, sent as chunks, `partial_images` partial images drawn toward the result,
then the completed event. Stream modes: stream_error (an error event after the first partial image, its details
wrapped in "error"), stream_error_flat (the same, its details at the top level), stall (the
stream stops after the first partial image and stays open), ignores_stream (a gateway that answers plain JSON).
can_stream=False is a gateway that rejects the streaming parameters.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

from tests.engines.providers.fakes import HANG, FakeApp, Part, Reply, Request, png

API_KEY = "sk-test-genkeep"
RESULT_COLOR = (10, 200, 250)
# Partial images start from this grey and come closer to RESULT_COLOR with each one.
FIRST_SKETCH_COLOR = (128, 128, 128)
PARTIAL_SIZE = (64, 64)


def partial_color(index: int, count: int) -> tuple[int, int, int]:
    """The colour of the partial image `index` (0-based) of `count`."""
    share = (index + 1) / (count + 1)
    r, g, b = (round(a + (z - a) * share) for a, z in zip(FIRST_SKETCH_COLOR, RESULT_COLOR, strict=True))
    return (r, g, b)


def _event(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()


def _error(status: int, message: str, type_: str, code: str | None) -> Reply:
    return Reply.json({"error": {"message": message, "type": type_, "param": None, "code": code}}, status)


class FakeOpenAI(FakeApp):
    def __init__(self) -> None:
        super().__init__()
        self.mode = "ok"
        self.can_stream = True
        # What each generation call received: (endpoint, text fields, image parts).
        self.calls: list[tuple[str, dict[str, str], list[Part]]] = []

    @property
    def generations(self) -> int:
        return len(self.calls)

    def handle(self, request: Request) -> Reply:
        if request.method == "GET" and request.path == "/files/result.png":
            return Reply(200, png(RESULT_COLOR), "image/png")
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            return _error(401, "Incorrect API key provided: sk-wrong. You can find your API key at "
                          "https://platform.openai.com/account/api-keys.", "invalid_request_error", "invalid_api_key")
        if request.method != "POST" or request.path not in ("/v1/images/generations", "/v1/images/edits"):
            return _error(404, f"Invalid URL ({request.method} {request.path})", "invalid_request_error", None)
        if request.path.endswith("generations"):
            body = request.json()
            fields, images = {k: json.dumps(v) if isinstance(v, bool) else str(v) for k, v in body.items()}, []
        else:
            parts = request.parts()
            fields = {p.name: p.data.decode() for p in parts if p.filename is None}
            images = [p for p in parts if p.filename is not None]
            names = {p.name for p in images}
            if not images or not names <= {"image", "image[]"} or (len(images) > 1 and names != {"image[]"}):
                return _error(400, f"Invalid image fields {sorted(names)}.", "invalid_request_error", None)
        if not fields.get("prompt"):
            return _error(400, "Missing required parameter: 'prompt'.", "invalid_request_error", None)
        streaming = fields.get("stream") == "true"
        if (streaming or "partial_images" in fields) and not self.can_stream:
            name = "stream" if streaming else "partial_images"
            return _error(400, f"Unknown parameter: '{name}'.", "invalid_request_error", "unknown_parameter")
        endpoint = request.path.rsplit("/", 1)[-1]
        self.calls.append((endpoint, fields, images))
        if streaming and self.mode in ("ok", "not_image", "stream_error", "stream_error_flat", "stall"):
            count = int(fields.get("partial_images") or 0)
            prefix = "image_generation" if endpoint == "generations" else "image_edit"
            return Reply(200, content_type="text/event-stream; charset=utf-8",
                         chunks=self._events(prefix, count, fields.get("size", "1024x1024")))
        return self._answer()

    def _events(self, prefix: str, count: int, size: str) -> Iterator[bytes]:
        """The event stream of one generation, as OpenAI sends it."""
        common = {"created_at": 1, "size": size, "quality": "medium", "background": "opaque", "output_format": "png"}
        for index in range(count):
            image = base64.b64encode(png(partial_color(index, count), PARTIAL_SIZE)).decode()
            yield _event(f"{prefix}.partial_image", {"type": f"{prefix}.partial_image", "b64_json": image,
                                                     "partial_image_index": index, **common})
            if self.mode in ("stream_error", "stream_error_flat"):
                details = {"type": "image_generation_user_error", "code": "moderation_blocked", "param": None,
                           "message": "Your request was rejected by the safety system. The generated image may "
                                      "contain content that is not allowed by our safety system."}
                body = {"error": details} if self.mode == "stream_error" else details
                yield _event("error", {**body, "type": "error"})
                return
            if self.mode == "stall":
                # Never finishes: the client stops listening, or the server stops.
                self.released.wait(30)
                return
        data = b"%PDF-1.4 not an image" if self.mode == "not_image" else png(RESULT_COLOR)
        usage = {"input_tokens": 50, "input_tokens_details": {"image_tokens": 40, "text_tokens": 10},
                 "output_tokens": 50 + 100 * count, "total_tokens": 100 + 100 * count}
        yield _event(f"{prefix}.completed", {"type": f"{prefix}.completed",
                                             "b64_json": base64.b64encode(data).decode(), "usage": usage, **common})

    def _answer(self) -> Reply:
        if self.mode == "rate_limited":
            return _error(429, "Rate limit reached for gpt-image-1 on images per minute.", "requests",
                          "rate_limit_exceeded")
        if self.mode == "server_error":
            return _error(500, "The server had an error while processing your request.", "server_error", None)
        if self.mode == "hang":
            return HANG
        if self.mode == "malformed":
            return Reply(200, b"<html><body>502 Bad Gateway</body></html>", "text/html")
        if self.mode == "refused":
            return _error(400, "Your request was rejected as a result of our safety system. Your request may "
                          "contain content that is not allowed by our safety system.",
                          "image_generation_user_error", "moderation_blocked")
        if self.mode == "url":
            return Reply.json({"created": 1, "data": [{"url": f"{self.base_url}/files/result.png"}]})
        data = b"%PDF-1.4 not an image" if self.mode == "not_image" else png(RESULT_COLOR)
        return Reply.json({"created": 1, "data": [{"b64_json": base64.b64encode(data).decode()}],
                           "usage": {"total_tokens": 100}})
