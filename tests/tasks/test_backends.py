"""The backend contract: what the task manager relies on, on the in-memory backend, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from genkeep.tasks import database
from genkeep.tasks.backends import CapReached, DuplicateIdempotencyKey, ListQuery, TaskBackend, open_backend
from genkeep.tasks.backends.base import Caps
from genkeep.tasks.model import ReferenceImage, ResultNote, Task, TaskStatus, TaskType
from genkeep.tasks.new_task import new_task_id
from genkeep.tasks.view import TaskView, task_json
from tests.support.database import connect as connect_database
from tests.support.loop import run

ROOMY = Caps(per_owner=1000, studio=10_000)
ALL_TYPES = list(TaskType)
T0 = 1_700_000_000_000


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TaskBackend]:
    if request.param == "memory":
        url = "memory:"
    elif request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'genkeep.db'}"
        database.upgrade(url, tmp_path)
    else:
        url = request.getfixturevalue("postgres_url")
        database.upgrade(url, tmp_path)
        engine = connect_database(url)
        with engine.begin() as conn:
            conn.execute(text("TRUNCATE tasks, removals"))
        engine.dispose()
    opened = open_backend(url)
    yield opened
    opened.close()


def new(owner: str = "owner-a", task_type: TaskType = TaskType.CREATE, created: int = T0,
        key: str | None = None) -> Task:
    return Task(id=new_task_id(), owner_id=owner, type=task_type, status=TaskStatus.PROCESSING, prompt="a kite",
                reference_images=(), created_at=created, updated_at=created, idempotency_key=key, attempts=0,
                lease_expires_at=0, processing_since=created)


def claim(backend: TaskBackend, worker: str = "w1", now: int = T0 + 1000, lease: int = 30_000,
          types: list[TaskType] | None = None, limit: int = 1) -> list[Task]:
    return backend.claim(worker, "scripted", types or ALL_TYPES, limit=limit, now=now, lease_ms=lease,
                         max_age_ms=now, max_attempts=3)


def test_an_inserted_task_reads_back_equal_and_only_for_its_owner(backend: TaskBackend) -> None:
    task = new()
    backend.insert(task, ROOMY, now=task.created_at)
    assert backend.get(task.id) == task
    assert backend.get(task.id, "owner-a") == task
    assert backend.get(task.id, "owner-b") is None
    assert run(backend.aview(task.id, "owner-b")) is None
    view = run(backend.aview(task.id, "owner-a"))
    assert view is not None and (view.id, view.status, view.created_at) == (task.id, "processing", task.created_at)


def test_the_owner_cap_holds_at_insert_and_counts_stop_at_the_cap(backend: TaskBackend) -> None:
    caps = Caps(per_owner=2, studio=1000)
    backend.insert(new("a"), caps, now=T0)
    backend.insert(new("a"), caps, now=T0)
    with pytest.raises(CapReached) as owner_cap:
        backend.insert(new("a"), caps, now=T0)
    assert owner_cap.value.scope == "owner"
    backend.insert(new("b"), caps, now=T0)
    assert run(backend.acount_unfinished("a", 10)) == 2
    assert run(backend.acount_unfinished(None, 10)) == 3
    # Counting the studio stops at the cap: its cost is bounded by the cap, not by the backlog.
    assert run(backend.acount_unfinished(None, 2)) == 2


def test_the_owner_cap_holds_under_concurrent_accepts(backend: TaskBackend) -> None:
    caps = Caps(per_owner=5, studio=1000)
    outcomes: list[str] = []
    lock = threading.Lock()

    def accept() -> None:
        try:
            backend.insert(new("busy-owner"), caps, now=T0)
            result = "accepted"
        except CapReached:
            result = "refused"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=accept) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("accepted") == 5 and outcomes.count("refused") == 15


def test_the_studio_cap_holds_at_insert_under_concurrent_accepts_of_many_owners(backend: TaskBackend) -> None:
    caps = Caps(per_owner=5, studio=6)
    outcomes: list[str] = []
    lock = threading.Lock()

    def accept(owner: str) -> None:
        try:
            backend.insert(new(owner), caps)
            result = "accepted"
        except CapReached as reached:
            result = reached.scope
        with lock:
            outcomes.append(result)

    # A new owner per accept, as a flood of throwaway cookies would be.
    threads = [threading.Thread(target=accept, args=(f"throwaway-{n}",)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("accepted") == 6 and outcomes.count("studio") == 10
    assert run(backend.acount_unfinished(None, 100)) == 6


def test_an_idempotency_key_is_used_once_per_owner(backend: TaskBackend) -> None:
    first = new(key="click-1")
    backend.insert(first, ROOMY, now=first.created_at)
    with pytest.raises(DuplicateIdempotencyKey):
        backend.insert(new(key="click-1"), ROOMY, now=T0)
    backend.insert(new("owner-b", key="click-1"), ROOMY, now=T0)
    assert backend.get_by_idempotency_key("owner-a", "click-1") == first


def test_lists_are_newest_first_filtered_and_keyset_paged(backend: TaskBackend) -> None:
    made = [new(task_type=TaskType.CREATE if n % 2 else TaskType.WHITE_BACKGROUND, created=T0 + n)
            for n in range(6)]
    for task in made:
        backend.insert(task, ROOMY, now=task.created_at)
    backend.insert(new("owner-b"), ROOMY, now=T0)
    creates = [task.id for task in reversed(made) if task.type is TaskType.CREATE]
    page = run(backend.alist(ListQuery("owner-a", TaskType.CREATE, limit=2)))
    assert [task.id for task in page] == creates[:3]  # limit + 1: the extra says there is more
    after = (page[1].created_at, page[1].id)
    rest = run(backend.alist(ListQuery("owner-a", TaskType.CREATE, limit=2, after=after)))
    assert [task.id for task in rest] == creates[2:]
    unfinished = run(backend.alist(ListQuery("owner-a", statuses=(TaskStatus.PENDING,
                                                                          TaskStatus.PROCESSING))))
    assert len(unfinished) == 6
    assert run(backend.alist(ListQuery("owner-a", statuses=(TaskStatus.COMPLETED,)))) == []


def test_the_database_shows_every_task_exactly_as_task_json_does(backend: TaskBackend) -> None:
    """The poll and the list answer JSON the database builds; it must be task_json's, field for field."""
    def photo(name: str) -> ReferenceImage:
        return ReferenceImage(name, 1024, 768, "image/jpeg")

    odd_prompt = 'He said "hi" \\ back\nslash\t文字 🎈 </script>'
    shapes = [
        dataclasses.replace(new(created=T0 + 1), prompt=odd_prompt),
        dataclasses.replace(new(task_type=TaskType.WHITE_BACKGROUND, created=T0 + 999), prompt=None,
                            reference_images=(dataclasses.replace(photo("reference-1.jpg"),
                                                                  filename='商品 "01".jpg'),),
                            batch="catalog-1"),
        dataclasses.replace(new(task_type=TaskType.CLOTHING_CHANGE, created=T0 + 123_456_789), prompt="",
                            reference_images=(photo("reference-1.png"), photo("reference-2.webp"))),
        new(created=T0 + 86_400_000 * 400 + 7),
        new(created=T0 + 5),
    ]
    for task in shapes:
        backend.insert(task, ROOMY, now=task.created_at)
    running, previewing, done, canceled, plain = shapes
    held = {t.id for t in claim(backend, "w1", now=T0 + 86_400_000 * 401, limit=5)}
    assert held == {task.id for task in shapes}
    moment = T0 + 86_400_000 * 401 + 42
    assert backend.set_preview(previewing.id, "w1", "preview-1700000000000-ab.webp", 0.35, now=moment)
    assert backend.set_progress(running.id, "w1", 0.5, now=moment)
    assert backend.complete(done.id, "w1", "result.png", (ResultNote.CUT_BY_FRAME,), now=moment + 1)
    assert backend.fail(canceled.id, "canceled", 'You canceled "this" generation — 已取消.', now=moment + 2,
                        owner_id="owner-a")
    assert backend.fail(plain.id, "engine_error", "", now=moment + 3, worker_id="w1")

    listed = {view.id: view for view in run(backend.alist(ListQuery("owner-a", limit=10)))}
    for task in shapes:
        expected = task_json(backend.get(task.id) or task)
        view = run(backend.aview(task.id, "owner-a"))
        assert view is not None and json.loads(view.json) == expected
        assert json.loads(listed[task.id].json) == expected
    assert json.loads(listed[previewing.id].json)["preview_url"].endswith("/preview-1700000000000-ab.webp")
    assert json.loads(listed[done.id].json)["notes"] == ["cut_by_frame"]
    assert json.loads(listed[plain.id].json)["notes"] == []


