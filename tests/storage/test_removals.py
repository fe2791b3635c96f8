"""A deleted task's images go, even when the image storage fails at the moment of the delete: the removal is
recorded with the row's deletion and finished by the sweeper, or by the next start."""

from __future__ import annotations

import errno
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from genkeep.config import Settings
from genkeep.storage import folder
from genkeep.studio import Studio
from genkeep.tasks.manager import TaskManager
from genkeep.tasks.sweeper import Sweeper
from tests.support.storage import folder_of
from tests.support.tasks import accept, row
from tests.support.waiting import wait_for


def finished_task_with_images(studio: Studio) -> tuple[str, Path]:
    task = accept(studio, "a portrait")
    studio.manager.cancel("owner-a", task.id)
    studio.storage.write_result(task.id, "result-1-abcd.png", b"a person's photo")
    images = folder_of(studio).task_dir(task.id)
    assert images.is_dir()
    return task.id, images


def read_only_folder(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """The images folder refuses removals (as a read-only or lost mount does) until the returned call."""
    real_rmtree = shutil.rmtree

    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(folder.shutil, "rmtree", refuse)
    return lambda: monkeypatch.setattr(folder.shutil, "rmtree", real_rmtree)


def test_a_delete_during_a_storage_fault_removes_the_images_at_the_next_start(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    studio = Studio.open(settings)
    try:
        task_id, images = finished_task_with_images(studio)
        repaired = read_only_folder(monkeypatch)
        studio.manager.delete("owner-a", task_id)
        assert row(studio, task_id) is None, "the task is gone for its owner at once"
        assert images.is_dir(), "the fault kept the images for now"
        repaired()
    finally:
        studio.close()
    restarted = Studio.open(settings)
    try:
        assert not images.exists(), "the next start removed them"
        assert restarted.backend.pending_removals(10) == []
    finally:
        restarted.close()


def test_the_sweeper_finishes_removals_once_the_storage_is_back(studio: Studio,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    deleted, deleted_images = finished_task_with_images(studio)
    expired, expired_images = finished_task_with_images(studio)
    repaired = read_only_folder(monkeypatch)
    studio.manager.delete("owner-a", deleted)
    retention = TaskManager(studio.backend, studio.storage, studio.settings.with_overrides(retention_days=1e-9))
    wait_for(lambda: retention.remove_expired() == 1, message="the finished task to pass the retention")
    assert studio.manager.finish_removals() == 0, "still failing: nothing removed, nothing forgotten"
    assert deleted_images.is_dir() and expired_images.is_dir()
    repaired()
    sweeper = Sweeper(studio.manager, interval=0.1)
    sweeper.start()
    try:
        wait_for(lambda: not deleted_images.exists() and not expired_images.exists(), timeout=10,
                 message="the sweeper to remove the images of both deleted tasks")
    finally:
        sweeper.stop()
    assert studio.backend.pending_removals(10) == []
    assert row(studio, expired) is None
