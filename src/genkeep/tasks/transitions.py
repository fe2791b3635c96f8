"""Task transitions as the task manager makes them, for observers: the metrics and the transition log.

The manager records one Transition after each change it commits (accepted, started, completed, failed, handed
back) and one for each fault it meets while recording an outcome (the worker retries it). Observers run in the
thread that made the change; one that fails is logged and never fails the transition.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from genkeep.tasks.model import Task, TaskType

log = logging.getLogger(__name__)


class Step(enum.StrEnum):
    ACCEPTED = "accepted"
    # A task waiting in line (pending) began processing: one of its owner's tasks finished.
    PROMOTED = "promoted"
    STARTED = "started"
    COMPLETED = "completed"
    FAILED = "failed"
    HANDED_BACK = "handed_back"
    # Not a change of state: a database or storage fault met while recording an outcome, which is retried.
    FAULT = "fault"


class Actor(enum.StrEnum):
    """Who made the change."""

    OWNER = "owner"
    WORKER = "worker"
    SWEEPER = "sweeper"


@dataclass(frozen=True)
class Transition:
    step: Step
    task_id: str
    # The owner's id as stored: observers must not show it (the log hashes it, the metrics never see it).
    owner_id: str
    type: TaskType
    engine: str | None
    attempt: int
    by: Actor
    # Seconds since the task was accepted.
    age: float
    # Seconds of the stage that ended: the wait for a worker (started, first attempt), the run (an outcome a
    # worker recorded, a hand-back); None when genkeep cannot tell.
    duration: float | None = None
    # The error code of a failure; the fault's code for a fault.
    code: str | None = None
    # A started task whose earlier attempt ended without an outcome (its worker died or stopped mid-run).
    takeover: bool = False

    @property
    def finished(self) -> bool:
        return self.step in (Step.COMPLETED, Step.FAILED)

    @classmethod
    def of(cls, step: Step, task: Task, moment: int, by: Actor, *, duration: float | None = None,
           code: str | None = None, takeover: bool = False) -> Transition:
        return cls(step=step, task_id=task.id, owner_id=task.owner_id, type=task.type, engine=task.engine,
                   attempt=task.attempts, by=by, age=max(0.0, (moment - task.created_at) / 1000),
                   duration=duration, code=code, takeover=takeover)


Observer = Callable[[Transition], None]


class Transitions:
    """The observers of one task manager's transitions."""

    def __init__(self) -> None:
        self._observers: list[Observer] = []
        self._lock = threading.Lock()

    @property
    def observed(self) -> bool:
        return bool(self._observers)

    def subscribe(self, observer: Observer) -> None:
        with self._lock:
            self._observers.append(observer)

    def record(self, transition: Transition) -> None:
        for observer in list(self._observers):
            try:
                observer(transition)
            except Exception:
                log.exception("an observer of task transitions failed on %s of %s", transition.step,
                              transition.task_id)
