"""Real processes: many workers, a worker killed mid-task, a server restarted with tasks in flight."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from genkeep.config import Settings
from genkeep.studio import Studio
from genkeep.tasks.schema import tasks
from tests.conftest import SCRIPTED_ENGINE
from tests.support.database import connect as connect_database
from tests.support.processes import free_port, genkeep_env, serving, start, stop
from tests.support.tasks import accept, row
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow


def _counts(studio: Studio) -> dict[str, int]:
    query = select(tasks.c.status, func.count()).group_by(tasks.c.status)
    engine = connect_database(studio.settings.resolved_database_url)
    try:
        with engine.connect() as conn:
            return {status: count for status, count in conn.execute(query).all()}
    finally:
        engine.dispose()


def test_four_worker_processes_complete_200_tasks_exactly_once(settings: Settings, tmp_path: Path) -> None:
    studio = Studio.open(settings.with_overrides(max_unfinished_per_owner=1000))
    ids = {accept(studio, f"task {n}", owner=f"owner-{n % 7}").id for n in range(200)}
    run_log = tmp_path / "runs.log"
    env = genkeep_env(settings.data_dir, settings.resolved_database_url, GENKEEP_ENGINE=SCRIPTED_ENGINE,
                      GENKEEP_WORKERS="2", GENKEEP_TEST_RUN_LOG=str(run_log),
                      GENKEEP_WORKER_POLL_INTERVAL="0.2")
    workers = [start(["worker"], env, tmp_path / f"worker-{n}.log") for n in range(4)]
    try:
        wait_for(lambda: _counts(studio).get("completed") == 200, timeout=120, interval=0.25,
                 message="200 tasks to complete")
    finally:
        for worker in workers:
            stop(worker)
        studio.close()
    runs = run_log.read_text().split()
    assert sorted(runs) == sorted(ids), "every task ran exactly once"
    logs = "".join((tmp_path / f"worker-{n}.log").read_text() for n in range(4))
    assert "Traceback" not in logs


def test_a_worker_killed_mid_task_is_taken_over(settings: Settings, tmp_path: Path) -> None:
    studio = Studio.open(settings)
    task = accept(studio, "slow:3 a long generation", owner="owner-a")
    run_log = tmp_path / "runs.log"
    env = genkeep_env(settings.data_dir, settings.resolved_database_url, GENKEEP_ENGINE=SCRIPTED_ENGINE,
                      GENKEEP_WORKERS="1", GENKEEP_LEASE_SECONDS="1.5", GENKEEP_TEST_RUN_LOG=str(run_log),
                      GENKEEP_WORKER_POLL_INTERVAL="0.2")
    first = start(["worker"], env, tmp_path / "first.log")
    second = None
    try:
        def mid_generation() -> bool:
            current = row(studio, task.id)
            return current is not None and (current.progress or 0) > 0.1

        wait_for(mid_generation, timeout=30, message="the first worker to be mid-generation")
        stop(first, signal.SIGKILL)
        second = start(["worker"], env, tmp_path / "second.log")

        def finished() -> bool:
            current = row(studio, task.id)
            return current is not None and current.is_final

        wait_for(finished, timeout=30, message="the task to finish after the takeover")
        final = row(studio, task.id)
        assert final is not None and final.status == "completed", final
        assert final.attempts == 2
        assert run_log.read_text().split() == [task.id, task.id]
    finally:
        stop(first, signal.SIGKILL)
        if second is not None:
            stop(second)
        studio.close()


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_a_server_restarted_with_tasks_in_flight_finishes_them(settings: Settings, tmp_path: Path,
                                                              how: str) -> None:
    env = genkeep_env(settings.data_dir, settings.resolved_database_url, GENKEEP_ENGINE=SCRIPTED_ENGINE,
                      GENKEEP_WORKERS="2", GENKEEP_LEASE_SECONDS="1.5", GENKEEP_SHUTDOWN_GRACE="0")
    cookies: httpx.Cookies = httpx.Cookies()
    with serving(env, tmp_path / "serve-1.log") as (process, base):
        with httpx.Client(base_url=base, cookies=cookies) as browser:
            ids = [browser.post("/api/tasks", data={"type": "CREATE", "prompt": f"slow:4 number {n}"}).json()["id"]
                   for n in range(3)]
            cookies = browser.cookies
            wait_for(lambda: (browser.get(f"/api/tasks/{ids[0]}").json()["progress"] or 0) > 0.05,
                     message="a task to be mid-generation")
        stop(process, getattr(signal, how))
    with serving(env, tmp_path / "serve-2.log") as (_, base), httpx.Client(base_url=base, cookies=cookies) as browser:
        for task_id in ids:
            assert browser.get(f"/api/tasks/{task_id}").json()["status"] in ("processing", "completed")

        def all_done() -> bool:
            return all(browser.get(f"/api/tasks/{task_id}").json()["status"] == "completed" for task_id in ids)

        wait_for(all_done, timeout=40, interval=0.2, message="the tasks to complete after the restart")


def test_a_new_task_wakes_an_idle_worker_process_at_once(postgres_url: str, tmp_path: Path) -> None:
    """No fixed sleep between acceptance and the start of work: LISTEN/NOTIFY wakes workers on PostgreSQL."""
    settings = Settings(data_dir=tmp_path / "data", database_url=postgres_url, engine=SCRIPTED_ENGINE,
                        secret_key="test-secret-key-" + "x" * 16)
    studio = Studio.open(settings)
    env = genkeep_env(settings.data_dir, postgres_url, GENKEEP_ENGINE=SCRIPTED_ENGINE,
                      GENKEEP_WORKERS="1", GENKEEP_WORKER_POLL_INTERVAL="600")
    worker = start(["worker"], env, tmp_path / "worker.log")
    try:
        wait_for(lambda: "running 1 at a time" in (tmp_path / "worker.log").read_text(), timeout=30,
                 message="the worker to start")
        task = accept(studio, "wake up", owner="owner-wake")

        def done() -> bool:
            current = row(studio, task.id)
            return current is not None and current.status == "completed"

        # Far less than the 600 s poll interval: only the notification can have woken it.
        wait_for(done, timeout=15, message="the idle worker to pick the task up")
    finally:
        stop(worker)
        studio.close()


def test_every_process_of_serve_logs_json_lines_with_the_transitions(tmp_path: Path) -> None:
    port = free_port()
    env = genkeep_env(tmp_path / "data", f"sqlite:///{tmp_path / 'genkeep.db'}", GENKEEP_ENGINE=SCRIPTED_ENGINE,
                      GENKEEP_LOG_FORMAT="json", GENKEEP_WORKER_POLL_INTERVAL="0.2")
    log_path = tmp_path / "serve.log"
    base = f"http://127.0.0.1:{port}"
    server = start(["serve", "--port", str(port), "--processes", "2"], env, log_path)
    try:
        def healthy() -> bool:
            try:
                return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(healthy, timeout=60, message="genkeep serve --processes 2 to answer")
        with httpx.Client(base_url=base, timeout=10) as browser:
            task_id = browser.post("/api/tasks", data={"type": "CREATE", "prompt": "a kite"}).json()["id"]
            wait_for(lambda: browser.get(f"/api/tasks/{task_id}").json()["status"] == "completed", timeout=60,
                     message="the task to complete")
            # An Origin shaped to end the log line and start a forged one.
            forged = 'http://evil.example"} {"level": "critical", "message": "forged'
            for _ in range(4):  # the warning is written once per process
                refused = browser.post("/api/tasks", data={"type": "CREATE", "prompt": "x"},
                                       headers={"Sec-Fetch-Site": "same-origin", "Origin": forged})
                assert refused.status_code == 403
    finally:
        stop(server)
    records = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    transitions = {record["transition"] for record in records
                   if record.get("event") == "task_transition" and record.get("task_id") == task_id}
    assert {"accepted", "started", "completed"} <= transitions
    assert all(record["level"] != "critical" for record in records)
    assert any("evil.example" in record["message"] for record in records)
