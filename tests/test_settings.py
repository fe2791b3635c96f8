"""Settings: read from the environment once, every error names its variable, and the README's table is the class's."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from genkeep.config import Settings, SettingsError, readme_table, variable_of
from tests.support.processes import REPO, genkeep_env

README = REPO / "README.md"


@pytest.mark.parametrize(("environ", "sentence"), [
    ({"GENKEEP_TASK_TIMEOUT": "five minutes"}, "GENKEEP_TASK_TIMEOUT must be a number of seconds, not 'five minutes'"),
    ({"GENKEEP_TASK_TIMEOUT": "0.5"}, "GENKEEP_TASK_TIMEOUT must be at least 1.0, not 0.5"),
    ({"GENKEEP_WORKERS": "two"}, "GENKEEP_WORKERS must be a whole number, not 'two'"),
    ({"GENKEEP_MAX_ATTEMPTS": "0"}, "GENKEEP_MAX_ATTEMPTS must be at least 1, not 0"),
    ({"GENKEEP_RETENTION_DAYS": "a week"}, "GENKEEP_RETENTION_DAYS must be a number of days, not 'a week'"),
    ({"GENKEEP_MIN_TIME_LEFT": "soon"}, "GENKEEP_MIN_TIME_LEFT must be a number of seconds, not 'soon'"),
    ({"GENKEEP_HTTPS": "maybe"}, "GENKEEP_HTTPS must be 1 or 0 (true or false), not 'maybe'"),
    ({"GENKEEP_LOG_FORMAT": "xml"}, "GENKEEP_LOG_FORMAT must be one of 'text' or 'json', not 'xml'"),
    ({"GENKEEP_METRICS_ADDRESS": "9464"}, "GENKEEP_METRICS_ADDRESS must be host:port"),
    ({"GENKEEP_TRUSTED_PROXIES": "10.0.0.0/8,proxy"}, "GENKEEP_TRUSTED_PROXIES must list IP addresses"),
])
def test_a_bad_value_is_refused_with_a_sentence_naming_its_variable(environ: dict[str, str], sentence: str) -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env(environ)
    assert sentence in str(refused.value)


def test_every_bad_value_is_named_at_once() -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({"GENKEEP_WORKERS": "-1", "GENKEEP_LEASE_SECONDS": "0.1"})
    assert "GENKEEP_WORKERS must be at least 0" in str(refused.value)
    assert "GENKEEP_LEASE_SECONDS must be at least 0.5" in str(refused.value)


def test_values_are_read_and_empty_ones_keep_their_default() -> None:
    settings = Settings.from_env({
        "GENKEEP_TASK_TIMEOUT": "60", "GENKEEP_WORKERS": "", "GENKEEP_MIN_TIME_LEFT": "5",
        "GENKEEP_ENGINE_CREATE": "openai", "GENKEEP_PUBLIC_BASE_URL": "https://studio.example/",
        "GENKEEP_OPENAI_MODEL": "gpt-image-1", "GENKEEP_LOG_FORMAT": "json", "GENKEEP_METRICS_ADDRESS": ":9464",
        "GENKEEP_UNKNOWN_THING": "ignored",
    })
    assert settings.task_timeout == 60 and settings.workers == 2 and settings.min_time_left == 5
    assert settings.engine_for("CREATE") == "openai" and settings.engine_for("WHITE_BACKGROUND") == "local"
    assert settings.engine_variable("CREATE") == "GENKEEP_ENGINE_CREATE"
    assert settings.engine_variable("CLOTHING_CHANGE") == "GENKEEP_ENGINE"
    assert settings.public_base_url == "https://studio.example" and settings.served_over_https
    assert settings.openai_model == "gpt-image-1"
    assert settings.log_format == "json" and settings.metrics_address == ":9464"


def test_settings_made_in_code_do_not_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENKEEP_WORKERS", "7")
    assert Settings().workers == 2
    assert Settings(workers=3).with_overrides(task_timeout=9).workers == 3
    assert Settings.from_env().workers == 7


def test_secrets_never_show_in_the_settings_repr() -> None:
    settings = Settings(secret_key="s3cret-" * 6, owner_header_secret="pr0xy-" * 7,
                        openai_api_key="sk-private", dashscope_api_key="sk-other", comfyui_api_key="bearer-x")
    shown = repr(settings)
    assert "s3cret" not in shown and "pr0xy" not in shown and "sk-private" not in shown
    assert "sk-other" not in shown and "bearer-x" not in shown


def _readme_settings_rows() -> list[str]:
    text = README.read_text()
    section = text[text.index("\n## Settings\n"):]
    section = section[: section.index("\n## ", 1)]
    return [line for line in section.splitlines() if line.startswith("|")]


def test_the_readme_settings_table_is_the_settings_class() -> None:
    rows = _readme_settings_rows()
    assert "\n".join(rows) + "\n" == readme_table(), (
        "README.md's settings table differs from the settings declared in src/genkeep/config.py: "
        "paste the output of `genkeep settings` over it")
    documented = {re.split(r"\s*\|\s*", row)[1] for row in rows[2:]}
    declared = {variable_of(name, field) for name, field in Settings.model_fields.items()
                if field.description is not None}
    assert documented == declared
    # Every variable the class reads is in the table (only the engines' own GENKEEP_<PROVIDER>_* are elsewhere).
    assert set(Settings.model_fields) - {"provider"} == {name for name, field in Settings.model_fields.items()
                                                          if field.description is not None}


def test_genkeep_settings_prints_the_table() -> None:
    printed = subprocess.run([sys.executable, "-m", "genkeep.cli", "settings"], capture_output=True, text=True,
                             cwd=REPO, env=genkeep_env(Path("unused"), "sqlite://"), check=True, timeout=60)
    assert printed.stdout == readme_table()


def test_a_bad_setting_stops_the_start_with_its_sentence(tmp_path: Path) -> None:
    env = genkeep_env(tmp_path / "data", f"sqlite:///{tmp_path / 'genkeep.db'}", GENKEEP_LEASE_SECONDS="0")
    started = subprocess.run([sys.executable, "-m", "genkeep.cli", "worker", "--burst"], capture_output=True,
                             text=True, cwd=REPO, env=env, timeout=60)
    assert started.returncode == 2
    assert "genkeep: GENKEEP_LEASE_SECONDS must be at least 0.5, not 0." in started.stderr
    assert "Traceback" not in started.stderr