def test_concurrent_polls_each_read_their_own_task_and_only_for_its_owner(backend: TaskBackend) -> None:
    """On PostgreSQL concurrent polls share round trips; each must still get its own answer."""
    made = [new(owner=f"owner-{n % 3}", created=T0 + n) for n in range(30)]
    for task in made:
        backend.insert(task, ROOMY, now=task.created_at)
    asks = ([(task.id, task.owner_id) for task in made] + [(task.id, "intruder") for task in made[:5]]
            + [(new_task_id(), "owner-0")]) * 3

    async def poll_all() -> list[TaskView | None]:
        await backend.open_async()
        try:
            return list(await asyncio.gather(*(backend.aview(task_id, owner) for task_id, owner in asks)))
        finally:
            await backend.close_async()

    owners = {task.id: task.owner_id for task in made}
    for (task_id, owner), view in zip(asks, run(poll_all()), strict=True):
        if owners.get(task_id) == owner:
            assert view is not None and view.id == task_id and json.loads(view.json)["id"] == task_id
        else:
            assert view is None


def test_concurrent_first_pages_each_read_their_own_owners_tasks(backend: TaskBackend) -> None:
    """On PostgreSQL concurrent first pages (history and recovery) share round trips; each gets its own page."""
    made = [new(owner=f"owner-{n % 4}", task_type=ALL_TYPES[n % 3], created=T0 + n) for n in range(48)]
    for task in made:
        backend.insert(task, ROOMY, now=task.created_at)
    backend.fail(made[-1].id, "canceled", "You canceled this generation.", now=T0 + 100, owner_id=made[-1].owner_id)
    unfinished = (TaskStatus.PENDING, TaskStatus.PROCESSING)
    asks = [ListQuery(f"owner-{n % 5}", ALL_TYPES[n % 3], statuses, limit=limit)
            for n in range(15) for statuses in (unfinished, (TaskStatus.PROCESSING,), ()) for limit in (2, 50)]

    async def list_all() -> list[list[TaskView]]:
        await backend.open_async()
        try:
            return list(await asyncio.gather(*(backend.alist(query) for query in asks * 2)))
        finally:
            await backend.close_async()

    for query, page in zip(asks * 2, run(list_all()), strict=True):
        expected = [task.id for task in sorted(made, key=lambda task: task.created_at, reverse=True)
                    if task.owner_id == query.owner_id and task.type is query.type
                    and (task is not made[-1] or not query.statuses)]
        assert [view.id for view in page] == expected[:query.limit + 1]


