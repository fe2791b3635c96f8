"""The studio on hosts of its own: each host a network namespace, each of its programs a process group.

    client ── proxy (HAProxy, deploy/haproxy.cfg) ──┬── api1 ─┬── db (its own PostgreSQL)
                                                    └── api2 ─┤
                                  worker1..3 ── delay relay ──┘   bucket (moto_server): every api and worker

Workers reach `db` through a relay in their own namespace that adds WORKER_DB_DELAY one way (this kernel has no
netem); the other links go without: the API hosts' database round trips are what the polls measure, and a
delay there would only move the numbers, not test a promise. The client reaches the proxy alone (its only route).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg

from tests.chaos.cluster import OWNER_HEADER, Limits
from tests.conftest import SCRIPTED_ENGINE
from tests.hosts.network import Network, in_namespace, run_in
from tests.support.processes import REPO, genkeep_env
from tests.support.s3 import aws_env, new_bucket
from tests.support.waiting import wait_for

SHIPPED_PROXY_CONFIG = REPO / "deploy" / "haproxy.cfg"
# The proxy marks a host down after two failed checks a second apart (haproxy.cfg: inter 1s fall 2), plus margin.
PROXY_FALL_WINDOW_S = 3.0
# The names in the shipped configuration an operator replaces; the suite replaces them with its hosts' addresses.
PUBLIC_HOST = "studio.example.com"
API_HOSTS = ("api1", "api2")
WORKER_HOSTS = ("worker1", "worker2", "worker3")
API_PORT = 8000
DB_PORT = 5432
BUCKET_PORT = 9000
PROXY_PORT = 80
WORKER_DB_DELAY = 0.005  # seconds, one way: a worker in another rack

NUMBERS = {"db": 10, "bucket": 11, "api1": 21, "api2": 22, "proxy": 30, "worker1": 41, "worker2": 42,
           "worker3": 43, "client": 50}


def postgres_bin() -> Path | None:
    """The newest Debian PostgreSQL server binaries (postgresql-NN package)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda path: int(path.split("/")[4]))
    return Path(found[-1]).parent if found else None


def proxy_config(addresses: dict[str, str]) -> str:
    """The shipped HAProxy configuration with the hosts' addresses in place of its example names."""
    text = SHIPPED_PROXY_CONFIG.read_text()
    text = text.replace(PUBLIC_HOST, addresses["proxy"])
    for name in API_HOSTS:
        text = text.replace(f"{name}.internal:{API_PORT}", f"{addresses[name]}:{API_PORT}")
    return text


