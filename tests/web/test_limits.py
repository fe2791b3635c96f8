"""Limits that hold when someone drops their cookies or hurries, and text that is not text."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from fastapi.testclient import TestClient

from genkeep.config import Settings
from genkeep.studio import Studio
from genkeep.tasks.manager import TaskManager
from genkeep.web.app import create_app
from tests.conftest import new_client
from tests.support.api import submit
from tests.support.storage import folder_of
from tests.support.tasks import accept, row
from tests.support.waiting import wait_for


def test_dropping_cookies_does_not_pass_the_studio_cap(settings: Settings) -> None:
    with TestClient(create_app(settings.with_overrides(max_unfinished=3))) as first:
        answers = []
        for _ in range(5):
            # A new client each time: no cookie, so a new owner each time.
            answers.append(submit(new_client(first), prompt="slow:30 again"))
        assert [answer.status_code for answer in answers] == [201, 201, 201, 429, 429]
        refused = answers[-1]
        assert refused.headers["content-type"] == "application/problem+json"
        assert int(refused.headers["retry-after"]) > 0 and "busy" in refused.json()["detail"]
        for answer in answers[:3]:
            owner = new_client(first)
            owner.cookies = answer.cookies
            assert owner.post(f"/api/tasks/{answer.json()['id']}/cancel").status_code == 200


def test_retrying_failed_tasks_does_not_pass_the_studio_cap(settings: Settings) -> None:
    with TestClient(create_app(settings.with_overrides(max_unfinished=3, workers=0))) as first:
        owners = [new_client(first) for _ in range(4)]
        made = [submit(owner, prompt="slow:30 again") for owner in owners[:3]]
        assert [answer.status_code for answer in made] == [201, 201, 201]
        assert submit(owners[3], prompt="slow:30 again").status_code == 429
        canceled = made[0].json()["id"]
        assert owners[0].post(f"/api/tasks/{canceled}/cancel").status_code == 200
        assert submit(owners[3], prompt="slow:30 again").status_code == 201
        retried = owners[0].post(f"/api/tasks/{canceled}/retry")
        assert retried.status_code == 429, retried.text
        assert retried.headers["content-type"] == "application/problem+json" and "busy" in retried.json()["detail"]
        unfinished = sum(len(owner.get("/api/tasks", params={"status": ["pending", "processing"]}).json()["items"])
                         for owner in owners)
        assert unfinished == 3


def test_the_owner_cap_holds_under_concurrent_requests(settings: Settings) -> None:
    # Two running and two waiting in line: four in all.
    line = settings.with_overrides(max_unfinished_per_owner=2, max_waiting_per_owner=2, workers=0)
    with TestClient(create_app(line)) as client:
        client.get("/healthz")  # the owner cookie first
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: submit(client, prompt="slow:30 at once"), range(16)))
        codes = sorted(answer.status_code for answer in answers)
        assert codes == [201] * 4 + [429] * 12
        listed = client.get("/api/tasks", params={"status": ["pending", "processing"]}).json()["items"]
        assert sorted(task["status"] for task in listed) == ["pending", "pending", "processing", "processing"]


def test_a_prompt_with_a_nul_byte_is_refused_and_nothing_is_kept(client: TestClient) -> None:
    answer = submit(client, prompt="a kite\x00<script>")
    assert answer.status_code == 422 and answer.json()["field"] == "prompt"
    assert "control characters" in answer.json()["detail"]
    assert client.get("/api/tasks").json()["items"] == []
    # Line breaks and tabs are text a person typed.
    assert submit(client, prompt="a kite\n\twith a tail").status_code == 201


def test_ids_with_nul_or_odd_bytes_are_simply_unknown(client: TestClient) -> None:
    for odd in ("abc%00def", "%00" * 16, "a" * 31 + "%00", "%C3%28", "x" * 5000):
        for path in (f"/api/tasks/{odd}", f"/files/{odd}/reference-1.png"):
            assert client.get(path).status_code == 404, path
        assert client.post(f"/api/tasks/{odd}/cancel").status_code == 404


def test_retention_removes_old_finished_tasks_and_their_images(studio: Studio) -> None:
    kept = accept(studio, "still running")
    old = accept(studio, "finished long ago")
    studio.manager.cancel("owner-a", old.id)
    assert studio.manager.remove_expired() == 0, "retention is off unless GENKEEP_RETENTION_DAYS is set"
    month = TaskManager(studio.backend, studio.storage, studio.settings.with_overrides(retention_days=30))
    assert month.remove_expired() == 0, "finished just now: kept"
    instant = TaskManager(studio.backend, studio.storage, studio.settings.with_overrides(retention_days=1e-9))
    wait_for(lambda: instant.remove_expired() == 1, message="the finished task to pass the retention")
    assert row(studio, old.id) is None and row(studio, kept.id) is not None
    assert not folder_of(studio).task_dir(old.id).exists()
