"""kill -9 rounds: a steady stream of tasks while the worker and the server are killed mid-generation, in turn,
and restarted. Nothing accepted is lost or stuck, no task runs twice at once or beyond its attempts."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import pytest

from tests.chaos.cluster import Cluster, Limits, Member
from tests.chaos.ledger import Verdict, judge, read_runs, takeover_times, wait_until_settled
from tests.chaos.profile import PROFILE
from tests.chaos.traffic import TaskStream, keep_going
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

LIMITS = Limits(task_timeout=30, lease_seconds=2, max_attempts=3)
# The stream runs this long between a restart and the next kill, so every round sees a few new tasks.
ROUND_SECONDS = 2.0


def prompt(number: int) -> str:
    if number % 10 == 9:
        return f"slow:0.3 fail as asked #{number}"
    if number % 7 == 3:
        return f"slow:2 a long one #{number}"
    return f"slow:0.6 #{number}"


def running_in(cluster: Cluster, member: Member) -> bool:
    return any(run.pid == member.pid and run.ended is None for run in read_runs(cluster.run_events))


def ran_in(cluster: Cluster, member: Member) -> bool:
    return any(run.pid == member.pid for run in read_runs(cluster.run_events))


@pytest.mark.parametrize("chaos_db", ["sqlite", "postgres"], indirect=True)
def test_kill_9_rounds_lose_nothing(chaos_db: str, cluster_for: Callable[..., Cluster],
                                    chaos_table: Callable[[Verdict], None]) -> None:
    cluster = cluster_for(chaos_db, LIMITS)
    members = {"serve": cluster.serve(GENKEEP_WORKERS="1"), "worker": cluster.worker(GENKEEP_WORKERS="2")}
    with TaskStream(cluster.base_url, prompt, interval=0.4) as stream:
        for round_number in range(PROFILE.kill_rounds):
            kind = "worker" if round_number % 2 == 0 else "serve"
            victim = members[kind]
            keep_going(ROUND_SECONDS)
            wait_for(partial(running_in, cluster, victim), timeout=30, message=f"the {kind} to be mid-generation")
            cluster.kill(victim)
            members[kind] = cluster.restart(victim)
            # The next round starts once the restarted process has taken work again.
            wait_for(partial(ran_in, cluster, members[kind]), timeout=30,
                     message=f"the restarted {kind} to run a task")
    rows = wait_until_settled(chaos_db, LIMITS, stream.accepted)
    runs = read_runs(cluster.run_events)
    backend = chaos_db.split(":", 1)[0]
    verdict = judge(f"kill -9 ×{PROFILE.kill_rounds} ({backend})", limits=LIMITS, accepted=stream.accepted,
                    rows=rows, runs=runs, kills=cluster.kills)
    verdict.takeover = max(takeover_times(runs, cluster.kills), default=None)
    chaos_table(verdict)
    assert not verdict.problems, "\n".join(verdict.problems)
