"""What a generation task is: its type, its status, its inputs and its outcome."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime


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

# How many reference images each type takes: (fewest, most).
IMAGE_COUNTS: dict[TaskType, tuple[int, int]] = {
    TaskType.CREATE: (0, 4),
    TaskType.WHITE_BACKGROUND: (1, 1),
    TaskType.CLOTHING_CHANGE: (2, 2),
}


@dataclass(frozen=True)
class ReferenceImage:
    """One stored reference image: its file name inside the task's folder, and its size."""

    name: str
    width: int
    height: int
    content_type: str


@dataclass(frozen=True)
class TaskError:
    code: str
    message: str


@dataclass(frozen=True)
class Task:
    """One generation task, as the store holds it."""

    id: str
    owner_id: str
    type: TaskType
    status: TaskStatus
    prompt: str | None
    reference_images: tuple[ReferenceImage, ...]
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None
    result_name: str | None = None
    error: TaskError | None = None
    progress: float | None = None
    engine: str | None = None
    provider_job_id: str | None = None
    attempts: int = 0
    worker_id: str | None = None
    lease_expires_at: datetime | None = None
    idempotency_key: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def is_final(self) -> bool:
        return self.status.is_final


def now() -> datetime:
    return datetime.now(UTC)


def to_millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def from_millis(millis: int) -> datetime:
    return datetime.fromtimestamp(millis / 1000, UTC)
