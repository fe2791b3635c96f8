"""Final states are final; cancel, retry, delete and the Idempotency-Key behave as API.md says."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import update

from genkeep.config import Settings
from genkeep.engines.base import EngineContext, EngineJob, EngineResult, RunToCompletionEngine, SubmitPollEngine
from genkeep.studio import Studio
from genkeep.tasks.model import TaskType, now, to_millis
from genkeep.tasks.schema import tasks
from genkeep.worker import WorkerPool
from tests.support.api import submit, wait_final
from tests.support.waiting import wait_for


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
    task = studio.service.accept("owner-a", TaskType.CREATE, "a kite", []).task
    engine = LateEngine(lambda task_id: studio.service.cancel("owner-a", task_id))
    WorkerPool(studio.store, studio.storage, engine, studio.settings, 1).run_burst()
    final = studio.service.get("owner-a", task.id)
    assert final.status == "failed" and final.error is not None and final.error.code == "canceled"
    assert final.result_name is None
    assert not list(studio.storage.task_dir(task.id).glob("result-*"))


def test_a_late_result_after_a_timeout_changes_nothing(studio: Studio) -> None:
    task = studio.service.accept("owner-a", TaskType.CREATE, "a kite", []).task

    def time_out(task_id: str) -> None:
        with studio.store.engine.begin() as conn:
            conn.execute(update(tasks).where(tasks.c.id == task_id)
                         .values(created_at=to_millis(now() - timedelta(minutes=6))))
        studio.service.sweep()

    WorkerPool(studio.store, studio.storage, LateEngine(time_out), studio.settings, 1).run_burst()
    final = studio.service.get("owner-a", task.id)
    assert final.status == "failed" and final.error is not None and final.error.code == "timeout"
    assert final.result_name is None


def test_a_finished_task_cannot_be_finished_again(studio: Studio) -> None:
    task = studio.service.accept("owner-a", TaskType.CREATE, "a kite", []).task
    assert studio.store.complete(task.id, "result-1.png")
    assert not studio.store.fail(task.id, "engine_error", "too late")
    assert not studio.store.complete(task.id, "result-2.png")
    final = studio.service.get("owner-a", task.id)
    assert final.status == "completed" and final.result_name == "result-1.png" and final.error is None


def test_cancel_stops_the_running_engine(client: TestClient) -> None:
    task = submit(client, prompt="slow:30 a long one").json()
    canceled = client.post(f"/api/tasks/{task['id']}/cancel")
    assert canceled.status_code == 200
    assert canceled.json()["status"] == "failed" and canceled.json()["error"]["code"] == "canceled"
    pool = client.app.state.studio.pool  # type: ignore[attr-defined]
    wait_for(lambda: not pool._running, timeout=10, message="the engine to stop")
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
    assert not studio.storage.task_dir(task["id"]).exists()
    client.post(f"/api/tasks/{running['id']}/cancel")


def test_the_same_idempotency_key_gives_the_same_task(client: TestClient) -> None:
    headers = {"Idempotency-Key": "click-1"}
    first = submit(client, prompt="slow:1 a kite", headers=headers)
    again = submit(client, prompt="slow:1 a kite", headers=headers)
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    listed = client.get("/api/tasks").json()["items"]
    assert [item["id"] for item in listed] == [first.json()["id"]]


def test_too_many_unfinished_tasks_answers_429(client: TestClient) -> None:
    cap = client.app.state.studio.settings.max_unfinished_per_owner  # type: ignore[attr-defined]
    ids = [submit(client, prompt="slow:30").json()["id"] for _ in range(cap)]
    refused = submit(client, prompt="slow:30")
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert "cancel" in refused.json()["detail"]
    for task_id in ids:
        client.post(f"/api/tasks/{task_id}/cancel")


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


def test_direct_reads_unpack_the_columns_in_schema_order() -> None:
    from genkeep.tasks.store import COLUMNS

    # _row_to_task unpacks rows positionally, in this order.
    assert COLUMNS == ["id", "owner_id", "type", "status", "prompt", "reference_images", "result_name",
                       "error_code", "error_message", "progress", "engine", "provider_job_id", "attempts",
                       "worker_id", "lease_expires_at", "idempotency_key", "created_at", "updated_at",
                       "finished_at"]


def test_a_timed_out_task_stops_its_engine(settings: Settings) -> None:
    from genkeep.web.app import create_app

    quick_timeout = settings.with_overrides(task_timeout=1.0, sweep_interval=0.2)
    with TestClient(create_app(quick_timeout)) as client:
        task = wait_final(client, submit(client, prompt="slow:30 longer than the limit").json()["id"])
        assert task["status"] == "failed" and task["error"]["code"] == "timeout"
        assert "1 seconds limit" in task["error"]["message"]
        pool = client.app.state.studio.pool  # type: ignore[attr-defined]
        wait_for(lambda: not pool._running, timeout=10, message="the engine to stop")


def test_files_are_published_even_if_a_worker_wrote_first(studio: Studio) -> None:
    """A worker on another machine may claim a task between its commit and the move of its files."""
    staging = studio.storage.staging_dir("f" * 32)
    (staging / "reference-1.png").write_bytes(b"reference")
    studio.storage.write_result("f" * 32, "result-1.png", b"result")
    studio.storage.publish("f" * 32)
    folder = studio.storage.task_dir("f" * 32)
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
    pool = WorkerPool(studio.store, studio.storage, engine, settings, 1)
    studio.service.on_accepted.append(pool.wake)
    pool.start()
    try:
        task = studio.service.accept("owner-a", TaskType.CREATE, "a kite", []).task
        wait_for(lambda: (studio.store.get(task.id) or task).provider_job_id, message="the provider job id")
        studio.service.cancel("owner-a", task.id)
        wait_for(lambda: engine.canceled, message="the provider job to be canceled")
        assert engine.canceled == [f"provider-{task.id}"]
        kept = studio.service.accept("owner-a", TaskType.CREATE, "another kite", []).task
        wait_for(lambda: (studio.store.get(kept.id) or kept).provider_job_id, message="the second job id")
    finally:
        pool.stop()
    # Handed back on shutdown: the job goes on for the next worker to resume, and is not canceled.
    assert engine.canceled == [f"provider-{task.id}"]
    handed_back = studio.store.get(kept.id)
    assert handed_back is not None and handed_back.status == "processing" and handed_back.worker_id is None
    assert handed_back.provider_job_id == f"provider-{kept.id}"


def test_a_worker_survives_a_database_error_while_recording_an_outcome(studio: Studio,
                                                                       monkeypatch: object) -> None:
    from tests.support.engines import ScriptedEngine

    real_fail = studio.store.fail
    calls: list[str] = []

    def flaky_fail(task_id: str, *args: object, **kwargs: object) -> bool:
        calls.append(task_id)
        if len(calls) == 1:
            raise RuntimeError("database is down")
        return real_fail(task_id, *args, **kwargs)  # type: ignore[arg-type]

    studio.store.fail = flaky_fail  # type: ignore[method-assign]
    first = studio.service.accept("owner-a", TaskType.CREATE, "please fail", []).task
    second = studio.service.accept("owner-a", TaskType.CREATE, "fine", []).task
    ran = WorkerPool(studio.store, studio.storage, ScriptedEngine(), studio.settings, 1).run_burst()
    assert ran == 2
    assert studio.service.get("owner-a", second.id).status == "completed"
    # The first keeps its lease until it runs out; then it is taken over or swept, never lost.
    row = studio.store.get(first.id)
    assert row is not None and row.status == "processing"


class BillingEngine(RunToCompletionEngine):
    """Bills on every run (like a synchronous provider) and runs until stopped."""

    name = "billing"
    rerun_safe = False

    def run(self, job: EngineJob, ctx: EngineContext) -> EngineResult:
        while True:
            ctx.sleep(0.05)


def test_a_billing_engine_handed_back_on_shutdown_is_not_run_again(studio: Studio) -> None:
    task = studio.service.accept("owner-a", TaskType.CREATE, "a kite", []).task
    pool = WorkerPool(studio.store, studio.storage, BillingEngine(), studio.settings.with_overrides(
        shutdown_grace=0.0), 1)
    pool.start()
    wait_for(lambda: (studio.store.get(task.id) or task).worker_id, message="the task to be claimed")
    pool.stop()
    handed_back = studio.store.get(task.id)
    assert handed_back is not None and handed_back.worker_id is None and handed_back.attempts == 1
    WorkerPool(studio.store, studio.storage, BillingEngine(), studio.settings, 1).run_burst()
    final = studio.service.get("owner-a", task.id)
    assert final.status == "failed" and final.error is not None and final.error.code == "interrupted"


def test_a_worker_whose_lease_ran_out_cannot_finish_its_successors_run(studio: Studio) -> None:
    task = studio.service.accept("owner-a", TaskType.CREATE, "a kite", []).task
    assert studio.store.claim("worker-a", "scripted", limit=1, lease_seconds=0.001, max_attempts=3)
    wait_for(lambda: studio.store.claim("worker-b", "scripted", limit=1, lease_seconds=30, max_attempts=3),
             message="the lease to run out and worker-b to take over")
    assert not studio.store.fail(task.id, "engine_error", "too late", worker_id="worker-a")
    assert not studio.store.complete(task.id, "result-a.png", worker_id="worker-a")
    assert studio.store.complete(task.id, "result-b.png", worker_id="worker-b")
    final = studio.store.get(task.id)
    assert final is not None and final.result_name == "result-b.png"
