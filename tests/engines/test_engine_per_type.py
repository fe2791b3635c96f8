"""An engine per type: GENKEEP_ENGINE_<TYPE> overrides GENKEEP_ENGINE, each task says which engine ran it, a
worker claims only the types it has an engine for, and start-up refuses a misconfigured engine by its variable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from genkeep.config import Settings, SettingsError
from genkeep.engines import load_engines
from genkeep.studio import Studio
from genkeep.tasks.model import TaskType
from genkeep.web.app import create_app
from tests.conftest import SCRIPTED_ENGINE
from tests.support.api import submit, wait_final
from tests.support.engines import ScriptedEngine
from tests.support.processes import REPO, genkeep_env
from tests.support.tasks import accept, row

OTHER_ENGINE = "tests.engines.test_engine_per_type:create_other_engine"


class OtherEngine(ScriptedEngine):
    name = "other"


def create_other_engine(_settings: Settings) -> OtherEngine:
    return OtherEngine()


def create_nothing(_settings: Settings) -> object:
    return object()


def test_each_type_runs_on_its_own_engine_and_each_task_says_which(settings: Settings) -> None:
    mixed = settings.with_overrides(engine=SCRIPTED_ENGINE, engine_white_background=OTHER_ENGINE)
    with TestClient(create_app(mixed)) as client:
        created = submit(client, "CREATE", prompt="a kite").json()
        cleaned = submit(client, "WHITE_BACKGROUND", prompt=None).json()
        assert wait_final(client, created["id"])["engine"] == "scripted"
        assert wait_final(client, cleaned["id"])["engine"] == "other"


def test_a_worker_claims_only_the_types_it_has_an_engine_for(settings: Settings) -> None:
    only_create = settings.with_overrides(engine="none", engine_create=SCRIPTED_ENGINE)
    assert set(load_engines(only_create)) == {TaskType.CREATE}
    studio = Studio.open(only_create)
    try:
        create = accept(studio, "a kite", task_type=TaskType.CREATE)
        white = accept(studio, None, task_type=TaskType.WHITE_BACKGROUND)
        assert studio.workers(1).run_burst() == 1
        done, waiting = row(studio, create.id), row(studio, white.id)
        assert done is not None and done.status == "completed" and done.engine == "scripted"
        assert waiting is not None and waiting.status == "processing" and waiting.attempts == 0
        assert waiting.engine is None
    finally:
        studio.close()


@pytest.mark.parametrize(("changes", "sentence"), [
    ({"engine_white_background": "no.such.module:make"},
     "GENKEEP_ENGINE_WHITE_BACKGROUND='no.such.module:make' cannot be loaded (ModuleNotFoundError"),
    ({"engine_create": "stable-diffusion"},
     "GENKEEP_ENGINE_CREATE='stable-diffusion' is unknown: use one of comfyui, dashscope, local, openai, none or "
     "module:factory."),
    ({"engine": "genkeep.engines:nothing_here"}, "GENKEEP_ENGINE='genkeep.engines:nothing_here' cannot be loaded"),
    ({"engine_clothing_change": "tests.engines.test_engine_per_type:create_nothing"},
     "GENKEEP_ENGINE_CLOTHING_CHANGE='tests.engines.test_engine_per_type:create_nothing' made 'object', "
     "not an engine"),
    # The engine's own settings are named by the engine itself.
    ({"engine_create": "openai"}, "GENKEEP_OPENAI_API_KEY is not set"),
    ({"engine": "none"}, "GENKEEP_ENGINE=none and no GENKEEP_ENGINE_<TYPE> leave this worker nothing to run"),
])
def test_start_up_refuses_a_misconfigured_engine_naming_its_variable(settings: Settings, changes: dict[str, str],
                                                                      sentence: str) -> None:
    with pytest.raises(SettingsError) as refused:
        create_app(settings.with_overrides(**changes))
    assert sentence in str(refused.value)


def test_an_api_only_process_refuses_an_engine_name_that_cannot_load(settings: Settings) -> None:
    """It runs no engine, but its pages say which one will run each type: a name that cannot load is refused."""
    with pytest.raises(SettingsError, match=r"GENKEEP_ENGINE_CREATE='no\.such\.module:make' cannot be loaded"):
        create_app(settings.with_overrides(workers=0, engine_create="no.such.module:make"))
    # An engine that needs credentials only its workers have is fine here: this process never makes it.
    with TestClient(create_app(settings.with_overrides(workers=0, engine_create="openai"))) as client:
        assert client.get("/api/engines").json()["items"][0]["engine"] == "openai"


@pytest.mark.slow
def test_genkeep_serve_stops_with_the_sentence_and_no_traceback(tmp_path: Path) -> None:
    env = genkeep_env(tmp_path / "data", f"sqlite:///{tmp_path / 'genkeep.db'}",
                      GENKEEP_ENGINE_CLOTHING_CHANGE="try-on-model")
    started = subprocess.run([sys.executable, "-m", "genkeep.cli", "serve", "--port", "1"], capture_output=True,
                             text=True, cwd=REPO, env=env, timeout=60)
    assert started.returncode == 2
    assert started.stderr.strip().endswith(
        "genkeep: GENKEEP_ENGINE_CLOTHING_CHANGE='try-on-model' is unknown: use one of comfyui, dashscope, local, "
        "openai, none or module:factory.")
    assert "Traceback" not in started.stderr
