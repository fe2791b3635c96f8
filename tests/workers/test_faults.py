"""Faults are not failures: the worker and the task manager on the in-memory backend, in milliseconds."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from genkeep.config import Settings
from genkeep.engines.base import EngineContext, EngineJob, EngineResult, RunToCompletionEngine
from genkeep.errors import DatabaseUnavailable, StorageUnavailable
from genkeep.studio import Studio
from genkeep.tasks.backends.memory import MemoryBackend
from genkeep.tasks.model import TaskStatus
from genkeep.workers import runner
from genkeep.workers.pool import KEEPER_DIED_STATUS
from tests.support.storage import folder_of
from tests.support.tasks import accept, pool_of, row
from tests.support.waiting import wait_for

PNG = b"\x89PNG a result"


@pytest.fixture
def studio(tmp_path: Path) -> Iterator[Studio]:
    opened = Studio.open(Settings(data_dir=tmp_path / "data", database_url="memory:", workers=1,
                                  secret_key="test-secret-key-" + "x" * 24, lease_seconds=1.0))
    yield opened
    opened.close()


def memory(studio: Studio) -> MemoryBackend:
    assert isinstance(studio.backend, MemoryBackend)
    return studio.backend


class StepEngine(RunToCompletionEngine):
    """Reports progress in steps, calling `during` at each, then returns an image."""

    name = "step"
    rerun_safe = True

    def __init__(self, steps: int = 3, during: object = None, pause: float = 0.0) -> None:
        self.steps = steps
        self.during = during
        self.pause = pause
        self.runs = 0
        self.stopped = threading.Event()

    def run(self, job: EngineJob, ctx: EngineContext) -> EngineResult:
        self.runs += 1
        try:
            for step in range(self.steps):
                if callable(self.during):
                    self.during(step)
                ctx.report_progress((step + 1) / self.steps)
                ctx.sleep(self.pause)
        except BaseException:
            self.stopped.set()
            raise
        return EngineResult(PNG)


def test_a_failed_progress_write_never_reaches_the_engine(studio: Studio) -> None:
    task = accept(studio)

    def blip(step: int) -> None:
        memory(studio).down = step == 1

    pool_of(studio, StepEngine(steps=3, during=blip)).run_burst()
    final = row(studio, task.id)
    assert final is not None and final.status is TaskStatus.COMPLETED


def test_a_database_fault_while_completing_is_retried_until_it_passes(studio: Studio) -> None:
    task = accept(studio)
    backend = memory(studio)
    real_complete = backend.complete
    tries: list[int] = []

    def flaky(*args: object, **kwargs: object) -> int | None:
        tries.append(1)
        if len(tries) < 3:
            raise DatabaseUnavailable("blip")
        return real_complete(*args, **kwargs)  # type: ignore[arg-type]

    backend.complete = flaky  # type: ignore[method-assign]
    pool_of(studio, StepEngine()).run_burst()
    final = row(studio, task.id)
    assert final is not None and final.status is TaskStatus.COMPLETED and len(tries) == 3
    # The failed tries left no stray result files behind.
    assert [p.name for p in folder_of(studio).task_dir(task.id).glob("result-*")] == [final.result_name]


def test_a_full_disk_while_saving_is_retried_and_a_lasting_one_fails_with_its_own_code(
        studio: Studio, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "STORAGE_PATIENCE_S", 0.3)
    monkeypatch.setattr(runner, "MAX_BACKOFF_S", 0.05)
    full_until = [2]
    real_write = studio.storage.write_result

    def write(task_id: str, name: str, data: bytes) -> None:
        if full_until[0] > 0:
            full_until[0] -= 1
            raise StorageUnavailable("No space left on device")
        real_write(task_id, name, data)

    monkeypatch.setattr(studio.storage, "write_result", write)
    brief = accept(studio, "a brief fault")
    pool_of(studio, StepEngine()).run_burst()
    assert (row(studio, brief.id) or brief).status is TaskStatus.COMPLETED

    full_until[0] = 10**6
    lasting = accept(studio, "a lasting fault")
    pool_of(studio, StepEngine()).run_burst()
    final = row(studio, lasting.id)
    assert final is not None and final.status is TaskStatus.FAILED and final.error is not None
    assert final.error.code == "storage_unavailable"
    assert "could not be saved" in final.error.message and "Retry" in final.error.message
    assert not list(folder_of(studio).root.rglob(".*.partial"))


def test_unreadable_images_hand_the_attempt_back_instead_of_failing(studio: Studio,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    task = accept(studio)

    def unreadable(task_id: str) -> None:
        raise StorageUnavailable("Input/output error")

    monkeypatch.setattr(studio.storage, "publish", unreadable)
    engine = StepEngine()
    pool = pool_of(studio, engine)
    run = pool._claim()
    assert run is not None
    pool._run_guarded(run)
    handed_back = row(studio, task.id)
    assert handed_back is not None and handed_back.status is TaskStatus.PROCESSING
    assert handed_back.worker_id is None and handed_back.attempts == 0 and engine.runs == 0


def test_a_cancel_stops_the_running_engine_at_once_not_at_the_next_heartbeat(studio: Studio) -> None:
    slow = studio.settings.with_overrides(lease_seconds=600.0)  # heartbeat every 2 s
    engine = StepEngine(steps=10_000, pause=0.01)
    pool = pool_of(studio, engine, slow)
    pool.start()
    try:
        task = accept(studio)
        wait_for(lambda: engine.runs, message="the engine to start")
        studio.manager.cancel("owner-a", task.id)
        wait_for(engine.stopped.is_set, timeout=1.0, message="the engine to stop, well before a heartbeat")
    finally:
        pool.stop(grace=0)


def test_a_lease_that_cannot_be_renewed_stops_the_engine_before_another_worker_may_claim(studio: Studio) -> None:
    engine = StepEngine(steps=10_000, pause=0.01)
    pool = pool_of(studio, engine)
    pool.start()
    try:
        task = accept(studio)
        wait_for(lambda: engine.runs, message="the engine to start")
        memory(studio).down = True
        wait_for(engine.stopped.is_set, timeout=5, message="the engine to stop once its lease is at risk")
        still_held = studio.backend.tasks[task.id]  # type: ignore[attr-defined]
        assert still_held.status is TaskStatus.PROCESSING
        memory(studio).down = False
        # Nothing was recorded: the lease runs out, and the task is taken over (here, by the same pool).
        wait_for(lambda: engine.runs >= 2, timeout=10, message="the task to be taken over")
        wait_for(lambda: (row(studio, task.id) or task).status is TaskStatus.PROCESSING, message="a new run")
    finally:
        studio.manager.cancel("owner-a", task.id)
        pool.stop(grace=0)


def test_a_cancel_while_an_outcome_waits_out_a_fault_ends_the_wait_at_once(
        studio: Studio, monkeypatch: pytest.MonkeyPatch) -> None:
    """The backoff between tries of recording wakes on a stop: a canceled task's worker is free at once, not after
    the backoff (a minute here)."""
    monkeypatch.setattr(runner, "FIRST_BACKOFF_S", 60.0)
    tries = threading.Event()

    def down(*args: object, **kwargs: object) -> int | None:
        tries.set()
        raise DatabaseUnavailable("blip")

    monkeypatch.setattr(memory(studio), "complete", down)
    pool = pool_of(studio, StepEngine(), studio.settings.with_overrides(lease_seconds=600.0))
    pool.start()
    try:
        task = accept(studio)
        wait_for(tries.is_set, message="the first try to record the result")
        studio.manager.cancel("owner-a", task.id)
        wait_for(lambda: not pool._runs, timeout=10, message="the run to give up waiting")
        final = row(studio, task.id)
        assert final is not None and final.error is not None and final.error.code == "canceled"
    finally:
        pool.stop(grace=0)


def test_a_keeper_thread_that_dies_is_logged_and_ends_the_process(studio: Studio,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    pool = pool_of(studio, StepEngine())
    died: list[str] = []
    pool.keeper_died = died.append

    def broken(until: threading.Event) -> None:
        raise RuntimeError("a bug in the reporter")

    pool._report_loop = broken  # type: ignore[method-assign]
    pool.start()
    try:
        wait_for(lambda: died, message="the keeper's death to be noticed")
    finally:
        pool.stop(grace=0)
    assert died == ["genkeep-reports"]
    assert any(record.levelname == "CRITICAL" and "genkeep-reports died" in record.getMessage()
               for record in caplog.records)


def test_a_process_whose_keeper_died_exits_non_zero_for_its_supervisor(tmp_path: Path) -> None:
    script = f"""
import time
from genkeep.config import Settings
from genkeep.studio import Studio
from tests.support.tasks import pool_of
from tests.workers.test_faults import StepEngine

studio = Studio.open(Settings(data_dir={str(tmp_path / "data")!r}, database_url="memory:", workers=1,
                              secret_key="test-secret-key-" + "x" * 24))
pool = pool_of(studio, StepEngine())
def broken(until):
    raise RuntimeError("a bug in the heartbeat")
pool._heartbeat_loop = broken
pool.start()
time.sleep(60)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).parents[2])
    assert done.returncode == KEEPER_DIED_STATUS != 0
    assert "genkeep-heartbeat died" in done.stderr
