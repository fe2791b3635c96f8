"""Fixtures: every store test runs on SQLite and on the real PostgreSQL server."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from genkeep.config import Settings
from genkeep.studio import Studio
from genkeep.tasks import database
from genkeep.web import hosts
from genkeep.web.app import create_app
from tests.support.database import connect as connect_database
from tests.support.s3 import AWS_VARIABLES_CLEARED, aws_env, new_bucket, s3_server

POSTGRES_ADMIN_URL = os.environ.get("GENKEEP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REQUIRE_POSTGRES = os.environ.get("GENKEEP_REQUIRE_POSTGRES") == "1"
TESTS_DIR = Path(__file__).parent
SCRIPTED_ENGINE = "tests.support.engines:create_engine"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every PostgreSQL case carries the `postgres` marker, so `-m "not postgres"` runs without the server: the
    ones that ask for it by name, and the "postgres" case of every parametrized database (some fixtures ask for
    the server only inside, which pytest cannot see)."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        cases = callspec.params.values() if callspec is not None else ()
        if "postgres_url" in getattr(item, "fixturenames", ()) or "postgres" in cases:
            item.add_marker(pytest.mark.postgres)


@pytest.fixture(autouse=True, scope="session")
def _test_client_host() -> Iterator[None]:
    """Starlette's TestClient addresses the app as http://testserver: in tests that name is one of the studio's own
    (the host check itself is tested with other names)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(hosts, "LOOPBACK_NAMES", hosts.LOOPBACK_NAMES | {"testserver"})
        yield


def _postgres_reason() -> str | None:
    try:
        with psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=3):
            return None
    except Exception as error:
        return f"PostgreSQL is not reachable at GENKEEP_TEST_POSTGRES_URL ({type(error).__name__}: {error})"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, migrated, dropped at the end."""
    reason = _postgres_reason()
    if reason is not None:
        if REQUIRE_POSTGRES:
            pytest.fail(reason + " and GENKEEP_REQUIRE_POSTGRES=1")
        pytest.skip(reason)
    name = f"genkeep_test_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = POSTGRES_ADMIN_URL.rpartition("/")
    url = f"{base}/{name}"
    try:
        yield url
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty task database, on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'genkeep.db'}"
    return empty_postgres(request.getfixturevalue("postgres_url"), tmp_path)


def empty_postgres(url: str, tmp_path: Path) -> str:
    """The session's PostgreSQL database, migrated and without tasks."""
    database.upgrade(url, tmp_path)
    engine = connect_database(url)
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE tasks, removals"))
    engine.dispose()
    return url


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real S3-compatible server (moto_server) for this test session."""
    with s3_server(tmp_path_factory.mktemp("s3") / "moto_server.log") as endpoint:
        yield endpoint


@pytest.fixture
def s3_url(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket as GENKEEP_STORAGE_URL (with a key prefix); this process's AWS_* variables point at it."""
    for name in AWS_VARIABLES_CLEARED:
        monkeypatch.delenv(name, raising=False)
    for name, value in aws_env(s3_endpoint).items():
        monkeypatch.setenv(name, value)
    return f"s3://{new_bucket(s3_endpoint)}/studio"


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=database_url, engine=SCRIPTED_ENGINE, workers=2,
                    secret_key="test-secret-key-" + "x" * 16)


@pytest.fixture
def studio(settings: Settings) -> Iterator[Studio]:
    """The task service with no workers running: tests drive workers themselves."""
    opened = Studio.open(settings)
    yield opened
    opened.close()


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """The whole app, workers included, as a browser would talk to it."""
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def new_client(app_client: TestClient) -> TestClient:
    """Another browser (its own owner cookie) on the same app."""
    return TestClient(app_client.app)
