"""Multi-host fixtures: one studio on hosts of its own per module, removed at the end whatever happened.

Without root, `ip`, iptables, HAProxy or the PostgreSQL server binaries the suite skips and says why; with
GENKEEP_REQUIRE_HOSTS=1 (CI) that is a failure.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.chaos.cluster import Limits
from tests.chaos.ledger import Verdict
from tests.chaos.profile import PROFILE
from tests.hosts.network import missing_tools
from tests.hosts.topology import Studio, postgres_bin

REQUIRE_HOSTS = os.environ.get("GENKEEP_REQUIRE_HOSTS") == "1"
# A lease of 2 s and a heartbeat of a third of it: takeovers fit in a short test; the timeout is far above
# every fault a scenario makes, so a timeout would be the fault's doing.
LIMITS = Limits(task_timeout=60, sweep_interval=1, lease_seconds=2, max_attempts=3, poll_interval=0.2)


def _reason() -> str | None:
    reason = missing_tools()
    if reason is None and postgres_bin() is None:
        reason = "the multi-host suite needs the PostgreSQL server binaries (apt-get install postgresql)"
    return reason


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Studio]:
    reason = _reason()
    if reason is not None:
        if REQUIRE_HOSTS:
            pytest.fail(reason + " and GENKEEP_REQUIRE_HOSTS=1")
        pytest.skip(reason)
    folder: Path = tmp_path_factory.mktemp("hosts")
    built = Studio(folder, LIMITS)
    try:
        built.build()
        yield built
    finally:
        built.close()
        print("\nhosts set-up and tear-down, seconds: "
              + ", ".join(f"{part} {seconds:.2f}" for part, seconds in built.timings.items()))


TABLE = pytest.StashKey[list[str]]()
TABLE_HEADER = ("| scenario | accepted | completed | failed by code | lost | double runs | takeover s | worst poll via "
                "proxy s | broken promises |\n|---|---|---|---|---|---|---|---|---|")


@pytest.fixture
def hosts_table(request: pytest.FixtureRequest) -> Callable[[Verdict, float | None], None]:
    """Adds a scenario's row to the table printed at the end of the run."""
    rows = request.config.stash.setdefault(TABLE, [])

    def add(verdict: Verdict, worst_poll: float | None) -> None:
        failed = " ".join(f"{code}:{count}" for code, count in sorted(verdict.failed.items())) or "-"
        if verdict.asked_to_fail:
            failed += f" (asked to fail: {verdict.asked_to_fail})"

        def seconds(value: float | None) -> str:
            return "-" if value is None else f"{value:.2f}"

        row = (f"| {verdict.scenario} | {verdict.accepted} | {verdict.completed} | {failed} | {len(verdict.lost)} | "
               f"{verdict.double_runs} | {seconds(verdict.takeover)} | {seconds(worst_poll)} | "
               f"{len(verdict.problems)} |")
        rows.append(row)
        print(f"\nhosts ({PROFILE.name}): {row}")
        for problem in verdict.problems:
            print(f"  broken: {problem}")

    return add


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    rows = config.stash.get(TABLE, [])
    if rows:
        terminalreporter.write_sep("-", f"hosts table ({PROFILE.name} form)")
        terminalreporter.write_line(TABLE_HEADER)
        for row in rows:
            terminalreporter.write_line(row)
