"""One clock: real `genkeep serve`, `genkeep worker` and `genkeep sweep` processes whose clocks are ten minutes off
(libfaketime) share one PostgreSQL, and no task's fate depends on their clocks: a task is not taken over while its
worker renews its lease, not failed early, and not kept past its timeout."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

import httpx
import psycopg
import pytest

from tests.chaos.cluster import OWNER_HEADER, Cluster, Limits
from tests.chaos.ledger import Run, read_runs
from tests.support.clocks import offset_seen_by_python, skewed
from tests.support.processes import start
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.chaos]

SKEW = 600.0
LIMITS = Limits(task_timeout=30, sweep_interval=1, lease_seconds=2)


def submit(cluster: Cluster, prompt: str) -> dict[str, str]:
    response = httpx.post(f"{cluster.base_url}/api/tasks", data={"type": "CREATE", "prompt": prompt},
                          headers={OWNER_HEADER: "ana"}, timeout=10)
    assert response.status_code == 201, response.text
    task: dict[str, str] = response.json()
    return task


def stored(cluster: Cluster, task_id: str) -> tuple[str, int, str | None, int, int | None]:
    """status, attempts, error code, created_at and finished_at, as the row holds them."""
    with psycopg.connect(cluster.database_url, connect_timeout=5) as conn:
        row = conn.execute("SELECT status, attempts, error_code, created_at, finished_at FROM tasks WHERE id = %s",
                           (task_id,)).fetchone()
    assert row is not None
    return row[0], row[1], row[2], row[3], row[4]


def runs_of(cluster: Cluster, task_id: str) -> list[Run]:
    return [run for run in read_runs(cluster.run_events) if run.task_id == task_id]


def test_faketime_moves_a_childs_wall_clock_and_leaves_its_monotonic_clock_real() -> None:
    for seconds in (SKEW, -SKEW):
        wall, monotonic = offset_seen_by_python(skewed(seconds))
        assert abs(wall - seconds) < 5, f"the child's time.time() is {wall:+.1f} s off, not {seconds:+g} s"
        assert abs(monotonic) < 5, f"the child's time.monotonic() is {monotonic:+.1f} s off"


@pytest.mark.parametrize("chaos_db", ["postgres"], indirect=True)
@pytest.mark.parametrize(("running", "polling"), [(-SKEW, 0.0), (0.0, SKEW)],
                         ids=["running-worker-behind", "polling-worker-ahead"])
def test_a_task_is_not_taken_over_while_its_worker_renews_whatever_the_clocks(
        chaos_db: str, cluster_for: Callable[..., Cluster], running: float, polling: float) -> None:
    cluster = cluster_for(chaos_db, LIMITS)
    cluster.serve(GENKEEP_WORKERS="0")
    runner = cluster.worker(GENKEEP_WORKERS="1", **skewed(running))
    # Four leases long: a worker that judged the lease by its own clock would take it over at its first poll.
    task = submit(cluster, "slow:8 the long one")
    wait_for(lambda: runs_of(cluster, task["id"]), timeout=30, message="the first worker to start the task")
    poller = cluster.worker(GENKEEP_WORKERS="1", **skewed(polling))
    poller_log = cluster.folder / "worker-2.log"
    wait_for(lambda: poller_log.exists() and "running" in poller_log.read_text(), timeout=30,
             message="the second worker to be polling")
    assert stored(cluster, task["id"])[0] == "processing", "the second worker must poll while the task runs"
    wait_for(lambda: stored(cluster, task["id"])[0] == "completed", timeout=30, interval=0.2,
             message="the task to complete")
    _, attempts, _, _, _ = stored(cluster, task["id"])
    runs = runs_of(cluster, task["id"])
    assert attempts == 1, f"the task ran {attempts} times (a takeover while its worker was renewing)"
    assert [run.pid for run in runs] == [runner.process.pid], "only the first worker ran it"
    assert poller.process.poll() is None


@pytest.mark.parametrize("chaos_db", ["postgres"], indirect=True)
def test_a_task_accepted_by_a_server_whose_clock_is_behind_fails_on_time_not_early(
        chaos_db: str, cluster_for: Callable[..., Cluster]) -> None:
    limits = Limits(task_timeout=12, sweep_interval=1, lease_seconds=2)
    cluster = cluster_for(chaos_db, limits)
    # No workers: the task stays unfinished until its deadline. The server sweeps too, by the database's clock.
    cluster.serve(GENKEEP_WORKERS="0", **skewed(-SKEW))
    before = time.time()
    task = submit(cluster, "never run")
    created = datetime.fromisoformat(task["created_at"]).timestamp()
    assert before - 2 < created < time.time() + 2, "created_at is the database's clock, not the server's"
    # A sweep on a machine ahead, and one on a machine whose clock is right (ten minutes ahead of the server's).
    sweeps = [start(["sweep"], cluster.env(**skewed(seconds)), cluster.folder / f"sweep{seconds:+g}.log")
              for seconds in (SKEW, 0.0)]
    assert [sweep.wait(timeout=30) for sweep in sweeps] == [0, 0]
    assert time.time() - before < limits.task_timeout, "the sweeps took too long to prove anything"
    assert stored(cluster, task["id"])[0] == "processing", "a sweep whose clock is off failed a fresh task"

    def status() -> str:
        answer = httpx.get(f"{cluster.base_url}/api/tasks/{task['id']}", headers={OWNER_HEADER: "ana"}, timeout=5)
        told = int(answer.headers["Genkeep-Clock"]) / 1000
        assert abs(told - time.time()) < 2, f"the server tells pages a time {told - time.time():+.1f} s off"
        return str(answer.json()["status"])

    wait_for(lambda: status() == "failed", timeout=limits.task_timeout + limits.sweep_interval + 5, interval=0.2,
             message="the task to fail at its deadline")
    _, _, code, created_at, finished_at = stored(cluster, task["id"])
    assert code == "timeout" and finished_at is not None
    lived = (finished_at - created_at) / 1000
    assert limits.task_timeout <= lived <= limits.task_timeout + limits.sweep_interval + 2, \
        f"failed {lived:.1f} s after it was created, timeout {limits.task_timeout:g} s"
