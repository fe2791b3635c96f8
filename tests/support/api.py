"""Talking to the API the way the pages do."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.support.images import png_bytes
from tests.support.waiting import wait_for


def submit(client: TestClient, task_type: str = "CREATE", prompt: str | None = "a red kite",
           images: list[bytes] | None = None, headers: dict[str, str] | None = None) -> Any:
    data = {"type": task_type}
    if prompt is not None:
        data["prompt"] = prompt
    if images is None:
        images = {"CREATE": [], "WHITE_BACKGROUND": [png_bytes()],
                  "CLOTHING_CHANGE": [png_bytes(), png_bytes(color=(10, 200, 30))]}.get(task_type, [])
    files = [("reference_images", (f"image{i}.png", body, "image/png")) for i, body in enumerate(images)]
    return client.post("/api/tasks", data=data, files=files or None, headers=headers or {})


def wait_final(client: TestClient, task_id: str, timeout: float = 20.0) -> dict[str, Any]:
    def final() -> dict[str, Any] | None:
        task: dict[str, Any] = client.get(f"/api/tasks/{task_id}").json()
        return task if task["status"] in ("completed", "failed") else None

    return wait_for(final, timeout=timeout, message=f"task {task_id} to finish")