def test_claiming_takes_the_oldest_first_and_an_abandoned_task_before_newer_ones(backend: TaskBackend) -> None:
    old, newer = new(created=T0), new(created=T0 + 10)
    backend.insert(old, ROOMY, now=old.created_at)
    [claimed] = claim(backend, "w1", now=T0 + 20, lease=100)
    assert claimed.id == old.id and claimed.attempts == 1 and claimed.worker_id == "w1"
    backend.insert(newer, ROOMY, now=newer.created_at)
    # w1 died: its lease runs out while a newer, never-claimed task waits too.
    [taken_over] = claim(backend, "w2", now=T0 + 500)
    assert taken_over.id == old.id and taken_over.attempts == 2
    [then] = claim(backend, "w2", now=T0 + 500)
    assert then.id == newer.id
    assert claim(backend, "w3", now=T0 + 600) == []


def test_claiming_respects_types_deadline_and_attempts(backend: TaskBackend) -> None:
    white = new(task_type=TaskType.WHITE_BACKGROUND, created=T0)
    backend.insert(white, ROOMY, now=white.created_at)
    assert claim(backend, types=[TaskType.CREATE]) == []
    late = backend.claim("w1", "scripted", ALL_TYPES, limit=1, now=T0 + 1000, lease_ms=1000, max_age_ms=1000,
                         max_attempts=3)
    assert late == [], "a task with too little time left is not started"
    for attempt in range(3):
        assert claim(backend, f"w{attempt}", now=T0 + 1000 * (attempt + 1), lease=10)
    assert claim(backend, "w9", now=T0 + 10_000) == [], "no run over the attempt limit"
    assert backend.sweep_exhausted(3, "stopped 3 times", now=T0 + 10_000) == [white.id]


