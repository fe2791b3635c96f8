"""Takeover under a steady stream: one worker, a short lease, a new task every ~0.5 s (a little more than the
worker can do, as at a busy hour). The worker is killed -9 in the middle of a long task and replaced at once:
the killed task must be taken over within a lease plus a heartbeat (plus however long the replacement takes to
start), not left waiting behind the new tasks until the stream dries up."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

import pytest

from tests.chaos.cluster import Cluster, Limits
from tests.chaos.ledger import Run, Verdict, judge, read_runs, wait_until_settled
from tests.chaos.profile import PROFILE
from tests.chaos.traffic import TaskStream, keep_going
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

LIMITS = Limits(task_timeout=60, lease_seconds=2, max_attempts=3)
LONG_ONE = 3


def prompt(number: int) -> str:
    return f"slow:4 the long one #{number}" if number == LONG_ONE else f"slow:0.6 #{number}"


def runs_of(cluster: Cluster, task_id: str) -> list[Run]:
    return [run for run in read_runs(cluster.run_events) if run.task_id == task_id]


@pytest.mark.parametrize("chaos_db", ["sqlite", "postgres"], indirect=True)
def test_a_killed_task_is_taken_over_under_a_steady_stream(chaos_db: str, cluster_for: Callable[..., Cluster],
                                                            chaos_table: Callable[[Verdict], None]) -> None:
    cluster = cluster_for(chaos_db, LIMITS)
    cluster.serve(GENKEEP_WORKERS="0")
    worker = cluster.worker(GENKEEP_WORKERS="1")
    with TaskStream(cluster.base_url, prompt, interval=0.5) as stream:
        long_one = wait_for(lambda: next(iter(stream.ids_with("the long one")), None), timeout=30,
                            message="the long task to be accepted")
        first_run = wait_for(lambda: next(iter(runs_of(cluster, long_one)), None), timeout=30,
                             message="the worker to start the long task")
        wait_for(lambda: time.time() > first_run.started + 1.0, timeout=10, message="the long task to be under way")
        killed_at = cluster.kill(worker)
        replacement = cluster.restart(worker)

        def taken_over() -> Run | None:
            return next((run for run in runs_of(cluster, long_one) if run.pid == replacement.pid), None)

        # The stream goes on for a while whatever happens: a fair takeover happens under it, well before its end.
        keep_going(max(0.0, killed_at + PROFILE.stream_after_kill - time.time()))
    # Bounded: an unfair worker takes it over once the backlog has drained, or the sweeper fails it.
    second_run = None
    with contextlib.suppress(AssertionError):
        second_run = wait_for(taken_over, timeout=LIMITS.task_timeout, interval=0.1,
                              message="the killed task to run again")
    rows = wait_until_settled(chaos_db, LIMITS, stream.accepted)
    runs = read_runs(cluster.run_events)
    backend = chaos_db.split(":", 1)[0]
    verdict = judge(f"takeover under a stream ({backend})", limits=LIMITS, accepted=stream.accepted, rows=rows,
                    runs=runs, kills=cluster.kills)
    replacement_ready = min((run.started for run in runs if run.pid == replacement.pid), default=None)
    if second_run is None:
        verdict.problem(f"the killed task was never taken over (it ended {rows[long_one].status}/"
                        f"{rows[long_one].error_code})" if long_one in rows else "the killed task has no row")
    else:
        verdict.takeover = second_run.started - killed_at
        # The replacement worker's first run says when it was ready to claim anything.
        ready_after = (replacement_ready or second_run.started) - killed_at
        bound = max(LIMITS.lease_seconds, ready_after) + LIMITS.heartbeat + LIMITS.poll_interval
        if verdict.takeover > bound:
            newer = sum(1 for run in runs if run.pid == replacement.pid and killed_at < run.started
                        < second_run.started)
            verdict.problem(
                f"takeover took {verdict.takeover:.2f} s, over max(lease {LIMITS.lease_seconds:g} s, replacement "
                f"ready after {ready_after:.2f} s) + heartbeat {LIMITS.heartbeat:.2f} s + poll "
                f"{LIMITS.poll_interval:g} s = {bound:.2f} s; {newer} newer tasks ran first")
    chaos_table(verdict)
    print(f"takeover: {verdict.takeover} s after the kill")
    assert not verdict.problems, "\n".join(verdict.problems)
