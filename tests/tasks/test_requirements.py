"""One test per requirement of the task service, on SQLite and on PostgreSQL."""

from __future__ import annotations

from fastapi.testclient import TestClient

from genkeep.studio import Studio
from tests.support.api import submit, wait_final
from tests.support.loop import run
from tests.support.tasks import accept, age, row


def test_r1_1_a_new_request_is_processing_with_a_unique_id(client: TestClient) -> None:
    first = submit(client, prompt="slow:1 a lighthouse")
    second = submit(client, prompt="slow:1 a lighthouse")
    assert first.status_code == 201 and second.status_code == 201
    assert first.json()["status"] == "processing"
    assert first.json()["id"] != second.json()["id"]
    assert len(first.json()["id"]) >= 32  # unguessable, not a counter
    assert client.get(f"/api/tasks/{first.json()['id']}").json()["status"] in ("processing", "completed")


def test_r1_2_a_finished_generation_is_completed_with_its_image(client: TestClient) -> None:
    task = wait_final(client, submit(client, prompt="a quiet harbour").json()["id"])
    assert task["status"] == "completed"
    assert task["error"] is None and task["finished_at"] is not None
    image = client.get(task["image_url"])
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert image.content.startswith(b"\x89PNG")


def test_r1_3_a_failed_generation_is_failed_with_its_message(client: TestClient) -> None:
    task = wait_final(client, submit(client, prompt="please fail").json()["id"])
    assert task["status"] == "failed"
    assert task["image_url"] is None
    assert task["error"]["code"] == "engine_error"
    assert "remove 'fail'" in task["error"]["message"]


def test_r1_3_an_engine_crash_is_failed_with_a_sentence(client: TestClient) -> None:
    task = wait_final(client, submit(client, prompt="crash now").json()["id"])
    assert task["status"] == "failed"
    assert task["error"]["code"] == "engine_error"
    assert "retry" in task["error"]["message"]


def test_r3_1_a_task_processing_over_the_timeout_fails_with_a_timeout(studio: Studio) -> None:
    young = accept(studio, "a young task")
    old = accept(studio, "an old task")
    age(studio, old.id, 5.1)
    swept = studio.manager.sweep()
    assert swept == [old.id]
    failed = row(studio, old.id)
    assert failed is not None
    assert failed.status == "failed" and failed.error is not None
    assert failed.error.code == "timeout"
    assert "5 minutes" in failed.error.message
    assert (row(studio, young.id) or young).status == "processing"


def test_r3_1_a_reader_sees_the_timeout_as_soon_as_it_is_due(studio: Studio) -> None:
    old = accept(studio, "an old task")
    age(studio, old.id, 5.01)
    # No sweep has run: reading the task is enough.
    assert run(studio.manager.get("owner-a", old.id)).status == "failed"


def test_r3_2_startup_cleans_up_tasks_processing_over_5_minutes(studio: Studio) -> None:
    stale = accept(studio, "left over from before a restart")
    fresh = accept(studio, "just accepted")
    age(studio, stale.id, 30)
    restarted = Studio.open(studio.settings)
    try:
        stale_row = row(restarted, stale.id)
        assert stale_row is not None and stale_row.status == "failed"
        assert stale_row.error is not None and stale_row.error.code == "timeout"
        fresh_row = row(restarted, fresh.id)
        assert fresh_row is not None and fresh_row.status == "processing"
    finally:
        restarted.close()


def test_r4_1_a_task_stores_its_generation_type(client: TestClient) -> None:
    for task_type in ("CREATE", "WHITE_BACKGROUND", "CLOTHING_CHANGE"):
        created = submit(client, task_type, prompt="slow:0.5").json()
        assert created["type"] == task_type
        assert client.get(f"/api/tasks/{created['id']}").json()["type"] == task_type


def test_r4_2_the_processing_list_is_filtered_by_type(client: TestClient) -> None:
    ids = {t: submit(client, t, prompt="slow:3").json()["id"]
           for t in ("CREATE", "WHITE_BACKGROUND", "CLOTHING_CHANGE")}
    for task_type, task_id in ids.items():
        listed = client.get("/api/tasks", params={"type": task_type, "status": ["pending", "processing"]}).json()
        assert [item["id"] for item in listed["items"]] == [task_id]
        assert all(item["type"] == task_type for item in listed["items"])
    for task_id in ids.values():
        client.post(f"/api/tasks/{task_id}/cancel")
