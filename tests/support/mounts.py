"""A small tmpfs mounted over a folder, to make it full or read-only for real (needs root, or CAP_SYS_ADMIN).

A real filesystem is the faithful fault: every process writing there gets ENOSPC or EROFS from the kernel, the
way a full or read-only disk answers, whatever code path writes.
"""

from __future__ import annotations

import errno
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)


def mount_unavailable() -> str | None:
    """Why a tmpfs cannot be mounted here, or None if it can."""
    with tempfile.TemporaryDirectory() as folder:
        try:
            mounted = _run("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", folder)
        except FileNotFoundError:
            return "the mount command is missing"
        if mounted.returncode != 0:
            return f"cannot mount a tmpfs (run as root): {mounted.stderr.strip()}"
        _unmount(Path(folder))
    return None


def _unmount(path: Path) -> None:
    if _run("umount", str(path)).returncode != 0:
        # Something still holds a file there: detach now, the kernel frees it when the last file closes.
        _run("umount", "-l", str(path))


@contextmanager
def small_tmpfs(path: Path, size_bytes: int) -> Iterator[Path]:
    """A tmpfs of `size_bytes` mounted over `path` (created if missing), unmounted at the end."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = _run("mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(path))
    if mounted.returncode != 0:
        raise OSError(f"mount tmpfs over {path} failed: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        _unmount(path)


def remount(path: Path, *, read_only: bool) -> None:
    result = _run("mount", "-o", "remount," + ("ro" if read_only else "rw"), str(path))
    if result.returncode != 0:
        raise OSError(f"remount of {path} failed: {result.stderr.strip()}")


def fill(folder: Path) -> Path:
    """Write a file in `folder` until the filesystem is full; returns it (delete it to free the space)."""
    filler = folder / "filler.bin"
    block = b"\0" * 4096
    with open(filler, "wb", buffering=0) as out:
        try:
            while True:
                out.write(block)
        except OSError as error:
            if error.errno != errno.ENOSPC:
                raise
    return filler
