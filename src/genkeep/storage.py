"""Image files in, URLs out.

Layout: images/<id[:2]>/<task id>/<name>. A new task's files are written to images/incoming/<task id>/ first and
moved into place once its row is committed, so a crash leaves neither a row without files nor files without a
row: `recover_incoming` finishes or discards what a crash interrupted.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import logging
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from genkeep.tasks.errors import StorageUnavailable

log = logging.getLogger(__name__)

CONTENT_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".webp": "image/webp"}
EXTENSIONS = {value: key for key, value in CONTENT_TYPES.items()}
# How long a signed link to a reference image works: long enough for a provider to fetch it when the job starts,
# short enough that a link seen in a provider's logs is useless soon after.
SIGNED_URL_SECONDS = 600
# An incoming folder this old whose row never appeared belongs to a request that died.
ABANDONED_AFTER_SECONDS = 3600


@contextlib.contextmanager
def _faults(action: str) -> Iterator[None]:
    try:
        yield
    except OSError as error:
        # A full or read-only disk, a lost mount: the storage's fault, never the generation's.
        raise StorageUnavailable(f"{action}: {error.strerror or error}") from error


class ImageStorage:
    """The folder where reference images and results live, shared by every genkeep process."""

    def __init__(self, root: Path, secret: str) -> None:
        self.root = root
        self.incoming = root / "incoming"
        self.incoming.mkdir(parents=True, exist_ok=True)
        self._secret = secret.encode()

    def task_dir(self, task_id: str) -> Path:
        return self.root / task_id[:2] / task_id

    def staging_dir(self, task_id: str) -> Path:
        path = self.incoming / task_id
        path.mkdir(parents=True, exist_ok=True)
        return path

    def stage(self, task_id: str, files: Sequence[tuple[str, bytes]]) -> None:
        """Write a new task's files where a crash cannot expose them; all or nothing."""
        try:
            with _faults("staging a new task's images"):
                staging = self.staging_dir(task_id)
                for name, data in files:
                    (staging / name).write_bytes(data)
        except StorageUnavailable:
            self.discard_staged(task_id)
            raise

    def stage_copies(self, task_id: str, source_task_id: str, names: Sequence[str]) -> bool:
        """Stage copies of another task's files (a retry); False, with nothing left behind, if one is gone."""
        try:
            with _faults("copying a task's images"):
                staging = self.staging_dir(task_id)
                for name in names:
                    source = self.path(source_task_id, name)
                    if source is None:
                        self.discard_staged(task_id)
                        return False
                    shutil.copyfile(source, staging / name)
        except StorageUnavailable:
            self.discard_staged(task_id)
            raise
        return True

    def publish(self, task_id: str) -> None:
        """Move a committed task's staged files into place."""
        staged = self.incoming / task_id
        if not staged.exists():
            return
        target = self.task_dir(task_id)
        # File by file: a worker elsewhere may already have claimed the committed task and written into its folder.
        with _faults("publishing a task's images"):
            target.mkdir(parents=True, exist_ok=True)
        # Two processes may publish the same task at once (the accepting request and a fast worker).
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(staged):
                with contextlib.suppress(FileNotFoundError):
                    os.replace(entry.path, target / entry.name)
        with contextlib.suppress(FileNotFoundError, OSError):
            staged.rmdir()

    def discard_staged(self, task_id: str) -> None:
        shutil.rmtree(self.incoming / task_id, ignore_errors=True)

    def path(self, task_id: str, name: str) -> Path | None:
        """The file's path, or None if missing. Names come from the task row, never from a client."""
        for folder in (self.task_dir(task_id), self.incoming / task_id):
            candidate = folder / name
            if candidate.is_file():
                return candidate
        return None

    def write_result(self, task_id: str, name: str, data: bytes) -> Path:
        """Write a file whole or not at all: readers never see half an image, and a failed write leaves nothing."""
        folder = self.task_dir(task_id)
        target = folder / name
        partial = folder / f".{name}.partial"
        try:
            with _faults("saving a result"):
                folder.mkdir(parents=True, exist_ok=True)
                partial.write_bytes(data)
                os.replace(partial, target)
        except StorageUnavailable:
            with contextlib.suppress(OSError):
                partial.unlink(missing_ok=True)
            raise
        return target

    def remove_file(self, task_id: str, name: str) -> None:
        path = self.path(task_id, name)
        if path is not None:
            path.unlink(missing_ok=True)

    def remove_task(self, task_id: str) -> None:
        shutil.rmtree(self.task_dir(task_id), ignore_errors=True)
        shutil.rmtree(self.incoming / task_id, ignore_errors=True)

    def ready(self) -> bool:
        """Whether files can be written and read back right now (readiness)."""
        probe = self.incoming / f".ready-{os.getpid()}"
        try:
            probe.write_bytes(b"ok")
            ok = probe.read_bytes() == b"ok"
            probe.unlink()
            return ok
        except OSError:
            return False

    def staged_task_ids(self) -> list[tuple[str, float]]:
        """Task ids with staged files, and the age of each in seconds."""
        moment = time.time()
        with _faults("listing staged images"):
            return [(entry.name, moment - entry.stat().st_mtime) for entry in os.scandir(self.incoming)
                    if entry.is_dir()]

    # ---- short-lived signed URLs for providers that fetch reference images themselves (never results) ---------

    def sign(self, task_id: str, name: str, expires: int) -> str:
        message = f"{task_id}/{name}/{expires}".encode()
        digest = hmac.new(self._secret, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:24]).decode().rstrip("=")

    def signed_query(self, task_id: str, name: str, ttl_seconds: int = SIGNED_URL_SECONDS) -> str:
        expires = int(time.time()) + ttl_seconds
        return f"expires={expires}&sig={self.sign(task_id, name, expires)}"

    def check_signature(self, task_id: str, name: str, expires: int, sig: str) -> bool:
        moment = time.time()
        # A link made to last longer than genkeep makes them was not made by this version: refuse it too.
        if not moment <= expires <= moment + SIGNED_URL_SECONDS + 60:
            return False
        return hmac.compare_digest(self.sign(task_id, name, expires), sig)
