"""The task as the API shows it, and the app's cache of each distinct task's encoded JSON."""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any

from genkeep.studio import file_url
from genkeep.tasks.model import Task, rfc3339


def task_json(task: Task) -> dict[str, Any]:
    """The task as the HTTP contract describes it."""
    return {
        "id": task.id,
        "type": task.type.value,
        "status": task.status.value,
        "prompt": task.prompt,
        "reference_images": [
            {"url": file_url(task.id, image.name), "width": image.width, "height": image.height}
            for image in task.reference_images
        ],
        "image_url": file_url(task.id, task.result_name) if task.result_name else None,
        "error": {"code": task.error.code, "message": task.error.message} if task.error else None,
        "progress": task.progress,
        "preview_url": file_url(task.id, task.preview_name) if task.preview_name and not task.is_final else None,
        "engine": task.engine,
        "created_at": rfc3339(task.created_at),
        "updated_at": rfc3339(task.updated_at),
        "finished_at": rfc3339(task.finished_at),
    }


class TaskJsonCache:
    """Each distinct task's JSON, encoded once: polls and lists read the same unchanged rows again and again.

    Keyed by the task's value (every field), so a changed row is a new entry; least recently used entries go
    first. Owned by the app (one per process), never a module global."""

    def __init__(self, size: int = 20_000) -> None:
        self.size = size
        self._encoded: OrderedDict[Task, bytes] = OrderedDict()

    def encode(self, task: Task) -> bytes:
        encoded = self._encoded.get(task)
        if encoded is None:
            encoded = self._encoded[task] = json.dumps(task_json(task), ensure_ascii=False,
                                                       separators=(",", ":")).encode()
            if len(self._encoded) > self.size:
                self._encoded.popitem(last=False)
        else:
            self._encoded.move_to_end(task)
        return encoded
