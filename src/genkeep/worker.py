"""Workers: claim a task with a lease, run its engine, finish it, and keep the lease alive meanwhile.

A lease that runs out means its worker died: another worker takes the task over (a submit-then-poll engine
resumes its provider job; a run-to-completion engine runs again only where that is safe). On shutdown a worker
stops claiming, lets running tasks finish for a grace period, then hands back what it still holds.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import PIL.Image

from genkeep.config import Settings
from genkeep.engines.base import (
    Engine,
    EngineError,
    EngineJob,
    EngineResult,
    EngineStopped,
    RunToCompletionEngine,
    SubmitPollEngine,
)
from genkeep.storage import EXTENSIONS, ImageStorage
from genkeep.tasks.model import Task
from genkeep.tasks.store import NOTIFY_CHANNEL, TaskStore

log = logging.getLogger(__name__)

# Progress is written at most this often per task: polls read it, but it is not worth a write per step.
PROGRESS_WRITE_INTERVAL = 0.5


def new_worker_id() -> str:
    return f"{socket.gethostname()[:24]}-{os.getpid()}-{secrets.token_hex(4)}"


@dataclass
class RunningTask:
    """A task this worker holds, and the flag that tells its engine to stop."""

    task: Task
    stop: threading.Event = field(default_factory=threading.Event)
    handing_back: bool = False
    last_progress_write: float = 0.0


class TaskContext:
    """The EngineContext a worker gives the engine running one task."""

    def __init__(self, running: RunningTask, store: TaskStore) -> None:
        self._running = running
        self._store = store

    def report_progress(self, fraction: float) -> None:
        moment = time.monotonic()
        if moment - self._running.last_progress_write >= PROGRESS_WRITE_INTERVAL or fraction >= 1.0:
            self._running.last_progress_write = moment
            self._store.set_progress(self._running.task.id, max(0.0, min(1.0, fraction)))

    def report_preview(self, image: bytes | PIL.Image.Image, fraction: float | None = None) -> None:
        # Previews are not stored yet; the progress they carry is.
        if fraction is not None:
            self.report_progress(fraction)

    def should_stop(self) -> bool:
        return self._running.stop.is_set()

    def sleep(self, seconds: float) -> None:
        if self._running.stop.wait(seconds):
            raise EngineStopped(self._running.task.id)

    def check(self) -> None:
        if self._running.stop.is_set():
            raise EngineStopped(self._running.task.id)


class Wakeup:
    """Wakes idle workers when a task is accepted (in this process, or via LISTEN/NOTIFY on PostgreSQL)."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def wait(self, timeout: float) -> None:
        if self._event.wait(timeout):
            self._event.clear()


