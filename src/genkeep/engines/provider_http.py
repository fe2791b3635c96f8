"""What every provider adapter shares: its settings, its HTTP failures as EngineErrors, and result downloads.

One mapping for all providers, so the same failure reads the same whatever engine runs:
- provider_error: the provider refused (bad key, refused content, a request it rejects, a job it failed);
- provider_unavailable: the provider is rate limiting, down, unreachable or too slow; trying later may work;
- engine_error: the provider answered something genkeep cannot understand.
"""

from __future__ import annotations

import io
import json
import mimetypes
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import httpx
from PIL import Image, UnidentifiedImageError

from genkeep.config import Settings, SettingsError
from genkeep.engines.base import EngineContext, EngineError, EngineResult

# Provider result images are a few MB; anything far bigger is not an image we asked for.
MAX_RESULT_BYTES = 64 * 1024 * 1024

# A poll is a harmless GET: a few blips in a row must not fail a job that is already paid for.
MAX_POLL_FAILURES = 3

T = TypeVar("T")

_ON = {"1", "true", "yes", "on"}
_OFF = {"0", "false", "no", "off"}

# Formats stored as they come; anything else is converted to PNG so every stored result displays in a browser.
_KEPT_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}


class ProviderSettings:
    """The GENKEEP_<PROVIDER>_* settings of one provider, with defaults."""

    def __init__(self, settings: Settings, prefix: str) -> None:
        self._values = settings.provider
        self.prefix = prefix

    def name(self, suffix: str) -> str:
        """The full environment variable name of a setting."""
        return f"{self.prefix}{suffix}"

    def text(self, suffix: str, default: str = "") -> str:
        """A string setting; empty means the default."""
        return self._values.get(self.name(suffix), "").strip() or default

    def seconds(self, suffix: str, default: float) -> float:
        """A positive number of seconds."""
        raw = self.text(suffix)
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise SettingsError(f"{self.name(suffix)} must be a number of seconds, not {raw!r}.") from None
        if value <= 0:
            raise SettingsError(f"{self.name(suffix)} must be more than 0 seconds, not {raw!r}.")
        return value

    def switch(self, suffix: str, default: bool) -> bool:
        """An on/off setting: 1, true, yes, on or 0, false, no, off."""
        raw = self.text(suffix).lower()
        if not raw:
            return default
        if raw in _ON:
            return True
        if raw in _OFF:
            return False
        raise SettingsError(f"{self.name(suffix)} must be 1 (on) or 0 (off), not {raw!r}.")

    def whole_number(self, suffix: str, default: int, lowest: int, highest: int) -> int:
        """A whole number from `lowest` to `highest`."""
        raw = self.text(suffix)
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            value = lowest - 1
        if not lowest <= value <= highest:
            raise SettingsError(f"{self.name(suffix)} must be a whole number from {lowest} to {highest}, not {raw!r}.")
        return value


@dataclass(frozen=True)
class Provider:
    """How failures of one provider are worded: its name and the settings a person would fix."""

    label: str
    url_setting: str
    timeout_setting: str
    key_setting: str | None = None

    def rejected_key(self, status: int, detail: str) -> EngineError:
        if status == 403:
            what = "refused genkeep's API key access to this model or service"
        else:
            what = "rejected genkeep's API key"
        fix = f"check {self.key_setting}" if self.key_setting else "check the server's access settings"
        return EngineError("provider_error", f"{self.label} {what} ({_brief(detail)}); {fix}.")

    def refused_content(self, detail: str) -> EngineError:
        return EngineError(
            "provider_error",
            f"{self.label} refused this content: {_brief(detail)}. "
            "Change the prompt or the images and retry.",
        )

    def rate_limited(self) -> EngineError:
        return EngineError(
            "provider_unavailable", f"{self.label} is rate limiting genkeep; try again in a minute."
        )

    def down(self, status: int, detail: str) -> EngineError:
        return EngineError(
            "provider_unavailable",
            f"{self.label} is having trouble (HTTP {status}: {_brief(detail)}); try again in a few minutes.",
        )

    def rejected(self, status: int, detail: str) -> EngineError:
        return EngineError(
            "provider_error", f"{self.label} rejected the request (HTTP {status}: {_brief(detail)})."
        )

    def job_failed(self, detail: str) -> EngineError:
        return EngineError("provider_error", f"{self.label} could not make this image: {_brief(detail)}.")

    def timed_out(self, seconds: float) -> EngineError:
        return EngineError(
            "provider_unavailable",
            f"{self.label} did not answer within {seconds:g} s; try again later, "
            f"or raise {self.timeout_setting}.",
        )

    def unreachable(self, url: str, reason: str) -> EngineError:
        return EngineError(
            "provider_unavailable",
            f"{self.label} could not be reached at {url} ({_brief(reason)}); "
            f"check {self.url_setting} and that the service is up.",
        )

    def malformed(self, what: str) -> EngineError:
        return EngineError("engine_error", f"{self.label} answered something genkeep cannot use: {what}.")

    def download_failed(self, status: int, detail: str, *, content_refused: bool = False) -> EngineError:
        """A result link that failed: its 401/403 means an expired link, not a bad key."""
        if status == 429 or status >= 500:
            return self.from_status(status, detail)
        return EngineError(
            "provider_error",
            f"{self.label} made the image, but its result link failed (HTTP {status}: {_brief(detail)}); "
            "retry the task.",
        )

    def from_status(self, status: int, detail: str, *, content_refused: bool = False) -> EngineError:
        """The EngineError for an HTTP error status; `content_refused` when the body says so."""
        if content_refused:
            return self.refused_content(detail)
        if status in (401, 403):
            return self.rejected_key(status, detail)
        if status == 429:
            return self.rate_limited()
        if status >= 500:
            return self.down(status, detail)
        return self.rejected(status, detail)


