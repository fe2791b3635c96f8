"""Final states are final; cancel, retry, delete and the Idempotency-Key behave as API.md says.

The task manager's lifecycle, on the in-memory backend (milliseconds): that each database does what the manager
asks of it is the backend contract's to show (tests/tasks/test_backends.py, on all three backends)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from genkeep.config import Settings
from genkeep.engines.base import EngineContext, EngineJob, EngineResult, RunToCompletionEngine, SubmitPollEngine
from genkeep.errors import DatabaseUnavailable
from genkeep.studio import Studio
from genkeep.tasks.manager import TaskManager
from genkeep.tasks.model import TaskType
from tests.support.api import submit, wait_final
from tests.support.storage import folder_of
from tests.support.tasks import accept, age, pool_of, row
from tests.support.waiting import wait_for


@pytest.fixture
def database_url() -> str:
    return "memory:"


class LateEngine(RunToCompletionEngine):
    """Runs the task's fate (a cancel, a timeout) in the middle of the generation, then returns an image."""

    name = "late"
    rerun_safe = True

    def __init__(self, meanwhile: object) -> None:
        self.meanwhile = meanwhile

    def run(self, job: EngineJob, ctx: object) -> EngineResult:
        self.meanwhile(job.task_id)  # type: ignore[operator]
        return EngineResult(b"\x89PNG late result")


def test_a_late_result_after_a_cancel_changes_nothing(studio: Studio) -> None:
    task = accept(studio)
    engine = LateEngine(lambda task_id: studio.manager.cancel("owner-a", task_id))
    pool_of(studio, engine).run_burst()
    final = row(studio, task.id)
    assert final is not None
    assert final.status == "failed" and final.error is not None and final.error.code == "canceled"
    assert final.result_name is None
    assert not list(folder_of(studio).task_dir(task.id).glob("result-*"))


def test_a_late_result_after_a_timeout_changes_nothing(studio: Studio) -> None:
    task = accept(studio)

    def time_out(task_id: str) -> None:
        age(studio, task_id, 6)
        studio.manager.sweep()

    pool_of(studio, LateEngine(time_out)).run_burst()
    final = row(studio, task.id)
    assert final is not None
    assert final.status == "failed" and final.error is not None and final.error.code == "timeout"
    assert final.result_name is None


def test_a_finished_task_cannot_be_finished_again(studio: Studio) -> None:
    task = accept(studio)
    [claimed] = studio.manager.claim("worker-a", {TaskType.CREATE: "scripted"})
    assert studio.manager.complete(claimed, "worker-a", b"\x89PNG first", "image/png")
    assert not studio.manager.fail(claimed, "worker-a", "engine_error", "too late")
    assert not studio.manager.complete(claimed, "worker-a", b"\x89PNG second", "image/png")
    final = row(studio, task.id)
    assert final is not None and final.status == "completed" and final.error is None
    # The second result left no file behind.
    assert [path.name for path in folder_of(studio).task_dir(task.id).glob("result-*")] == [final.result_name]


def test_cancel_stops_the_running_engine(client: TestClient) -> None:
    task = submit(client, prompt="slow:30 a long one").json()
    canceled = client.post(f"/api/tasks/{task['id']}/cancel")
    assert canceled.status_code == 200
    assert canceled.json()["status"] == "failed" and canceled.json()["error"]["code"] == "canceled"
    pool = client.app.state.studio.pool  # type: ignore[attr-defined]
    wait_for(lambda: not pool._runs, timeout=10, message="the engine to stop")
    assert client.post(f"/api/tasks/{task['id']}/cancel").status_code == 409


def test_retry_makes_a_new_task_with_the_same_inputs(client: TestClient) -> None:
    failed = wait_final(client, submit(client, "WHITE_BACKGROUND", prompt="fail once").json()["id"])
    assert failed["status"] == "failed"
    retried = client.post(f"/api/tasks/{failed['id']}/retry")
    assert retried.status_code == 201
    new = retried.json()
    assert new["id"] != failed["id"] and new["status"] == "processing"
    assert new["type"] == "WHITE_BACKGROUND" and new["prompt"] == "fail once"
    assert len(new["reference_images"]) == 1
    assert client.get(new["reference_images"][0]["url"]).content == \
        client.get(failed["reference_images"][0]["url"]).content
    done = wait_final(client, submit(client, prompt="fine").json()["id"])
    assert client.post(f"/api/tasks/{done['id']}/retry").status_code == 409


