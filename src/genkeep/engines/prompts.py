"""The prompts genkeep sends to image models, one template per task type, overridable per provider.

A template holds `{prompt}` where the user's own words go (empty when the user gave none). Providers read
overrides from GENKEEP_<ENGINE>_PROMPT_CREATE, _WHITE_BACKGROUND and _CLOTHING_CHANGE (settings in config.py).
"""

from __future__ import annotations

from genkeep.config import Settings
from genkeep.tasks.model import TaskType

DEFAULT_TEMPLATES: dict[TaskType, str] = {
    TaskType.CREATE: "{prompt}",
    TaskType.WHITE_BACKGROUND: (
        "Place this exact product on a pure white (#FFFFFF) background, e-commerce listing style, "
        "centred, evenly lit, with a soft ground shadow. Keep the product's shape, colours, text and "
        "logos exactly as they are. {prompt}"
    ),
    TaskType.CLOTHING_CHANGE: (
        "Dress the person in the first image in the garment from the second image. Keep the person's "
        "face, hair, body, pose and the background unchanged; keep the garment's colour, pattern, "
        "fabric and logos; make it fit naturally with realistic folds and lighting. {prompt}"
    ),
}


def template_for(settings: Settings, engine: str, task_type: TaskType) -> str:
    """The engine's template for this type: GENKEEP_<ENGINE>_PROMPT_<TYPE>, else the default (an engine may have
    no setting for a type whose model takes no prompt)."""
    override = getattr(settings, f"{engine}_prompt_{task_type.value.lower()}", "")
    return override.strip() or DEFAULT_TEMPLATES[task_type]


def render(template: str, user_prompt: str | None) -> str:
    """The template with the user's words in place of {prompt}."""
    # str.replace, not str.format: user templates may contain other braces (JSON, style notes).
    text = template.replace("{prompt}", (user_prompt or "").strip())
    return " ".join(text.split())