def test_only_the_holder_renews_reports_and_finishes(backend: TaskBackend) -> None:
    task = new()
    backend.insert(task, ROOMY, now=task.created_at)
    claim(backend, "w1")
    assert backend.renew("w2", [task.id], 98_000, now=T0 + 1000) == set()
    assert backend.renew("w1", [task.id], 98_000, now=T0 + 1000) == {task.id}
    assert not backend.set_progress(task.id, "w2", 0.5, now=T0 + 2000)
    assert backend.set_progress(task.id, "w1", 0.5, now=T0 + 2000)
    assert not backend.save_provider_job(task.id, "w2", "job-x", now=T0 + 2000)
    assert backend.save_provider_job(task.id, "w1", "job-1", now=T0 + 2000)
    assert not backend.complete(task.id, "w2", "result-x.png", now=T0 + 3000)
    assert not backend.fail(task.id, "engine_error", "no", now=T0 + 3000, worker_id="w2")
    assert backend.complete(task.id, "w1", "result-1.png", now=T0 + 3000)
    done = backend.get(task.id)
    assert done is not None and done.status is TaskStatus.COMPLETED and done.result_name == "result-1.png"
    assert done.progress == 1.0 and done.provider_job_id == "job-1" and done.worker_id is None
    # Final is final.
    assert not backend.fail(task.id, "canceled", "too late", now=T0 + 4000, owner_id="owner-a")
    assert not backend.complete(task.id, "w1", "result-2.png", now=T0 + 4000)


def test_a_hand_back_makes_the_task_claimable_at_once(backend: TaskBackend) -> None:
    task = new()
    backend.insert(task, ROOMY, now=task.created_at)
    claim(backend, "w1")
    assert backend.release(task.id, "w1", refund_attempt=True, now=T0 + 1500)
    [again] = claim(backend, "w2", now=T0 + 1600)
    assert again.attempts == 1
    assert backend.release(task.id, "w2", refund_attempt=False, now=T0 + 1700)
    [third] = claim(backend, "w3", now=T0 + 1800)
    assert third.attempts == 2


def test_cancel_sweep_and_delete(backend: TaskBackend) -> None:
    canceled, stale, fresh = new(created=T0), new(created=T0 - 400_000), new(created=T0 + 5)
    for task in (canceled, stale, fresh):
        backend.insert(task, ROOMY, now=task.created_at)
    assert not backend.fail(canceled.id, "canceled", "You canceled.", now=T0, owner_id="owner-b")
    assert backend.fail(canceled.id, "canceled", "You canceled.", now=T0, owner_id="owner-a")
    assert backend.sweep_timed_out(300_000, "too long", now=T0) == [stale.id]
    swept = backend.get(stale.id)
    assert swept is not None and swept.error is not None and swept.error.code == "timeout"
    assert backend.sweep_timed_out(0, "too long", fresh.id, now=T0 + 10) == [fresh.id]
    assert not backend.delete_finished(canceled.id, "owner-b")
    assert backend.delete_finished(canceled.id, "owner-a")
    assert backend.existing_ids([canceled.id, stale.id, "f" * 32]) == {stale.id}
    run(backend.aping())


