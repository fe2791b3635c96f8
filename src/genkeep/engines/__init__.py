"""Engines turn a task into an image. `load_engine` picks one by name (GENKEEP_ENGINE)."""

from __future__ import annotations

import importlib

from genkeep.config import Settings
from genkeep.engines.base import Engine

# Built-in engine names and the module:factory that makes each one.
BUILTIN_ENGINES = {
    "local": "genkeep.engines.local:create_engine",
    "openai": "genkeep.engines.openai_images:create_engine",
    "dashscope": "genkeep.engines.dashscope:create_engine",
    "comfyui": "genkeep.engines.comfyui:create_engine",
}


def load_engine(settings: Settings) -> Engine:
    """The engine GENKEEP_ENGINE names: a built-in name, or `package.module:factory` for a custom engine."""
    spec = BUILTIN_ENGINES.get(settings.engine, settings.engine)
    if ":" not in spec:
        known = ", ".join(sorted(BUILTIN_ENGINES))
        raise ValueError(f"GENKEEP_ENGINE={settings.engine!r} is unknown: use one of {known} or module:factory.")
    module_name, _, factory_name = spec.partition(":")
    factory = getattr(importlib.import_module(module_name), factory_name)
    engine: Engine = factory(settings)
    return engine
