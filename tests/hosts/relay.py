"""A TCP relay that adds a fixed one-way delay to every byte, run inside a host: this kernel has no `netem`, so a
link's latency is made here. `python -m tests.hosts.relay 127.0.0.1:5432 10.0.0.10:5432 0.005`

Each chunk is stamped when it arrives and written once its delay has passed, so the delay is latency, not a
throughput limit: chunks in flight overlap, as on a long wire. A dropped link behind it stays silent here too.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time

CHUNK = 64 * 1024


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def send() -> None:
        while True:
            due, data = await queue.get()
            if not data:
                break
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            writer.write(data)
            await writer.drain()

    sender = asyncio.create_task(send())
    try:
        while data := await reader.read(CHUNK):
            queue.put_nowait((time.monotonic() + delay, data))
        queue.put_nowait((0.0, b""))
        await sender
    except (ConnectionError, OSError):
        pass
    finally:
        sender.cancel()
        with contextlib.suppress(Exception):
            writer.close()


async def main(listen: str, target: str, delay: float) -> None:
    target_host, target_port = target.rsplit(":", 1)

    async def accept(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(target_host, int(target_port))
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(_pipe(client_reader, upstream_writer, delay),
                             _pipe(upstream_reader, client_writer, delay))

    host, port = listen.rsplit(":", 1)
    server = await asyncio.start_server(accept, host, int(port))
    print("relaying", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
