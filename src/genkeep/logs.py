"""Logs for people (text) or for a log collector (GENKEEP_LOG_FORMAT=json: one JSON object per line), and the
transition log: one line per task transition, with the task's id, type, engine, attempt, duration and outcome.

Owner ids never reach a log: each is shown as a keyed hash (HMAC with the studio's secret key, the same on every
machine), so one owner's lines can be followed across machines without saying who they are.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from typing import Any

from genkeep.tasks.transitions import Step, Transition

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# The logger of task transitions: a collector can route or drop them by this name.
TRANSITIONS_LOGGER = "genkeep.transitions"
# The attribute of a log record that carries machine-readable fields (logging's `extra`).
FIELDS = "fields"


class JsonLines(logging.Formatter):
    """One JSON object per record: time, level, logger, message, the record's fields, and any traceback."""

    def format(self, record: logging.LogRecord) -> str:
        seconds, fraction = divmod(record.created, 1)
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int(fraction * 1000):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, FIELDS, None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure(log_format: str, level: int = logging.INFO) -> None:
    """This process's logging: every line to stderr, as text or as JSON lines."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonLines() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


class TransitionLog:
    """Writes one line per task transition (an Observer of the task manager's transitions)."""

    def __init__(self, secret_key: str) -> None:
        self._key = secret_key.encode()
        self._log = logging.getLogger(TRANSITIONS_LOGGER)

    def owner_hash(self, owner_id: str) -> str:
        return hmac.new(self._key, owner_id.encode(), hashlib.sha256).hexdigest()[:16]

    def __call__(self, transition: Transition) -> None:
        # A fault is no transition: the worker logs it as it retries.
        if transition.step is Step.FAULT or not self._log.isEnabledFor(logging.INFO):
            return
        fields: dict[str, Any] = {
            "event": "task_transition",
            "transition": transition.step.value,
            "task_id": transition.task_id,
            "type": transition.type.value,
            "engine": transition.engine,
            "attempt": transition.attempt,
            "duration_s": None if transition.duration is None else round(transition.duration, 3),
            "age_s": round(transition.age, 3),
            "outcome": transition.step.value if transition.finished else None,
            "code": transition.code,
            "by": transition.by.value,
            "takeover": transition.takeover,
            "owner": self.owner_hash(transition.owner_id),
        }
        words = " ".join(f"{name}={value}" for name, value in fields.items()
                         if name not in ("event", "transition", "task_id") and value not in (None, False))
        self._log.info("task %s %s: %s", transition.task_id, transition.step.value, words,
                       extra={FIELDS: fields})
