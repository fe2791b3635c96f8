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
from pathlib import Path

log = logging.getLogger(__name__)

CONTENT_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".webp": "image/webp"}
EXTENSIONS = {value: key for key, value in CONTENT_TYPES.items()}
# How long a signed link to a reference image works: long enough for a provider to fetch it when the job starts,
# short enough that a link seen in a provider's logs is useless soon after.
SIGNED_URL_SECONDS = 600
# An incoming folder this old whose row never appeared belongs to a request that died.
ABANDONED_AFTER_SECONDS = 3600


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

    def publish(self, task_id: str) -> None:
        """Move a committed task's staged files into place."""
        staged = self.incoming / task_id
        if not staged.exists():
            return
        target = self.task_dir(task_id)
        # File by file: a worker elsewhere may already have claimed the committed task and written into its folder.
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
        folder = self.task_dir(task_id)
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / name
        partial = folder / f".{name}.partial"
        partial.write_bytes(data)
        os.replace(partial, target)
        return target

    def remove_file(self, task_id: str, name: str) -> None:
        path = self.path(task_id, name)
        if path is not None:
            path.unlink(missing_ok=True)

    def remove_task(self, task_id: str) -> None:
        shutil.rmtree(self.task_dir(task_id), ignore_errors=True)
        shutil.rmtree(self.incoming / task_id, ignore_errors=True)

    def staged_task_ids(self) -> list[tuple[str, float]]:
        """Task ids with staged files, and the age of each in seconds."""
        moment = time.time()
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
