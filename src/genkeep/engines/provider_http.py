"""What every provider adapter shares: its HTTP failures as EngineErrors, and result downloads.

One mapping for all providers, so the same failure reads the same whatever engine runs:
- provider_error: the provider refused (bad key, refused content, a request it rejects, a job it failed);
- provider_unavailable: the provider is rate limiting, down, unreachable or too slow; trying later may work;
- engine_error: the provider answered something genkeep cannot understand.

What a user reads (the task's error) is a short sentence of genkeep's own: what failed and what to do, with at
most the HTTP status and the provider's own error code when that is a plain identifier. Whatever else a provider
says (messages, bodies, which may echo request headers or an internal page) goes to the log only, with passwords
in URLs and bearer tokens masked; URLs never carry their user:password part into a message or a log line.

Result images are downloaded only from https URLs, or from the configured provider's own address; never from, or
through a redirect to, a loopback, private or link-local address unless the configured provider itself lives in
that kind of network (a ComfyUI on this machine or on the LAN).
"""

from __future__ import annotations

import io
import ipaddress
import json
import logging
import mimetypes
import re
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import httpx
from PIL import Image, UnidentifiedImageError

from genkeep.engines.base import EngineContext, EngineError, EngineResult
from genkeep.reference_images import ACCEPTED_FORMATS

log = logging.getLogger(__name__)
# httpx logs every request's full URL at INFO, user:password included; genkeep logs what matters itself.
for _noisy in ("httpx", "httpcore"):
    logging.getLogger(_noisy).setLevel(logging.WARNING)

# Provider result images are a few MB; anything far bigger is not an image we asked for.
MAX_RESULT_BYTES = 64 * 1024 * 1024
# A result link may redirect (object storage, CDNs), but not forever.
MAX_REDIRECTS = 5
# A provider error code shown to users must look like one: a short identifier, never a sentence or markup.
_PLAIN_CODE = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]{0,63}")
_USERINFO = re.compile(r"(?<=://)[^/\s@]*@")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=\-]+")

# A poll is a harmless GET: a few blips in a row must not fail a job that is already paid for.
MAX_POLL_FAILURES = 3

T = TypeVar("T")

# Formats stored as they come; anything else is converted to PNG so every stored result displays in a browser.
_KEPT_FORMATS = {image_format: media_type for image_format, (media_type, _) in ACCEPTED_FORMATS.items()}


def without_userinfo(url: str | httpx.URL) -> str:
    """The URL without its user:password@ part."""
    return _USERINFO.sub("", str(url))


def redacted(text: str) -> str:
    """Text fit for a log line: no user:password in URLs, no bearer or basic credentials."""
    return _BEARER.sub(lambda match: f"{match.group(1)} ***", _USERINFO.sub("***@", text))


def plain_code(code: object) -> str:
    """A provider's error code if it is a plain identifier (safe to show a user), else ""."""
    text = str(code or "").strip()
    return text if _PLAIN_CODE.fullmatch(text) else ""


@dataclass(frozen=True)
class ErrorDetail:
    """What a provider said about a failure: a code a user may see, text for the log only."""

    code: str = ""
    text: str = ""
    refused: bool = False


