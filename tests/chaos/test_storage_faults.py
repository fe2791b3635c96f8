"""A full or read-only images folder (a small tmpfs mounted over it; PostgreSQL as the database). Tasks caught by
the fault are not the engine's failure: they are retried or handed back and, if the fault lasts, fail with a
storage code and a sentence a user can act on. New uploads are refused with 503, leaving nothing behind. Once
the space is back, new tasks complete."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.chaos.cluster import Cluster, Limits
from tests.chaos.ledger import Verdict, check_errors_are_503, judge, read_runs, wait_until_settled
from tests.chaos.profile import PROFILE
from tests.chaos.traffic import TaskStream, during, keep_going
from tests.support.mounts import fill, mount_unavailable, remount, small_tmpfs
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.chaos, pytest.mark.slow, pytest.mark.postgres]

LIMITS = Limits(task_timeout=30, lease_seconds=2, max_attempts=3)
TMPFS_BYTES = 1024 * 1024


def prompt(number: int) -> str:
    return f"slow:0.3 #{number}"


def leftovers(images: Path) -> list[str]:
    """Partial result files and staged uploads that outlived their request or run."""
    partial = [str(path.relative_to(images)) for path in images.rglob(".*.partial")]
    incoming = images / "incoming"
    staged = [f"incoming/{path.name}" for path in incoming.iterdir()] if incoming.is_dir() else []
    return partial + staged


@pytest.mark.parametrize("fault", ["full", "read-only"])
@pytest.mark.parametrize("chaos_db", ["postgres"], indirect=True)
def test_a_full_or_read_only_images_folder(fault: str, chaos_db: str, cluster_for: Callable[..., Cluster],
                                           chaos_table: Callable[[Verdict], None]) -> None:
    reason = mount_unavailable()
    if reason is not None:
        pytest.skip(reason)
    cluster = cluster_for(chaos_db, LIMITS)
    images = cluster.data_dir / "images"
    with small_tmpfs(images, TMPFS_BYTES):
        try:
            cluster.serve(GENKEEP_WORKERS="2")
            # Every third task uploads a reference image: the request itself writes to the folder too.
            with TaskStream(cluster.base_url, prompt, interval=0.3, image_every=3) as stream:
                wait_for(lambda: sum(run.outcome == "ok" for run in read_runs(cluster.run_events)) >= 2,
                         timeout=30, message="a few tasks to run before the fault")
                filler = None
                if fault == "full":
                    filler = fill(images)
                else:
                    remount(images, read_only=True)
                fault_started = time.time()
                keep_going(PROFILE.fault_seconds)
                if filler is not None:
                    filler.unlink()
                else:
                    remount(images, read_only=False)
                fault_ended = time.time()
                keep_going(2.0)  # new tasks, once the space is back
            rows = wait_until_settled(chaos_db, LIMITS, stream.accepted)
            left = leftovers(images)
        finally:
            cluster.close()
    verdict = judge(f"images folder {fault} {PROFILE.fault_seconds:g} s (postgresql)", limits=LIMITS,
                    accepted=stream.accepted, rows=rows, runs=read_runs(cluster.run_events), kills=cluster.kills,
                    storage_fault=True)
    check_errors_are_503(verdict, "POST /api/tasks during the fault",
                         during(stream.answers, fault_started, fault_ended))
    after = [task_id for task_id, moment in stream.accepted_at.items() if moment > fault_ended]
    not_completed = [task_id for task_id in after if task_id not in rows or rows[task_id].status != "completed"]
    if not after:
        verdict.problem("no task was accepted after the fault ended")
    if not_completed:
        verdict.problem(f"after the fault, {len(not_completed)} of {len(after)} new tasks did not complete")
    if left:
        staged = [name for name in left if name.startswith("incoming/")]
        verdict.problem(f"left behind: {len(left) - len(staged)} partial result files and {len(staged)} staged "
                        f"uploads, e.g. {left[:2]}")
    chaos_table(verdict)
    print(f"POST answers during the fault: "
          f"{sorted({str(answer.status) for answer in during(stream.answers, fault_started, fault_ended)})}")
    assert not verdict.problems, "\n".join(verdict.problems)