class WorkerPool:
    """`concurrency` worker threads in this process, sharing one worker id, one heartbeat and one wake-up."""

    def __init__(self, store: TaskStore, storage: ImageStorage, engine: Engine, settings: Settings,
                 concurrency: int | None = None, *, signed_url: Callable[[str, str], str] | None = None) -> None:
        self.store = store
        self.storage = storage
        self.engine = engine
        self.settings = settings
        self.concurrency = settings.workers if concurrency is None else concurrency
        self.worker_id = new_worker_id()
        self.wakeup = Wakeup()
        self._signed_url = signed_url
        self._running: dict[str, RunningTask] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._finished = threading.Event()
        self._threads: list[threading.Thread] = []

    # ---- lifecycle -----------------------------------------------------------------------------------------------

    def start(self) -> None:
        for index in range(self.concurrency):
            thread = threading.Thread(target=self._work_loop, name=f"genkeep-worker-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)
        threads = [threading.Thread(target=self._heartbeat_loop, name="genkeep-heartbeat", daemon=True)]
        if not self.store.sqlite:
            threads.append(threading.Thread(target=self._listen_loop, name="genkeep-listen", daemon=True))
        for thread in threads:
            thread.start()
        log.info("worker %s: %d threads on engine %s", self.worker_id, self.concurrency, self.engine.name)

    def wake(self, _task: object = None) -> None:
        self.wakeup.set()

    def stop(self, grace: float | None = None) -> None:
        """Stop claiming; let running tasks finish within `grace` seconds, then hand back the rest."""
        grace = self.settings.shutdown_grace if grace is None else grace
        self._stopping.set()
        self.wakeup.set()
        deadline = time.monotonic() + grace
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        with self._lock:
            leftovers = list(self._running.values())
        for running in leftovers:
            running.handing_back = True
            running.stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._finished.set()
        self.engine.close()

    def run_burst(self) -> int:
        """Claim and run tasks until none is left to claim; returns how many ran (deterministic tests)."""
        count = 0
        while True:
            claimed = self._claim()
            if not claimed:
                return count
            self._run_guarded(claimed)
            count += 1

    # ---- loops ---------------------------------------------------------------------------------------------------

    def _claim(self) -> RunningTask | None:
        tasks = self.store.claim(self.worker_id, self.engine.name, limit=1,
                                 lease_seconds=self.settings.lease_seconds,
                                 max_attempts=self.settings.max_attempts)
        if not tasks:
            return None
        running = RunningTask(tasks[0])
        with self._lock:
            self._running[running.task.id] = running
        return running

    def _work_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                running = self._claim()
            except Exception:
                log.exception("claiming failed; trying again shortly")
                self.wakeup.wait(self.settings.worker_poll_interval)
                continue
            if running is None:
                self.wakeup.wait(self.settings.worker_poll_interval)
                continue
            # No sibling wake-up here: an accept wakes every idle thread, and a busy thread claims again as soon
            # as it finishes, so a backlog drains without extra claim statements contending for the write lock.
            self._run_guarded(running)

    def _run_guarded(self, running: RunningTask) -> None:
        """Run one task; whatever happens (the database down while recording the outcome), the thread goes on.

        A task whose outcome could not be recorded keeps its lease until it runs out, then another worker (or
        the sweeper) takes it: it is never lost."""
        try:
            self._run(running)
        except Exception:
            log.exception("could not record the outcome of task %s; its lease will run out", running.task.id)
        finally:
            with self._lock:
                self._running.pop(running.task.id, None)

    def _heartbeat_loop(self) -> None:
        # Also how soon a canceled or timed-out task's engine learns to stop: keep it short.
        interval = max(0.2, min(self.settings.lease_seconds / 3, 2.0))
        while not self._finished.wait(interval):
            with self._lock:
                held = list(self._running)
            if not held:
                continue
            try:
                kept = self.store.renew(self.worker_id, held, self.settings.lease_seconds)
            except Exception:
                log.exception("lease renewal failed; trying again")
                continue
            for task_id in set(held) - kept:
                # Canceled, timed out or taken over: its engine must stop, its result is not wanted.
                with self._lock:
                    running = self._running.get(task_id)
                if running is not None:
                    running.stop.set()

    def _listen_loop(self) -> None:
        import psycopg

        url = self.store.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        while not self._finished.is_set():
            try:
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    while not self._finished.is_set():
                        for _ in conn.notifies(timeout=1.0, stop_after=1):
                            self.wakeup.set()
            except Exception:
                log.exception("LISTEN connection lost; polling until it is back")
                self._stopping.wait(2.0)

    # ---- running one task ----------------------------------------------------------------------------------------

    def _job(self, task: Task) -> EngineJob:
        # The task may have been claimed in the moment between its row's commit and its files' move.
        self.storage.publish(task.id)
        paths = []
        for image in task.reference_images:
            path = self.storage.path(task.id, image.name)
            if path is None:
                raise EngineError("invalid_input", "This task's reference images are missing; upload them again.")
            paths.append(path)
        urls = tuple(self._signed_url(task.id, image.name) for image in task.reference_images) \
            if self._signed_url else ()
        return EngineJob(task_id=task.id, type=task.type, prompt=task.prompt, reference_paths=tuple(paths),
                         reference_urls=urls, provider_job_id=task.provider_job_id, attempt=task.attempts)

    def _run(self, running: RunningTask) -> None:
        task = running.task
        ctx = TaskContext(running, self.store)
        try:
            # No stop check once the image exists: finishing is compare-and-set (a canceled or timed-out task
            # ignores it), and a worker shutting down saves a result rather than paying for it twice.
            self._complete(task, self._generate(task, ctx))
        except EngineStopped:
            if running.handing_back:
                # A run-to-completion engine that is not rerun-safe may already have billed: its attempt counts,
                # so the next worker fails it "interrupted" instead of paying again.
                engine = self.engine
                rerun_free = isinstance(engine, SubmitPollEngine) or getattr(engine, "rerun_safe", False)
                self.store.release(task.id, self.worker_id, count_attempt=not rerun_free)
                log.info("task %s handed back on shutdown", task.id)
            else:
                self._drop_provider_job(task)
        except EngineError as error:
            self.store.fail(task.id, error.code, error.message, worker_id=self.worker_id)
        except Exception as error:
            log.exception("engine %s crashed on task %s", self.engine.name, task.id)
            self.store.fail(task.id, "engine_error",
                            f"The image engine failed unexpectedly ({type(error).__name__}); retry the task.",
                            worker_id=self.worker_id)

    def _generate(self, task: Task, ctx: TaskContext) -> EngineResult:
        job = self._job(task)
        engine = self.engine
        if isinstance(engine, SubmitPollEngine):
            provider_job_id = task.provider_job_id
            if provider_job_id is None:
                provider_job_id = engine.submit(job, ctx)
                # Saved before the first poll: a worker that takes over resumes this job, never pays twice.
                if not self.store.save_provider_job(task.id, provider_job_id):
                    raise EngineStopped(task.id)
            return engine.wait(job, provider_job_id, ctx)
        if isinstance(engine, RunToCompletionEngine):
            if task.attempts > 1 and not engine.rerun_safe:
                raise EngineError(
                    "interrupted",
                    "The worker running this generation stopped, and running it again could bill twice; "
                    "retry it if you want another try.",
                )
            return engine.run(job, ctx)
        raise TypeError(f"{type(engine).__name__} is neither RunToCompletionEngine nor SubmitPollEngine")

    def _drop_provider_job(self, task: Task) -> None:
        """A canceled or timed-out task's provider job is no longer wanted: stop paying for it."""
        if not isinstance(self.engine, SubmitPollEngine):
            return
        current = self.store.get(task.id)
        # Still processing means another worker took it over and resumes the same job: leave it running.
        if current is None or not current.is_final or current.provider_job_id is None:
            return
        try:
            self.engine.cancel(self._job(current), current.provider_job_id)
        except Exception:
            log.warning("could not cancel provider job %s of task %s", current.provider_job_id, task.id,
                        exc_info=True)

    def _complete(self, task: Task, result: EngineResult) -> None:
        extension = EXTENSIONS.get(result.content_type, ".png")
        name = f"result-{task.attempts}-{secrets.token_hex(4)}{extension}"
        self.storage.write_result(task.id, name, result.data)
        if not self.store.complete(task.id, name, worker_id=self.worker_id):
            # The task finished meanwhile (timeout, cancel): its late result changes nothing.
            self.storage.remove_file(task.id, name)
