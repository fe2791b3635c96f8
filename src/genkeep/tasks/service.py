"""The task lifecycle in one place: accept, read, list, cancel, retry, delete, finish, sweep.

A task is "processing" from the moment it is accepted (R1.1) with its type (R4.1), prompt and reference images,
stored together. Workers finish it "completed" with an image (R1.2) or "failed" with a reason (R1.3); the sweeper
fails it with "timeout" once it has been processing longer than the limit (R3.1, R3.2). Final states are final.
"""

from __future__ import annotations

import logging
import secrets
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from genkeep.config import Settings
from genkeep.reference_images import CleanImage
from genkeep.storage import ABANDONED_AFTER_SECONDS, ImageStorage
from genkeep.tasks.errors import InvalidInput, TaskNotFound, TooManyUnfinished, WrongState
from genkeep.tasks.model import (
    IMAGE_COUNTS,
    ReferenceImage,
    Task,
    TaskStatus,
    TaskType,
    now_millis,
)
from genkeep.tasks.store import DuplicateIdempotencyKey, InvalidCursor, Page, TaskStore

log = logging.getLogger(__name__)

IMAGE_LABELS: dict[TaskType, tuple[str, ...]] = {
    TaskType.CREATE: ("Reference image 1", "Reference image 2", "Reference image 3", "Reference image 4"),
    TaskType.WHITE_BACKGROUND: ("The product photo",),
    TaskType.CLOTHING_CHANGE: ("The person photo", "The garment photo"),
}


def new_task_id() -> str:
    """Unique and unguessable: 128 random bits."""
    return secrets.token_hex(16)


def is_task_id(text: str) -> bool:
    return len(text) == 32 and all(char in "0123456789abcdef" for char in text)


def parse_type(raw: str | None) -> TaskType:
    if not raw:
        raise InvalidInput("Choose a type: CREATE, WHITE_BACKGROUND or CLOTHING_CHANGE.", field="type")
    try:
        return TaskType(raw.strip().upper())
    except ValueError:
        raise InvalidInput(
            f"Unknown type {raw!r}; use CREATE, WHITE_BACKGROUND or CLOTHING_CHANGE.", field="type"
        ) from None


def image_label(task_type: TaskType, index: int) -> str:
    labels = IMAGE_LABELS[task_type]
    return labels[index] if index < len(labels) else f"Reference image {index + 1}"


def check_request(task_type: TaskType, prompt: str | None, image_count: int, settings: Settings) -> str | None:
    """Check what can be checked before any image is decoded; returns the cleaned prompt."""
    prompt = (prompt or "").strip() or None
    if task_type is TaskType.CREATE and prompt is None:
        raise InvalidInput("Describe the image you want: a prompt is required to create an image.",
                           field="prompt")
    if prompt is not None and len(prompt) > settings.max_prompt_chars:
        raise InvalidInput(
            f"The prompt is {len(prompt)} characters long; shorten it to {settings.max_prompt_chars} or fewer.",
            field="prompt",
        )
    fewest, most = IMAGE_COUNTS[task_type]
    if not fewest <= image_count <= most:
        wanted = {
            TaskType.CREATE: "between 0 and 4 reference images",
            TaskType.WHITE_BACKGROUND: "exactly 1 product photo",
            TaskType.CLOTHING_CHANGE: "exactly 2 images: the person first, then the garment",
        }[task_type]
        raise InvalidInput(f"{task_type.value} takes {wanted}; you sent {image_count}.",
                           field="reference_images")
    return prompt


@dataclass(frozen=True)
class Accepted:
    task: Task
    created: bool


