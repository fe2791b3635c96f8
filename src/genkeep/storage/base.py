"""The image storage's contract: where reference images, previews and results live, shared by every process.

A new task's reference images are staged before its row commits and published once it has: a crash leaves
neither a row without files nor files that stay without a row (`TaskManager.recover_incoming` finishes or
discards what was staged). Results and previews are written whole or not at all. Names come from task rows,
never from a client. Every fault of the storage raises StorageUnavailable, whose reason names what failed
without any address or credential in it.
"""

from __future__ import annotations

import abc
import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from genkeep.errors import StorageUnavailable
from genkeep.reference_images import ACCEPTED_FORMATS
from genkeep.signing import Signer

# A stored image is in an accepted format (results and previews too: see provider_http and previews).
CONTENT_TYPES = {extension: media_type for media_type, extension in ACCEPTED_FORMATS.values()}
EXTENSIONS = {value: key for key, value in CONTENT_TYPES.items()}
# How long a signed link to a reference image works: long enough for a provider to fetch it when the job starts,
# short enough that a link seen in a provider's logs is useless soon after.
SIGNED_URL_SECONDS = 600
# Files staged this long ago whose row never appeared belong to a request that died.
ABANDONED_AFTER_SECONDS = 3600


def content_type_of(name: str) -> str:
    for extension, media_type in CONTENT_TYPES.items():
        if name.endswith(extension):
            return media_type
    return "application/octet-stream"


@dataclass(frozen=True)
class ImageStream:
    """An image's bytes as they arrive from object storage; `chunks` closes its connection when closed or done."""

    size: int
    chunks: Iterator[bytes]


class ImageStorage(abc.ABC):
    """Image bytes in and out for every task; one implementation per kind of storage."""

    # Whether `presigned_url` gives links of the storage itself.
    presigns = False

    def __init__(self, secret: str) -> None:
        self._signer = Signer(secret.encode())

    # ---- faults ----------------------------------------------------------------------------------------------

    # What this kind of storage raises when it fails: a full or read-only disk, a lost mount. Anything else is a
    # bug and passes through as it is.
    fault_types: ClassVar[tuple[type[Exception], ...]] = (OSError,)

    def describe_fault(self, error: Exception) -> str:
        """What failed, in words for a StorageUnavailable's reason."""
        # strerror only ("No space left on device"): the error's whole text would name a path of the server.
        return error.strerror if isinstance(error, OSError) and error.strerror else type(error).__name__

    @contextlib.contextmanager
    def _faults(self, action: str) -> Iterator[None]:
        try:
            yield
        except self.fault_types as error:
            # The storage's fault, never the generation's.
            raise StorageUnavailable(f"{action}: {self.describe_fault(error)}") from error

    # ---- a new task's reference images: staged before its row commits, published after ----------------------

    def stage(self, task_id: str, files: Sequence[tuple[str, bytes]]) -> None:
        """Store a new task's files before its row commits; all or nothing."""
        try:
            with self._faults("staging a new task's images"):
                self._stage(task_id, files)
        except StorageUnavailable:
            self.discard_staged(task_id)
            raise

    def stage_copies(self, task_id: str, source_task_id: str, names: Sequence[str]) -> bool:
        """Stage copies of another task's files (a retry); False, with nothing left behind, if one is gone."""
        try:
            with self._faults("copying a task's images"):
                copied = self._stage_copies(task_id, source_task_id, names)
        except StorageUnavailable:
            self.discard_staged(task_id)
            raise
        if not copied:
            self.discard_staged(task_id)
        return copied

    @abc.abstractmethod
    def _stage(self, task_id: str, files: Sequence[tuple[str, bytes]]) -> None:
        """Write a new task's files where a crash leaves them found again (`stage` cleans up after a fault)."""

    @abc.abstractmethod
    def _stage_copies(self, task_id: str, source_task_id: str, names: Sequence[str]) -> bool:
        """Copy another task's files for a new task; False as soon as one is gone (`stage_copies` cleans up)."""

    @abc.abstractmethod
    def publish(self, task_id: str) -> None:
        """The task's row has committed: its staged files are its own from now on. Idempotent."""

    @abc.abstractmethod
    def discard_staged(self, task_id: str) -> None:
        """The task's row did not commit: remove what was staged for it. Never raises."""

    @abc.abstractmethod
    def staged_task_ids(self) -> list[tuple[str, float]]:
        """Task ids whose files were staged and not yet published or discarded, and the age of each in seconds."""

    def discard_abandoned_copies(self) -> None:  # noqa: B027 - only storages that copy files locally have any
        """Remove local copies that a run which ended in a crash left behind."""

    # ---- results and previews ---------------------------------------------------------------------------------

    @abc.abstractmethod
    def write_result(self, task_id: str, name: str, data: bytes) -> None:
        """Store a file whole or not at all: readers never see half an image, and a failed write leaves nothing."""

    # ---- reading ---------------------------------------------------------------------------------------------

    @abc.abstractmethod
    def read(self, task_id: str, name: str) -> Path | ImageStream | None:
        """Where to serve a file from: a local path (the web server sends it), its bytes as a stream, or None if
        it does not exist."""

    @abc.abstractmethod
    def local_copies(self, task_id: str, names: Sequence[str]) -> contextlib.AbstractContextManager[
            list[Path] | None]:
        """Local paths of a task's files for an engine to read while the context lasts; None if one is missing."""

    def presigned_url(self, task_id: str, name: str) -> str | None:
        """A short-lived URL of the storage itself that a provider can fetch the file from, if it has such URLs."""
        return None

    # ---- removing --------------------------------------------------------------------------------------------

    @abc.abstractmethod
    def remove_file(self, task_id: str, name: str) -> None:
        """Remove one file if it exists."""

    @abc.abstractmethod
    def remove_task(self, task_id: str) -> None:
        """Remove every file of a task whose row is gone (none left is no error). Raises StorageUnavailable if some
        may remain: the task manager keeps the removal pending and the sweeper finishes it later."""

    @abc.abstractmethod
    def ready(self) -> bool:
        """Whether the storage answers right now (readiness)."""

    # ---- short-lived signed genkeep URLs for providers that fetch reference images themselves (never results) --

    def sign(self, task_id: str, name: str, expires: int) -> str:
        return self._signer.sign(f"{task_id}/{name}/{expires}")

    # `now` is the caller's estimate of the database's clock (seconds), so a link a worker makes and an API machine
    # checks agree on its expiry even when their own clocks do not (TaskManager.clock_now).
    def signed_query(self, task_id: str, name: str, ttl_seconds: int = SIGNED_URL_SECONDS, *,
                     now: float | None = None) -> str:
        expires = int(time.time() if now is None else now) + ttl_seconds
        return f"expires={expires}&sig={self.sign(task_id, name, expires)}"

    def check_signature(self, task_id: str, name: str, expires: int, sig: str, *, now: float | None = None) -> bool:
        moment = time.time() if now is None else now
        # A link made to last longer than genkeep makes them was not made by this version: refuse it too.
        if not moment <= expires <= moment + SIGNED_URL_SECONDS + 60:
            return False
        return self._signer.verify(f"{task_id}/{name}/{expires}", sig)