def test_without_a_given_moment_a_backend_acts_at_its_own_clock(backend: TaskBackend) -> None:
    # The database server's clock on PostgreSQL, the process's elsewhere: a row is created at the backend's now,
    # and leases, time left and the deadline are measured from that same now, never from the caller's clock.
    task = new(created=1)
    before = backend.clock()
    created = backend.insert(task, ROOMY).created_at
    assert before <= created <= backend.clock()
    stored = backend.get(task.id)
    assert stored is not None and stored.created_at == stored.updated_at == created
    assert backend.sweep_timed_out(60_000, "too long") == [], "a task created just now is not timed out"
    assert backend.claim("w1", "scripted", ALL_TYPES, limit=1, lease_ms=60_000, max_age_ms=0, max_attempts=3) == [], \
        "a task with no time left is not started"
    [claimed] = backend.claim("w1", "scripted", ALL_TYPES, limit=1, lease_ms=60_000, max_age_ms=60_000,
                              max_attempts=3)
    assert created <= claimed.updated_at and claimed.lease_expires_at == claimed.updated_at + 60_000
    assert backend.claim("w2", "scripted", ALL_TYPES, limit=1, lease_ms=60_000, max_age_ms=60_000,
                         max_attempts=3) == [], "a held lease is not taken over"
    finished = backend.complete(task.id, "w1", "result.png")
    done = backend.get(task.id)
    assert finished is not None and done is not None and done.finished_at == done.updated_at == finished
    assert backend.expired_finished(60_000, 10) == []


# ---- waiting in line: a catalog beyond what its owner may run at once ------------------------------------------

LINE = Caps(per_owner=2, studio=1000, waiting=3)


def in_batch(task: Task, batch: str = "catalog-1") -> Task:
    return dataclasses.replace(task, batch=batch)


def statuses(backend: TaskBackend, tasks: list[Task]) -> list[str]:
    return [stored.status.value for task in tasks if (stored := backend.get(task.id)) is not None]


def test_beyond_the_running_limit_a_task_waits_in_line_and_the_line_has_a_cap(backend: TaskBackend) -> None:
    photos = [in_batch(new(created=T0 + n)) for n in range(5)]
    assert [backend.insert(photo, LINE, now=T0 + n).status.value for n, photo in enumerate(photos)] == \
        ["processing", "processing", "pending", "pending", "pending"]
    with pytest.raises(CapReached) as full:
        backend.insert(in_batch(new()), LINE, now=T0 + 9)
    assert full.value.scope == "owner" and full.value.cap == 5
    waiting = backend.get(photos[2].id)
    assert waiting is not None and waiting.processing_since is None and waiting.batch == "catalog-1"
    # Another owner's line is their own.
    assert backend.insert(new("owner-b"), LINE, now=T0).status is TaskStatus.PROCESSING


def test_a_batch_keeps_its_order_while_a_lone_task_goes_ahead_of_the_line(backend: TaskBackend) -> None:
    running = [in_batch(new(created=T0)) for _ in range(2)]
    for task in running:
        backend.insert(task, LINE, now=T0)
    backend.fail(running[0].id, "canceled", "stop", owner_id="owner-a", now=T0 + 1)
    # Room for one, but photos already wait: a batch's new photo joins the end of the line...
    first_waiting = in_batch(new())
    backend.insert(first_waiting, dataclasses.replace(LINE, per_owner=1), now=T0 + 2)
    later_photo = in_batch(new())
    assert backend.insert(later_photo, LINE, now=T0 + 3).status is TaskStatus.PENDING
    # ...while a lone generation begins at once where there is room, and waits first in line where there is none.
    lone = new()
    assert backend.insert(lone, LINE, now=T0 + 4).status is TaskStatus.PROCESSING
    lone_waiting = new()
    assert backend.insert(lone_waiting, LINE, now=T0 + 5).status is TaskStatus.PENDING
    backend.fail(lone.id, "canceled", "stop", owner_id="owner-a", now=T0 + 6)
    assert backend.promote("owner-a", LINE.per_owner, now=T0 + 7) == [lone_waiting.id]
    backend.fail(lone_waiting.id, "canceled", "stop", owner_id="owner-a", now=T0 + 8)
    assert backend.promote("owner-a", LINE.per_owner, now=T0 + 9) == [first_waiting.id]
    assert backend.promote("owner-a", LINE.per_owner, now=T0 + 10) == [], "never past the running limit"
    assert statuses(backend, [first_waiting, later_photo]) == ["processing", "pending"]
    promoted = backend.get(first_waiting.id)
    assert promoted is not None and promoted.processing_since == T0 + 9 and promoted.updated_at == T0 + 9