@dataclass(frozen=True)
class Provider:
    """How failures of one provider are worded: its name and the settings a person would fix."""

    label: str
    url_setting: str
    timeout_setting: str
    key_setting: str | None = None

    def _logged(self, what: str, detail: ErrorDetail | str) -> str:
        """Log what the provider said; return the code (if any) to show, as " (code)"-ready text."""
        detail = ErrorDetail(text=detail) if isinstance(detail, str) else detail
        log.warning("%s: %s: %s%s", self.label, what, f"[{detail.code}] " if detail.code else "",
                    redacted(_brief(detail.text, 2000)) or "no detail")
        return plain_code(detail.code)

    def rejected_key(self, status: int, detail: ErrorDetail | str) -> EngineError:
        if status == 403:
            what = "refused genkeep's API key access to this model or service"
        else:
            what = "rejected genkeep's API key"
        code = self._logged(f"HTTP {status}, {what}", detail)
        fix = f"check {self.key_setting}" if self.key_setting else "check the server's access settings"
        return EngineError("provider_error", f"{self.label} {what}{f' ({code})' if code else ''}; {fix}.")

    def refused_content(self, detail: ErrorDetail | str) -> EngineError:
        code = self._logged("refused the content", detail)
        return EngineError(
            "provider_error",
            f"{self.label} refused this content{f' ({code})' if code else ''}. "
            "Change the prompt or the images and retry.",
        )

    def rate_limited(self) -> EngineError:
        return EngineError(
            "provider_unavailable", f"{self.label} is rate limiting genkeep; try again in a minute."
        )

    def down(self, status: int, detail: ErrorDetail | str) -> EngineError:
        code = self._logged(f"HTTP {status}", detail)
        return EngineError(
            "provider_unavailable",
            f"{self.label} is having trouble (HTTP {status}{f': {code}' if code else ''}); "
            "try again in a few minutes.",
        )

    def rejected(self, status: int, detail: ErrorDetail | str) -> EngineError:
        code = self._logged(f"HTTP {status}, request rejected", detail)
        return EngineError(
            "provider_error",
            f"{self.label} rejected the request (HTTP {status}{f': {code}' if code else ''}); retry the task, "
            "and if it fails again the studio's log says why.",
        )

    def job_failed(self, detail: ErrorDetail | str) -> EngineError:
        code = self._logged("the job failed", detail)
        return EngineError(
            "provider_error",
            f"{self.label} could not make this image{f' ({code})' if code else ''}; retry the task, or try other "
            "images or another prompt.",
        )

    def timed_out(self, seconds: float) -> EngineError:
        return EngineError(
            "provider_unavailable",
            f"{self.label} did not answer within {seconds:g} s; try again later, "
            f"or raise {self.timeout_setting}.",
        )

    def unreachable(self, url: str | httpx.URL, reason: str) -> EngineError:
        where = without_userinfo(url)
        log.warning("%s could not be reached at %s: %s", self.label, where, redacted(reason))
        return EngineError(
            "provider_unavailable",
            f"{self.label} could not be reached at {where}; check {self.url_setting} and that the service is up.",
        )

    def malformed(self, what: str) -> EngineError:
        return EngineError("engine_error", f"{self.label} answered something genkeep cannot use: {what}.")

    def download_failed(self, status: int, detail: ErrorDetail | str, *, content_refused: bool = False) -> EngineError:
        """A result link that failed: its 401/403 means an expired link, not a bad key."""
        if status == 429 or status >= 500:
            return self.from_status(status, detail)
        self._logged(f"HTTP {status} from a result link", detail)
        return EngineError(
            "provider_error",
            f"{self.label} made the image, but its result link failed (HTTP {status}); retry the task.",
        )

    def unsafe_link(self, url: httpx.URL, why: str) -> EngineError:
        log.warning("%s: refused to download a result from %s: %s", self.label, without_userinfo(url), why)
        return EngineError(
            "provider_error",
            f"{self.label} made the image, but its result link points somewhere genkeep does not download from; "
            "retry the task, and if it happens again the studio's log says where.",
        )

    def from_status(self, status: int, detail: ErrorDetail | str, *, content_refused: bool = False) -> EngineError:
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


# A provider-specific reading of an error response.
ErrorReader = Callable[[httpx.Response], ErrorDetail]


class StatusMapper(Protocol):
    def __call__(self, status: int, detail: ErrorDetail, *, content_refused: bool = False) -> EngineError: ...


def plain_error_reader(response: httpx.Response) -> ErrorDetail:
    """Detail from a body we know nothing about: its text, for the log."""
    return ErrorDetail(text=response.text.strip() or response.reason_phrase or "no detail")


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
    detail = read_error(response)
    raise (on_status or provider.from_status)(response.status_code, detail, content_refused=detail.refused)


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


