"""Behind a deployment's own login, a trusted header names the owner and no cookie is used."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from genkeep.config import PROXY_SECRET_HEADER, Settings, SettingsError, load_secret_key
from genkeep.web.app import create_app
from tests.support.api import submit

PROXY_SECRET = "proxy-secret-" + "p" * 24


@pytest.fixture
def header_client(settings: Settings) -> Iterator[TestClient]:
    """The studio behind a login proxy, as the proxy talks to it (with its shared secret)."""
    app = create_app(settings.with_overrides(owner_header="X-Remote-User", owner_header_secret=PROXY_SECRET))
    with TestClient(app, headers={PROXY_SECRET_HEADER: PROXY_SECRET}) as test_client:
        yield test_client


def test_the_trusted_header_names_the_owner(header_client: TestClient) -> None:
    alice = {"X-Remote-User": "alice"}
    task = submit(header_client, prompt="slow:30", headers=alice)
    assert task.status_code == 201
    assert "set-cookie" not in task.headers
    task_id = task.json()["id"]
    assert header_client.get(f"/api/tasks/{task_id}", headers=alice).status_code == 200
    assert header_client.get(f"/api/tasks/{task_id}", headers={"X-Remote-User": "bob"}).status_code == 404
    missing = header_client.get(f"/api/tasks/{task_id}")
    assert missing.status_code == 401 and missing.headers["content-type"] == "application/problem+json"
    header_client.post(f"/api/tasks/{task_id}/cancel", headers=alice)


def test_the_secret_key_is_generated_once_and_kept(tmp_path: object) -> None:
    from pathlib import Path

    settings = Settings(data_dir=Path(str(tmp_path)) / "data")
    first = load_secret_key(settings)
    assert len(first) >= 32
    assert load_secret_key(settings) == first
    assert (settings.data_dir / "secret_key").stat().st_mode & 0o077 == 0


def test_a_short_secret_key_is_refused() -> None:
    with pytest.raises(SettingsError, match="at least 32"):
        load_secret_key(Settings(secret_key="changeme"))


def test_settings_name_the_bad_variable() -> None:
    with pytest.raises(SettingsError, match="GENKEEP_TASK_TIMEOUT"):
        Settings.from_env({"GENKEEP_TASK_TIMEOUT": "five minutes"})
    assert Settings.from_env({}).task_timeout == 300
    assert Settings.from_env({}).engine == "local"


def test_a_very_long_user_id_in_the_header_still_works(header_client: TestClient) -> None:
    user = {"X-Remote-User": "someone@" + "example." * 60 + "com"}
    task = submit(header_client, prompt="slow:30", headers=user)
    assert task.status_code == 201
    assert header_client.get(f"/api/tasks/{task.json()['id']}", headers=user).status_code == 200
    header_client.post(f"/api/tasks/{task.json()['id']}/cancel", headers=user)
