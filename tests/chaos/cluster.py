"""The genkeep processes under test: `genkeep serve` and `genkeep worker`, started, killed -9 and restarted.

Every process gets the same settings (the limits the verdict judges against), the scripted engine and its run
events log; the server always comes back on the same port, so clients keep one address across restarts.
"""

from __future__ import annotations

import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.conftest import SCRIPTED_ENGINE
from tests.support.processes import free_port, genkeep_env, start, stop
from tests.support.waiting import wait_for

# Owners come from a trusted header: the test speaks for several users without juggling cookies.
OWNER_HEADER = "X-Chaos-Owner"


@dataclass(frozen=True)
class Limits:
    """The settings every process of a scenario runs with."""

    task_timeout: float = 30.0
    sweep_interval: float = 1.0
    lease_seconds: float = 2.0
    max_attempts: int = 3
    poll_interval: float = 0.2

    @property
    def heartbeat(self) -> float:
        # A worker renews its leases a few times per lease; a third of it is what genkeep does today.
        return self.lease_seconds / 3

    @property
    def stuck_after(self) -> float:
        """How long after its creation a task must be final: the timeout, one sweep interval, and a margin for
        the sweep's own statement on a busy machine."""
        return self.task_timeout + self.sweep_interval + 2.0

    def env(self) -> dict[str, str]:
        return {
            "GENKEEP_TASK_TIMEOUT": f"{self.task_timeout:g}",
            "GENKEEP_SWEEP_INTERVAL": f"{self.sweep_interval:g}",
            "GENKEEP_LEASE_SECONDS": f"{self.lease_seconds:g}",
            "GENKEEP_MAX_ATTEMPTS": str(self.max_attempts),
            "GENKEEP_WORKER_POLL_INTERVAL": f"{self.poll_interval:g}",
        }


@dataclass
class Member:
    """One process of the cluster."""

    kind: str  # "serve" or "worker"
    process: subprocess.Popen[bytes]
    env: dict[str, str]
    started: float

    @property
    def pid(self) -> int:
        return self.process.pid


@dataclass
class Cluster:
    """The processes of one scenario, all sharing one database, one data folder and one run events log."""

    folder: Path
    database_url: str
    limits: Limits
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    members: list[Member] = field(default_factory=list)
    # When each killed process was killed (pid → wall-clock seconds): its runs without an end line ended then.
    kills: dict[int, float] = field(default_factory=dict)

    @property
    def data_dir(self) -> Path:
        return self.folder / "data"

    @property
    def run_events(self) -> Path:
        return self.folder / "run-events.log"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self, **overrides: str) -> dict[str, str]:
        return genkeep_env(
            self.data_dir, self.database_url,
            GENKEEP_ENGINE=SCRIPTED_ENGINE,
            GENKEEP_TEST_RUN_EVENTS=str(self.run_events),
            GENKEEP_OWNER_HEADER=OWNER_HEADER,
            # The test's traffic is the trusted "proxy": it comes from this machine.
            GENKEEP_TRUSTED_PROXIES="127.0.0.1/32",
            # A steady stream keeps many tasks unfinished at once: the per-owner and studio caps would refuse it.
            GENKEEP_MAX_UNFINISHED_PER_OWNER="100000",
            GENKEEP_MAX_UNFINISHED="100000",
            # The traffic comes from one address: no per-client rate.
            GENKEEP_CLIENT_RATE="0",
            # The test stops processes only once every task is final; nothing is left to finish.
            GENKEEP_SHUTDOWN_GRACE="0",
            **self.limits.env(),
            **self.extra_env,
            **overrides,
        )

    def _launch(self, kind: str, env: dict[str, str]) -> Member:
        number = sum(1 for member in self.members if member.kind == kind) + 1
        args = ["serve", "--port", str(self.port)] if kind == "serve" else ["worker"]
        member = Member(kind, start(args, env, self.folder / f"{kind}-{number}.log"), env, time.time())
        self.members.append(member)
        if kind == "serve":
            self._wait_serving(member)
        return member

    def _wait_serving(self, member: Member) -> None:
        def answering() -> bool:
            if member.process.poll() is not None:
                raise AssertionError(f"genkeep serve exited:\n{self.logs('serve')[-3000:]}")
            try:
                return httpx.get(f"{self.base_url}/api/ping", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(answering, timeout=30, interval=0.05, message="genkeep serve to answer /api/ping")

    def serve(self, **overrides: str) -> Member:
        """`genkeep serve` (with its own workers unless GENKEEP_WORKERS=0), once it answers."""
        return self._launch("serve", self.env(**overrides))

    def worker(self, **overrides: str) -> Member:
        """`genkeep worker`, started (not waited for: its first run says when it is ready)."""
        return self._launch("worker", self.env(**overrides))

    def kill(self, member: Member) -> float:
        """kill -9; returns when it happened."""
        member.process.send_signal(signal.SIGKILL)
        moment = time.time()
        member.process.wait(timeout=10)
        self.kills[member.pid] = moment
        return moment

    def restart(self, member: Member) -> Member:
        """The same kind of process with the same settings."""
        return self._launch(member.kind, member.env)

    def alive(self) -> list[Member]:
        return [member for member in self.members if member.process.poll() is None]

    def logs(self, kind: str) -> str:
        """Everything the processes of one kind ("serve" or "worker") printed."""
        return "".join(path.read_text(errors="replace") for path in sorted(self.folder.glob(f"{kind}-*.log")))

    def close(self) -> None:
        for member in self.alive():
            stop(member.process, timeout=15)
