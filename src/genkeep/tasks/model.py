"""What a generation task is: its type, its status, its inputs and its outcome."""

from __future__ import annotations

import enum
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any


class TaskType(enum.StrEnum):
    CREATE = "CREATE"
    WHITE_BACKGROUND = "WHITE_BACKGROUND"
    CLOTHING_CHANGE = "CLOTHING_CHANGE"


class TaskStatus(enum.StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"

    @property
    def is_final(self) -> bool:
        return self in (TaskStatus.COMPLETED, TaskStatus.FAILED)


UNFINISHED = (TaskStatus.PENDING, TaskStatus.PROCESSING)


class ResultNote(enum.StrEnum):
    """What a seller should know about a result besides the picture, said by the engine that made it; the pages
    say it beside the result in the seller's language."""

    # The product runs off the photo's edge, so part of it may be missing from the white-background picture.
    CUT_BY_FRAME = "cut_by_frame"

# How many reference images each type takes: (fewest, most).
IMAGE_COUNTS: dict[TaskType, tuple[int, int]] = {
    TaskType.CREATE: (0, 4),
    TaskType.WHITE_BACKGROUND: (1, 1),
    TaskType.CLOTHING_CHANGE: (2, 2),
}


@dataclass(frozen=True)
class ReferenceImage:
    """One stored reference image: its file name inside the task's folder, its size, and the name the seller's file
    had (no folders; None for images stored before names were kept), which a batch's download names results by."""

    name: str
    width: int
    height: int
    content_type: str
    filename: str | None = None


@dataclass(frozen=True)
class TaskError:
    code: str
    message: str


# Compared and hashed by value: two reads of an unchanged row are equal, which is what caches key on.
@dataclass(frozen=True)
class Task:
    """One generation task, as its row holds it."""

    id: str
    owner_id: str
    type: TaskType
    status: TaskStatus
    prompt: str | None
    reference_images: tuple[ReferenceImage, ...]
    # Times are integer milliseconds since the epoch (UTC), as stored.
    created_at: int
    updated_at: int
    finished_at: int | None = None
    result_name: str | None = None
    error: TaskError | None = None
    progress: float | None = None
    engine: str | None = None
    provider_job_id: str | None = None
    attempts: int = 0
    worker_id: str | None = None
    lease_expires_at: int | None = None
    idempotency_key: str | None = None
    preview_name: str | None = None
    notes: tuple[ResultNote, ...] = ()
    # The batch the owner's page grouped this task in (its own id for it), if any.
    batch: str | None = None
    # When the task began processing: its timeout counts from here. None while it waits in line (pending).
    processing_since: int | None = None

    @property
    def is_final(self) -> bool:
        return self.status.is_final

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Task:
        """A task from a row of the tasks table's columns, in the table's order, taken by name."""
        values = dict(zip(ROW_COLUMNS, row, strict=True))
        error_code = values.pop("error_code")
        error_message = values.pop("error_message")
        return cls(
            **values | {
                "type": TaskType(values["type"]),
                "status": TaskStatus(values["status"]),
                "reference_images": tuple(ReferenceImage(**image) for image in json.loads(values["reference_images"])),
                "error": TaskError(error_code, error_message or "") if error_code else None,
                "notes": tuple(ResultNote(note) for note in json.loads(values["notes"] or "[]")),
            },
        )

    def insert_params(self) -> dict[str, Any]:
        """The new row's values, by column name."""
        return {
            "id": self.id, "owner_id": self.owner_id, "type": self.type.value, "status": self.status.value,
            "prompt": self.prompt, "idempotency_key": self.idempotency_key, "batch": self.batch,
            "reference_images": json.dumps([asdict(image) for image in self.reference_images]),
            "created_at": self.created_at, "updated_at": self.updated_at,
        }


# The tasks table's columns in their order (the schema module checks it against the table).
ROW_COLUMNS = (
    "id", "owner_id", "type", "status", "prompt", "reference_images", "result_name", "error_code", "error_message",
    "progress", "engine", "provider_job_id", "attempts", "worker_id", "lease_expires_at", "idempotency_key",
    "created_at", "updated_at", "finished_at", "preview_name", "notes", "batch", "processing_since",
)


def now() -> datetime:
    return datetime.now(UTC)


def now_millis() -> int:
    return time.time_ns() // 1_000_000


def to_millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def rfc3339(millis: int | None) -> str | None:
    """RFC 3339 in UTC with milliseconds, as the API shows times."""
    if millis is None:
        return None
    seconds, rest = divmod(millis, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{rest:03d}Z"
