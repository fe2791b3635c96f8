"""Task events: their names, the PostgreSQL channel that carries them between processes, and the in-process bus.

The task manager emits an event after a change commits; workers listen (a new task wakes an idle one, a sweep
makes them beat now, a finished task stops its run). Other processes hear the same names through the backend's
notifications: on PostgreSQL, NOTIFY on CHANNEL (queries.sql's notify statement) and LISTEN on it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

# The PostgreSQL NOTIFY/LISTEN channel.
CHANNEL = "genkeep_tasks"
EVENT_ACCEPTED = "accepted"
EVENT_SWEPT = "swept"
# Followed by the task's id.
EVENT_FINISHED = "finished:"


class TaskEvents:
    """In-process listeners of task events ("accepted", "swept", "finished:<id>"); other processes hear them
    through the backend's notifications."""

    def __init__(self) -> None:
        self._listeners: list[Callable[[str], None]] = []
        self._lock = threading.Lock()

    def subscribe(self, listener: Callable[[str], None]) -> None:
        with self._lock:
            self._listeners.append(listener)

    def unsubscribe(self, listener: Callable[[str], None]) -> None:
        with self._lock, contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    def emit(self, event: str) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(event)
            except Exception:
                log.exception("a task event listener failed on %s", event)
