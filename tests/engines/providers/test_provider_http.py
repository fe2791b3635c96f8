"""What the providers share: settings with defaults, prompt templates, result images."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from genkeep.config import Settings, SettingsError
from genkeep.engines.base import EngineError
from genkeep.engines.prompts import render, template_for
from genkeep.engines.provider_http import Provider, image_result
from genkeep.tasks.model import TaskType

PROVIDER = Provider("Acme", url_setting="GENKEEP_ACME_URL", timeout_setting="GENKEEP_ACME_TIMEOUT")


@pytest.mark.parametrize(("environ", "sentence"), [
    ({"GENKEEP_OPENAI_TIMEOUT": "soon"}, "GENKEEP_OPENAI_TIMEOUT must be a number of seconds, not 'soon'"),
    ({"GENKEEP_DASHSCOPE_TIMEOUT": "0"}, "GENKEEP_DASHSCOPE_TIMEOUT must be more than 0.0 seconds, not 0"),
    ({"GENKEEP_OPENAI_PARTIAL_IMAGES": "4"}, "GENKEEP_OPENAI_PARTIAL_IMAGES must be at most 3, not 4"),
    ({"GENKEEP_OPENAI_STREAM": "maybe"}, "GENKEEP_OPENAI_STREAM must be 1 or 0 (true or false), not 'maybe'"),
])
def test_engine_settings_refuse_nonsense_naming_their_variable(environ: dict[str, str], sentence: str) -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env(environ)
    assert sentence in str(refused.value)


def test_blank_engine_settings_keep_their_defaults() -> None:
    settings = Settings.from_env({"GENKEEP_OPENAI_MODEL": " ", "GENKEEP_COMFYUI_TIMEOUT": ""})
    assert settings.openai_model == Settings().openai_model and settings.comfyui_timeout == 30.0


def test_templates_take_the_users_words() -> None:
    settings = Settings.from_env({"GENKEEP_OPENAI_PROMPT_CREATE": 'Poster {"style": 1}: {prompt}'})
    assert render(template_for(settings, "openai", TaskType.CREATE), "  a fox  ") == 'Poster {"style": 1}: a fox'
    white = render(template_for(settings, "openai", TaskType.WHITE_BACKGROUND), None)
    assert white.startswith("Place this exact product on a pure white (#FFFFFF) background")
    assert not white.endswith(" ")


def test_results_in_other_formats_become_png() -> None:
    gif = io.BytesIO()
    Image.new("P", (8, 8)).save(gif, "GIF")
    result = image_result(PROVIDER, gif.getvalue())
    assert result.content_type == "image/png" and result.data.startswith(b"\x89PNG")


def test_a_truncated_image_is_malformed() -> None:
    png = io.BytesIO()
    Image.new("RGB", (64, 64), (1, 2, 3)).save(png, "PNG")
    with pytest.raises(EngineError) as caught:
        image_result(PROVIDER, png.getvalue()[:60])
    assert caught.value.code == "engine_error"


@pytest.mark.parametrize(("status", "code", "start"), [
    (401, "provider_error", "Acme rejected genkeep's API key"),
    (403, "provider_error", "Acme refused genkeep's API key access"),
    (404, "provider_error", "Acme rejected the request (HTTP 404"),
    (429, "provider_unavailable", "Acme is rate limiting genkeep"),
    (503, "provider_unavailable", "Acme is having trouble (HTTP 503"),
])
def test_statuses(status: int, code: str, start: str) -> None:
    error = PROVIDER.from_status(status, "detail.")
    assert (error.code, error.message[:len(start)]) == (code, start)
    assert error.message.endswith(".") and ".." not in error.message