# A provider-specific reading of an error response: (a sentence of detail, whether it refused the content).
ErrorReader = Callable[[httpx.Response], tuple[str, bool]]


class StatusMapper(Protocol):
    def __call__(self, status: int, detail: str, *, content_refused: bool = False) -> EngineError: ...


def plain_error_reader(response: httpx.Response) -> tuple[str, bool]:
    """Detail from a body we know nothing about: its text, briefly."""
    return (response.text.strip() or response.reason_phrase or "no detail"), False


def send(
    client: httpx.Client,
    provider: Provider,
    method: str,
    url: str,
    *,
    read_error: ErrorReader = plain_error_reader,
    on_status: StatusMapper | None = None,
    **kwargs: Any,
) -> httpx.Response:
    """One HTTP request; any failure (transport or status) becomes the provider's EngineError."""
    try:
        response = client.request(method, url, **kwargs)
    except httpx.TimeoutException:
        raise provider.timed_out(_timeout_seconds(client)) from None
    except httpx.TransportError as exc:
        raise provider.unreachable(_origin(url, client), str(exc) or type(exc).__name__) from None
    if response.is_success:
        return response
    detail, refused = read_error(response)
    raise (on_status or provider.from_status)(response.status_code, detail, content_refused=refused)


def send_json(
    client: httpx.Client,
    provider: Provider,
    method: str,
    url: str,
    *,
    read_error: ErrorReader = plain_error_reader,
    **kwargs: Any,
) -> Any:
    """Like send, and the answer must be JSON."""
    response = send(client, provider, method, url, read_error=read_error, **kwargs)
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise provider.malformed(f"a reply to {method} {httpx.URL(url).path} that is not JSON") from None


def download_image(client: httpx.Client, provider: Provider, url: str) -> EngineResult:
    """Fetch a result image into memory at once: provider result URLs expire (DashScope: 24 h)."""
    response = send(client, provider, "GET", url, on_status=provider.download_failed)
    if len(response.content) > MAX_RESULT_BYTES:
        raise provider.malformed(f"a result of {len(response.content)} bytes, far larger than any image")
    return image_result(provider, response.content)


def image_result(provider: Provider, data: bytes) -> EngineResult:
    """The bytes as an EngineResult, after checking they decode as an image."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            fmt = image.format or ""
            image.load()
            if fmt in _KEPT_FORMATS:
                return EngineResult(data=data, content_type=_KEPT_FORMATS[fmt])
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
            return EngineResult(data=buffer.getvalue(), content_type="image/png")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise provider.malformed("a result that is not a readable image") from None


def poll(
    ctx: EngineContext, look: Callable[[], T | None], *, first_delay: float, max_delay: float, backoff: float = 1.5,
    pause: Callable[[float], None] | None = None,
) -> T:
    """Call `look` until it returns a value, sleeping with backoff between calls (ctx.sleep honours stop).

    A few provider_unavailable failures in a row are waited out rather than failing the job. `pause` replaces
    ctx.sleep between looks (it must honour stop too, and may return early when a look is worth making at once).
    """
    delay = first_delay
    failures = 0
    while True:
        ctx.check()
        try:
            value = look()
        except EngineError as exc:
            failures += 1
            if exc.code != "provider_unavailable" or failures > MAX_POLL_FAILURES:
                raise
        else:
            failures = 0
            if value is not None:
                return value
        (pause or ctx.sleep)(delay)
        delay = min(delay * backoff, max_delay)


def read_reference(path: Path) -> tuple[bytes, str]:
    """A stored reference image's bytes and content type."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise EngineError(
            "engine_error", f"genkeep could not read a reference image ({exc}); retry the task."
        ) from None
    return data, mimetypes.guess_type(path.name)[0] or "image/png"


def field(data: Any, *path: str | int) -> Any:
    """data[path[0]][path[1]]…, or None where the path does not exist."""
    for key in path:
        if isinstance(key, int):
            if not isinstance(data, list) or not -len(data) <= key < len(data):
                return None
        elif not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def _brief(text: str, limit: int = 300) -> str:
    text = " ".join(text.split()).rstrip(".")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _timeout_seconds(client: httpx.Client) -> float:
    timeout = client.timeout
    return max(t for t in (timeout.connect, timeout.read, timeout.write, timeout.pool, 0.0) if t is not None)


def _origin(url: str, client: httpx.Client) -> str:
    full = httpx.URL(url)
    if not full.is_absolute_url:
        full = client.base_url.join(url)
    return f"{full.scheme}://{full.netloc.decode()}"
