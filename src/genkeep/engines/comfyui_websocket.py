"""ComfyUI's websocket, read while genkeep waits for a prompt: the previews and sampler progress ComfyUI sends
become the task's previews and progress, and the message that the prompt finished ends a wait early.

ComfyUI sends a running prompt's messages to the websocket opened with the clientId the prompt was queued with:
- binary messages: a 4-byte big-endian event type (1: a preview image), then for a preview another 4 bytes with
  the image's format (1: JPEG, 2: PNG) and the encoded image;
- text messages, JSON {"type": ..., "data": {...}}: "execution_start", "executing" (data.node is the node now
  running, null once the prompt is done), "progress" (data.value of data.max sampler steps), "execution_success",
  "execution_error", "execution_interrupted", and others genkeep has no use for.

The websocket is a nicety: the history lookup stays the source of truth, and when the socket cannot be opened,
or drops, genkeep waits and polls exactly as it does without it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect

from genkeep.engines.base import EngineContext
from genkeep.engines.provider_http import redacted, without_userinfo

log = logging.getLogger(__name__)

PREVIEW_IMAGE = 1
PREVIEW_FORMATS = {1: "JPEG", 2: "PNG"}
# ComfyUI answers at once when it is up; a proxy that swallows the upgrade must not hold the task up for long.
OPEN_TIMEOUT = 5.0
# How often a wait on the socket looks whether the task must stop.
STOP_CHECK_INTERVAL = 0.25
# Previews are a few kB; a workflow's "send image over websocket" node may send a whole result.
MAX_MESSAGE_BYTES = 32 * 1024 * 1024
# Sampler progress fills this stretch of the bar; queueing before it and fetching the result after it take the rest.
SAMPLING_FROM = 0.1
SAMPLING_TO = 0.9
FINISHED = {"execution_success", "execution_error", "execution_interrupted"}


def websocket_url(base_url: httpx.URL, client_id: str) -> str:
    """ws(s)://…/ws?clientId=… next to ComfyUI's HTTP API."""
    url = base_url.join("ws")
    return str(url.copy_with(scheme="wss" if url.scheme == "https" else "ws", params={"clientId": client_id}))


@contextlib.contextmanager
def watching(base_url: httpx.URL, client_id: str, prompt_id: str, headers: dict[str, str],
             ctx: EngineContext) -> Iterator[PromptWatch | None]:
    """ComfyUI's websocket for `client_id` while the block runs; None if it cannot be opened."""
    url = websocket_url(base_url, client_id)
    with contextlib.ExitStack() as stack:
        try:
            connection = stack.enter_context(connect(
                url, additional_headers=headers, open_timeout=OPEN_TIMEOUT, close_timeout=1.0,
                max_size=MAX_MESSAGE_BYTES,
            ))
        except Exception as error:  # refused, 404, a proxy without websockets: previews are optional
            log.info("no ComfyUI websocket at %s (%s); waiting without previews", without_userinfo(url),
                     redacted(str(error)))
            connection = None
        yield PromptWatch(connection, prompt_id, ctx) if connection is not None else None


class PromptWatch:
    """One prompt followed on ComfyUI's websocket."""

    def __init__(self, connection: ClientConnection, prompt_id: str, ctx: EngineContext) -> None:
        self._connection = connection
        self._prompt_id = prompt_id
        self._ctx = ctx
        self._lost = False
        # Previews count only while this prompt runs: ComfyUI sends those of a prompt queued without a client
        # id to every socket, and ours may be waiting behind it.
        self.running = False
        # The highest progress reported so far: a workflow's second sampler starts again from step 1.
        self.fraction: float | None = None

    def pause(self, seconds: float) -> None:
        """Wait up to `seconds`, showing the prompt's previews and progress; return early once it finished.

        Like ctx.sleep, raises EngineStopped when the task must stop.
        """
        deadline = time.monotonic() + seconds
        while True:
            self._ctx.check()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            if self._lost:
                self._ctx.sleep(remaining)
                return
            try:
                message = self._connection.recv(timeout=min(remaining, STOP_CHECK_INTERVAL))
            except TimeoutError:
                continue
            except Exception as error:  # closed or broken: go on polling without it
                log.info("ComfyUI websocket lost (%s); waiting without previews", redacted(str(error)))
                self._lost = True
                continue
            if self._read(message):
                return

    def _read(self, message: str | bytes) -> bool:
        """Take in one message; True when it says this prompt finished."""
        if isinstance(message, bytes):
            self._show(message)
            return False
        try:
            event = json.loads(message)
        except ValueError:
            return False
        data = event.get("data") if isinstance(event, dict) else None
        if not isinstance(data, dict):
            return False
        kind = event.get("type")
        prompt_id = data.get("prompt_id")
        if prompt_id is not None and prompt_id != self._prompt_id:
            return False
        ours = prompt_id == self._prompt_id
        if kind in FINISHED or (kind == "executing" and data.get("node") is None):
            if ours:
                self.running = False
            return ours
        if kind in ("execution_start", "executing"):
            # An "executing" without prompt_id is what ComfyUI resends to a client that reconnects mid-prompt.
            self.running = True
        elif kind == "progress" and (ours or self.running):
            self._progress(data.get("value"), data.get("max"))
        return False

    def _progress(self, value: Any, most: Any) -> None:
        if not (isinstance(value, int | float) and isinstance(most, int | float) and most > 0):
            return
        fraction = SAMPLING_FROM + (SAMPLING_TO - SAMPLING_FROM) * min(1.0, max(0.0, value / most))
        if self.fraction is None or fraction > self.fraction:
            self.fraction = fraction
            self._ctx.report_progress(fraction)

    def _show(self, message: bytes) -> None:
        if not self.running or len(message) <= 8 or int.from_bytes(message[:4], "big") != PREVIEW_IMAGE:
            return
        if int.from_bytes(message[4:8], "big") not in PREVIEW_FORMATS:
            return
        self._ctx.report_preview(bytes(message[8:]), self.fraction)
