"""The task manager: the one place that changes a task.

User side: accept, cancel, retry, delete (and the reads that go with them). Worker side: claim, renew, progress,
save the provider job, complete (publishing the result file), fail, hand back. The sweeper fails what ran out of
time (R3.1, R3.2). Workers and routes call these; they write no SQL and no task files.

A task is "processing" from the moment it is accepted (R1.1) with its type (R4.1), prompt and reference images,
stored together; beyond what its owner may have processing at once (a catalog dropped in one go), it waits in line
as "pending", its timeout not started, and begins processing when one of the owner's tasks finishes. Final states
are final: every finishing write is compare-and-set.

Faults are not failures: a database or storage fault surfaces as `Unavailable` (the caller retries or hands the
attempt back); only an engine's verdict fails a task.

One clock: the backend stamps and judges every time that decides a task's fate (the database server's clock on
PostgreSQL); this process passes only durations, and records the moments the backend reports.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio
import PIL.Image

from genkeep.config import Settings
from genkeep.errors import InvalidInput, TaskNotFound, TooManyUnfinished, Unavailable, WrongState
from genkeep.previews import (
    PREVIEW_EXTENSION,
    PREVIEW_PREFIX,
    REFERENCE_THUMBNAIL_SIDES,
    THUMBNAIL_SIDES,
    encode_preview,
    encode_thumbnails,
    thumbnail_name,
    thumbnail_of,
)
from genkeep.reference_images import CleanImage
from genkeep.storage import ABANDONED_AFTER_SECONDS, EXTENSIONS, ImageStorage
from genkeep.tasks.backends import CapReached, DuplicateIdempotencyKey, ListQuery, TaskBackend
from genkeep.tasks.backends.base import Caps, UnfinishedCount
from genkeep.tasks.events import EVENT_ACCEPTED, EVENT_FINISHED, EVENT_SWEPT, TaskEvents
from genkeep.tasks.model import ReferenceImage, ResultNote, Task, TaskStatus, TaskType, now_millis
from genkeep.tasks.new_task import NewTask, is_task_id, new_task_id
from genkeep.tasks.transitions import Actor, Step, Transition, Transitions
from genkeep.tasks.view import TaskView

log = logging.getLogger(__name__)

# Tasks per page of the owner's list.
PAGE_SIZE_DEFAULT = 50
PAGE_SIZE_MAX = 100


@dataclass(frozen=True)
class Accepted:
    task: Task
    created: bool


@dataclass(frozen=True)
class Page:
    items: list[TaskView]
    next_cursor: str | None


# A page's cursor is the last task it showed, `<created_at in epoch milliseconds>-<task id>` (keyset: newest first
# by creation, then id). Every string of this form is a meaningful cursor (the page after such a task, whether or
# not it exists), so the published pattern says exactly which ones genkeep accepts. 18 digits stay below 2**62.
CURSOR_PATTERN = "^[0-9]{1,18}-[0-9a-f]{32}$"
_CURSOR = re.compile(CURSOR_PATTERN)


def encode_cursor(created_at: int, task_id: str) -> str:
    """The cursor of the page that continues after this task."""
    return f"{created_at}-{task_id}"


def decode_cursor(cursor: str) -> tuple[int, str]:
    if not _CURSOR.fullmatch(cursor):
        shown = cursor[:60].encode("unicode_escape").decode()
        raise InvalidInput(f"The cursor {shown!r} is not a next_cursor genkeep gives out "
                           "(<milliseconds>-<task id>); start again without it.", field="cursor")
    millis, task_id = cursor.split("-")
    return int(millis), task_id


class TaskManager:
    """Every transition of every task."""

    def __init__(self, backend: TaskBackend, storage: ImageStorage, settings: Settings) -> None:
        self.backend = backend
        self.storage = storage
        self.settings = settings
        self.events = TaskEvents()
        # Metrics and the transition log watch every change here, in one place (see transitions.py).
        self.transitions = Transitions()
        self.caps = Caps(per_owner=settings.max_unfinished_per_owner, studio=settings.max_unfinished,
                         waiting=settings.max_waiting_per_owner)
        # The backend's clock minus this process's, learned at each sweep (see clock_now).
        self._clock_offset_ms = 0

    # ---- the database, for the web app's lifespan, /readyz, /metrics and the pool ---------------------------

    async def open_async(self) -> None:
        await self.backend.open_async()

    async def close_async(self) -> None:
        await self.backend.close_async()

    async def ping(self) -> None:
        """Raise DatabaseUnavailable unless the database answers (readiness)."""
        await self.backend.aping()

    def unfinished_counts(self) -> list[UnfinishedCount]:
        return self.backend.unfinished_counts()

    @property
    def hears_other_processes(self) -> bool:
        """Whether other processes' events reach this one (`listen`); else the heartbeat and polls find out."""
        return self.backend.notifies_across_processes

    def listen(self, on_event: Callable[[str], None], stopped: Callable[[], bool]) -> None:
        """Deliver other processes' task events until `stopped()`."""
        self.backend.listen(on_event, stopped)

    # ---- the user's side: reading ---------------------------------------------------------------------------

    def _not_found(self, task_id: str) -> TaskNotFound:
        shown = task_id if is_task_id(task_id) else task_id[:40].encode("unicode_escape").decode()
        return TaskNotFound(f"There is no task {shown!r}; check the id, or it was deleted.", sentence="task_not_found")

    async def get(self, owner_id: str, task_id: str) -> TaskView:
        """One of the owner's tasks as the API shows it (404 for anyone else's). A task past its deadline reads as
        timed out at once, even if the periodic sweep is up to an interval away."""
        task = await self.backend.aview(task_id, owner_id) if is_task_id(task_id) else None
        if task is None:
            raise self._not_found(task_id)
        if task.processing_since is not None and not task.is_final and self._past_deadline(task.processing_since):
            # A write: off the event loop.
            swept = await anyio.to_thread.run_sync(self.sweep_one, task.id)
            if swept:
                task = await self.backend.aview(task_id, owner_id) or task
        return task

    def get_sync(self, owner_id: str, task_id: str) -> Task:
        task = self.backend.get(task_id, owner_id) if is_task_id(task_id) else None
        if task is None:
            raise self._not_found(task_id)
        return task

    def find(self, task_id: str, owner_id: str | None = None) -> Task | None:
        """A task by id (a worker's or a signed URL's read); None if unknown."""
        return self.backend.get(task_id, owner_id) if is_task_id(task_id) else None

    async def list_tasks(self, owner_id: str, *, task_type: TaskType | None = None,
                         statuses: Sequence[TaskStatus] = (), batch: str | None = None,
                         limit: int = PAGE_SIZE_DEFAULT, cursor: str | None = None) -> Page:
        if not 1 <= limit <= PAGE_SIZE_MAX:
            raise InvalidInput(f"limit must be between 1 and {PAGE_SIZE_MAX}, not {limit}.", field="limit")
        after = decode_cursor(cursor) if cursor is not None else None
        rows = await self.backend.alist(ListQuery(owner_id, task_type, tuple(statuses), batch, limit, after))
        items = rows[:limit]
        return Page(items, encode_cursor(items[-1].created_at, items[-1].id) if len(rows) > limit else None)

    async def check_room(self, owner_id: str) -> None:
        """Refuse early, before a request's body is read or any image decoded, when a cap is already reached.

        Both caps are enforced by the insert itself (an accept's or a retry's), atomically, on every process;
        this is only the early refusal that spares reading the body. Both counts stop at their cap, so a full
        studio costs a bounded read per refusal, whatever the backlog."""
        owner_cap = self.caps.owner_unfinished
        if await self.backend.acount_unfinished(owner_id, owner_cap) >= owner_cap:
            raise self._cap_error(CapReached("owner", owner_cap))
        if await self.backend.acount_unfinished(None, self.caps.studio) >= self.caps.studio:
            raise self._cap_error(CapReached("studio", self.caps.studio))

    def _cap_error(self, reached: CapReached) -> TooManyUnfinished:
        if reached.scope == "owner" and self.caps.waiting:
            running, waiting = self.caps.per_owner, self.caps.waiting
            return TooManyUnfinished(f"You already have {running} generations running and {waiting} waiting in line; "
                                     "wait for some to finish, or cancel some.", sentence="owner_line_full",
                                     values={"running": running, "waiting": waiting})
        if reached.scope == "owner":
            return TooManyUnfinished(f"You already have {reached.cap} generations in progress; wait for one to "
                                     "finish or cancel one.", sentence="owner_busy", values={"cap": reached.cap})
        return TooManyUnfinished("The studio is busy with as many generations as it can take; try again in a "
                                 "minute.", sentence="studio_busy")

    def _past_deadline(self, processing_since: int) -> bool:
        """Whether it is worth asking the backend to sweep this task (the backend judges by its own clock); a task
        waiting in line has no deadline yet."""
        return self.clock_now() - processing_since > self.settings.task_timeout * 1000

    def clock_now(self) -> int:
        """The backend's now as this process estimates it: its own clock corrected by the offset learned at the last
        sweep. It decides when to ask the database and what pages count elapsed time from, never a task's fate."""
        return now_millis() + self._clock_offset_ms

    def learn_clock(self) -> None:
        """Measure how far this process's clock is from the backend's (from the middle of the round trip)."""
        before, started = now_millis(), time.monotonic()
        theirs = self.backend.clock()
        self._clock_offset_ms = theirs - (before + int((time.monotonic() - started) * 500))

    # ---- the user's side: changing --------------------------------------------------------------------------

    def existing_for_key(self, owner_id: str, idempotency_key: str, new: NewTask) -> Accepted | None:
        """The task this owner already made with this Idempotency-Key, if any; InvalidInput if it was made from
        another request."""
        existing = self.backend.get_by_idempotency_key(owner_id, idempotency_key)
        if existing is None:
            return None
        self._check_same_request(existing, new.type, new.prompt, new.image_count)
        return Accepted(existing, created=False)

    @staticmethod
    def _check_same_request(existing: Task, task_type: TaskType, prompt: str | None, image_count: int) -> None:
        """A key stands for one request (as the IETF idempotency-key draft has it): the same key with another body
        is the client's mistake, not a repeat. Compared: the type, the prompt and the number of images (the images'
        bytes are not kept to compare)."""
        if (existing.type, existing.prompt, len(existing.reference_images)) != (task_type, prompt, image_count):
            raise InvalidInput("This Idempotency-Key was already used for a different generation; send a new key "
                               "with each new generation.", code="idempotency_key_reused")

    def accept(self, owner_id: str, new: NewTask, images: Sequence[CleanImage],
               idempotency_key: str | None = None) -> Accepted:
        """Store a new processing task and its reference images together (R1.1, R4.1)."""
        if len(images) != new.image_count:
            raise InvalidInput(f"{new.image_count} images were announced and {len(images)} arrived; send the "
                               "form again.", field="reference_images")
        # A key already used is found by the insert itself (the route looks first too, before decoding anything).
        task_id = new_task_id()
        filenames = new.filenames or (None,) * len(images)
        references = [ReferenceImage(f"reference-{index + 1}{image.extension}", image.width, image.height,
                                     image.content_type, filename)
                      for index, (image, filename) in enumerate(zip(images, filenames, strict=True))]
        files: list[tuple[str, bytes]] = []
        for ref, image in zip(references, images, strict=True):
            files += [(ref.name, image.data),
                      *((thumbnail_name(ref.name, side), webp) for side, webp in image.thumbnails)]
        # The thumbnails (made while the upload was decoded) travel with their originals: staged now, published
        # with the row.
        self.storage.stage(task_id, files)
        return self._commit(owner_id, task_id, new.type, new.prompt, references, idempotency_key, new.batch)

    def _commit(self, owner_id: str, task_id: str, task_type: TaskType, prompt: str | None,
                references: list[ReferenceImage], idempotency_key: str | None, batch: str | None) -> Accepted:
        # Created when the backend stores it, at its clock's moment, processing or waiting in line as it decides.
        task = Task(id=task_id, owner_id=owner_id, type=task_type, status=TaskStatus.PROCESSING, prompt=prompt,
                    reference_images=tuple(references), created_at=0, updated_at=0,
                    idempotency_key=idempotency_key, attempts=0, lease_expires_at=0, batch=batch)
        try:
            moment, status = self.backend.insert(task, self.caps)
        except DuplicateIdempotencyKey:
            self.storage.discard_staged(task_id)
            existing = self.backend.get_by_idempotency_key(owner_id, idempotency_key or "")
            if existing is None:
                raise WrongState("That Idempotency-Key was just used for a task that is gone; use a new key.") \
                    from None
            self._check_same_request(existing, task_type, prompt, len(references))
            return Accepted(existing, created=False)
        except CapReached as reached:
            self.storage.discard_staged(task_id)
            raise self._cap_error(reached) from None
        except BaseException:
            # Nothing left behind: the row did not commit, so neither do its files.
            self.storage.discard_staged(task_id)
            raise
        task = dataclasses.replace(task, status=status, created_at=moment, updated_at=moment,
                                   processing_since=moment if status is TaskStatus.PROCESSING else None)
        # Recorded the moment the row commits: on PostgreSQL the commit's NOTIFY may already have a worker claiming
        # the task, and its "started" must not come first in the log and the metrics.
        self.transitions.record(Transition.of(Step.ACCEPTED, task, moment, Actor.OWNER))
        with contextlib.suppress(Unavailable):
            # The row is the truth; a worker or the next start publishes the files if this move fails now.
            self.storage.publish(task_id)
        self.events.emit(EVENT_ACCEPTED)
        return Accepted(task, created=True)

    def cancel(self, owner_id: str, task_id: str) -> Task:
        task = self.get_sync(owner_id, task_id)
        if task.is_final:
            raise WrongState(f"The task already {task.status.value}; only unfinished tasks can be canceled.",
                             sentence="cancel_finished")
        moment = self.backend.fail(task_id, "canceled", "You canceled this generation.", owner_id=owner_id)
        if moment is None:
            raise WrongState("The task finished before it could be canceled.", sentence="cancel_finished")
        self.transitions.record(Transition.of(Step.FAILED, task, moment, Actor.OWNER, code="canceled"))
        self._announce_finished(task_id)
        self._make_room(owner_id)
        return self.get_sync(owner_id, task_id)

    def retry(self, owner_id: str, task_id: str) -> Task:
        """A new task with the same type, prompt and reference images as a failed one."""
        old = self.get_sync(owner_id, task_id)
        if old.status is not TaskStatus.FAILED:
            raise WrongState(f"The task {old.status.value}; only failed tasks can be retried.",
                             sentence="retry_not_failed")
        new_id = new_task_id()
        if not self.storage.stage_copies(new_id, old.id, [image.name for image in old.reference_images]):
            raise WrongState("This task's reference images are gone; start a new generation instead.",
                             sentence="retry_images_gone")
        # A retried photo of a batch stays in its batch (its card counts it, its download holds it).
        return self._commit(owner_id, new_id, old.type, old.prompt, list(old.reference_images), None, old.batch).task

    def delete(self, owner_id: str, task_id: str) -> None:
        task = self.get_sync(owner_id, task_id)
        if not task.is_final:
            raise WrongState("The task is still in progress; cancel it first, then delete it.",
                             sentence="delete_unfinished")
        # The row goes together with a durable note that its images are due for removal: a storage fault now
        # leaves the note, and the sweeper finishes the removal (finish_removals), so no image outlives its task.
        if not self.backend.delete_finished(task_id, owner_id):
            raise self._not_found(task_id)
        self._remove_images(task_id)

    def _remove_images(self, task_id: str) -> bool:
        """Remove a deleted task's images now; False if the storage failed (the removal stays pending)."""
        try:
            self.storage.remove_task(task_id)
        except Unavailable as fault:
            log.warning("task %s: images not removed yet (%s); the sweeper tries again", task_id, fault.code)
            return False
        with contextlib.suppress(Unavailable):
            # If this fails the removal is simply done again, finding nothing.
            self.backend.removal_done(task_id)
        return True

    def finish_removals(self, batch: int = 100) -> int:
        """Remove the images of deleted tasks that a storage fault (or a crash) left behind; how many were."""
        removed = 0
        for task_id in self.backend.pending_removals(batch):
            if not self._remove_images(task_id):
                break  # the storage is still away: the next sweep tries again
            removed += 1
        return removed

    def _make_room(self, owner_id: str) -> None:
        """One of the owner's tasks finished: the next ones in line begin processing, and workers hear of them.
        Never raises: a fault here leaves them waiting until the next sweep (see sweep)."""
        try:
            promoted = self.backend.promote(owner_id, self.caps.per_owner)
        except Unavailable as fault:
            log.warning("the tasks waiting behind a finished one wait for the next sweep (%s)", fault.code)
            return
        if promoted:
            self._announce_promoted(promoted)

    def _announce_promoted(self, task_ids: Sequence[str]) -> None:
        self._record_promoted(task_ids)
        self.events.emit(EVENT_ACCEPTED)
        self._notify_others(EVENT_ACCEPTED)

    def _announce_finished(self, task_id: str) -> None:
        """A running engine of this task stops at once: in this process, and in others through the database."""
        self.events.emit(EVENT_FINISHED + task_id)
        self._notify_others(EVENT_FINISHED + task_id)

    def _notify_others(self, event: str) -> None:
        if not self.hears_other_processes:
            return
        try:
            self.backend.notify(event)
        except Unavailable:
            # The heartbeat finds out within seconds anyway.
            log.warning("could not notify other processes of %s", event)

    # ---- the worker's side ----------------------------------------------------------------------------------

    def claim(self, worker_id: str, engines: dict[TaskType, str], *, limit: int = 1) -> list[Task]:
        """Take the oldest claimable tasks of the types this worker has engines for.

        A task is started only while at least `min_time_left` of its time is left: less would most likely be
        wasted (and, on a provider, billed) work that the timeout cuts off anyway; the sweeper fails it at its
        deadline."""
        max_age_ms = int((self.settings.task_timeout - self.settings.min_time_left) * 1000)
        claimed: list[Task] = []
        for engine in sorted(set(engines.values())):
            types = [task_type for task_type, name in engines.items() if name == engine]
            claimed += self.backend.claim(
                worker_id, engine, types, limit=limit - len(claimed), lease_ms=self._lease_ms(),
                max_age_ms=max_age_ms, max_attempts=self.settings.max_attempts)
            if len(claimed) >= limit:
                break
        for task in claimed:
            # The claim stamped updated_at. The wait is known for a first attempt only: a later one waited since an
            # attempt the row forgot.
            moment = task.updated_at
            since = task.processing_since if task.processing_since is not None else task.created_at
            waited = (moment - since) / 1000 if task.attempts == 1 else None
            self.transitions.record(Transition.of(Step.STARTED, task, moment, Actor.WORKER, duration=waited,
                                                  takeover=task.attempts > 1))
        return claimed

    def renew(self, worker_id: str, task_ids: Sequence[str]) -> set[str]:
        if not task_ids:
            return set()
        return self.backend.renew(worker_id, task_ids, self._lease_ms())

    def _lease_ms(self) -> int:
        return int(self.settings.lease_seconds * 1000)

    def report_progress(self, task: Task, worker_id: str, fraction: float) -> None:
        """Never raises: a progress write that fails is only a poll that shows older progress."""
        try:
            self.backend.set_progress(task.id, worker_id, max(0.0, min(1.0, fraction)))
        except Exception as error:
            log.warning("progress of task %s not saved (%s)", task.id, type(error).__name__)

    def save_provider_job(self, task: Task, worker_id: str, provider_job_id: str) -> bool:
        """Saved before the first poll: a worker that takes over resumes this job instead of paying twice."""
        return self.backend.save_provider_job(task.id, worker_id, provider_job_id)

    @contextlib.contextmanager
    def reference_files(self, task: Task) -> Iterator[list[Path] | None]:
        """Local paths of the task's reference images while its engine runs; None if one is missing (the task
        cannot run). Raises Unavailable if the storage cannot be read."""
        # The task may have been claimed between its row's commit and its files' publication.
        self.storage.publish(task.id)
        with self.storage.local_copies(task.id, [image.name for image in task.reference_images]) as paths:
            yield paths

    def save_preview(self, task: Task, worker_id: str, image: bytes | PIL.Image.Image, fraction: float | None,
                     previous: str | None) -> str | None:
        """Store the latest preview and point the task at it; returns the preview's name now in the row.

        Never raises: a preview that cannot be made or saved is only a card that shows an older one."""
        try:
            data = encode_preview(image)
        except Exception as error:
            log.warning("task %s: preview not readable (%s)", task.id, type(error).__name__)
            return previous
        name = f"{PREVIEW_PREFIX}{now_millis()}-{secrets.token_hex(3)}{PREVIEW_EXTENSION}"
        try:
            self.storage.write_result(task.id, name, data)
            saved = self.backend.set_preview(task.id, worker_id, name,
                                             None if fraction is None else max(0.0, min(1.0, fraction)))
        except Unavailable as fault:
            log.warning("task %s: preview not saved (%s)", task.id, fault.code)
            self._remove_quietly(task.id, name)
            return previous
        self._remove_quietly(task.id, previous if saved else name)
        return name if saved else previous

    def _remove_quietly(self, task_id: str, name: str | None) -> None:
        if name is not None:
            with contextlib.suppress(OSError, Unavailable):
                self.storage.remove_file(task_id, name)

    def clear_preview(self, task_id: str, name: str | None) -> None:
        """A finished task's preview file goes: the result (or the error) replaces it."""
        self._remove_quietly(task_id, name)

    # ---- thumbnails: what cards show of a result and of each reference image ---------------------------------

    @staticmethod
    def _thumbnails(task_id: str, name: str, data: bytes, sides: tuple[int, ...]) -> list[tuple[str, bytes]]:
        """The thumbnails of one picture, named after it; none if the picture cannot be read (the file route then
        serves the original in their place)."""
        try:
            return [(thumbnail_name(name, side), webp) for side, webp in encode_thumbnails(data, sides)]
        except Exception as error:
            log.warning("task %s: no thumbnails of %s (%s)", task_id, name, type(error).__name__)
            return []

    def _remove_with_thumbnails(self, task_id: str, name: str) -> None:
        """A result that will not be the task's goes with its thumbnails (what a fault leaves goes with the task)."""
        for file_name in (name, *(thumbnail_name(name, side) for side in THUMBNAIL_SIDES)):
            self._remove_quietly(task_id, file_name)

    def thumbnail_source(self, task: Task, name: str, *, signed: bool) -> str | None:
        """The picture of this task that `name` is a thumbnail of (a reference image or the result), if any."""
        wanted = thumbnail_of(name)
        if wanted is None or signed:
            return None
        original, side = wanted
        if original == task.result_name and side in THUMBNAIL_SIDES:
            return original
        if side in REFERENCE_THUMBNAIL_SIDES and any(image.name == original for image in task.reference_images):
            return original
        return None

    def make_thumbnails(self, task: Task, original: str) -> bool:
        """Make a picture's missing thumbnails now (tasks finished before thumbnails existed, a retry's copies):
        blocking, for a worker thread. False if the original is gone or cannot be read; raises Unavailable on a
        storage fault."""
        sides = THUMBNAIL_SIDES if original == task.result_name else REFERENCE_THUMBNAIL_SIDES
        with self.storage.local_copies(task.id, [original]) as paths:
            if not paths:
                return False
            data = paths[0].read_bytes()
        try:
            made = encode_thumbnails(data, sides)
        except Exception as error:
            log.warning("task %s: no thumbnails of %s (%s)", task.id, original, type(error).__name__)
            return False
        for side, webp in made:
            self.storage.write_result(task.id, thumbnail_name(original, side), webp)
        return True

    def complete(self, task: Task, worker_id: str, data: bytes, content_type: str,
                 notes: tuple[ResultNote, ...] = ()) -> bool:
        """Publish the result file and its thumbnails, then mark the task completed (R1.2); False if it finished
        meanwhile or was taken over (its late result changes nothing and leaves no file). Raises Unavailable on a
        fault."""
        extension = EXTENSIONS.get(content_type, ".png")
        name = f"result-{task.attempts}-{secrets.token_hex(4)}{extension}"
        try:
            for file_name, file_data in [(name, data), *self._thumbnails(task.id, name, data, THUMBNAIL_SIDES)]:
                self.storage.write_result(task.id, file_name, file_data)
        except Unavailable as fault:
            self._remove_with_thumbnails(task.id, name)
            self._record_fault(task, fault)
            raise
        try:
            moment = self.backend.complete(task.id, worker_id, name, notes)
        except BaseException as error:
            self._remove_with_thumbnails(task.id, name)
            if isinstance(error, Unavailable):
                self._record_fault(task, error)
            raise
        if moment is None:
            self._remove_with_thumbnails(task.id, name)
            return False
        self.transitions.record(Transition.of(Step.COMPLETED, task, moment, Actor.WORKER,
                                              duration=self._ran(task, moment)))
        self._make_room(task.owner_id)
        return True

    def fail(self, task: Task, worker_id: str, code: str, message: str) -> bool:
        """The engine's verdict (R1.3); False if the task had already finished or was taken over."""
        try:
            moment = self.backend.fail(task.id, code, message, worker_id=worker_id)
        except Unavailable as fault:
            self._record_fault(task, fault)
            raise
        if moment is None:
            return False
        self.transitions.record(Transition.of(Step.FAILED, task, moment, Actor.WORKER, code=code,
                                              duration=self._ran(task, moment)))
        self._make_room(task.owner_id)
        return True

    def hand_back(self, task: Task, worker_id: str, *, refund_attempt: bool) -> bool:
        """Give an unfinished task back for another worker to claim at once (shutdown, a fault)."""
        moment = self.backend.release(task.id, worker_id, refund_attempt=refund_attempt)
        if moment is None:
            return False
        self.transitions.record(Transition.of(Step.HANDED_BACK, task, moment, Actor.WORKER,
                                              duration=self._ran(task, moment)))
        return True

    @staticmethod
    def _ran(task: Task, moment: int) -> float:
        """Seconds since the worker claimed the task: `task` is the row its claim returned, `moment` the backend's."""
        return max(0.0, (moment - task.updated_at) / 1000)

    def _record_fault(self, task: Task, fault: Unavailable) -> None:
        self.transitions.record(Transition.of(Step.FAULT, task, self.clock_now(), Actor.WORKER, code=fault.code))

    def _record_swept(self, task_ids: Sequence[str]) -> None:
        """Timed-out and interrupted tasks, read back (only when someone watches: a mass sweep is one read)."""
        if not task_ids or not self.transitions.observed:
            return
        try:
            swept = self.backend.get_many(task_ids)
        except Unavailable:
            log.warning("%d swept tasks not counted: the database did not answer", len(task_ids))
            return
        for task in swept:
            moment = task.finished_at if task.finished_at is not None else self.clock_now()
            self.transitions.record(Transition.of(Step.FAILED, task, moment, Actor.SWEEPER,
                                                  code=task.error.code if task.error else None))

    def _record_promoted(self, task_ids: Sequence[str]) -> None:
        """Tasks whose turn came: their wait in line ends (only read back when someone watches)."""
        if not self.transitions.observed:
            return
        try:
            promoted = self.backend.get_many(task_ids)
        except Unavailable:
            return
        for task in promoted:
            self.transitions.record(Transition.of(Step.PROMOTED, task, task.processing_since or task.updated_at,
                                                  Actor.SWEEPER, duration=(task.updated_at - task.created_at) / 1000))

    def results(self, owner_id: str, *, batch: str | None = None, task_ids: Sequence[str] = ()) -> list[Task]:
        """The owner's completed tasks of a batch and of these ids, oldest first: what a download holds."""
        found = {task.id: task for task in self.backend.results(owner_id, batch=batch)} if batch is not None else {}
        wanted = [task_id for task_id in task_ids if is_task_id(task_id) and task_id not in found]
        if wanted:
            found |= {task.id: task for task in self.backend.results(owner_id, task_ids=wanted)}
        return sorted(found.values(), key=lambda task: (task.created_at, task.id))

    def current(self, task_id: str) -> Task | None:
        return self.backend.get(task_id)

    # ---- sweeping -------------------------------------------------------------------------------------------

    def timeout_message(self) -> str:
        limit = self.settings.task_timeout
        span = f"{limit / 60:g} minutes" if limit >= 60 else f"{limit:g} seconds"
        return f"The generation took longer than the {span} limit and was stopped; retry it."

    def _timeout_ms(self) -> int:
        return int(self.settings.task_timeout * 1000)

    def sweep_one(self, task_id: str) -> bool:
        swept = self.backend.sweep_timed_out(self._timeout_ms(), self.timeout_message(), task_id)
        if swept:
            self._record_swept(swept)
            self._announce_finished(task_id)
        return bool(swept)

    def sweep(self) -> list[str]:
        """Fail every task processing past the timeout (R3.1, R3.2), abandoned by its workers too often, or waiting
        in line too long; then begin the waiting tasks whose owners now have room."""
        self.learn_clock()
        timed_out = self.backend.sweep_timed_out(self._timeout_ms(), self.timeout_message())
        exhausted = self.backend.sweep_exhausted(
            self.settings.max_attempts,
            f"The workers running this generation stopped {self.settings.max_attempts} times; retry it.")
        waited = self.backend.sweep_waited_too_long(int(self.settings.wait_timeout * 1000), self.wait_message())
        swept = timed_out + exhausted + waited
        if swept:
            log.info("sweep: %d timed out, %d interrupted, %d waited too long", len(timed_out), len(exhausted),
                     len(waited))
            self._record_swept(swept)
            self.events.emit(EVENT_SWEPT)
            self._notify_others(EVENT_SWEPT)
        promoted = self.backend.promote(None, self.caps.per_owner)
        if promoted:
            self._announce_promoted(promoted)
        return swept

    def wait_message(self) -> str:
        limit = self.settings.wait_timeout
        span = f"{limit / 60:g} minutes" if limit >= 60 else f"{limit:g} seconds"
        return f"The generation waited in line for more than {span} without its turn coming; retry it."

    def remove_expired(self, batch: int = 500) -> int:
        """Retention: remove finished tasks (and their images) older than GENKEEP_RETENTION_DAYS; 0 keeps all."""
        if not self.settings.retention_days:
            return 0
        retention_ms = int(self.settings.retention_days * 86_400_000)
        removed = 0
        while ids := self.backend.expired_finished(retention_ms, batch):
            for task_id in ids:
                if self.backend.delete_expired(task_id):
                    self._remove_images(task_id)
                    removed += 1
            if len(ids) < batch:
                break
        if removed:
            log.info("retention: removed %d finished tasks older than %g days", removed,
                     self.settings.retention_days)
        return removed

    def recover_incoming(self) -> None:
        """Finish or discard what a crash interrupted between staging a task's files and committing (or
        removing) its row, and local copies of runs that died."""
        self.storage.discard_abandoned_copies()
        staged = self.storage.staged_task_ids()
        committed = self.backend.existing_ids([task_id for task_id, _ in staged])
        for task_id, age in staged:
            if task_id in committed:
                self.storage.publish(task_id)
            elif age > ABANDONED_AFTER_SECONDS:
                self.storage.discard_staged(task_id)
