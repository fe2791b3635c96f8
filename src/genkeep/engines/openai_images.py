"""OpenAI Images (and OpenAI-compatible gateways) through the official `openai` client.

CREATE without reference images uses images.generate; everything with images uses images.edit, the images in
upload order (CLOTHING_CHANGE: the person, then the garment). One synchronous call makes the image, so this is
a run-to-completion engine, and not rerun-safe: a rerun generates, and bills, again.
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
from pathlib import Path
from typing import Any

import httpx
import openai

from genkeep.config import Settings, SettingsError
from genkeep.engines.base import EngineContext, EngineError, EngineJob, EngineResult, RunToCompletionEngine
from genkeep.engines.prompts import render, template_for
from genkeep.engines.provider_http import (
    ErrorDetail,
    Provider,
    ProviderSettings,
    ResultLinks,
    download_image,
    image_result,
    read_reference,
)

PREFIX = "GENKEEP_OPENAI_"
DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = "gpt-image-1"
DEFAULT_SIZE = "1024x1024"
# gpt-image-1 often needs one to two minutes for an edit; the task itself may last 5 minutes.
DEFAULT_TIMEOUT = 180.0

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
        self.settings = ProviderSettings(settings, PREFIX)
        self.model = self.settings.text("MODEL", DEFAULT_MODEL)
        self.size = self.settings.text("SIZE", DEFAULT_SIZE)
        self.timeout = self.settings.seconds("TIMEOUT", DEFAULT_TIMEOUT)
        self.base_url = self.settings.text("BASE_URL") or None
        if client is None:
            api_key = self.settings.text("API_KEY")
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
        prompt = render(template_for(self.settings, job.type), job.prompt)
        if not prompt:
            raise EngineError("invalid_input", "This task needs a prompt for OpenAI; add one and retry.")
        images = [_image_file(path) for path in job.reference_paths]
        ctx.check()
        ctx.report_progress(0.05)
        try:
            if images:
                # One image goes as the `image` field, several as `image[]`: gateways and older models
                # (dall-e-2) accept only the single form.
                response = self.client.images.edit(
                    model=self.model, prompt=prompt, image=images if len(images) > 1 else images[0],
                    size=self.size, n=1,
                )
            else:
                response = self.client.images.generate(model=self.model, prompt=prompt, size=self.size, n=1)
        except openai.APITimeoutError:
            raise PROVIDER.timed_out(self.timeout) from None
        except openai.APIConnectionError as exc:
            raise PROVIDER.unreachable(str(self.client.base_url), str(exc.__cause__ or exc)) from None
        except openai.APIStatusError as exc:
            raise _status_error(exc) from None
        except openai.APIResponseValidationError:
            raise PROVIDER.malformed("an Images response that does not match the API") from None
        # Paid for: hand it to the worker even if a stop came meanwhile; finishing is compare-and-set, so a
        # canceled or timed-out task ignores it and a shutting-down worker still saves it.
        ctx.report_progress(0.95)
        return self._result(response)

    def _result(self, response: Any) -> EngineResult:
        # Any, not ImagesResponse: a gateway that answers HTML makes the client hand back a plain str.
        first = response.data[0] if getattr(response, "data", None) else None
        if first is None:
            raise PROVIDER.malformed("an Images response without any image")
        if first.b64_json:
            try:
                data = base64.b64decode(first.b64_json, validate=True)
            except (binascii.Error, ValueError):
                raise PROVIDER.malformed("an image whose base64 does not decode") from None
            return image_result(PROVIDER, data)
        if first.url:
            return download_image(self._downloads, PROVIDER, first.url, self._links)
        raise PROVIDER.malformed("an Images response with neither b64_json nor url")

    def close(self) -> None:
        """Release the HTTP connections."""
        self.client.close()
        self._downloads.close()


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
