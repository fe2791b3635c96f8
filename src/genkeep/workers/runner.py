"""One task's run: its engine called with a context, and the outcome handed to the task manager.

Only the engine's own verdict fails a task. A database or storage fault while recording the outcome is retried
with backoff for as long as this worker still holds the task; a storage fault that lasts fails the task with
its own code; a fault before the engine starts hands the attempt back.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import PIL.Image

from genkeep.engines.base import (
    Engine,
    EngineError,
    EngineJob,
    EngineResult,
    EngineStopped,
    RunToCompletionEngine,
    SubmitPollEngine,
)
from genkeep.errors import StorageUnavailable, Unavailable
from genkeep.tasks.manager import TaskManager
from genkeep.tasks.model import Task

log = logging.getLogger(__name__)

# Progress is written at most this often per task (by the pool's reporter): polls read it, but it is not worth a
# write per step.
PROGRESS_WRITE_INTERVAL = 0.5
# Previews are kept at most this often per task: a card polls every 2 s, so more would never be seen.
PREVIEW_WRITE_INTERVAL = 1.0
# Backoff between tries of recording an outcome through a fault: doubles up to the cap.
FIRST_BACKOFF_S = 0.2
MAX_BACKOFF_S = 3.0
# How long a storage fault may last before the task fails with storage_unavailable instead of waiting on.
STORAGE_PATIENCE_S = 20.0
STORAGE_FAILURE = ("storage_unavailable", "The image was generated but could not be saved: the studio's image "
                   "storage is full or unavailable. Retry in a few minutes.")


class StopReason(enum.Enum):
    """Why a run's engine was told to stop."""

    #: The task was canceled or timed out (finished by someone else): its result is no longer wanted.
    FINISHED = "finished"
    #: This worker could not renew its lease in time, so another worker may hold the task now.
    LEASE_LOST = "lease_lost"
    #: This worker is shutting down: the attempt is handed back for another worker to take.
    SHUTDOWN = "shutdown"


@dataclass
class TaskRun:
    """A task this worker holds, why its engine must stop (once it must), and whether it was handed back."""

    task: Task
    stop_reason: StopReason | None = None
    # Set with the reason: what the engine's waits wake on.
    stop: threading.Event = field(default_factory=threading.Event)
    handed_back: bool = False
    renewed_at: float = field(default_factory=time.monotonic)
    # What the engine reported and the pool's reporter has not written yet (see Reporter).
    progress: float | None = None
    progress_written: float | None = None
    preview: tuple[bytes | PIL.Image.Image, float | None] | None = None
    last_preview_write: float = 0.0
    preview_name: str | None = None
    report_lock: threading.Lock = field(default_factory=threading.Lock)
    # Not the report lock: a stop must not wait behind a report's write.
    halt_lock: threading.Lock = field(default_factory=threading.Lock)

    def halt(self, reason: StopReason) -> None:
        """Tell the engine to stop. The first reason stands, except that a lost lease overrides any: this worker
        no longer holds the task, whatever it was stopping for."""
        with self.halt_lock:
            if self.stop_reason is None or reason is StopReason.LEASE_LOST:
                self.stop_reason = reason
        self.stop.set()

    @property
    def lease_lost(self) -> bool:
        return self.stop_reason is StopReason.LEASE_LOST


class TaskContext:
    """The EngineContext a worker gives the engine running one task."""

    def __init__(self, run: TaskRun) -> None:
        self._run = run

    # Reports are only noted here: the pool's reporter thread writes them. An engine never waits on the database
    # or the storage for a report, so a fault there cannot hold it past its lease (it stops when told to).

    def report_progress(self, fraction: float) -> None:
        self._run.progress = max(0.0, min(1.0, fraction))

    def report_preview(self, image: bytes | PIL.Image.Image, fraction: float | None = None) -> None:
        self._run.preview = (image, fraction)
        if fraction is not None:
            self.report_progress(fraction)

    def should_stop(self) -> bool:
        return self._run.stop.is_set()

    def sleep(self, seconds: float) -> None:
        if self._run.stop.wait(seconds):
            raise EngineStopped(self._run.task.id)

    def check(self) -> None:
        if self._run.stop.is_set():
            raise EngineStopped(self._run.task.id)


