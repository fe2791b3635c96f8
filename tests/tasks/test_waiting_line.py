"""A catalog dropped at once: the photos beyond what their owner may run wait in line, begin as earlier ones finish,
and each is run once. The task manager with its workers, on the in-memory backend (milliseconds); the line's SQL is
the backend contract's to show on every database (tests/tasks/test_backends.py)."""

from __future__ import annotations

import json

import pytest

from genkeep.config import Settings
from genkeep.studio import Studio
from genkeep.tasks.model import TaskStatus, TaskType
from genkeep.tasks.new_task import NewTask
from genkeep.tasks.transitions import Step, Transition
from tests.support.engines import ScriptedEngine
from tests.support.loop import run
from tests.support.tasks import age, pool_of, row


@pytest.fixture
def database_url() -> str:
    return "memory:"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.with_overrides(max_unfinished_per_owner=2, max_waiting_per_owner=10)


def drop(studio: Studio, count: int, batch: str = "catalog-1", owner: str = "owner-a") -> list[str]:
    new = NewTask(TaskType.CREATE, "a product", 0, batch=batch)
    return [studio.manager.accept(owner, new, []).task.id for _ in range(count)]


def status_of(studio: Studio, task_id: str) -> TaskStatus | None:
    task = row(studio, task_id)
    return task.status if task is not None else None


def test_a_whole_catalog_runs_once_each_the_line_behind_the_first_two(studio: Studio) -> None:
    started: list[str] = []
    studio.manager.transitions.subscribe(
        lambda transition: started.append(transition.task_id) if transition.step is Step.STARTED else None)
    ids = drop(studio, 7)
    assert [status_of(studio, task_id) for task_id in ids] == [TaskStatus.PROCESSING] * 2 + [TaskStatus.PENDING] * 5
    assert pool_of(studio, ScriptedEngine()).run_burst() == 7
    assert all(status_of(studio, task_id) is TaskStatus.COMPLETED for task_id in ids)
    assert sorted(started) == sorted(ids), "each photo ran once"
    # The two that began at once ran first (photos accepted in the same millisecond have no order among them).
    assert set(started[:2]) == set(ids[:2])


def test_canceling_a_running_photo_lets_the_next_one_in_line_begin(studio: Studio) -> None:
    promoted: list[Transition] = []
    studio.manager.transitions.subscribe(
        lambda transition: promoted.append(transition) if transition.step is Step.PROMOTED else None)
    first, second, third = drop(studio, 3)
    studio.manager.cancel("owner-a", first)
    waited = row(studio, third)
    assert waited is not None and waited.status is TaskStatus.PROCESSING and waited.processing_since is not None
    assert [transition.task_id for transition in promoted] == [third]
    assert status_of(studio, second) is TaskStatus.PROCESSING


def test_the_sweep_begins_a_line_that_a_fault_left_waiting(studio: Studio) -> None:
    ids = drop(studio, 3)
    # A finish whose promotion did not happen (a crash between the two): the backend alone, not the manager.
    studio.backend.fail(ids[0], "canceled", "stop", owner_id="owner-a")
    assert status_of(studio, ids[2]) is TaskStatus.PENDING
    studio.manager.sweep()
    assert status_of(studio, ids[2]) is TaskStatus.PROCESSING


def test_a_retried_photo_stays_in_its_batch(studio: Studio) -> None:
    [task_id] = drop(studio, 1)
    studio.manager.cancel("owner-a", task_id)
    again = studio.manager.retry("owner-a", task_id)
    assert again.batch == "catalog-1"


def test_a_photo_waiting_longer_than_the_timeout_is_not_timed_out_and_its_turn_restarts_the_clock(
        studio: Studio) -> None:
    first, second, waiting = drop(studio, 3)
    for task_id in (first, second, waiting):
        age(studio, task_id, 30)
    studio.manager.sweep()
    assert [status_of(studio, task_id) for task_id in (first, second, waiting)] == \
        [TaskStatus.FAILED, TaskStatus.FAILED, TaskStatus.PROCESSING], "the two that ran out of time made room"
    # Created half an hour ago, processing since just now: a poll reads it as running, not timed out.
    polled = run(studio.manager.get("owner-a", waiting))
    assert polled.status == "processing" and json.loads(polled.json)["processing_since"] is not None
