"""Engines turn a task into an image. `load_engine` picks one by name (GENKEEP_ENGINE)."""

from __future__ import annotations

import importlib

from genkeep.config import Settings, SettingsError
from genkeep.engines.base import Engine
from genkeep.tasks.model import TaskType

# Built-in engine names and the module:factory that makes each one.
BUILTIN_ENGINES = {
    "local": "genkeep.engines.local:create_engine",
    "openai": "genkeep.engines.openai_images:create_engine",
    "dashscope": "genkeep.engines.dashscope:create_engine",
    "comfyui": "genkeep.engines.comfyui:create_engine",
}


def load_engine(settings: Settings, name: str | None = None, variable: str = "GENKEEP_ENGINE") -> Engine:
    """The engine a setting names: a built-in name, or `package.module:factory` for a custom engine."""
    name = settings.engine if name is None else name
    spec = BUILTIN_ENGINES.get(name, name)
    if ":" not in spec:
        known = ", ".join(sorted(BUILTIN_ENGINES))
        raise SettingsError(f"{variable}={name!r} is unknown: use one of {known} or module:factory.")
    module_name, _, factory_name = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), factory_name)
    except (ImportError, AttributeError) as error:
        raise SettingsError(f"{variable}={name!r} cannot be loaded ({type(error).__name__}: {error}).") from None
    engine: Engine = factory(settings)
    return engine


def load_engines(settings: Settings) -> dict[TaskType, Engine]:
    """The engine for each type (GENKEEP_ENGINE_<TYPE>, else GENKEEP_ENGINE); one instance per distinct name."""
    by_name: dict[str, Engine] = {}
    engines = {}
    for task_type in TaskType:
        name = settings.engine_for(task_type.value)
        variable = f"GENKEEP_ENGINE_{task_type.value}" if task_type.value in settings.engine_by_type \
            else "GENKEEP_ENGINE"
        if name not in by_name:
            by_name[name] = load_engine(settings, name, variable)
        engines[task_type] = by_name[name]
    return engines