def write_reports(run: TaskRun, manager: TaskManager, worker_id: str) -> None:
    """Write a run's latest progress (and, at most once a second, its latest preview); never raises."""
    with run.report_lock:
        moment = time.monotonic()
        if run.preview is not None and moment - run.last_preview_write >= PREVIEW_WRITE_INTERVAL:
            (image, fraction), run.preview = run.preview, None
            run.last_preview_write = moment
            run.preview_name = manager.save_preview(run.task, worker_id, image, fraction, run.preview_name)
            run.progress_written = fraction if fraction is not None else run.progress_written
        progress = run.progress
        if progress is not None and progress != run.progress_written:
            run.progress_written = progress
            manager.report_progress(run.task, worker_id, progress)


def rerun_free(engine: Engine) -> bool:
    """Whether running a task again costs nothing: a submit-then-poll engine resumes its job instead."""
    return isinstance(engine, SubmitPollEngine) or getattr(engine, "rerun_safe", False)


class Runner:
    """Runs claimed tasks for one worker id."""

    def __init__(self, manager: TaskManager, worker_id: str,
                 signed_url: Callable[[str, str], str] | None = None) -> None:
        self.manager = manager
        self.worker_id = worker_id
        self.signed_url = signed_url

    def run(self, run: TaskRun, engine: Engine) -> None:
        try:
            self._run(run, engine)
        finally:
            # Finished, canceled, timed out or handed back: its preview is stale either way (the row no longer
            # points at it once the task is final; a new run makes its own).
            with run.report_lock:
                run.preview = None
                if run.preview_name is not None and not (run.lease_lost or run.handed_back):
                    self.manager.clear_preview(run.task.id, run.preview_name)

    def _run(self, run: TaskRun, engine: Engine) -> None:
        task = run.task
        with contextlib.ExitStack() as files:
            try:
                # Local paths for the engine; with images in a bucket, copies that last as long as this run.
                paths = files.enter_context(self.manager.reference_files(task))
            except Unavailable as fault:
                log.warning("task %s handed back: its images cannot be read (%s)", task.id, fault.code)
                self._hand_back(run, refund=True)
                return
            if paths is None:
                self._record(run, lambda: self.manager.fail(
                    task, self.worker_id, "invalid_input",
                    "This task's reference images are missing; upload them again."))
                return
            self._run_engine(run, engine, paths)

    def _run_engine(self, run: TaskRun, engine: Engine, paths: list[Path]) -> None:
        task = run.task
        ctx = TaskContext(run)
        try:
            urls = tuple(self.signed_url(task.id, image.name) for image in task.reference_images) \
                if self.signed_url else ()
            job = EngineJob(task_id=task.id, type=task.type, prompt=task.prompt, reference_paths=tuple(paths),
                            reference_urls=urls, provider_job_id=task.provider_job_id, attempt=task.attempts)
            result = self._generate(run, engine, job, ctx)
        except EngineStopped:
            if run.stop_reason is StopReason.SHUTDOWN:
                # A run-to-completion engine that is not rerun-safe may already have billed: its attempt counts,
                # so the next worker fails it "interrupted" instead of paying again.
                self._hand_back(run, refund=rerun_free(engine))
                log.info("task %s handed back on shutdown", task.id)
            elif run.stop_reason is StopReason.FINISHED:
                self._drop_provider_job(task, engine)
            elif run.stop_reason is StopReason.LEASE_LOST:
                # Its renewals failed (a database fault, not the user's): give the task back at once if no other
                # worker has taken it over yet, so the fault does not count as one of its attempts (under database
                # blips on a busy machine, three lost leases used to fail a task "interrupted"). Not refunded where
                # a rerun may bill again, as on shutdown.
                self._hand_back(run, refund=rerun_free(engine))
            return
        except Unavailable as fault:
            # Signing image links or saving the provider job failed: hand the attempt back; the next worker
            # resumes or resubmits.
            log.warning("task %s handed back after a fault (%s)", task.id, fault.code)
            self._hand_back(run, refund=True)
            return
        except EngineError as error:
            code, message = error.code, error.message
            self._record(run, lambda: self.manager.fail(task, self.worker_id, code, message))
            return
        except Exception as error:
            log.exception("engine %s crashed on task %s", engine.name, task.id)
            crash = f"The image engine failed unexpectedly ({type(error).__name__}); retry the task."
            self._record(run, lambda: self.manager.fail(task, self.worker_id, "engine_error", crash))
            return
        # No stop check once the image exists: finishing is compare-and-set (a canceled or timed-out task ignores
        # it), and a worker shutting down saves a result rather than paying for it twice.
        self._record(run, lambda: self.manager.complete(task, self.worker_id, result.data, result.content_type,
                                                        result.notes))

    def _generate(self, run: TaskRun, engine: Engine, job: EngineJob, ctx: TaskContext) -> EngineResult:
        task = run.task
        if isinstance(engine, SubmitPollEngine):
            provider_job_id = task.provider_job_id
            if provider_job_id is None:
                provider_job_id = engine.submit(job, ctx)
                if not self.manager.save_provider_job(task, self.worker_id, provider_job_id):
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

    def _record(self, run: TaskRun, outcome: Callable[[], bool]) -> None:
        """Record an outcome through faults, for as long as this worker holds the task."""
        backoff = FIRST_BACKOFF_S
        storage_since: float | None = None
        while True:
            try:
                outcome()
                return
            except StorageUnavailable as fault:
                storage_since = storage_since or time.monotonic()
                if time.monotonic() - storage_since > STORAGE_PATIENCE_S:
                    log.error("task %s: storage unavailable for %s s (%s); failing it", run.task.id,
                              STORAGE_PATIENCE_S, fault.reason)
                    outcome = self._storage_failure(run)
                    continue
                log.warning("task %s: storage fault (%s); trying again", run.task.id, fault.reason)
            except Unavailable as fault:
                log.warning("task %s: database fault (%s); trying again", run.task.id, fault.code)
            if self._backoff(run, backoff):
                return
            backoff = min(backoff * 2, MAX_BACKOFF_S)

    def _backoff(self, run: TaskRun, seconds: float) -> bool:
        """Wait before the next try, waking when the engine is told to stop; True when no try is worth making."""
        if run.stop_reason is None:
            run.stop.wait(seconds)
        if run.stop_reason is StopReason.LEASE_LOST:
            log.warning("task %s: outcome not recorded and the lease is lost; another worker takes it", run.task.id)
            return True
        if run.stop_reason is StopReason.FINISHED:
            # Canceled or timed out meanwhile: recording is compare-and-set, so it would change nothing.
            log.info("task %s: finished elsewhere while its outcome waited on a fault; not recorded", run.task.id)
            return True
        if run.stop_reason is StopReason.SHUTDOWN:
            # Shutting down: the stop no longer paces the tries, so back off here (the result is worth saving).
            time.sleep(seconds)
        return False

    def _storage_failure(self, run: TaskRun) -> Callable[[], bool]:
        code, message = STORAGE_FAILURE
        return lambda: self.manager.fail(run.task, self.worker_id, code, message)

    def _hand_back(self, run: TaskRun, *, refund: bool) -> None:
        run.handed_back = True
        try:
            self.manager.hand_back(run.task, self.worker_id, refund_attempt=refund)
        except Unavailable:
            # The lease runs out instead; another worker takes the task then.
            log.warning("task %s could not be handed back; its lease will run out", run.task.id)

    def _drop_provider_job(self, task: Task, engine: Engine) -> None:
        """A canceled or timed-out task's provider job is no longer wanted: stop paying for it."""
        if not isinstance(engine, SubmitPollEngine):
            return
        try:
            current = self.manager.current(task.id)
        except Unavailable:
            return
        # Still processing means another worker took it over and resumes the same job: leave it running.
        if current is None or not current.is_final or current.provider_job_id is None:
            return
        job = EngineJob(task_id=current.id, type=current.type, prompt=current.prompt, reference_paths=(),
                        provider_job_id=current.provider_job_id, attempt=current.attempts)
        try:
            engine.cancel(job, current.provider_job_id)
        except Exception:
            log.warning("could not cancel provider job %s of task %s", current.provider_job_id, task.id,
                        exc_info=True)
