"""The chaos verdict itself: overlapping runs, killed runs and takeovers are read the way the scenarios need."""

from __future__ import annotations

from pathlib import Path

from tests.chaos.cluster import Limits
from tests.chaos.ledger import TaskRow, judge, read_runs, takeover_times

LIMITS = Limits(task_timeout=30, sweep_interval=1, max_attempts=3)


def row(task_id: str, status: str, code: str | None = None, prompt: str = "slow:1", age: float = 2.0) -> TaskRow:
    return TaskRow(task_id, status, code, "a sentence." if code else None, prompt, 1000.0, 1000.0 + age)


def test_runs_are_paired_by_run_and_a_killed_run_ends_at_the_kill(tmp_path: Path) -> None:
    events = tmp_path / "events.log"
    events.write_text(
        "start t1 r1 10 100.0\n"  # killed with pid 10 at 101.0
        "start t1 r2 11 103.5\n"
        "end t1 r2 11 104.0 ok\n"
        "start t2 r3 11 100.0\n"
        "start t2 r4 12 100.5\n"  # t2 ran twice at once
        "end t2 r3 11 101.0 ok\n"
        "end t2 r4 12 101.5 ok\n")
    runs = read_runs(events)
    kills = {10: 101.0}
    assert takeover_times(runs, kills) == [2.5]
    verdict = judge("check", limits=LIMITS, accepted={"t1": "slow:1", "t2": "slow:1"},
                    rows={"t1": row("t1", "completed"), "t2": row("t2", "completed")}, runs=runs, kills=kills)
    assert len(verdict.problems) == 1 and verdict.problems[0].startswith("two runs at once: 1 tasks")
    assert "t2" in verdict.problems[0]


def test_faults_recorded_as_failures_lost_and_stuck_tasks_are_named() -> None:
    rows = {
        "ok": row("ok", "completed"),
        "asked": row("asked", "failed", "engine_error", prompt="slow:1 fail"),
        "timeout": row("timeout", "failed", "timeout", age=31),
        "blip": row("blip", "failed", "engine_error"),
        "late": row("late", "failed", "timeout", age=40),
    }
    verdict = judge("check", limits=LIMITS, accepted={name: "" for name in [*rows, "gone"]}, rows=rows, runs=[],
                    kills={})
    assert verdict.lost == ["gone"]
    assert verdict.stuck == ["late"]
    assert verdict.failed == {"engine_error": 2, "timeout": 2} and verdict.asked_to_fail == 1
    assert any(problem.startswith("faults recorded as failures: {'engine_error': 1}") for problem in verdict.problems)


def test_a_lasting_storage_fault_may_fail_with_its_own_code_in_words_a_user_understands() -> None:
    rows = {"clear": TaskRow("clear", "failed", "storage_full", "The studio's image storage is full; try again "
                             "later.", "slow:1", 1000.0, 1002.0),
            "raw": TaskRow("raw", "failed", "storage_error", "[Errno 28] No space left on device", "slow:1",
                           1000.0, 1002.0)}
    verdict = judge("check", limits=LIMITS, accepted={}, rows=rows, runs=[], kills={}, storage_fault=True)
    assert len(verdict.problems) == 1 and "cannot act on" in verdict.problems[0]
    assert "Errno 28" in verdict.problems[0] and "storage_full" not in verdict.problems[0]


def test_a_run_handed_back_for_a_fault_is_the_same_attempt_and_a_fourth_attempt_is_over_the_limit(
        tmp_path: Path) -> None:
    events = tmp_path / "events.log"
    lines = ["start refunded r1 10 100.0 1", "end refunded r1 10 101.0 LeaseLost",
             "start refunded r2 11 102.0 1", "end refunded r2 11 103.0 LeaseLost",
             "start refunded r3 11 104.0 2", "end refunded r3 11 105.0 ok",
             "start refunded r4 11 106.0 3", "end refunded r4 11 107.0 ok"]
    lines += [f"start over r{n} 12 {100.0 + 2 * n} {n}\nend over r{n} 12 {101.0 + 2 * n} ok" for n in range(1, 5)]
    events.write_text("\n".join(lines) + "\n")
    verdict = judge("check", limits=LIMITS, accepted={"refunded": "slow:1", "over": "slow:1"},
                    rows={"refunded": row("refunded", "completed"), "over": row("over", "completed")},
                    runs=read_runs(events), kills={})
    assert verdict.problems == ["over the attempt limit: 1 tasks were attempted more than 3 times (attempts per "
                                "task: [4])"]
