"""What the providers share: settings with defaults, prompt templates, result images."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from genkeep.config import Settings, SettingsError
from genkeep.engines.base import EngineError
from genkeep.engines.prompts import render, template_for
from genkeep.engines.provider_http import Provider, ProviderSettings, image_result
from genkeep.tasks.model import TaskType

PROVIDER = Provider("Acme", url_setting="GENKEEP_ACME_URL", timeout_setting="GENKEEP_ACME_TIMEOUT")


def test_settings_fall_back_to_defaults_and_refuse_nonsense() -> None:
    settings = ProviderSettings(Settings(provider={"GENKEEP_ACME_TIMEOUT": "soon", "GENKEEP_ACME_MODEL": " "}),
                                "GENKEEP_ACME_")
    assert settings.text("MODEL", "m-1") == "m-1"
    assert settings.seconds("OTHER", 7.0) == 7.0
    with pytest.raises(SettingsError, match="GENKEEP_ACME_TIMEOUT must be a number of seconds"):
        settings.seconds("TIMEOUT", 30.0)


def test_templates_take_the_users_words() -> None:
    settings = ProviderSettings(Settings(provider={"GENKEEP_ACME_PROMPT_CREATE": 'Poster {"style": 1}: {prompt}'}),
                                "GENKEEP_ACME_")
    assert render(template_for(settings, TaskType.CREATE), "  a fox  ") == 'Poster {"style": 1}: a fox'
    white = render(template_for(settings, TaskType.WHITE_BACKGROUND), None)
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
