"""What happened on the hosts, read from outside: the task rows (from inside `db`), the engine's run events, the
bucket's objects, and the chaos suite's verdict on them plus the one promise object storage adds."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable

from tests.chaos.ledger import Verdict, judge, read_runs, wait_until_settled
from tests.chaos.traffic import Answer, TaskStream
from tests.hosts.network import enter, run_in
from tests.hosts.topology import BUCKET_PORT, Studio
from tests.support.s3 import keys

# The original of a result, as the task manager names it (renditions beside it are .webp).
RESULT_KEY = re.compile(r"/tasks/([^/]+)/result-\d+-[0-9a-f]+\.png$")


def stored_results(studio: Studio) -> Counter[str]:
    """How many result pictures the bucket holds per task."""
    endpoint = f"http://{studio.address('bucket')}:{BUCKET_PORT}"
    found = run_in(studio.namespace("bucket"), lambda: keys(endpoint, studio.bucket_name, "studio/tasks/"))
    return Counter(match.group(1) for key in found if (match := RESULT_KEY.search(key)))


def settle_and_judge(studio: Studio, scenario: str, stream: TaskStream,
                     skews: dict[int, float] | None = None) -> Verdict:
    """Waits until every accepted task is final (or past its deadline), then judges the common promises and one
    more: exactly one stored result per completed task, none for a failed one. `skews` (pid → seconds its clock
    is off) puts the run events of processes with a wrong clock back on the machine's."""
    rows = run_in(studio.namespace("db"),
                  lambda: wait_until_settled(studio.database_url, studio.limits, stream.accepted),
                  timeout=studio.limits.stuck_after + 120)
    # The module's earlier scenarios share the database and the events log: judge this one's tasks only.
    rows = {task_id: row for task_id, row in rows.items() if task_id in stream.accepted}
    runs = [run for run in read_runs(studio.run_events) if run.task_id in stream.accepted]
    for run in runs:
        off = (skews or {}).get(run.pid, 0.0)
        run.started -= off
        if run.ended is not None:
            run.ended -= off
    verdict = judge(scenario, limits=studio.limits, accepted=stream.accepted, rows=rows, runs=runs,
                    kills=studio.kills)
    results = stored_results(studio)
    wrong = {task_id: results.get(task_id, 0) for task_id, row in rows.items()
             if results.get(task_id, 0) != (1 if row.status == "completed" else 0)}
    if wrong:
        verdict.problem(f"stored results: {len(wrong)} tasks do not have exactly one result per completion, e.g. "
                        f"{list(wrong.items())[:3]}")
    return verdict


def from_client(studio: Studio) -> Callable[[], None]:
    """A request loop's setup: its thread (and the threads it starts) talk from inside the client host."""
    namespace = studio.namespace("client")
    return lambda: enter(namespace)


def worst_latency(answers: list[Answer]) -> float | None:
    return max((answer.seconds for answer in answers), default=None)