Resolver = Callable[[str], Iterable[str]]


def _resolve(host: str) -> list[str]:
    return [str(info[4][0]) for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)]


def network_kind(address: str) -> str:
    """"public", or which kind of non-public network an address belongs to."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    if ip.is_loopback or ip.is_unspecified:  # 0.0.0.0 reaches this machine too
        return "loopback"
    if ip.is_link_local:  # cloud metadata services live here
        return "link-local"
    if ip.is_private:
        return "private"
    return "public" if ip.is_global else "reserved"


class ResultLinks:
    """Where one provider's result images may be downloaded from (see the module's docstring)."""

    def __init__(self, provider_base_url: str, resolve: Resolver = _resolve) -> None:
        base = httpx.URL(provider_base_url)
        self.home = (base.scheme, base.host, base.port)
        self._resolve = resolve
        self._home_kinds: set[str] | None = None

    def home_kinds(self) -> set[str]:
        """The kinds of network the configured provider itself is in (looked up once it resolves)."""
        if self._home_kinds is None:
            try:
                kinds = {network_kind(address) for address in self._resolve(self.home[1])}
            except (OSError, ValueError):
                return set()
            self._home_kinds = kinds
        return self._home_kinds

    def refusal(self, url: httpx.URL) -> str | None:
        """Why genkeep will not download from this URL, or None."""
        if (url.scheme, url.host, url.port) == self.home:
            return None
        if url.scheme != "https":
            return f"a {url.scheme or 'relative'} link that is neither https nor the provider's own address"
        try:
            addresses = list(self._resolve(url.host))
        except (OSError, ValueError):
            return None  # nothing here can reach it either; the download fails as unreachable
        allowed = {"public"} | self.home_kinds()
        for address in addresses:
            kind = network_kind(address)
            if kind not in allowed:
                return f"{url.host} is in a {kind} network ({address})"
        return None


def download_image(client: httpx.Client, provider: Provider, url: str, links: ResultLinks) -> EngineResult:
    """Fetch a result image into memory at once (provider result URLs expire; DashScope's after 24 h), following
    redirects by hand so every hop is checked against `links`; the client must not follow redirects itself."""
    target = httpx.URL(url)
    if not target.is_absolute_url:
        target = client.base_url.join(url)
    for _hop in range(MAX_REDIRECTS + 1):
        why = links.refusal(target)
        if why is not None:
            raise provider.unsafe_link(target, why)
        try:
            with client.stream("GET", target) as response:
                if response.is_redirect:
                    target = target.join(response.headers["location"])
                    continue
                if not response.is_success:
                    response.read()
                    raise provider.download_failed(response.status_code, plain_error_reader(response))
                data = _read_capped(response, provider)
        except httpx.TimeoutException:
            raise provider.timed_out(_timeout_seconds(client)) from None
        except httpx.TransportError as exc:
            raise provider.unreachable(_origin(str(target), client), str(exc) or type(exc).__name__) from None
        return image_result(provider, data)
    raise provider.unsafe_link(target, f"more than {MAX_REDIRECTS} redirects")


def _read_capped(response: httpx.Response, provider: Provider) -> bytes:
    data = bytearray()
    for chunk in response.iter_bytes():
        data += chunk
        if len(data) > MAX_RESULT_BYTES:
            raise provider.malformed(f"a result larger than {MAX_RESULT_BYTES // (1024 * 1024)} MB, far larger "
                                     "than any image")
    return bytes(data)


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
        log.warning("could not read reference image %s: %s", path, exc)
        raise EngineError(
            "engine_error", "genkeep could not read a reference image; retry the task, or upload the images again."
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
    """scheme://host:port of where a request went, never with user:password."""
    full = httpx.URL(url)
    if not full.is_absolute_url:
        full = client.base_url.join(url)
    port = f":{full.port}" if full.port else ""
    return f"{full.scheme}://{full.host}{port}"
