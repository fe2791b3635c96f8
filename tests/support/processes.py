"""Real genkeep processes (serve, worker) for crash, restart and concurrency tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.support.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def genkeep_env(data_dir: Path, database_url: str, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("GENKEEP_")}
    env.update({
        "GENKEEP_DATA_DIR": str(data_dir),
        "GENKEEP_DATABASE_URL": database_url,
        "GENKEEP_SECRET_KEY": "test-secret-key-" + "x" * 16,
        "PYTHONPATH": str(REPO),
        "GENKEEP_TEST_POSTGRES_URL": os.environ.get("GENKEEP_TEST_POSTGRES_URL", ""),
    })
    env.update(extra)
    return env


def start(args: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    log = open(log_path, "ab")  # noqa: SIM115 - the child owns it for its lifetime
    return subprocess.Popen([sys.executable, "-m", "genkeep.cli", *args], env=env, stdout=log,
                            stderr=subprocess.STDOUT, cwd=REPO)


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 30) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def serving(env: dict[str, str], log_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`genkeep serve` on a free port; yields the process and its base URL once /healthz answers."""
    port = free_port()
    process = start(["serve", "--port", str(port)], env, log_path)
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"genkeep serve exited: {log_path.read_text()[-2000:]}")
        try:
            return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(healthy, timeout=30, interval=0.1, message="genkeep serve to answer /healthz")
        yield process, base
    finally:
        stop(process)
