"""The task as the API shows it: the JSON of the HTTP contract, and the encoded view the read routes answer with.

`task_json` is the reference, made from the declaration of the task's keys (task_fields.TASK_KEYS). The SQL
backends build the same JSON inside the database for the two hot reads (the status poll and the list), from the
`task_view` fragment of queries.sql written from the same declaration, so the server only joins strings a page
long: building it in Python cost ~38 µs a task (Task.from_row, this dict, json.dumps), 2 ms of a 50-task history
page, against a few µs in the database (see docs/benchmarks.md, history). The contract suite checks the
database's JSON against this function for tasks in every state, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from genkeep.tasks.model import Task, TaskStatus
from genkeep.tasks.task_fields import json_of

FINAL_STATUSES = frozenset(status.value for status in TaskStatus if status.is_final)


def task_json(task: Task) -> dict[str, Any]:
    """The task as the HTTP contract describes it."""
    return json_of(task)


def encode_task(task: Task) -> str:
    return json.dumps(task_json(task), ensure_ascii=False, separators=(",", ":"))


class TaskView(NamedTuple):
    """What a read route needs of a task: its JSON, already encoded, and what the manager decides by (its status
    and when it began processing, for the late sweep; its id and creation time for the list's cursor). A tuple,
    made straight from a row of the `task_view` columns of queries.sql (id, status, created_at, processing_since,
    the JSON): a frozen dataclass cost ~1.5 µs a task more, 75 µs of a history page."""

    id: str
    status: str
    created_at: int
    processing_since: int | None
    json: str

    @classmethod
    def of(cls, task: Task) -> TaskView:
        return cls(task.id, task.status.value, task.created_at, task.processing_since, encode_task(task))

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES
