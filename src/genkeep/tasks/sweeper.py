"""The sweeper: fails tasks processing longer than the timeout, at startup (R3.2) and then periodically (R3.1)."""

from __future__ import annotations

import logging
import threading

from genkeep.tasks.manager import TaskManager

log = logging.getLogger(__name__)


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
        while not self._stop.wait(self.interval):
            try:
                self.manager.sweep()
            except Exception:
                # A database hiccup must not end sweeping: the next round tries again.
                log.exception("sweep failed; trying again in %s s", self.interval)