class TaskService:
    """What users and workers ask of generation tasks."""

    def __init__(self, store: TaskStore, storage: ImageStorage, settings: Settings) -> None:
        self.store = store
        self.storage = storage
        self.settings = settings
        # Called after a task is committed: in-process workers wake at once.
        self.on_accepted: list[Callable[[Task], None]] = []

    # ---- accepting -----------------------------------------------------------------------------------------------

    def accept(self, owner_id: str, task_type: TaskType, prompt: str | None, images: Sequence[CleanImage],
               idempotency_key: str | None = None) -> Accepted:
        """Store a new processing task and its reference images together (R1.1, R4.1)."""
        if idempotency_key is not None and (existing := self.existing_for_key(owner_id, idempotency_key)):
            return existing
        prompt = check_request(task_type, prompt, len(images), self.settings)
        self._check_cap(owner_id)
        task_id = new_task_id()
        staging = self.storage.staging_dir(task_id)
        references = []
        for index, image in enumerate(images):
            name = f"reference-{index + 1}{image.extension}"
            (staging / name).write_bytes(image.data)
            references.append(ReferenceImage(name, image.width, image.height, image.content_type))
        return self._commit(owner_id, task_id, task_type, prompt, references, idempotency_key)

    def existing_for_key(self, owner_id: str, idempotency_key: str) -> Accepted | None:
        """The task this owner already made with this Idempotency-Key, if any."""
        existing = self.store.get_by_idempotency_key(owner_id, idempotency_key)
        return Accepted(existing, created=False) if existing is not None else None

    def _check_cap(self, owner_id: str) -> None:
        cap = self.settings.max_unfinished_per_owner
        if self.store.count_unfinished(owner_id) >= cap:
            raise TooManyUnfinished(
                f"You already have {cap} generations in progress; wait for one to finish or cancel one."
            )

    def _commit(self, owner_id: str, task_id: str, task_type: TaskType, prompt: str | None,
                references: list[ReferenceImage], idempotency_key: str | None) -> Accepted:
        moment = now_millis()
        task = Task(id=task_id, owner_id=owner_id, type=task_type, status=TaskStatus.PROCESSING, prompt=prompt,
                    reference_images=tuple(references), created_at=moment, updated_at=moment,
                    idempotency_key=idempotency_key)
        try:
            self.store.create(task)
        except DuplicateIdempotencyKey:
            self.storage.discard_staged(task_id)
            existing = self.store.get_by_idempotency_key(owner_id, idempotency_key or "")
            assert existing is not None
            return Accepted(existing, created=False)
        except BaseException:
            self.storage.discard_staged(task_id)
            raise
        self.storage.publish(task_id)
        for listener in self.on_accepted:
            listener(task)
        return Accepted(task, created=True)

    # ---- reading -------------------------------------------------------------------------------------------------

    def get(self, owner_id: str, task_id: str) -> Task:
        # Ids are 32 hex digits: anything else is unknown without asking the database (and NUL bytes or
        # megabyte-long ids never reach it).
        task = self.store.get(task_id, owner_id) if is_task_id(task_id) else None
        if task is None:
            raise TaskNotFound(f"There is no task {task_id!r}; check the id, or it was deleted.")
        if not task.is_final and self._past_deadline(task):
            # The periodic sweep may be up to one interval away: a reader sees the timeout the moment it is due.
            self.sweep_one(task.id)
            task = self.store.get(task_id, owner_id) or task
        return task

    def list_tasks(self, owner_id: str, *, task_type: TaskType | None, statuses: Sequence[TaskStatus], limit: int,
             cursor: str | None) -> Page:
        if not 1 <= limit <= 100:
            raise InvalidInput(f"limit must be between 1 and 100, not {limit}.", field="limit")
        try:
            return self.store.list_tasks(owner_id, task_type=task_type, statuses=statuses, limit=limit, cursor=cursor)
        except InvalidCursor:
            raise InvalidInput("The cursor is not one genkeep gave out; start again without it.",
                               field="cursor") from None

    def _past_deadline(self, task: Task) -> bool:
        return now_millis() - task.created_at > self.settings.task_timeout * 1000

    # ---- changing ------------------------------------------------------------------------------------------------

    def cancel(self, owner_id: str, task_id: str) -> Task:
        task = self.get(owner_id, task_id)
        if task.is_final:
            raise WrongState(f"The task already {task.status.value}; only unfinished tasks can be canceled.")
        if not self.store.fail(task_id, "canceled", "You canceled this generation.", owner_id=owner_id):
            raise WrongState("The task finished before it could be canceled.")
        return self.get(owner_id, task_id)

    def retry(self, owner_id: str, task_id: str) -> Task:
        """A new task with the same type, prompt and reference images as a failed one."""
        old = self.get(owner_id, task_id)
        if old.status is not TaskStatus.FAILED:
            raise WrongState(f"The task {old.status.value}; only failed tasks can be retried.")
        self._check_cap(owner_id)
        new_id = new_task_id()
        staging = self.storage.staging_dir(new_id)
        for image in old.reference_images:
            source = self.storage.path(old.id, image.name)
            if source is None:
                self.storage.discard_staged(new_id)
                raise WrongState("This task's reference images are gone; start a new generation instead.")
            shutil.copyfile(source, staging / image.name)
        return self._commit(owner_id, new_id, old.type, old.prompt, list(old.reference_images), None).task

    def delete(self, owner_id: str, task_id: str) -> None:
        task = self.get(owner_id, task_id)
        if not task.is_final:
            raise WrongState("The task is still in progress; cancel it first, then delete it.")
        if not self.store.delete_finished(task_id, owner_id):
            raise TaskNotFound(f"There is no task {task_id!r}; check the id, or it was deleted.")
        self.storage.remove_task(task_id)

    # ---- sweeping ------------------------------------------------------------------------------------------------

    def timeout_message(self) -> str:
        limit = self.settings.task_timeout
        span = f"{limit / 60:g} minutes" if limit >= 60 else f"{limit:g} seconds"
        return f"The generation took longer than the {span} limit and was stopped; retry it."

    def sweep_one(self, task_id: str) -> bool:
        return bool(self.store.sweep_timed_out(self.settings.task_timeout, self.timeout_message(), task_id))

    def sweep(self) -> list[str]:
        """Fail every task processing past the timeout (R3.1, R3.2) or abandoned by its workers too often."""
        timed_out = self.store.sweep_timed_out(self.settings.task_timeout, self.timeout_message())
        exhausted = self.store.sweep_exhausted(
            self.settings.max_attempts,
            f"The workers running this generation stopped {self.settings.max_attempts} times; retry it.",
        )
        if timed_out or exhausted:
            log.info("sweep: %d timed out, %d interrupted", len(timed_out), len(exhausted))
        return timed_out + exhausted

    def recover_incoming(self) -> None:
        """Finish or discard file moves that a crash interrupted between a row's commit and its files' move."""
        staged = self.storage.staged_task_ids()
        committed = self.store.existing_ids(task_id for task_id, _ in staged)
        for task_id, age in staged:
            if task_id in committed:
                self.storage.publish(task_id)
            elif age > ABANDONED_AFTER_SECONDS:
                self.storage.discard_staged(task_id)