def test_delete_removes_a_finished_task_and_its_files(client: TestClient) -> None:
    task = wait_final(client, submit(client, "WHITE_BACKGROUND", prompt="a mug").json()["id"])
    running = submit(client, prompt="slow:20").json()
    assert client.delete(f"/api/tasks/{running['id']}").status_code == 409
    assert client.delete(f"/api/tasks/{task['id']}").status_code == 204
    assert client.get(f"/api/tasks/{task['id']}").status_code == 404
    assert client.get(task["image_url"]).status_code == 404
    assert client.get(task["reference_images"][0]["url"]).status_code == 404
    studio: Studio = client.app.state.studio  # type: ignore[attr-defined]
    assert not folder_of(studio).task_dir(task["id"]).exists()
    client.post(f"/api/tasks/{running['id']}/cancel")


def test_the_same_idempotency_key_gives_the_same_task(client: TestClient) -> None:
    headers = {"Idempotency-Key": "click-1"}
    first = submit(client, prompt="slow:1 a kite", headers=headers)
    again = submit(client, prompt="slow:1 a kite", headers=headers)
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    listed = client.get("/api/tasks").json()["items"]
    assert [item["id"] for item in listed] == [first.json()["id"]]


def test_beyond_the_running_limit_tasks_wait_in_line_and_beyond_the_line_answers_429(settings: Settings) -> None:
    from genkeep.web.app import create_app

    line = settings.with_overrides(max_unfinished_per_owner=3, max_waiting_per_owner=2, workers=0)
    with TestClient(create_app(line)) as client:
        statuses = [submit(client, prompt="slow:30").json()["status"] for _ in range(5)]
        assert statuses == ["processing"] * 3 + ["pending"] * 2
        refused = submit(client, prompt="slow:30")
        assert refused.status_code == 429
        assert refused.headers["content-type"] == "application/problem+json"
        assert "3 generations running and 2 waiting in line" in refused.json()["detail"]
        assert "cancel" in refused.json()["detail"]


def test_without_a_line_the_running_limit_answers_429(settings: Settings) -> None:
    from genkeep.web.app import create_app

    with TestClient(create_app(settings.with_overrides(max_waiting_per_owner=0, workers=0))) as client:
        cap = settings.max_unfinished_per_owner
        assert all(submit(client, prompt="slow:30").status_code == 201 for _ in range(cap))
        refused = submit(client, prompt="slow:30")
        assert refused.status_code == 429
        assert f"already have {cap} generations in progress" in refused.json()["detail"]


