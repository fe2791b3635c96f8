"""The database cut off (PostgreSQL behind a TCP proxy the test owns, holding packets rather than refusing them,
as a dead network does). During the cut, routes that need no database answer well under a second, and
database routes answer (an error such as 503 is fine) within 5 s; after it, everything accepted completes."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from sqlalchemy.engine import make_url

from tests.chaos.cluster import OWNER_HEADER, Cluster, Limits
from tests.chaos.ledger import (
    Verdict,
    check_errors_are_503,
    check_latency,
    judge,
    read_runs,
    wait_until_settled,
    worst,
)
from tests.chaos.profile import PROFILE
from tests.chaos.traffic import RouteProbe, TaskStream, during, keep_going
from tests.support.tcp_proxy import tcp_proxy
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.chaos, pytest.mark.slow, pytest.mark.postgres]

# Longer than the cut and what was running before it: a timeout here would be the cut's doing.
LIMITS = Limits(task_timeout=PROFILE.cut_seconds + 30, lease_seconds=2, max_attempts=3)
NO_DATABASE_BOUND = 1.0
DATABASE_BOUND = 5.0


def prompt(number: int) -> str:
    return f"slow:1.5 #{number}"


@pytest.mark.parametrize("chaos_db", ["postgres"], indirect=True)
def test_database_cut_off(chaos_db: str, cluster_for: Callable[..., Cluster],
                          chaos_table: Callable[[Verdict], None]) -> None:
    direct = make_url(chaos_db)
    # A hung request is still timed, up to the end of the cut and a little more: bounded either way.
    patience = PROFILE.cut_seconds + 5
    with tcp_proxy(direct.host or "127.0.0.1", direct.port or 5432) as proxy:
        via_proxy = direct.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        cluster = cluster_for(via_proxy, LIMITS)
        cluster.serve(GENKEEP_WORKERS="2")
        cluster.worker(GENKEEP_WORKERS="2")
        stream = TaskStream(cluster.base_url, prompt, interval=0.4, request_timeout=patience,
                            give_up_after=patience + 10).start()
        probes: list[RouteProbe] = []
        try:
            wait_for(lambda: len(read_runs(cluster.run_events)) >= 3, timeout=30, message="tasks to be running")
            known = next(iter(stream.accepted))
            probes = [RouteProbe(cluster.base_url, path, request_timeout=patience)
                      for path in ("/api/ping", "/healthz")]
            probes.append(RouteProbe(cluster.base_url, f"/api/tasks/{known}", request_timeout=patience,
                                     headers={OWNER_HEADER: stream.owner_of[known]}))
            for probe in probes:
                probe.start()
            cut_started = time.time()
            proxy.hold()
            keep_going(PROFILE.cut_seconds)
            cut_ended = time.time()
            proxy.release()
            keep_going(2.0)  # a few tasks accepted after the cut, too
        finally:
            proxy.release()
            stream.stop()
            for probe in probes:
                probe.stop()
        rows = wait_until_settled(chaos_db, LIMITS, stream.accepted)
        runs = read_runs(cluster.run_events)
        cluster.close()
    verdict = judge(f"database cut {PROFILE.cut_seconds:g} s (postgresql)", limits=LIMITS, accepted=stream.accepted,
                    rows=rows, runs=runs, kills=cluster.kills)
    no_database = [answer for probe in probes[:2] for answer in during(probe.answers, cut_started, cut_ended)]
    database = during(probes[2].answers, cut_started, cut_ended) + during(stream.answers, cut_started, cut_ended)
    verdict.no_db_worst = worst(no_database)
    verdict.db_worst = worst(database)
    check_latency(verdict, "/api/ping and /healthz during the cut", no_database, NO_DATABASE_BOUND)
    check_latency(verdict, "GET /api/tasks/{id} and POST /api/tasks during the cut", database, DATABASE_BOUND)
    check_errors_are_503(verdict, "database routes during the cut", database)
    unfinished = [task_id for task_id in stream.accepted if rows.get(task_id) is None
                  or rows[task_id].status != "completed"]
    if unfinished:
        verdict.problem(f"after the cut, {len(unfinished)} accepted tasks did not complete: "
                        f"{sorted({(rows[t].status, rows[t].error_code) for t in unfinished if t in rows})}")
    chaos_table(verdict)
    for label, answers in (("no-db", no_database), ("db", database)):
        print(f"{label} routes during the cut: {len(answers)} requests, statuses "
              f"{sorted({str(answer.status) for answer in answers})}")
    assert not verdict.problems, "\n".join(verdict.problems)