def test_the_sweep_promotes_every_owners_line_up_to_their_room(backend: TaskBackend) -> None:
    tasks = {owner: [in_batch(new(owner)) for _ in range(4)] for owner in ("owner-a", "owner-b")}
    for owner_tasks in tasks.values():
        for n, task in enumerate(owner_tasks):
            backend.insert(task, LINE, now=T0 + n)
    for owner, owner_tasks in tasks.items():
        backend.fail(owner_tasks[0].id, "canceled", "stop", owner_id=owner, now=T0 + 10)
    backend.fail(tasks["owner-b"][1].id, "canceled", "stop", owner_id="owner-b", now=T0 + 10)
    promoted = backend.promote(None, LINE.per_owner, now=T0 + 11)
    assert sorted(promoted) == sorted([tasks["owner-a"][2].id, tasks["owner-b"][2].id, tasks["owner-b"][3].id])
    assert statuses(backend, tasks["owner-a"]) == ["failed", "processing", "processing", "pending"]
    assert backend.promote(None, LINE.per_owner, now=T0 + 12) == []


def test_a_waiting_task_is_neither_claimed_nor_timed_out_until_its_turn_comes(backend: TaskBackend) -> None:
    first, waiting = in_batch(new()), in_batch(new())
    one_at_a_time = Caps(per_owner=1, studio=1000, waiting=5)
    backend.insert(first, one_at_a_time, now=T0)
    backend.insert(waiting, one_at_a_time, now=T0)
    assert [task.id for task in claim(backend, now=T0 + 10, limit=5)] == [first.id]
    hour = 3_600_000
    assert backend.sweep_timed_out(60_000, "too long", now=T0 + hour) == [first.id]
    assert backend.promote("owner-a", 1, now=T0 + hour + 1) == [waiting.id]
    # Its time counts from its turn: an hour after it was made, it is neither too old to start nor timed out.
    [claimed] = backend.claim("w1", "scripted", ALL_TYPES, limit=1, now=T0 + hour + 2, lease_ms=30_000,
                              max_age_ms=60_000, max_attempts=3)
    assert claimed.id == waiting.id
    assert backend.sweep_timed_out(60_000, "too long", now=T0 + hour + 30_000) == []
    assert backend.sweep_timed_out(60_000, "too long", now=T0 + hour + 61_002) == [waiting.id]


def test_a_task_that_waits_in_line_too_long_fails_timed_out(backend: TaskBackend) -> None:
    running, waiting = in_batch(new()), in_batch(new())
    one_at_a_time = Caps(per_owner=1, studio=1000, waiting=5)
    backend.insert(running, one_at_a_time, now=T0)
    backend.insert(waiting, one_at_a_time, now=T0)
    assert backend.sweep_waited_too_long(600_000, "waited", now=T0 + 599_000) == []
    assert backend.sweep_waited_too_long(600_000, "waited", now=T0 + 601_000) == [waiting.id]
    failed = backend.get(waiting.id)
    assert failed is not None and failed.error is not None and failed.error.code == "timeout"
    assert statuses(backend, [running]) == ["processing"], "only the line's waiting tasks"


def test_a_batch_lists_alone_and_its_download_holds_only_its_owners_completed_results(backend: TaskBackend) -> None:
    photos = [in_batch(new(created=T0 + n)) for n in range(3)]
    other_batch, lone, strangers = in_batch(new(), "catalog-2"), new(), in_batch(new("owner-b"))
    for task in [*photos, other_batch, lone, strangers]:
        backend.insert(task, ROOMY, now=task.created_at)
    listed = run(backend.alist(ListQuery("owner-a", batch="catalog-1", limit=10)))
    assert [view.id for view in listed] == [photo.id for photo in reversed(photos)]
    held = claim(backend, now=T0 + 100, limit=10)
    assert len(held) == 6
    for task in [photos[0], photos[2], other_batch, strangers]:
        assert backend.complete(task.id, "w1", "result.png", now=T0 + 200)
    assert [t.id for t in backend.results("owner-a", batch="catalog-1")] == [photos[0].id, photos[2].id]
    assert backend.results("owner-b", batch="catalog-1") == [backend.get(strangers.id)]
    chosen = backend.results("owner-a", task_ids=[photos[1].id, other_batch.id, strangers.id])
    assert [t.id for t in chosen] == [other_batch.id], "unfinished and other owners' tasks are left out"
