"""Database blips (PostgreSQL): every connection to the test database is terminated every 50 ms for a while,
during a stream of tasks and status polls. A blip is a fault, never a generation's failure; a route that cannot
reach the database answers 503, never 500."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy.engine import make_url

from tests.chaos.cluster import Cluster, Limits
from tests.chaos.faults import BackendTerminator
from tests.chaos.ledger import Verdict, check_errors_are_503, judge, read_runs, wait_until_settled
from tests.chaos.profile import PROFILE
from tests.chaos.traffic import Poller, TaskStream, keep_going
from tests.conftest import POSTGRES_ADMIN_URL
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.chaos, pytest.mark.slow, pytest.mark.postgres]

LIMITS = Limits(task_timeout=40, lease_seconds=2, max_attempts=3)


def prompt(number: int) -> str:
    return f"slow:0.5 fail as asked #{number}" if number % 10 == 9 else f"slow:1 #{number}"


@pytest.mark.parametrize("chaos_db", ["postgres"], indirect=True)
def test_database_blips_are_not_failures(chaos_db: str, cluster_for: Callable[..., Cluster],
                                         chaos_table: Callable[[Verdict], None]) -> None:
    cluster = cluster_for(chaos_db, LIMITS)
    cluster.serve(GENKEEP_WORKERS="2")
    cluster.worker(GENKEEP_WORKERS="2")
    stream = TaskStream(cluster.base_url, prompt, interval=0.3, give_up_after=PROFILE.blip_seconds + 10).start()
    poller = Poller(cluster.base_url, stream).start()
    try:
        wait_for(lambda: len(read_runs(cluster.run_events)) >= 3, timeout=30, message="tasks to be running")
        with BackendTerminator(POSTGRES_ADMIN_URL, make_url(chaos_db).database or "") as terminator:
            keep_going(PROFILE.blip_seconds)
    finally:
        stream.stop()
        poller.stop()
    rows = wait_until_settled(chaos_db, LIMITS, stream.accepted)
    verdict = judge(f"database blips {PROFILE.blip_seconds:g} s (postgresql)", limits=LIMITS,
                    accepted=stream.accepted, rows=rows, runs=read_runs(cluster.run_events), kills=cluster.kills)
    check_errors_are_503(verdict, "POST /api/tasks", stream.answers)
    check_errors_are_503(verdict, "GET /api/tasks/{id}", poller.answers)
    chaos_table(verdict)
    print(f"terminated {terminator.terminated} connections in {terminator.rounds} rounds; "
          f"{len(stream.answers)} POSTs, {len(poller.answers)} polls")
    assert terminator.terminated > 0, "the blips must have hit genkeep's connections"
    assert not verdict.problems, "\n".join(verdict.problems)
