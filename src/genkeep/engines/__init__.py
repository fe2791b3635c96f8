"""Engines turn a task into an image. `load_engines` gives each type its engine (GENKEEP_ENGINE_<TYPE>, else
GENKEEP_ENGINE); start-up refuses a name that cannot be loaded with a sentence naming the variable."""

from __future__ import annotations

import importlib
from collections.abc import Callable

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
# The engine name that runs no tasks of a type in this process (a machine that serves only some types).
NO_ENGINE = "none"

EngineFactory = Callable[[Settings], Engine]


def engine_factory(name: str, variable: str = "GENKEEP_ENGINE") -> EngineFactory:
    """The factory a setting names (a built-in name, or `package.module:factory`), imported but not called."""
    spec = BUILTIN_ENGINES.get(name, name)
    module_name, colon, factory_name = spec.partition(":")
    if not colon or not module_name or not factory_name:
        known = ", ".join(sorted(BUILTIN_ENGINES))
        raise SettingsError(f"{variable}={name!r} is unknown: use one of {known}, {NO_ENGINE} or module:factory.")
    try:
        factory = getattr(importlib.import_module(module_name), factory_name)
    except (ImportError, AttributeError) as error:
        raise SettingsError(f"{variable}={name!r} cannot be loaded ({type(error).__name__}: {error}).") from None
    if not callable(factory):
        raise SettingsError(f"{variable}={name!r} names {type(factory).__name__}, not a factory function.")
    return factory


def load_engine(settings: Settings, name: str | None = None, variable: str = "GENKEEP_ENGINE") -> Engine:
    """The engine a setting names, made: errors name the variable (or the engine's own GENKEEP_* setting)."""
    name = settings.engine if name is None else name
    factory = engine_factory(name, variable)
    try:
        engine = factory(settings)
    except SettingsError:
        raise
    except Exception as error:
        raise SettingsError(f"{variable}={name!r} could not start ({type(error).__name__}: {error}).") from None
    if not isinstance(engine, Engine):
        raise SettingsError(f"{variable}={name!r} made {type(engine).__name__!r}, not an engine (see "
                            "genkeep/engines/base.py).")
    return engine


def engine_names(settings: Settings) -> dict[TaskType, str]:
    """Each type's engine as configured; a type set to `none` is left out (this process runs none of it)."""
    names = {task_type: settings.engine_for(task_type.value) for task_type in TaskType}
    return {task_type: name for task_type, name in names.items() if name != NO_ENGINE}


def check_engines(settings: Settings) -> None:
    """Refuse a misconfigured engine at start-up without making one (an API-only process runs none)."""
    for task_type, name in engine_names(settings).items():
        engine_factory(name, settings.engine_variable(task_type.value))


def load_engines(settings: Settings) -> dict[TaskType, Engine]:
    """The engine for each type this process runs; one instance per distinct name. Refuses a worker with none."""
    names = engine_names(settings)
    if not names:
        raise SettingsError(f"GENKEEP_ENGINE={NO_ENGINE} and no GENKEEP_ENGINE_<TYPE> leave this worker nothing to "
                            "run: name an engine for at least one type, or set GENKEEP_WORKERS=0.")
    by_name: dict[str, Engine] = {}
    engines = {}
    for task_type, name in names.items():
        if name not in by_name:
            by_name[name] = load_engine(settings, name, settings.engine_variable(task_type.value))
        engines[task_type] = by_name[name]
    return engines
