"""What happened, read from outside the processes: the task rows (plain SQL), the engine's run events and the
clients' answers; and the verdict every chaos scenario asserts.

The verdict collects every broken promise before failing, so one run names them all:
- nothing lost: every accepted task id has a row, and it ends completed or failed;
- nothing stuck: every task is final within its timeout plus a sweep interval (and a small margin);
- no task attempted more than the limit (a run handed back for a database fault, its attempt refunded, runs again
  as the same attempt: a fault is not an attempt), and no two runs of one task at once;
- no fault recorded as a failure: with the scripted engine, a task whose prompt does not ask to fail may only
  fail with `timeout` (plus the scenario's own allowances, e.g. `interrupted` after max_attempts real kills).
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from tests.chaos.cluster import Limits
from tests.chaos.traffic import Answer
from tests.support.waiting import wait_for

FINAL = ("completed", "failed")
# The engine's own verdicts, never an infrastructure fault's.
SCRIPTED_FAILURE_WORDS = ("fail", "crash")
# Codes that say "the software broke", which a user cannot act on and a fault must never produce.
BROKEN_CODES = ("engine_error", "internal")
# What a sentence for a user must not contain: exception names, errno numbers, tracebacks, file paths.
NOT_FOR_USERS = re.compile(r"\[Errno|\b\w+(Error|Exception)\b|Traceback|/tmp/|/data/|\.py\b")


@dataclass(frozen=True)
class TaskRow:
    id: str
    status: str
    error_code: str | None
    error_message: str | None
    prompt: str | None
    created_at: float  # wall-clock seconds
    finished_at: float | None

    @property
    def is_final(self) -> bool:
        return self.status in FINAL

    @property
    def asked_to_fail(self) -> bool:
        return any(word in (self.prompt or "") for word in SCRIPTED_FAILURE_WORDS)


def read_tasks(database_url: str) -> dict[str, TaskRow]:
    """Every task row, read with plain SQL on a connection of our own (never through the test's proxy)."""
    statement = "SELECT id, status, error_code, error_message, prompt, created_at, finished_at FROM tasks"
    if database_url.startswith("sqlite"):
        with sqlite3.connect(database_url.split(":///", 1)[1], timeout=10) as conn:
            rows = conn.execute(statement).fetchall()
    else:
        with psycopg.connect(database_url, connect_timeout=5) as conn:
            rows = conn.execute(statement).fetchall()
    return {row[0]: TaskRow(row[0], row[1], row[2], row[3], row[4], row[5] / 1000,
                            row[6] / 1000 if row[6] is not None else None) for row in rows}


@dataclass
class Run:
    """One engine run, from the scripted engine's start and end lines."""

    task_id: str
    run_id: str
    pid: int
    started: float
    ended: float | None = None
    outcome: str | None = None
    # The task's attempt this run was (a run handed back for a database fault, refunded, runs again under the
    # same attempt: a fault is not an attempt).
    attempt: int | None = None

    def end(self, kills: dict[int, float], now: float) -> float:
        """When it stopped: its end line, else when its process was killed, else it is still running."""
        if self.ended is not None:
            return self.ended
        return kills.get(self.pid, now)


def read_runs(events: Path) -> list[Run]:
    runs: dict[str, Run] = {}
    if not events.exists():
        return []
    for line in events.read_text().splitlines():
        words = line.split()
        if len(words) >= 5 and words[0] == "start":
            runs[words[2]] = Run(words[1], words[2], int(words[3]), float(words[4]),
                                 attempt=int(words[5]) if len(words) >= 6 else None)
        elif len(words) >= 6 and words[0] == "end" and words[2] in runs:
            runs[words[2]].ended = float(words[4])
            runs[words[2]].outcome = words[5]
    return sorted(runs.values(), key=lambda run: run.started)


def _attempts(task_runs: list[Run]) -> int:
    """How many attempts a task's runs were: its runs, but a run handed back for a database fault (refunded) and
    run again counts once, as the task's row counts it."""
    return len({run.attempt if run.attempt is not None else run.run_id for run in task_runs})


def runs_by_task(runs: list[Run]) -> dict[str, list[Run]]:
    grouped: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        grouped[run.task_id].append(run)
    return grouped


def wait_until_settled(database_url: str, limits: Limits, accepted: dict[str, str]) -> dict[str, TaskRow]:
    """Wait until every accepted task has a row and every row is final, or until the youngest task is past
    its deadline (then what is left is stuck, and the verdict says so)."""
    latest: dict[str, dict[str, TaskRow]] = {"rows": {}}

    def settled() -> bool:
        rows = latest["rows"] = read_tasks(database_url)
        return all(task_id in rows for task_id in accepted) and all(row.is_final for row in rows.values())

    rows = read_tasks(database_url)
    youngest = max((row.created_at for row in rows.values()), default=time.time())
    patience = max(5.0, youngest + limits.stuck_after + 1.0 - time.time())
    # Not settling in time is no error here: the verdict reports what is lost or stuck.
    with contextlib.suppress(AssertionError):
        wait_for(settled, timeout=patience, interval=0.25, message="every task to be final")
    return latest["rows"]


def worst(answers: list[Answer]) -> float | None:
    return max((answer.seconds for answer in answers), default=None)


@dataclass
class Verdict:
    scenario: str
    accepted: int
    completed: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    asked_to_fail: int = 0  # failed because the prompt said so: the engine's verdict, not a fault
    lost: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    double_runs: int = 0  # tasks with two engine runs at once
    takeover: float | None = None
    no_db_worst: float | None = None
    db_worst: float | None = None
    problems: list[str] = field(default_factory=list)

    def problem(self, text: str) -> None:
        self.problems.append(text)

    def table_row(self) -> str:
        failed = " ".join(f"{code}:{count}" for code, count in sorted(self.failed.items())) or "-"
        if self.asked_to_fail:
            failed += f" (asked to fail: {self.asked_to_fail})"

        def seconds(value: float | None) -> str:
            return "-" if value is None else f"{value:.2f}"

        return (f"| {self.scenario} | {self.accepted} | {self.completed} | {failed} | {len(self.lost)} | "
                f"{len(self.stuck)} | {seconds(self.takeover)} | {seconds(self.no_db_worst)} | "
                f"{seconds(self.db_worst)} | {len(self.problems)} |")


TABLE_HEADER = ("| scenario | accepted | completed | failed by code | lost | stuck | takeover s | worst no-db route s "
                "| worst db route s | broken promises |\n|---|---|---|---|---|---|---|---|---|---|")


def judge(scenario: str, *, limits: Limits, accepted: dict[str, str], rows: dict[str, TaskRow], runs: list[Run],
          kills: dict[int, float], storage_fault: bool = False) -> Verdict:
    """The common promises, checked on what the rows, the runs and the clients saw."""
    now = time.time()
    verdict = Verdict(scenario, accepted=len(accepted))
    per_task = runs_by_task(runs)
    for row in rows.values():
        if row.status == "completed":
            verdict.completed += 1
        elif row.status == "failed":
            verdict.failed[row.error_code or "?"] += 1
            verdict.asked_to_fail += row.asked_to_fail

    verdict.lost = [task_id for task_id in accepted if task_id not in rows or not rows[task_id].is_final]
    if verdict.lost:
        missing = [task_id for task_id in verdict.lost if task_id not in rows]
        verdict.problem(f"lost: {len(verdict.lost)} accepted tasks never ended ({len(missing)} have no row at all), "
                        f"e.g. {verdict.lost[:3]}")

    for row in rows.values():
        age = (row.finished_at if row.finished_at is not None else now) - row.created_at
        if age > limits.stuck_after:
            verdict.stuck.append(row.id)
    if verdict.stuck:
        verdict.problem(f"stuck: {len(verdict.stuck)} tasks were not final within the {limits.task_timeout:g} s "
                        f"timeout + {limits.sweep_interval:g} s sweep interval (+2 s), e.g. "
                        f"{[_describe(rows[task_id], now) for task_id in verdict.stuck[:3]]}")

    over = {task_id: attempts for task_id, task_runs in per_task.items()
            if (attempts := _attempts(task_runs)) > limits.max_attempts}
    if over:
        verdict.problem(f"over the attempt limit: {len(over)} tasks were attempted more than {limits.max_attempts} "
                        f"times (attempts per task: {sorted(over.values(), reverse=True)[:10]})")

    overlapping = _overlapping(per_task, kills, now)
    verdict.double_runs = len(overlapping)
    if overlapping:
        verdict.problem(f"two runs at once: {len(overlapping)} tasks had overlapping engine runs, e.g. "
                        f"{overlapping[:3]}")

    faults: Counter[str] = Counter()
    examples: dict[str, str] = {}
    unreadable: list[str] = []
    for row in rows.values():
        if row.status != "failed":
            continue
        if row.asked_to_fail or row.error_code == "timeout":
            continue
        killed_runs = [run for run in per_task.get(row.id, []) if run.ended is None and run.pid in kills]
        if row.error_code == "interrupted" and len(killed_runs) >= limits.max_attempts:
            continue  # its processes really were killed max_attempts times: that is the attempt limit's verdict
        if storage_fault and row.error_code not in (*BROKEN_CODES, "interrupted"):
            if not row.error_message or NOT_FOR_USERS.search(row.error_message):
                unreadable.append(f"{row.error_code}: {row.error_message!r}")
            continue  # a lasting storage fault may fail a task with its own code
        faults[row.error_code or "?"] += 1
        examples.setdefault(row.error_code or "?", row.error_message or "")
    if faults:
        verdict.problem(f"faults recorded as failures: {dict(faults)}; e.g. "
                        + "; ".join(f"{code}: {message!r}" for code, message in examples.items()))
    if unreadable:
        verdict.problem(f"storage failures a user cannot act on: {unreadable[:3]}")

    kept_verdicts = [row.id for row in rows.values() if row.asked_to_fail and row.status == "completed"]
    if kept_verdicts:
        verdict.problem(f"the engine's own failure was lost: {len(kept_verdicts)} tasks asked to fail completed")
    return verdict


def _describe(row: TaskRow, now: float) -> str:
    end = row.finished_at if row.finished_at is not None else now
    return f"{row.id[:8]} {row.status}/{row.error_code} after {end - row.created_at:.1f} s"


def _overlapping(per_task: dict[str, list[Run]], kills: dict[int, float], now: float) -> list[str]:
    found = []
    for task_id, task_runs in per_task.items():
        holder = task_runs[0]
        for later in task_runs[1:]:
            if later.started < holder.end(kills, now):
                found.append(f"{task_id[:8]}: run in pid {holder.pid} until {holder.end(kills, now):.2f}, "
                             f"run in pid {later.pid} from {later.started:.2f}")
                break
            if later.end(kills, now) > holder.end(kills, now):
                holder = later
    return found


def check_latency(verdict: Verdict, label: str, answers: list[Answer], bound: float) -> None:
    """Every answer within `bound` seconds (an error answer is fine; silence is not)."""
    slow = [answer for answer in answers if answer.seconds >= bound]
    if slow:
        verdict.problem(f"{label}: {len(slow)} of {len(answers)} requests took ≥ {bound:g} s (worst "
                        f"{max(answer.seconds for answer in slow):.2f} s, status {slow[0].status} {slow[0].detail})")


def check_errors_are_503(verdict: Verdict, label: str, answers: list[Answer]) -> None:
    """A database route that cannot answer says 503 problem+json with Retry-After: never a 500, never silence."""
    wrong = Counter(
        f"{answer.status} {answer.detail}".strip() if answer.status is not None else f"no answer ({answer.detail})"
        for answer in answers
        if answer.status is None or (answer.status >= 500 and not (
            answer.status == 503 and "problem+json" in answer.detail and "retry-after=None" not in answer.detail)))
    if wrong:
        verdict.problem(f"{label}: errors other than 503 problem+json with Retry-After: {dict(wrong)}")


def takeover_times(runs: list[Run], kills: dict[int, float]) -> list[float]:
    """For each run killed with its process: seconds from the kill to the next run of the same task."""
    per_task = runs_by_task(runs)
    times = []
    for run in runs:
        if run.ended is None and run.pid in kills:
            killed_at = kills[run.pid]
            later = [other.started for other in per_task[run.task_id] if other.started > killed_at]
            if later:
                times.append(min(later) - killed_at)
    return times
