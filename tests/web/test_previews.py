"""Live previews: the latest one is in the task while it runs, the owner's alone, and gone once it finishes."""

from __future__ import annotations

import io
from typing import Any

from fastapi.testclient import TestClient
from PIL import Image

from tests.conftest import new_client
from tests.support.api import submit, wait_final
from tests.support.waiting import wait_for


def test_a_running_task_shows_its_latest_preview_and_a_finished_one_none(client: TestClient) -> None:
    task = submit(client, prompt="slow:3 preview of a kite").json()
    assert task["preview_url"] is None

    def with_preview() -> dict[str, Any] | None:
        current: dict[str, Any] = client.get(f"/api/tasks/{task['id']}").json()
        return current if current["preview_url"] else None

    running = wait_for(with_preview, message="a preview while the task runs")
    assert running["status"] == "processing" and running["progress"] > 0
    picture = client.get(running["preview_url"])
    assert picture.status_code == 200 and picture.headers["content-type"] == "image/webp"
    shrunk = Image.open(io.BytesIO(picture.content))
    assert max(shrunk.size) <= 384 and shrunk.size == (384, 256), "kept small, in proportion"
    assert new_client(client).get(running["preview_url"]).status_code == 404, "the owner's alone"

    later = wait_for(lambda: (lambda t: t if t["preview_url"] not in (None, running["preview_url"]) else None)(
        client.get(f"/api/tasks/{task['id']}").json()), message="a newer preview")
    assert later["preview_url"] != running["preview_url"]

    done = wait_final(client, task["id"])
    assert done["status"] == "completed" and done["preview_url"] is None
    assert client.get(later["preview_url"]).status_code == 404, "the result replaces the preview"


def test_a_canceled_task_keeps_no_preview(client: TestClient) -> None:
    task = submit(client, prompt="slow:30 preview then cancel").json()
    running = wait_for(lambda: client.get(f"/api/tasks/{task['id']}").json()["preview_url"],
                       message="a preview")
    canceled = client.post(f"/api/tasks/{task['id']}/cancel").json()
    assert canceled["preview_url"] is None
    wait_for(lambda: client.get(running).status_code == 404, message="the preview file to go")