def test_history_pages_newest_first_with_the_cursor(client: TestClient) -> None:
    ids = [submit(client, prompt=f"slow:30 number {n}").json()["id"] for n in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"type": "CREATE", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/api/tasks", params=params).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == list(reversed(ids))
    for task_id in ids:
        client.post(f"/api/tasks/{task_id}/cancel")


def test_a_new_task_wakes_the_servers_idle_workers_at_once(settings: Settings) -> None:
    from genkeep.web.app import create_app

    with TestClient(create_app(settings.with_overrides(worker_poll_interval=600))) as client:
        # Let the workers go idle first: they are now waiting up to 600 s unless woken.
        wait_for(lambda: client.get("/healthz").status_code == 200, message="the app")
        task = wait_final(client, submit(client, prompt="quick").json()["id"], timeout=15)
        assert task["status"] == "completed"


def test_a_timed_out_task_stops_its_engine(settings: Settings) -> None:
    from genkeep.web.app import create_app

    quick_timeout = settings.with_overrides(task_timeout=1.0, sweep_interval=0.2)
    with TestClient(create_app(quick_timeout)) as client:
        task = wait_final(client, submit(client, prompt="slow:30 longer than the limit").json()["id"])
        assert task["status"] == "failed" and task["error"]["code"] == "timeout"
        assert "1 seconds limit" in task["error"]["message"]
        pool = client.app.state.studio.pool  # type: ignore[attr-defined]
        wait_for(lambda: not pool._runs, timeout=10, message="the engine to stop")


def test_files_are_published_even_if_a_worker_wrote_first(studio: Studio) -> None:
    """A worker on another machine may claim a task between its commit and the move of its files."""
    staging = folder_of(studio).staging_dir("f" * 32)
    (staging / "reference-1.png").write_bytes(b"reference")
    studio.storage.write_result("f" * 32, "result-1.png", b"result")
    studio.storage.publish("f" * 32)
    folder = folder_of(studio).task_dir("f" * 32)
    assert sorted(path.name for path in folder.iterdir()) == ["reference-1.png", "result-1.png"]
    assert not staging.exists()


class HoldingProviderEngine(SubmitPollEngine):
    """A provider job that runs until stopped; records submissions and cancellations."""

    name = "holding"

    def __init__(self) -> None:
        self.submitted: list[str] = []
        self.canceled: list[str] = []

    def submit(self, job: EngineJob, ctx: EngineContext) -> str:
        self.submitted.append(job.task_id)
        return f"provider-{job.task_id}"

    def wait(self, job: EngineJob, provider_job_id: str, ctx: EngineContext) -> EngineResult:
        while True:
            ctx.sleep(0.05)

    def cancel(self, job: EngineJob, provider_job_id: str) -> None:
        self.canceled.append(provider_job_id)


def test_canceling_a_task_cancels_its_provider_job_but_a_shutdown_does_not(studio: Studio) -> None:
    settings = studio.settings.with_overrides(lease_seconds=0.6, shutdown_grace=0.0)
    engine = HoldingProviderEngine()
    pool = pool_of(studio, engine, settings)
    pool.start()
    try:
        task = accept(studio)
        wait_for(lambda: (row(studio, task.id) or task).provider_job_id, message="the provider job id")
        studio.manager.cancel("owner-a", task.id)
        wait_for(lambda: engine.canceled, message="the provider job to be canceled")
        assert engine.canceled == [f"provider-{task.id}"]
        kept = accept(studio, "another kite")
        wait_for(lambda: (row(studio, kept.id) or kept).provider_job_id, message="the second job id")
    finally:
        pool.stop()
    # Handed back on shutdown: the job goes on for the next worker to resume, and is not canceled.
    assert engine.canceled == [f"provider-{task.id}"]
    handed_back = row(studio, kept.id)
    assert handed_back is not None and handed_back.status == "processing" and handed_back.worker_id is None
    assert handed_back.provider_job_id == f"provider-{kept.id}"


def test_a_database_error_while_recording_an_outcome_is_retried_not_lost(studio: Studio) -> None:
    from tests.support.engines import ScriptedEngine

    real_fail = studio.backend.fail
    calls: list[str] = []

    def flaky_fail(task_id: str, *args: object, **kwargs: object) -> int | None:
        calls.append(task_id)
        if len(calls) == 1:
            raise DatabaseUnavailable("database is down")
        return real_fail(task_id, *args, **kwargs)  # type: ignore[arg-type]

    studio.backend.fail = flaky_fail  # type: ignore[method-assign]
    first = accept(studio, "please fail")
    second = accept(studio, "fine")
    ran = pool_of(studio, ScriptedEngine()).run_burst()
    assert ran == 2
    assert (row(studio, second.id) or second).status == "completed"
    # The engine's verdict is recorded once the database answers again: the fault itself fails nothing.
    failed = row(studio, first.id)
    assert failed is not None and failed.status == "failed" and failed.error is not None
    assert failed.error.code == "engine_error" and "remove 'fail'" in failed.error.message
    assert len(calls) == 2


class BillingEngine(RunToCompletionEngine):
    """Bills on every run (like a synchronous provider) and runs until stopped."""

    name = "billing"
    rerun_safe = False

    def run(self, job: EngineJob, ctx: EngineContext) -> EngineResult:
        while True:
            ctx.sleep(0.05)


def test_a_billing_engine_handed_back_on_shutdown_is_not_run_again(studio: Studio) -> None:
    task = accept(studio)
    pool = pool_of(studio, BillingEngine(), studio.settings.with_overrides(shutdown_grace=0.0))
    pool.start()
    wait_for(lambda: (row(studio, task.id) or task).worker_id, message="the task to be claimed")
    pool.stop()
    handed_back = row(studio, task.id)
    assert handed_back is not None and handed_back.worker_id is None and handed_back.attempts == 1
    pool_of(studio, BillingEngine()).run_burst()
    final = row(studio, task.id)
    assert final is not None
    assert final.status == "failed" and final.error is not None and final.error.code == "interrupted"


def test_a_worker_whose_lease_ran_out_cannot_finish_its_successors_run(studio: Studio) -> None:
    task = accept(studio)
    engines = {TaskType.CREATE: "scripted"}
    short_lease = TaskManager(studio.backend, studio.storage, studio.settings.with_overrides(lease_seconds=0.001))
    [held_by_a] = short_lease.claim("worker-a", engines)
    [held_by_b] = wait_for(lambda: studio.manager.claim("worker-b", engines),
                           message="the lease to run out and worker-b to take over")
    assert not studio.manager.fail(held_by_a, "worker-a", "engine_error", "too late")
    assert not studio.manager.complete(held_by_a, "worker-a", b"\x89PNG from a", "image/png")
    assert studio.manager.complete(held_by_b, "worker-b", b"\x89PNG from b", "image/png")
    final = row(studio, task.id)
    assert final is not None and final.result_name is not None and final.result_name.startswith("result-2-")
