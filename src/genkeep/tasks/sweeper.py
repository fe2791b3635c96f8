"""The sweeper: fails tasks processing longer than the timeout, at startup (R3.2) and then periodically (R3.1)."""

from __future__ import annotations

import logging
import threading
import time

from genkeep.errors import Unavailable
from genkeep.tasks.manager import TaskManager

log = logging.getLogger(__name__)


RETENTION_INTERVAL_S = 3600


class Sweeper:
    """Runs `TaskManager.sweep` every `interval` seconds on a background thread."""

    def __init__(self, manager: TaskManager, interval: float) -> None:
        self.manager = manager
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="genkeep-sweeper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        next_retention = time.monotonic()
        while not self._stop.wait(self.interval):
            try:
                self.manager.sweep()
                self.manager.finish_removals()
                if time.monotonic() >= next_retention:
                    # Hourly: old finished tasks are no hurry, and finding them reads the history. So are images
                    # that a crash elsewhere left staged (a long-running cluster may not restart for months).
                    next_retention = time.monotonic() + RETENTION_INTERVAL_S
                    self.manager.remove_expired()
                    self.manager.recover_incoming()
            except Unavailable as fault:
                log.warning("sweep failed (%s); trying again in %s s", fault.code, self.interval)
            except Exception:
                # Whatever happens, sweeping goes on: the next round tries again.
                log.exception("sweep failed; trying again in %s s", self.interval)
