"""What the provider tests share: a tiny threaded HTTP server on a free 127.0.0.1 port for fake providers,
a fake EngineContext, images and jobs.

A fake provider is a `FakeApp`: `handle(request)` returns a Reply, or HANG to never answer (until the server
stops). Every request is recorded, so tests can count submissions.
"""

from __future__ import annotations

import email.parser
import email.policy
import io
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

from PIL import Image

from genkeep.engines.base import EngineJob, EngineStopped
from genkeep.tasks.model import TaskType


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
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, data: Any, status: int = 200) -> Reply:
        return cls(status, json.dumps(data).encode())


HANG = Reply(status=-1)


class FakeApp:
    """Base of the fake providers."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.base_url = ""
        self.released = threading.Event()

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
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
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
    max_sleeps: int = 200
    progress: list[float] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)
    stopped: bool = False

    def report_progress(self, fraction: float) -> None:
        self.progress.append(fraction)

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
