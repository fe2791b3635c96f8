"""A TCP proxy the test owns, to cut a database off the way a dead network does: packets held, not refused.

`hold()` stops forwarding bytes in both directions on every open connection, and accepts new connections without
ever answering them; nothing is closed or reset, so clients see silence, not an error. `release()` forwards
everything held and connects the waiting newcomers. `hold_after(n)` holds the same way once one connection has
sent n bytes upstream: a client caught in the middle of an upload. It listens on 127.0.0.1 only, on a free port.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

CHUNK = 64 * 1024
# With hold_after, what a client may have sent beyond what was forwarded is bounded by the kernel's buffers: a
# small receive buffer keeps the client's own send buffer the only large one.
HOLD_AFTER_RECEIVE_BUFFER = 64 * 1024


class TcpProxy:
    """Forwards 127.0.0.1:<port> to target_host:target_port on its own event-loop thread."""

    def __init__(self, target_host: str, target_port: int, *, small_buffers: bool = False) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.small_buffers = small_buffers
        self.port = 0
        self.held_mid_upload = threading.Event()
        self._hold_after: int | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-proxy", daemon=True)
        self._flowing = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    def start(self) -> int:
        """Start listening; returns the port."""
        self._thread.start()
        self._call(self._start_server())
        return self.port

    def hold(self) -> None:
        self._loop.call_soon_threadsafe(self._flowing.clear)

    def release(self) -> None:
        self._loop.call_soon_threadsafe(self._flowing.set)

    def hold_after(self, upstream_bytes: int) -> None:
        """Hold everything once one connection has sent this many bytes upstream; `held_mid_upload` is set then."""
        self._hold_after = upstream_bytes

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def _call(self, coroutine: object) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)  # type: ignore[arg-type]

    async def _start_server(self) -> None:
        self._flowing.set()
        listener = socket.socket()
        if self.small_buffers:
            # Set before listening, so accepted connections advertise a small window from their first packet.
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, HOLD_AFTER_RECEIVE_BUFFER)
        listener.bind(("127.0.0.1", 0))
        self._server = await asyncio.start_server(self._accept, sock=listener)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        self._writers.add(client_writer)
        try:
            # A newcomer during a hold is accepted (its connect succeeds) but hears nothing until the release.
            await self._flowing.wait()
            try:
                upstream_reader, upstream_writer = await asyncio.open_connection(self.target_host, self.target_port)
            except OSError:
                client_writer.close()
                return
            self._writers.add(upstream_writer)
            await asyncio.gather(self._pipe(client_reader, upstream_writer, upstream=True),
                                 self._pipe(upstream_reader, client_writer))
        except asyncio.CancelledError:
            # Closing the proxy: end quietly (asyncio's stream server reports a handler's cancellation as an error).
            pass
        finally:
            self._connections.discard(task)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                    upstream: bool = False) -> None:
        sent = 0
        try:
            while data := await reader.read(CHUNK):
                # Read, then wait: during a hold this chunk waits here and the rest stays in the kernel's buffers.
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()
                sent += len(data)
                if upstream and self._hold_after is not None and sent >= self._hold_after:
                    self._hold_after = None
                    self._flowing.clear()
                    self.held_mid_upload.set()
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            with contextlib.suppress(Exception):
                writer.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)


@contextmanager
def tcp_proxy(target_host: str, target_port: int, *, small_buffers: bool = False) -> Iterator[TcpProxy]:
    proxy = TcpProxy(target_host, target_port, small_buffers=small_buffers)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.close()
