"""One `genkeep serve` process under test: started with the bench settings, waited for, measured, stopped."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import TracebackType

BENCH_DIR = Path(__file__).parent
GENKEEP = Path(sys.executable).parent / "genkeep"
SECRET_KEY = "genkeep-bench-secret-not-for-production"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def bench_env(database_url: str, data_dir: Path, **overrides: str) -> dict[str, str]:
    """The serve settings of the HTTP benchmark: no workers, no sweeps, no timeouts, no caps, no client rate."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("GENKEEP_")}
    env.update({
        "GENKEEP_DATABASE_URL": database_url,
        "GENKEEP_DATA_DIR": str(data_dir),
        "GENKEEP_SECRET_KEY": SECRET_KEY,
        "GENKEEP_WORKERS": "0",
        "GENKEEP_SWEEP_INTERVAL": "86400",
        "GENKEEP_TASK_TIMEOUT": "86400",
        "GENKEEP_MAX_UNFINISHED_PER_OWNER": "1000000",
        "GENKEEP_MAX_UNFINISHED": "10000000",
        # The load comes from one address: no per-client rate.
        "GENKEEP_CLIENT_RATE": "0",
        "PYTHONPATH": os.pathsep.join(p for p in (str(BENCH_DIR), env.get("PYTHONPATH", "")) if p),
    })
    env.update(overrides)
    return env


class Server:
    """`genkeep serve` on 127.0.0.1 in its own process group; a context manager that always stops it."""

    def __init__(self, env: dict[str, str], log_path: Path, processes: int = 1) -> None:
        self.env = env
        self.processes = processes
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "wb")
        self._log = log
        self.process = subprocess.Popen(
            [str(GENKEEP), "serve", "--host", "127.0.0.1", "--port", str(self.port),
             "--processes", str(self.processes)],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self._wait_ready(deadline=time.monotonic() + 120)
        return self

    def _wait_ready(self, deadline: float) -> None:
        assert self.process is not None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"genkeep serve exited with {self.process.returncode}; see {self.log_path}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/api/ping", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"genkeep serve did not answer within its start-up deadline; see {self.log_path}")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the serve process has used, from /proc (with several processes: the
        supervisor's only, so meaningful for a one-process server)."""
        with open(f"/proc/{self.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mb(self) -> float:
        """Resident memory of the serve process (with several processes: of their supervisor only), from /proc."""
        return status_kb(self.pid, "VmRSS") / 1024

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if self.process is not None:
            stop(self.process, signal.SIGINT)
        self._log.close()


def status_kb(pid: int, field: str) -> int:
    """A kB field of /proc/<pid>/status (VmRSS, VmHWM)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def stop(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    """Ask a process to stop with `sig`; kill it if it has not within 30 s."""
    if process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
