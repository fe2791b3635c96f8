"""The worker pool: `concurrency` threads sharing one worker id, one heartbeat and one wake-up.

Idle threads wake at once when a task is accepted (in this process through the manager's events, in others
through the backend's notifications). A canceled or timed-out task's engine is told to stop the same way, within a
moment; the heartbeat is the fallback. A lease that cannot be renewed for most of its length is treated as lost:
the engine stops before another worker can take the task, so two runs of one task never overlap. A burst keeps
the runs it holds with the same threads (the keepers) for as long as it lasts. A keeper that dies would leave
leases to run out and cancels unheard, so the process exits non-zero instead, for its supervisor to restart it.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable

from genkeep.config import Settings
from genkeep.engines.base import Engine
from genkeep.errors import Unavailable
from genkeep.tasks.events import EVENT_ACCEPTED, EVENT_FINISHED, EVENT_SWEPT
from genkeep.tasks.manager import TaskManager
from genkeep.tasks.model import TaskType
from genkeep.workers.heap import give_back_freed_memory
from genkeep.workers.runner import PROGRESS_WRITE_INTERVAL, Runner, StopReason, TaskRun, write_reports

log = logging.getLogger(__name__)

# Share of the lease after which a lease that could not be renewed counts as lost (the rest is the margin).
LEASE_SAFETY = 0.8
MAX_IDLE_BACKOFF_S = 5.0
# The exit status of a process whose keeper thread died (EX_SOFTWARE: an internal error).
KEEPER_DIED_STATUS = 70


def new_worker_id() -> str:
    return f"{socket.gethostname()[:24]}-{os.getpid()}-{secrets.token_hex(4)}"


def exit_for_restart(keeper: str) -> None:
    """End the process with a failure status: its supervisor starts it anew (and its tasks' leases run out)."""
    logging.shutdown()
    os._exit(KEEPER_DIED_STATUS)


class WorkerPool:
    def __init__(self, manager: TaskManager, engines: dict[TaskType, Engine], settings: Settings,
                 concurrency: int | None = None, *, signed_url: Callable[[str, str], str] | None = None) -> None:
        self.manager = manager
        self.engines = engines
        self.engine_names = {task_type: engine.name for task_type, engine in engines.items()}
        self.settings = settings
        self.concurrency = settings.workers if concurrency is None else concurrency
        self.worker_id = new_worker_id()
        self.runner = Runner(manager, self.worker_id, signed_url)
        self._wakeup = threading.Event()
        self._beat_now = threading.Event()
        self._runs: dict[str, TaskRun] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        # Set once the grace is over: every run held then, or registered later by a claim already under way, stops.
        self._handing_back = False
        self._finished = threading.Event()
        self._threads: list[threading.Thread] = []
        # Called with the keeper's name when one dies (tests replace it).
        self.keeper_died: Callable[[str], None] = exit_for_restart

    # ---- lifecycle ------------------------------------------------------------------------------------------

    def start(self) -> None:
        workers = [threading.Thread(target=self._work_loop, name=f"genkeep-worker-{index}", daemon=True)
                   for index in range(self.concurrency)]
        self._start_keepers(until=self._finished)
        for thread in workers:
            thread.start()
        self._threads = workers
        engines = ", ".join(f"{task_type.value}: {name}" for task_type, name in self.engine_names.items())
        log.info("worker %s: %d threads; engines %s", self.worker_id, self.concurrency, engines)

    def wake(self) -> None:
        self._wakeup.set()

    def on_event(self, event: str) -> None:
        if event == EVENT_ACCEPTED:
            self._wakeup.set()
        elif event == EVENT_SWEPT:
            self._beat_now.set()
        elif event.startswith(EVENT_FINISHED):
            with self._lock:
                run = self._runs.get(event[len(EVENT_FINISHED):])
            if run is not None:
                run.halt(StopReason.FINISHED)

    def stop(self, grace: float | None = None) -> None:
        """Stop claiming; let running tasks finish within `grace` seconds, then hand back the rest."""
        grace = self.settings.shutdown_grace if grace is None else grace
        self._stopping.set()
        self._wakeup.set()
        deadline = time.monotonic() + grace
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        with self._lock:
            self._handing_back = True
            leftovers = list(self._runs.values())
        for run in leftovers:
            run.halt(StopReason.SHUTDOWN)
        for thread in self._threads:
            thread.join(timeout=5)
        self._stop_keepers(self._finished)
        for engine in set(self.engines.values()):
            engine.close()

    def run_burst(self) -> int:
        """Claim and run tasks until none is left to claim, kept as in a started pool (leases renewed and guarded,
        a cancel or a timeout stopping the engine, progress and previews written); returns how many ran
        (deterministic tests)."""
        drained = threading.Event()
        keepers = self._start_keepers(until=drained)
        count = 0
        try:
            while (run := self._claim()) is not None:
                self._run_guarded(run)
                count += 1
        finally:
            self._stop_keepers(drained)
            # Joined: nothing is renewed or written once the burst has returned (and its studio may close).
            for thread in keepers:
                thread.join()
        return count

    # ---- keepers --------------------------------------------------------------------------------------------

    def _start_keepers(self, *, until: threading.Event) -> list[threading.Thread]:
        """The threads that keep the runs this pool holds until `until` is set: the heartbeat, the lease guard,
        the reporter and (where the backend has them) other processes' events."""
        self.manager.events.subscribe(self.on_event)
        keepers: dict[str, Callable[[], None]] = {
            "genkeep-heartbeat": lambda: self._heartbeat_loop(until),
            "genkeep-lease-guard": lambda: self._lease_guard_loop(until),
            "genkeep-reports": lambda: self._report_loop(until),
        }
        if self.manager.hears_other_processes:
            keepers["genkeep-listen"] = lambda: self.manager.listen(self.on_event, until.is_set)
        threads = [threading.Thread(target=self._keep, args=(name, loop), name=name, daemon=True)
                   for name, loop in keepers.items()]
        for thread in threads:
            thread.start()
        return threads

    def _keep(self, name: str, loop: Callable[[], None]) -> None:
        try:
            loop()
        except BaseException:
            log.critical("%s died; the process exits for its supervisor to restart it", name, exc_info=True)
            self.keeper_died(name)

    def _stop_keepers(self, until: threading.Event) -> None:
        """Tell the keepers started with `until` to stop: each does at its next look at it."""
        until.set()
        self._beat_now.set()
        self.manager.events.unsubscribe(self.on_event)

    # ---- loops ----------------------------------------------------------------------------------------------

    def _claim(self) -> TaskRun | None:
        # The lease is counted from before the claim: the database's clock started no later than this.
        asked_at = time.monotonic()
        claimed = self.manager.claim(self.worker_id, self.engine_names, limit=1)
        if not claimed:
            return None
        run = TaskRun(claimed[0], renewed_at=asked_at)
        with self._lock:
            self._runs[run.task.id] = run
            if self._handing_back:
                run.halt(StopReason.SHUTDOWN)
        return run

    def _idle(self, seconds: float) -> None:
        if self._wakeup.wait(seconds):
            self._wakeup.clear()

    def _work_loop(self) -> None:
        backoff = self.settings.worker_poll_interval
        while not self._stopping.is_set():
            try:
                run = self._claim()
            except Unavailable as fault:
                log.warning("claiming failed (%s); trying again in %.1f s", fault.code, backoff)
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, MAX_IDLE_BACKOFF_S)
                continue
            except Exception:
                log.exception("claiming failed; trying again shortly")
                self._stopping.wait(backoff)
                continue
            backoff = self.settings.worker_poll_interval
            if run is None:
                self._idle(self.settings.worker_poll_interval)
                continue
            # No sibling wake-up here: an accept wakes every idle thread, and a busy thread claims again as soon
            # as it finishes, so a backlog drains without extra claim statements contending for the write lock.
            self._run_guarded(run)

    def _run_guarded(self, run: TaskRun) -> None:
        try:
            self.runner.run(run, self.engines[run.task.type])
        except Exception:
            # Never lost: its lease runs out and another worker (or the sweeper) takes it.
            log.exception("task %s: run ended unexpectedly; its lease will run out", run.task.id)
        finally:
            with self._lock:
                self._runs.pop(run.task.id, None)
                idle = not self._runs
            if idle:
                give_back_freed_memory()

    def _report_loop(self, until: threading.Event) -> None:
        """Writes the engines' progress and previews, so that no engine waits on a write."""
        while not until.wait(PROGRESS_WRITE_INTERVAL):
            with self._lock:
                runs = list(self._runs.values())
            for run in runs:
                try:
                    write_reports(run, self.manager, self.worker_id)
                except Exception:
                    log.exception("task %s: progress not written", run.task.id)

    def _lease_guard_loop(self, until: threading.Event) -> None:
        """Stops every run whose lease may run out before it is renewed: another worker may claim it then.

        Its own thread, since a renewal can itself hang on the database for seconds."""
        margin = self.settings.lease_seconds * LEASE_SAFETY
        while not until.wait(min(0.1, self.settings.lease_seconds / 20)):
            moment = time.monotonic()
            with self._lock:
                runs = list(self._runs.values())
            for run in runs:
                if not run.lease_lost and moment - run.renewed_at > margin:
                    log.warning("task %s: lease not renewed for %.1f s; stopping its engine", run.task.id,
                                moment - run.renewed_at)
                    run.halt(StopReason.LEASE_LOST)

    def _heartbeat_loop(self, until: threading.Event) -> None:
        lease = self.settings.lease_seconds
        interval = max(0.1, min(lease / 4, 2.0))
        while not until.is_set():
            self._beat_now.wait(interval)
            self._beat_now.clear()
            with self._lock:
                held = dict(self._runs)
            if not held:
                continue
            moment = time.monotonic()
            try:
                kept = self.manager.renew(self.worker_id, list(held))
            except Exception as error:
                log.warning("lease renewal failed (%s); trying again", type(error).__name__)
                continue
            for task_id, run in held.items():
                if task_id in kept:
                    run.renewed_at = moment
                else:
                    # Canceled, timed out or taken over: its engine must stop, its result is not wanted.
                    run.halt(StopReason.FINISHED)
