"""What the provider tests share: a tiny threaded HTTP server on a free 127.0.0.1 port for fake providers,
a fake EngineContext, images and jobs.

A fake provider is a `FakeApp`: `handle(request)` returns a Reply, or HANG to never answer (until the server
stops). Every request is recorded, so tests can count submissions. A Reply with `websocket` upgrades the
connection (RFC 6455) and hands the open FakeWebSocket to that function.
"""

from __future__ import annotations

import base64
import contextlib
import email.parser
import email.policy
import hashlib
import io
import json
import socket
import struct
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

from PIL import Image

from genkeep.engines.base import EngineJob, EngineStopped
from genkeep.tasks.model import TaskType
from tests.support.previews import Preview, received


@dataclass
class Part:
    name: str
    filename: str | None
    content_type: str
    data: bytes


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def parts(self) -> list[Part]:
        """The multipart/form-data parts, in order."""
        head = f"Content-Type: {self.headers.get('content-type', '')}\r\n\r\n".encode()
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + self.body)
        parts = []
        for part in message.iter_parts():
            payload = part.get_payload(decode=True)
            parts.append(Part(
                name=str(part.get_param("name", header="content-disposition")),
                filename=part.get_filename(),
                content_type=part.get_content_type(),
                data=payload if isinstance(payload, bytes) else b"",
            ))
        return parts


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    # Sent instead of `body` with chunked transfer encoding, one chunk as each piece is ready (a server-sent
    # event stream); the iterator may block to hold the stream open.
    chunks: Iterator[bytes] | None = None
    # Accept a websocket upgrade instead, and call this with the open connection.
    websocket: Callable[[FakeWebSocket], None] | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, data: Any, status: int = 200) -> Reply:
        return cls(status, json.dumps(data).encode())


HANG = Reply(status=-1)

# RFC 6455's fixed key suffix for Sec-WebSocket-Accept.
_WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class FakeWebSocket:
    """The server end of one websocket connection, as much as the fakes need: text and binary messages out, the
    client's pings and close answered. Messages go out unfragmented and unmasked, as servers send them."""

    def __init__(self, connection: socket.socket, rfile: io.BufferedIOBase, wfile: io.BufferedIOBase) -> None:
        self._connection = connection
        self._rfile = rfile
        self._wfile = wfile
        self._lock = threading.Lock()
        self.closed = threading.Event()

    def send_text(self, text: str) -> None:
        self._send(0x1, text.encode())

    def send_json(self, data: Any) -> None:
        self.send_text(json.dumps(data))

    def send_binary(self, data: bytes) -> None:
        self._send(0x2, data)

    def drop(self) -> None:
        """End the connection without a closing handshake, as a crashed server or a broken network does."""
        self.closed.set()
        with contextlib.suppress(OSError):
            self._connection.shutdown(socket.SHUT_RDWR)

    def serve(self) -> None:
        """Read the client's frames until it closes the connection or the connection drops."""
        while not self.closed.is_set():
            head = self._rfile.read(2)
            if len(head) < 2:
                break
            opcode, length = head[0] & 0x0F, head[1] & 0x7F
            if length == 126:
                length = struct.unpack("!H", self._rfile.read(2))[0]
            elif length == 127:
                length = struct.unpack("!Q", self._rfile.read(8))[0]
            # Client frames are always masked.
            mask = self._rfile.read(4) if head[1] & 0x80 else bytes(4)
            payload = bytes(byte ^ mask[i % 4] for i, byte in enumerate(self._rfile.read(length)))
            if opcode == 0x8:
                self._send(0x8, payload[:2])
                break
            if opcode == 0x9:
                self._send(0xA, payload)
        self.closed.set()

    def _send(self, opcode: int, payload: bytes) -> None:
        length = len(payload)
        if length < 126:
            header = struct.pack("!BB", 0x80 | opcode, length)
        elif length < 1 << 16:
            header = struct.pack("!BBH", 0x80 | opcode, 126, length)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 127, length)
        with self._lock:
            if self.closed.is_set() and opcode != 0x8:
                return
            try:
                self._wfile.write(header + payload)
            except OSError:
                self.closed.set()


