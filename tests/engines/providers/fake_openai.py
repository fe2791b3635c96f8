"""A fake OpenAI Images API: POST /v1/images/generations (JSON) and /v1/images/edits (multipart).

Edits accept the image as one `image` part or as repeated `image[]` parts, as the real API does.
`mode` picks the behaviour: ok, url (answer a URL to download), rate_limited, server_error, hang, malformed,
not_image, refused.
"""

from __future__ import annotations

import base64

from tests.engines.providers.fakes import HANG, FakeApp, Part, Reply, Request, png

API_KEY = "sk-test-genkeep"
RESULT_COLOR = (10, 200, 250)


def _error(status: int, message: str, type_: str, code: str | None) -> Reply:
    return Reply.json({"error": {"message": message, "type": type_, "param": None, "code": code}}, status)


class FakeOpenAI(FakeApp):
    def __init__(self) -> None:
        super().__init__()
        self.mode = "ok"
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
            fields, images = {k: str(v) for k, v in body.items()}, []
        else:
            parts = request.parts()
            fields = {p.name: p.data.decode() for p in parts if p.filename is None}
            images = [p for p in parts if p.filename is not None]
            names = {p.name for p in images}
            if not images or not names <= {"image", "image[]"} or (len(images) > 1 and names != {"image[]"}):
                return _error(400, f"Invalid image fields {sorted(names)}.", "invalid_request_error", None)
        if not fields.get("prompt"):
            return _error(400, "Missing required parameter: 'prompt'.", "invalid_request_error", None)
        self.calls.append((request.path.rsplit("/", 1)[-1], fields, images))
        return self._answer()

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
