"""The task as the API shows it: the JSON of the HTTP contract, and the encoded view the read routes answer with.

`task_json` is the reference. The SQL backends build the same JSON inside the database for the two hot reads
(the status poll and the list), from the `task_json` fragment of queries.sql, so the server only joins strings a
page long: building it in Python cost ~38 µs a task (Task.from_row, this dict, json.dumps), 2 ms of a 50-task
history page, against a few µs in the database (see docs/benchmarks.md, history). The contract suite checks the
database's JSON against this function for tasks in every state, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from genkeep.previews import REFERENCE_THUMBNAIL_SIDES, THUMBNAIL_SIDES, thumbnail_name
from genkeep.tasks.model import Task, TaskStatus, rfc3339

FINAL_STATUSES = frozenset(status.value for status in TaskStatus if status.is_final)

# Where the owner's browser fetches a task's images: FILES_PATH + task id + "/" + file name. The SQL backends put
# this prefix into their JSON fragment when they load their statements.
FILES_PATH = "/files/"


def file_url(task_id: str, name: str) -> str:
    """Where the owner's browser fetches a task's image."""
    return f"{FILES_PATH}{task_id}/{name}"


def thumbnails_json(task_id: str, name: str, sides: tuple[int, ...]) -> list[dict[str, Any]]:
    """Where the owner's browser fetches a picture's thumbnails, smallest first. Always listed: a thumbnail missing
    from the storage (a task older than thumbnails) is made by the file route on its first request."""
    return [{"url": file_url(task_id, thumbnail_name(name, side)), "max_side": side} for side in sides]


def task_json(task: Task) -> dict[str, Any]:
    """The task as the HTTP contract describes it."""
    return {
        "id": task.id,
        "type": task.type.value,
        "status": task.status.value,
        "prompt": task.prompt,
        "reference_images": [
            {"url": file_url(task.id, image.name), "width": image.width, "height": image.height,
             "thumbnails": thumbnails_json(task.id, image.name, REFERENCE_THUMBNAIL_SIDES),
             "filename": image.filename}
            for image in task.reference_images
        ],
        "image_url": file_url(task.id, task.result_name) if task.result_name else None,
        "image_thumbnails": thumbnails_json(task.id, task.result_name, THUMBNAIL_SIDES) if task.result_name else None,
        "error": {"code": task.error.code, "message": task.error.message} if task.error else None,
        "progress": task.progress,
        "preview_url": file_url(task.id, task.preview_name) if task.preview_name and not task.is_final else None,
        "engine": task.engine,
        "attempts": task.attempts,
        "notes": [note.value for note in task.notes],
        "batch": task.batch,
        "processing_since": rfc3339(task.processing_since),
        "created_at": rfc3339(task.created_at),
        "updated_at": rfc3339(task.updated_at),
        "finished_at": rfc3339(task.finished_at),
    }


def encode_task(task: Task) -> str:
    return json.dumps(task_json(task), ensure_ascii=False, separators=(",", ":"))


class TaskView(NamedTuple):
    """What a read route needs of a task: its JSON, already encoded, and what the manager decides by (its status
    and age for the late sweep, its id and creation time for the list's cursor). A tuple, made straight from a
    row of the `task_view` columns of queries.sql (id, status, created_at, the JSON): a frozen dataclass cost
    ~1.5 µs a task more, 75 µs of a history page."""

    id: str
    status: str
    created_at: int
    json: str

    @classmethod
    def of(cls, task: Task) -> TaskView:
        return cls(task.id, task.status.value, task.created_at, encode_task(task))

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES
