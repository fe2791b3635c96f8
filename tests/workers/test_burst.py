"""`genkeep worker --burst`: a task it runs is kept as under a started worker (its lease renewed, its engine
stopped by a cancel or a timeout, its progress and previews shown while it runs), then it shows its result."""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from genkeep.config import Settings
from genkeep.engines.base import EngineContext, EngineJob, EngineResult, EngineStopped, RunToCompletionEngine
from genkeep.studio import Studio
from genkeep.tasks.model import Task, TaskStatus, TaskType
from genkeep.workers.pool import WorkerPool
from tests.conftest import SCRIPTED_ENGINE
from tests.support.processes import genkeep_env, start
from tests.support.tasks import accept, pool_of, row
from tests.support.waiting import wait_for

# Long enough that the draft preview is on show for a while: the local engine spends it after the draft.
LOCAL_DELAY_S = 5
# Short, so that a run outlasts several leases in a few seconds.
LEASE_S = 1.0
LEASES_OUTLASTED = 3
STEP_S = 0.05
PNG = b"\x89PNG a kept result"


@contextlib.contextmanager
def memory_studio(tmp_path: Path, **overrides: Any) -> Iterator[Studio]:
    opened = Studio.open(Settings(data_dir=tmp_path / "data", database_url="memory:", workers=1,
                                  secret_key="test-secret-key-" + "x" * 24, lease_seconds=LEASE_S, **overrides))
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def memory(tmp_path: Path) -> Iterator[Studio]:
    """A studio on the in-memory backend whose leases last a second."""
    with memory_studio(tmp_path) as opened:
        yield opened


class LongEngine(RunToCompletionEngine):
    """Runs for `seconds` (or until stopped, or let go by the test), calling `meanwhile` at every step."""

    name = "long"
    rerun_safe = True

    def __init__(self, seconds: float = math.inf, meanwhile: Callable[[], None] = lambda: None) -> None:
        self.seconds = seconds
        self.meanwhile = meanwhile
        self.runs = 0
        self.started = threading.Event()
        self.stopped = threading.Event()
        self.let_go = threading.Event()
        self.ctx: EngineContext | None = None

    def run(self, job: EngineJob, ctx: EngineContext) -> EngineResult:
        self.runs += 1
        self.ctx = ctx
        self.started.set()
        end = time.monotonic() + self.seconds
        try:
            while time.monotonic() < end and not self.let_go.is_set():
                self.meanwhile()
                ctx.sleep(STEP_S)
        except EngineStopped:
            self.stopped.set()
            raise
        return EngineResult(PNG)


@contextlib.contextmanager
def burst_of(pool: WorkerPool, engine: LongEngine) -> Iterator[Future[int]]:
    """The pool's burst running in the background; on the way out its engine is let go, so it always returns."""
    with ThreadPoolExecutor(1, thread_name_prefix="burst") as executor:
        try:
            yield executor.submit(pool.run_burst)
        finally:
            engine.let_go.set()


def test_a_burst_run_longer_than_its_lease_keeps_it(memory: Studio) -> None:
    task = accept(memory)
    taken: list[Task] = []

    def another_worker_polls() -> None:
        taken.extend(memory.manager.claim("another-worker", {TaskType.CREATE: "long"}))

    engine = LongEngine(seconds=LEASES_OUTLASTED * LEASE_S, meanwhile=another_worker_polls)
    ran = pool_of(memory, engine).run_burst()
    assert taken == [], "another worker took the task over while the burst was still running it"
    final = row(memory, task.id)
    assert ran == 1 and engine.runs == 1
    assert final is not None and final.status is TaskStatus.COMPLETED and final.result_name is not None
    assert final.attempts == 1


def test_a_cancel_during_a_burst_stops_the_engine_and_the_burst_returns(memory: Studio) -> None:
    task = accept(memory)
    engine = LongEngine()
    with burst_of(pool_of(memory, engine), engine) as burst:
        wait_for(engine.started.is_set, message="the burst to start the task")
        memory.manager.cancel("owner-a", task.id)
        # In this process the cancel reaches the engine through the task events: told before the cancel returns,
        # not at a heartbeat.
        assert engine.ctx is not None and engine.ctx.should_stop()
        wait_for(burst.done, message="the burst to return after the cancel")
    assert burst.result() == 1 and engine.stopped.is_set()
    final = row(memory, task.id)
    assert final is not None and final.status is TaskStatus.FAILED and final.error is not None
    assert final.error.code == "canceled" and final.result_name is None


def test_a_timeout_during_a_burst_stops_the_engine_and_the_burst_returns(tmp_path: Path) -> None:
    with memory_studio(tmp_path, task_timeout=1.0) as studio:
        task = accept(studio)
        engine = LongEngine()
        with burst_of(pool_of(studio, engine), engine) as burst:
            wait_for(engine.started.is_set, message="the burst to start the task")
            wait_for(studio.manager.sweep, message="the sweeper to time the task out")
            wait_for(burst.done, message="the burst to return after the timeout")
        assert burst.result() == 1 and engine.stopped.is_set()
        final = row(studio, task.id)
        assert final is not None and final.status is TaskStatus.FAILED and final.error is not None
        assert final.error.code == "timeout" and final.result_name is None


@pytest.fixture
def studio(tmp_path: Path) -> Iterator[Studio]:
    """The studio's side of the database the burst works on: a page polling its tasks."""
    env = genkeep_env(tmp_path / "data", f"sqlite:///{tmp_path / 'genkeep.db'}")
    opened = Studio.open(Settings(data_dir=tmp_path / "data", database_url=env["GENKEEP_DATABASE_URL"],
                                  secret_key=env["GENKEEP_SECRET_KEY"], engine="none"))
    yield opened
    opened.close()


@pytest.mark.slow
def test_a_burst_run_shows_progress_and_a_preview_while_it_runs(studio: Studio, tmp_path: Path) -> None:
    task = accept(studio, "a red kite over the sea")
    env = genkeep_env(studio.settings.data_dir, studio.settings.database_url, GENKEEP_ENGINE="local",
                      GENKEEP_LOCAL_DELAY=str(LOCAL_DELAY_S))
    log_path = tmp_path / "burst.log"
    burst = start(["worker", "--burst"], env, log_path)
    try:
        def running_with_preview() -> Task | None:
            current = row(studio, task.id)
            assert current is not None
            if current.is_final:
                raise AssertionError(f"the task became {current.status} and never showed a preview: "
                                     f"{log_path.read_text()[-2000:]}")
            return current if current.preview_name is not None else None

        running = wait_for(running_with_preview, timeout=60, message="a preview while the burst runs the task")
        assert running.status is TaskStatus.PROCESSING
        assert running.progress is not None and 0.0 < running.progress < 1.0
        preview = studio.storage.read(task.id, running.preview_name or "")
        assert isinstance(preview, Path)
        with Image.open(preview) as picture:
            assert picture.width > 0 and picture.height > 0

        wait_for(lambda: burst.poll() is not None, timeout=60, message="the burst to run its task and exit")
    finally:
        if burst.poll() is None:
            burst.kill()
        burst.wait()
    assert burst.returncode == 0, log_path.read_text()[-2000:]
    final = row(studio, task.id)
    assert final is not None and final.status is TaskStatus.COMPLETED and final.result_name is not None
    assert final.preview_name is None and studio.storage.read(task.id, running.preview_name or "") is None


@pytest.mark.slow
def test_a_burst_worker_keeps_a_lease_its_run_outlasts(studio: Studio, tmp_path: Path) -> None:
    task = accept(studio, f"slow:{LEASES_OUTLASTED * LEASE_S}")
    env = genkeep_env(studio.settings.data_dir, studio.settings.database_url, GENKEEP_ENGINE=SCRIPTED_ENGINE,
                      GENKEEP_LEASE_SECONDS=str(LEASE_S))
    log_path = tmp_path / "burst.log"
    taken: list[Task] = []
    burst = start(["worker", "--burst"], env, log_path)
    try:
        wait_for(lambda: (row(studio, task.id) or task).worker_id, timeout=60, message="the burst to claim the task")

        def exited_while_another_worker_polls() -> bool:
            taken.extend(studio.manager.claim("another-worker", {TaskType.CREATE: "scripted"}))
            return burst.poll() is not None

        wait_for(exited_while_another_worker_polls, timeout=60, message="the burst to run its task and exit")
    finally:
        if burst.poll() is None:
            burst.kill()
        burst.wait()
    assert burst.returncode == 0, log_path.read_text()[-2000:]
    assert taken == [], "another worker took the task over while the burst was still running it"
    final = row(studio, task.id)
    assert final is not None and final.status is TaskStatus.COMPLETED and final.attempts == 1
