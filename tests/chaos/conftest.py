"""Chaos fixtures: a fresh database per test, the processes under test, and the table every scenario adds a row
to (printed at the end of the run)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from tests.chaos.cluster import Cluster, Limits
from tests.chaos.ledger import TABLE_HEADER, Verdict
from tests.chaos.profile import PROFILE
from tests.conftest import POSTGRES_ADMIN_URL, REQUIRE_POSTGRES, _postgres_reason

TABLE = pytest.StashKey[list[str]]()


@pytest.fixture
def chaos_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database for this test only (parametrize indirectly with "sqlite" or "postgres"):
    terminating its connections or cutting it off touches no other test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'data' / 'genkeep.db'}"
        return
    reason = _postgres_reason()
    if reason is not None:
        if REQUIRE_POSTGRES:
            pytest.fail(reason + " and GENKEEP_REQUIRE_POSTGRES=1")
        pytest.skip(reason)
    name = f"genkeep_chaos_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = POSTGRES_ADMIN_URL.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def cluster_for(tmp_path: Path) -> Iterator[Callable[..., Cluster]]:
    """Makes the scenario's cluster; every process it started is stopped at the end, whatever happened."""
    clusters: list[Cluster] = []

    def make(database_url: str, limits: Limits, **extra_env: str) -> Cluster:
        cluster = Cluster(tmp_path, database_url, limits, extra_env)
        cluster.data_dir.mkdir(parents=True, exist_ok=True)
        clusters.append(cluster)
        return cluster

    yield make
    for cluster in clusters:
        cluster.close()


@pytest.fixture
def chaos_table(request: pytest.FixtureRequest) -> Callable[[Verdict], None]:
    """Adds a scenario's row to the table printed at the end of the run."""
    rows = request.config.stash.setdefault(TABLE, [])

    def add(verdict: Verdict) -> None:
        row = verdict.table_row()
        rows.append(row)
        print(f"\nchaos ({PROFILE.name}): {row}")
        for problem in verdict.problems:
            print(f"  broken: {problem}")

    return add


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    rows = config.stash.get(TABLE, [])
    if rows:
        terminalreporter.write_sep("-", f"chaos table ({PROFILE.name} form)")
        terminalreporter.write_line(TABLE_HEADER)
        for row in rows:
            terminalreporter.write_line(row)
