"""A finished history made in seconds: tasks accepted, claimed and completed through the task manager itself (no
engine runs), with the pictures the caller gives, for a browser's owner on a running server's database."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from genkeep.config import Settings, load_secret_key
from genkeep.reference_images import clean_image
from genkeep.studio import Studio
from genkeep.tasks.model import TaskType
from genkeep.tasks.new_task import NewTask
from genkeep.web.owner import COOKIE_NAME, OwnerCookies

SEEDING_WORKER = "history-seeder"


def browser_owner(settings: Settings, cookies: Sequence[dict[str, Any]]) -> str:
    """The owner id of a browser context that has loaded a page (its signed cookie)."""
    checker = OwnerCookies(load_secret_key(settings))
    for cookie in cookies:
        if cookie["name"] == COOKIE_NAME and (owner := checker.verify(cookie["value"])):
            return owner
    raise AssertionError("the browser has no owner cookie yet: load a page first")


def seed_finished(settings: Settings, owner_id: str, task_type: TaskType, count: int,
                  references: Callable[[int], list[bytes]], result: Callable[[int], bytes]) -> list[str]:
    """`count` completed tasks of one type, oldest first: task n made from references(n), resulting in result(n).
    The server must run no workers of its own (GENKEEP_WORKERS=0), or they would race for the tasks."""
    studio = Studio.open(settings)
    made = []
    try:
        for index in range(count):
            photos = references(index)
            images = [clean_image(photo, f"photo {n + 1}", max_pixels=settings.max_image_pixels,
                                  min_side=settings.min_image_side) for n, photo in enumerate(photos)]
            prompt = f"Picture number {index + 1}" if task_type is TaskType.CREATE else None
            task = studio.manager.accept(owner_id, NewTask(task_type, prompt, len(images)), images).task
            claimed = studio.manager.claim(SEEDING_WORKER, {task_type: "seeded"})
            assert [c.id for c in claimed] == [task.id], "another worker claimed the seeded task"
            assert studio.manager.complete(claimed[0], SEEDING_WORKER, result(index), "image/png")
            made.append(task.id)
    finally:
        studio.close()
    return made
