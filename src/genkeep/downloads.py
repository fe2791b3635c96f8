"""Many results in one download: a ZIP of completed tasks' result images, named after the seller's own files.

The archive is written as it is sent, one result at a time (ZIP's data descriptors need no seeking), so a batch of
hundreds of results costs the server one read buffer, not the archive: the benchmark in docs/benchmarks.md
(catalog) measures it. Results are stored as they are (PNG, JPEG and WebP are compressed already: deflating them
again saves ~1 % and costs the CPU), and a ZIP64 entry only where one needs it.
"""

from __future__ import annotations

import time
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath

from genkeep.storage import ImageStorage
from genkeep.storage.base import ImageStream
from genkeep.tasks.model import Task

CHUNK_BYTES = 256 * 1024


def entry_name(task: Task) -> str:
    """The result's name in the archive: the seller's photo's name with the result's extension (`shoe-01.png`),
    or, for a task made from words alone, when it was made (`genkeep-20261207-160501-9f0c2d.png`)."""
    extension = PurePosixPath(task.result_name or "").suffix or ".png"
    original = next((image.filename for image in task.reference_images if image.filename), None)
    if original:
        stem = PurePosixPath(original).stem or original
        return f"{stem}{extension}"
    made = time.strftime("%Y%m%d-%H%M%S", time.gmtime(task.created_at / 1000))
    return f"genkeep-{made}-{task.id[:6]}{extension}"


def unique_names(tasks: Iterable[Task]) -> list[tuple[Task, str]]:
    """Each task with its entry name; a name already taken gets " (2)", " (3)"… as a file manager would."""
    taken: set[str] = set()
    named = []
    for task in tasks:
        name = entry_name(task)
        if name.casefold() in taken:
            stem, extension = PurePosixPath(name).stem, PurePosixPath(name).suffix
            number = 2
            while f"{stem} ({number}){extension}".casefold() in taken:
                number += 1
            name = f"{stem} ({number}){extension}"
        taken.add(name.casefold())
        named.append((task, name))
    return named


class _Pipe:
    """What zipfile writes into: the bytes written since the last take. No `tell` or `seek`, so zipfile writes
    each entry's sizes after its data."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None

    def take(self) -> bytes:
        data, self._parts = b"".join(self._parts), []
        return data


def _chunks(found: Path | ImageStream) -> Iterator[bytes]:
    if isinstance(found, Path):
        with found.open("rb") as file:
            while chunk := file.read(CHUNK_BYTES):
                yield chunk
    else:
        # Closing this generator closes the stream's (yield from passes the close on).
        yield from found.chunks


def results_zip(storage: ImageStorage, tasks: Iterable[Task]) -> Iterator[bytes]:
    """The archive's bytes, a piece at a time, for a streamed answer (blocking reads: iterate it off the event
    loop). A result whose file is gone is left out; a storage fault ends the archive early (the browser reports
    the download as failed)."""
    pipe = _Pipe()
    with zipfile.ZipFile(pipe, "w", compression=zipfile.ZIP_STORED) as archive:
        for task, name in unique_names(tasks):
            found = storage.read(task.id, task.result_name or "") if task.result_name else None
            if found is None:
                continue
            made = time.gmtime((task.finished_at or task.created_at) / 1000)[:6]
            info = zipfile.ZipInfo(name, date_time=(max(made[0], 1980), *made[1:]))
            info.compress_type = zipfile.ZIP_STORED
            with archive.open(info, "w") as entry:
                for chunk in _chunks(found):
                    entry.write(chunk)
                    if written := pipe.take():
                        yield written
    if written := pipe.take():
        yield written