@dataclass
class Program:
    """One program on one host, in a process group of its own (so a host's crash takes all of it)."""

    host: str
    name: str
    command: list[str]
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None
    # Every pid this program ran as, with when it was killed (-9): the ledger ends their runs then.
    pids: list[int] = field(default_factory=list)

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(self.command, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                            cwd=REPO, start_new_session=True)
        self.pids.append(self.process.pid)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal_group(self, sig: int) -> None:
        if self.running():
            assert self.process is not None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        self.signal_group(sig)
        self.wait_stopped(timeout)

    def wait_stopped(self, timeout: float) -> None:
        """Waits for the program to exit; past the timeout, kills its group."""
        if self.process is None:
            return
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.signal_group(signal.SIGKILL)
            self.process.wait(timeout=10)

    def logs(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class Studio:
    """Every host of the studio, started in order and stopped in reverse, whatever happened in between."""

    folder: Path
    limits: Limits
    network: Network = field(default_factory=Network)
    programs: dict[str, Program] = field(default_factory=dict)
    bucket_name: str = ""
    pg_data: Path | None = None
    kills: dict[int, float] = field(default_factory=dict)
    # Seconds each part of the set-up took (and the tear-down), for the run's summary.
    timings: dict[str, float] = field(default_factory=dict)

    def address(self, host: str) -> str:
        return self.network[host].address

    @property
    def proxy_url(self) -> str:
        return f"http://{self.address('proxy')}:{PROXY_PORT}"

    @property
    def database_url(self) -> str:
        """As the API hosts (and the test, from inside `db`) reach it."""
        return f"postgresql://postgres@{self.address('db')}:{DB_PORT}/postgres"

    @property
    def run_events(self) -> Path:
        return self.folder / "run-events.log"

    def namespace(self, host: str) -> str:
        return self.network[host].namespace

    # -- building ----------------------------------------------------------------------------------------------

    def build(self) -> None:
        began = time.perf_counter()
        self.network.create()
        for name, number in NUMBERS.items():
            if name != "client":
                self.network.add(name, number)
        self.network.add("client", NUMBERS["client"], reaches=["proxy"])
        self.timings["namespaces"] = time.perf_counter() - began
        self.start_db()
        self.timings["db"] = time.perf_counter() - began - sum(self.timings.values())
        self.start_bucket()
        for name in API_HOSTS:
            self.start_api(name)
        self.start_proxy()
        for name in WORKER_HOSTS:
            self.start_worker(name)
        self.timings["the rest"] = time.perf_counter() - began - sum(self.timings.values())

    def _program(self, host: str, name: str, command: list[str], env: dict[str, str] | None = None) -> Program:
        program = Program(host, name, [*in_namespace(self.namespace(host)), *command],
                          env if env is not None else dict(os.environ), self.folder / f"{name}.log")
        self.programs[name] = program
        program.start()
        return program

    def start_db(self) -> None:
        binaries = postgres_bin()
        assert binaries is not None
        if self.pg_data is None:
            # Not under pytest's private temporary folder: the postgres user must be able to reach it.
            for abandoned in Path(tempfile.gettempdir()).glob("gkh*-pg-*"):
                owner = abandoned.name[3:].split("-", 1)[0]
                if owner.isdigit() and not Path(f"/proc/{owner}").exists():
                    shutil.rmtree(abandoned, ignore_errors=True)  # a run killed -9 left it
            self.pg_data = Path(tempfile.mkdtemp(prefix=f"{self.network.prefix}-pg-"))
            postgres = pwd.getpwnam("postgres")
            os.chown(self.pg_data, postgres.pw_uid, postgres.pw_gid)
            subprocess.run(["runuser", "-u", "postgres", "--", str(binaries / "initdb"), "-D", str(self.pg_data),
                            "-U", "postgres", "--auth=trust", "--no-sync"], check=True, capture_output=True,
                           timeout=120)
            with open(self.pg_data / "pg_hba.conf", "a") as hba:
                hba.write(f"host all all {self.network.subnet}.0/24 trust\n")
        self._program("db", "db", [
            "runuser", "-u", "postgres", "--", str(binaries / "postgres"), "-D", str(self.pg_data),
            "-c", f"listen_addresses={self.address('db')}", "-c", f"port={DB_PORT}",
            "-c", f"unix_socket_directories={self.pg_data}", "-c", "max_connections=200",
            # A test database: durability across a power cut is not what is tested here.
            "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"])
        self.wait_db()

    def wait_db(self) -> None:
        def answers() -> bool:
            program = self.programs["db"]
            if not program.running():
                raise AssertionError(f"PostgreSQL exited:\n{program.logs()[-2000:]}")
            try:
                with psycopg.connect(self.database_url, connect_timeout=2):
                    return True
            except psycopg.OperationalError:
                return False

        run_in(self.namespace("db"), lambda: wait_for(answers, timeout=60, interval=0.1,
                                                        message="PostgreSQL on db to answer"))

    def stop_db(self) -> None:
        """A fast shutdown (SIGINT to the postmaster): every connection is closed, as in a restart for an upgrade."""
        assert self.pg_data is not None
        postmaster = int((self.pg_data / "postmaster.pid").read_text().split()[0])
        os.kill(postmaster, signal.SIGINT)
        program = self.programs["db"]
        assert program.process is not None
        program.process.wait(timeout=60)

    def start_bucket(self) -> None:
        address = self.address("bucket")
        self._program("bucket", "bucket", [sys.executable, "-m", "moto.server", "-H", address, "-p",
                                           str(BUCKET_PORT)])
        endpoint = f"http://{address}:{BUCKET_PORT}"

        def answers() -> bool:
            try:
                return httpx.get(endpoint, timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        def make_bucket() -> str:
            wait_for(answers, timeout=60, interval=0.1, message="moto_server on bucket to answer")
            return new_bucket(endpoint)

        self.bucket_name = run_in(self.namespace("bucket"), make_bucket)

    def genkeep_env(self, host: str, database_url: str, **extra: str) -> dict[str, str]:
        data_dir = self.folder / host
        data_dir.mkdir(exist_ok=True)
        env = genkeep_env(
            data_dir, database_url,
            GENKEEP_STORAGE_URL=f"s3://{self.bucket_name}/studio",
            GENKEEP_ENGINE=SCRIPTED_ENGINE,
            GENKEEP_TEST_RUN_EVENTS=str(self.run_events),
            GENKEEP_OWNER_HEADER=OWNER_HEADER,
            # Only the proxy's requests are trusted to say who the owner is, and where the client is.
            GENKEEP_TRUSTED_PROXIES=f"{self.address('proxy')}/32",
            GENKEEP_PUBLIC_BASE_URL=self.proxy_url,
            GENKEEP_MAX_UNFINISHED_PER_OWNER="100000",
            GENKEEP_MAX_UNFINISHED="100000",
            GENKEEP_SHUTDOWN_GRACE="5",
            **aws_env(f"http://{self.address('bucket')}:{BUCKET_PORT}"),
            **self.limits.env(),
            **extra,
        )
        return env

    def start_api(self, name: str) -> Program:
        env = self.genkeep_env(name, self.database_url, GENKEEP_WORKERS="0")
        program = self._program(name, name, [sys.executable, "-m", "genkeep.cli", "serve", "--host",
                                             self.address(name), "--port", str(API_PORT)], env)
        self.wait_ready(name)
        return program

    def wait_ready(self, name: str) -> None:
        url = f"http://{self.address(name)}:{API_PORT}/readyz"
        program = self.programs[name]

        def ready() -> bool:
            if not program.running():
                raise AssertionError(f"genkeep serve on {name} exited:\n{program.logs()[-3000:]}")
            try:
                return httpx.get(url, timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        run_in(self.namespace(name), lambda: wait_for(ready, timeout=60, interval=0.1,
                                                        message=f"{name} to answer /readyz"))

    def start_proxy(self) -> None:
        config = self.folder / "haproxy.cfg"
        config.write_text(proxy_config({name: host.address for name, host in self.network.hosts.items()}))
        self._program("proxy", "proxy", ["haproxy", "-db", "-f", str(config)])
        self.wait_proxy()

    def wait_proxy(self) -> None:
        """Until the proxy answers /readyz from the client's side, through one of the API hosts."""
        def through() -> bool:
            if not self.programs["proxy"].running():
                raise AssertionError(f"haproxy exited:\n{self.programs['proxy'].logs()[-2000:]}")
            try:
                return httpx.get(f"{self.proxy_url}/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        run_in(self.namespace("client"), lambda: wait_for(through, timeout=30, interval=0.1,
                                                            message="the proxy to answer /readyz"))

    def start_worker(self, name: str) -> Program:
        relay = f"{name}-relay"
        if relay not in self.programs or not self.programs[relay].running():
            self._program(name, relay, [sys.executable, "-m", "tests.hosts.relay", f"127.0.0.1:{DB_PORT}",
                                        f"{self.address('db')}:{DB_PORT}", f"{WORKER_DB_DELAY:g}"],
                          {**os.environ, "PYTHONPATH": str(REPO)})
            wait_for(lambda: "relaying" in self.programs[relay].logs(), timeout=30,
                     message=f"the delay relay on {name}")
        env = self.genkeep_env(name, f"postgresql://postgres@127.0.0.1:{DB_PORT}/postgres", GENKEEP_WORKERS="2")
        return self._program(name, name, [sys.executable, "-m", "genkeep.cli", "worker"], env)

    def restart(self, name: str, **env: str) -> Program:
        """The same program on the same host with the same settings (plus `env`), once it answers (API hosts)."""
        old = self.programs[name]
        program = Program(old.host, old.name, old.command, {**old.env, **env}, old.log, pids=old.pids)
        self.programs[name] = program
        program.start()
        if name in API_HOSTS:
            self.wait_ready(name)
        return program

    def cut(self, host: str, peer: str) -> None:
        """Drops every packet between two hosts. A worker reaches `db` through its relay: the packets between the
        worker and the relay are dropped too, so the worker's own connections fall silent, as on a dead link
        (the relay would otherwise take its bytes and hide the silence behind its own connection)."""
        self.network.cut(host, peer, local_port=self._relay_port(host, peer))

    def heal(self, host: str, peer: str) -> None:
        self.network.heal(host, peer, local_port=self._relay_port(host, peer))

    @staticmethod
    def _relay_port(host: str, peer: str) -> int | None:
        return DB_PORT if host in WORKER_HOSTS and peer == "db" else None

    def sweep(self, host: str, **env: str) -> subprocess.Popen[bytes]:
        """`genkeep sweep` (once) on a worker host, with that host's settings (plus `env`)."""
        settings = {**self.programs[host].env, **env}
        with open(self.folder / f"{host}-sweep.log", "ab") as log:
            return subprocess.Popen([*in_namespace(self.namespace(host)), sys.executable, "-m", "genkeep.cli",
                                     "sweep"], env=settings, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)

    def proxy_sees_up(self, name: str) -> bool:
        """Whether the proxy's latest word on an API host is that it is up (its log says UP and DOWN as they
        happen; a host it never marked down is up)."""
        logs = self.programs["proxy"].logs()
        return logs.rfind(f"genkeep_api/{name} is DOWN") <= logs.rfind(f"genkeep_api/{name} is UP")

    def rolling_restart(self, name: str, **env: str) -> Program:
        """SIGTERM (the program's grace applies), then the same program again; an API host is back once the proxy
        sends it requests again, so the next host's restart never leaves the proxy with none."""
        self.programs[name].stop(signal.SIGTERM, timeout=60)
        program = self.restart(name, **env)  # it answers /readyz
        if name in API_HOSTS:
            # Back in the proxy's rotation: seen up, for longer than it takes the proxy to mark a host down. A host
            # restarted between two checks, with no request failing on it meanwhile, is never marked down at all,
            # so waiting for a new UP could wait forever; one already down (killed) needs its UP.
            up_since: list[float] = []

            def back() -> bool:
                if not self.proxy_sees_up(name):
                    up_since.clear()
                    return False
                up_since[:] = up_since or [time.monotonic()]
                return time.monotonic() - up_since[0] >= PROXY_FALL_WINDOW_S

            wait_for(back, timeout=30, interval=0.1, message=f"the proxy to send {name} requests again")
        return program

    def kill(self, name: str) -> float:
        """kill -9 of the host's whole process group; returns when."""
        program = self.programs[name]
        moment = time.time()
        program.stop(signal.SIGKILL, timeout=10)
        self.kills[program.pid] = moment
        return moment

    def worker_pids(self) -> dict[int, str]:
        return {pid: name for name in WORKER_HOSTS for pid in self.programs[name].pids}

    # -- tearing down ------------------------------------------------------------------------------------------

    def close(self) -> None:
        began = time.perf_counter()
        # Clients of the database and the bucket first, all at once; then the bucket and the database (a fast
        # shutdown: nothing is left to wait for).
        tiers = [[*WORKER_HOSTS, *(f"{name}-relay" for name in WORKER_HOSTS), "proxy", *API_HOSTS],
                 ["bucket", "db"]]
        for tier in tiers:
            programs = [self.programs[name] for name in tier if name in self.programs]
            for program in programs:
                program.signal_group(signal.SIGINT if program.name == "db" else signal.SIGTERM)
            for program in programs:
                program.wait_stopped(timeout=15)
        stopped = time.perf_counter()
        self.network.remove()
        self.timings["namespaces removed"] = time.perf_counter() - stopped
        if self.pg_data is not None:
            shutil.rmtree(self.pg_data, ignore_errors=True)
            self.pg_data = None
        self.timings["tear-down"] = time.perf_counter() - began