class FakeApp:
    """Base of the fake providers."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.base_url = ""
        self.released = threading.Event()
        self.websockets: list[FakeWebSocket] = []

    def handle(self, request: Request) -> Reply:
        raise NotImplementedError

    def seen(self, method: str, path_prefix: str) -> list[Request]:
        return [r for r in self.requests if r.method == method and r.path.startswith(path_prefix)]


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, each answer waits for a delayed ACK.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        request = Request(
            method=self.command,
            path=url.path,
            query=dict(parse_qsl(url.query, keep_blank_values=True)),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=self.rfile.read(length) if length else b"",
        )
        app = self.server.app
        app.requests.append(request)
        reply = app.handle(request)
        if reply is HANG:
            # Never answer: the client's timeout must fire. Released when the server stops.
            app.released.wait(30)
            self.close_connection = True
            return
        if reply.websocket is not None:
            key = request.headers.get("sec-websocket-key", "")
            accept = base64.b64encode(hashlib.sha1((key + _WEBSOCKET_GUID).encode()).digest()).decode()
            self.send_response(101, "Switching Protocols")
            self.send_header("Upgrade", "websocket")
            self.send_header("Connection", "Upgrade")
            self.send_header("Sec-WebSocket-Accept", accept)
            self.end_headers()
            websocket = FakeWebSocket(self.connection, self.rfile, self.wfile)
            app.websockets.append(websocket)
            reply.websocket(websocket)
            websocket.serve()
            self.close_connection = True
            return
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        if reply.chunks is not None:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:
                for chunk in reply.chunks:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.write(b"0\r\n\r\n")
            except OSError:
                # The client went away mid-stream (a stopped task closes its stream early).
                self.close_connection = True
            return
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(reply.body)

    do_GET = do_POST = do_DELETE = _serve


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, app: FakeApp) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.app = app

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that drops its connection (a stopped task closing its stream early) is no fault of the fake.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


AppT = TypeVar("AppT", bound=FakeApp)


@contextmanager
def serving(app: AppT) -> Iterator[AppT]:
    """Run the fake on a free port for the duration of the block; app.base_url is where it listens."""
    server = _Server(app)
    app.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="fake-provider", daemon=True)
    thread.start()
    try:
        yield app
    finally:
        app.released.set()
        for websocket in app.websockets:
            websocket.drop()
        server.shutdown()
        server.server_close()
        thread.join(5)


def png(color: tuple[int, int, int] = (30, 160, 90), size: tuple[int, int] = (48, 32)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


def image_color(data: bytes) -> tuple[int, ...]:
    with Image.open(io.BytesIO(data)) as image:
        pixel = image.convert("RGB").getpixel((0, 0))
    assert isinstance(pixel, tuple)
    return pixel


@dataclass
class FakeContext:
    """An EngineContext whose sleep returns at once (the fakes advance per request, not per second)."""

    stop_after_sleeps: int | None = None
    stop_after_previews: int | None = None
    # Called with the previews so far after each one arrives.
    on_preview: Callable[[list[Preview]], None] | None = None
    max_sleeps: int = 200
    progress: list[float] = field(default_factory=list)
    previews: list[Preview] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)
    stopped: bool = False

    def report_progress(self, fraction: float) -> None:
        self.progress.append(fraction)

    def report_preview(self, image: bytes | Image.Image, fraction: float | None = None) -> None:
        self.previews.append(received(image, fraction))
        if fraction is not None:
            self.progress.append(fraction)
        if self.stop_after_previews is not None and len(self.previews) >= self.stop_after_previews:
            self.stopped = True
        if self.on_preview is not None:
            self.on_preview(self.previews)

    def should_stop(self) -> bool:
        return self.stopped

    def sleep(self, seconds: float) -> None:
        self.check()
        self.sleeps.append(seconds)
        if self.stop_after_sleeps is not None and len(self.sleeps) >= self.stop_after_sleeps:
            self.stopped = True
        assert len(self.sleeps) <= self.max_sleeps, "the engine kept polling a job that never ends"
        self.check()

    def check(self) -> None:
        if self.stopped:
            raise EngineStopped("stopped")


def make_job(task_type: TaskType, paths: tuple[Path, ...] = (), *, prompt: str | None = "a red bicycle",
             urls: tuple[str, ...] = (), task_id: str = "task-abc123") -> EngineJob:
    return EngineJob(task_id=task_id, type=task_type, prompt=prompt, reference_paths=paths, reference_urls=urls)
