"""OpenAI Images (and OpenAI-compatible gateways) through the official `openai` client.

CREATE without reference images uses images.generate; everything with images uses images.edit, the images in
upload order (CLOTHING_CHANGE: the person, then the garment). One call makes the image, so this is a
run-to-completion engine, and not rerun-safe: a rerun generates, and bills, again.

The call streams (server-sent events): OpenAI sends up to GENKEEP_OPENAI_PARTIAL_IMAGES partial images while it
draws, each shown as a preview, then the finished image in the completed event. GENKEEP_OPENAI_STREAM=0 makes
one plain call instead, for gateways that cannot stream.
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
from pathlib import Path
from typing import Any

import httpx
import openai
from openai.types import ImagesResponse

from genkeep.config import Settings, SettingsError
from genkeep.engines.base import EngineContext, EngineError, EngineJob, EngineResult, RunToCompletionEngine
from genkeep.engines.prompts import render, template_for
from genkeep.engines.provider_http import (
    ErrorDetail,
    Provider,
    ResultLinks,
    download_image,
    image_result,
    read_reference,
)

PREFIX = "GENKEEP_OPENAI_"
DEFAULT_BASE_URL = "https://api.openai.com/v1"
# Where the progress bar stands once the request is out, and once the image is in.
SENT = 0.05
RECEIVED = 0.95

PARTIAL_EVENTS = {"image_generation.partial_image", "image_edit.partial_image"}
COMPLETED_EVENTS = {"image_generation.completed", "image_edit.completed"}

# Error codes OpenAI uses when its safety system refuses a prompt or an image.
_REFUSAL_CODES = {"content_policy_violation", "moderation_blocked"}

PROVIDER = Provider(
    "OpenAI",
    url_setting=f"{PREFIX}BASE_URL",
    timeout_setting=f"{PREFIX}TIMEOUT",
    key_setting=f"{PREFIX}API_KEY",
)


class OpenAIImagesEngine(RunToCompletionEngine):
    """Makes images with the OpenAI Images API, or any gateway that speaks it."""

    name = "openai"
    rerun_safe = False

    def __init__(self, settings: Settings, client: openai.OpenAI | None = None) -> None:
        self.settings = settings
        self.model = settings.openai_model.strip()
        self.size = settings.openai_size.strip()
        self.timeout = settings.openai_timeout
        self.base_url = settings.openai_base_url.strip() or None
        self.stream = settings.openai_stream
        self.partial_images = settings.openai_partial_images
        if client is None:
            api_key = settings.openai_api_key.strip()
            if not api_key:
                raise SettingsError(f"{PREFIX}API_KEY is not set: GENKEEP_ENGINE=openai needs an API key.")
            # max_retries=0: a retried POST generates, and bills, a second image.
            client = openai.OpenAI(
                api_key=api_key, base_url=self.base_url, max_retries=0, timeout=self.timeout
            )
        self.client = client
        # Redirects are followed by download_image, which checks every hop.
        self._downloads = httpx.Client(timeout=self.timeout, follow_redirects=False)
        self._links = ResultLinks(self.base_url or DEFAULT_BASE_URL)

    def run(self, job: EngineJob, ctx: EngineContext) -> EngineResult:
        """Generate or edit, and return the image."""
        prompt = render(template_for(self.settings, self.name, job.type), job.prompt)
        if not prompt:
            raise EngineError("invalid_input", "This task needs a prompt for OpenAI; add one and retry.")
        images = [_image_file(path) for path in job.reference_paths]
        ctx.check()
        ctx.report_progress(SENT)
        try:
            answer = self._request(prompt, images)
            image = self._streamed(answer, ctx) if self.stream else _first_image(answer)
        except openai.APITimeoutError:
            raise PROVIDER.timed_out(self.timeout) from None
        except openai.APIConnectionError as exc:
            raise PROVIDER.unreachable(str(self.client.base_url), str(exc.__cause__ or exc)) from None
        except openai.APIStatusError as exc:
            raise self._status_failure(exc) from None
        except openai.APIResponseValidationError:
            raise PROVIDER.malformed("an Images response that does not match the API") from None
        except openai.APIError as exc:
            # An error event in the middle of a stream: the request was accepted, the generation failed.
            raise _stream_error(exc) from None
        # Paid for: hand it to the worker even if a stop came meanwhile; finishing is compare-and-set, so a
        # canceled or timed-out task ignores it and a shutting-down worker still saves it.
        ctx.report_progress(RECEIVED)
        return self._result(image)

    def _request(self, prompt: str, images: list[tuple[str, bytes, str]]) -> Any:
        """One Images call: an edit when there are reference images, else a generation; streaming if set."""
        options: dict[str, Any] = {"model": self.model, "prompt": prompt, "size": self.size, "n": 1}
        if self.stream:
            options.update(stream=True, partial_images=self.partial_images)
        if images:
            # One image goes as the `image` field, several as `image[]`: gateways and older models
            # (dall-e-2) accept only the single form.
            return self.client.images.edit(image=images if len(images) > 1 else images[0], **options)
        return self.client.images.generate(**options)

    def _streamed(self, events: Any, ctx: EngineContext) -> Any:
        """Show each partial image as a preview; the completed event carries the image."""
        with events:  # closes the connection also when a stop ends the stream early
            response = events.response
            if "text/event-stream" not in response.headers.get("content-type", ""):
                # A gateway that ignores `stream` answers as if it had not been asked to.
                return _first_image(_plain_response(response))
            for event in events:
                kind = getattr(event, "type", None)
                if kind in COMPLETED_EVENTS:
                    return event
                if kind in PARTIAL_EVENTS:
                    _show_partial(event, self.partial_images, ctx)
                elif kind == "error":
                    # The client raises on an error event shaped {"error": {...}}; this is one without the wrapper.
                    raise _generation_failed(str(getattr(event, "code", "") or ""),
                                             str(getattr(event, "message", "") or ""))
                # The stream may go on for a minute: a canceled or timed-out task stops listening here and frees
                # its worker (what was drawn so far is billed either way).
                ctx.check()
        raise PROVIDER.malformed("an image stream that ended without the finished image")

    def _result(self, image: Any) -> EngineResult:
        # Any: an item of ImagesResponse.data, or a stream's completed event; both carry b64_json.
        if getattr(image, "b64_json", None):
            try:
                data = base64.b64decode(image.b64_json, validate=True)
            except (binascii.Error, ValueError):
                raise PROVIDER.malformed("an image whose base64 does not decode") from None
            return image_result(PROVIDER, data)
        if getattr(image, "url", None):
            return download_image(self._downloads, PROVIDER, image.url, self._links)
        raise PROVIDER.malformed("an Images response with neither b64_json nor url")

    def _status_failure(self, exc: openai.APIStatusError) -> EngineError:
        error = _status_error(exc)
        # The provider's own words stay in the log; only the hint reaches the user.
        raw = f"{exc.message} {exc.body}".lower()
        if self.stream and exc.status_code == 400 and ("stream" in raw or "partial_images" in raw):
            shown = error.message.split(";")[0]
            return EngineError(error.code, f"{shown}; if this gateway cannot stream images, set {PREFIX}STREAM=0.")
        return error

    def close(self) -> None:
        """Release the HTTP connections."""
        self.client.close()
        self._downloads.close()


def _first_image(response: Any) -> Any:
    # Any, not ImagesResponse: a gateway that answers HTML makes the client hand back a plain str.
    first = response.data[0] if getattr(response, "data", None) else None
    if first is None:
        raise PROVIDER.malformed("an Images response without any image")
    return first


def _plain_response(response: Any) -> ImagesResponse:
    """The JSON answer of a gateway that was asked to stream and did not."""
    try:
        response.read()
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise PROVIDER.malformed("an Images response that is neither a stream nor JSON")
    # Leniently, as the client itself reads answers: gateways leave out fields the API always sends.
    return ImagesResponse.construct(**body)


def _show_partial(event: Any, count: int, ctx: EngineContext) -> None:
    """One partial image as a preview; one that does not decode is skipped, the finished image is what counts."""
    try:
        data = base64.b64decode(event.b64_json, validate=True)
    except (binascii.Error, ValueError, TypeError, AttributeError):
        return
    index = getattr(event, "partial_image_index", 0)
    index = min(max(index, 0), count - 1) if isinstance(index, int) else 0
    # The partial images come spread over the drawing: the k-th of n stands about k/(n+1) of the way.
    ctx.report_preview(data, SENT + (RECEIVED - SENT) * (index + 1) / (count + 1))


def _stream_error(exc: openai.APIError) -> EngineError:
    body = exc.body if isinstance(exc.body, dict) else {}
    return _generation_failed(str(getattr(exc, "code", None) or body.get("code") or ""),
                              str(body.get("message") or exc.message or ""))


def _generation_failed(code: str, detail: str) -> EngineError:
    """An accepted request whose generation failed: refused content, or another reason."""
    detail = detail or "the image stream broke off with an error"
    if code in _REFUSAL_CODES or "safety system" in detail.lower():
        return PROVIDER.refused_content(detail)
    return PROVIDER.job_failed(detail)


def _status_error(exc: openai.APIStatusError) -> EngineError:
    body = exc.body if isinstance(exc.body, dict) else {}
    # exc.message is prefixed with "Error code: 400 - "; the body's own message reads better.
    detail = str(body.get("message") or exc.message or f"HTTP {exc.status_code}")
    code = str(exc.code or body.get("code") or "")
    refused = exc.status_code == 400 and (code in _REFUSAL_CODES or "safety system" in detail.lower())
    return PROVIDER.from_status(exc.status_code, ErrorDetail(code, detail), content_refused=refused)


def _image_file(path: Path) -> tuple[str, bytes, str]:
    data, content_type = read_reference(path)
    # The name goes to the provider; only its extension matters, never the user's original file name.
    return (f"image{mimetypes.guess_extension(content_type) or '.png'}", data, content_type)


def create_engine(settings: Settings) -> OpenAIImagesEngine:
    """The engine GENKEEP_ENGINE=openai names."""
    return OpenAIImagesEngine(settings)
