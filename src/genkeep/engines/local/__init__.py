"""The built-in `local` engine: offline, on the CPU, with no downloads at run time."""

from __future__ import annotations

from genkeep.config import Settings
from genkeep.engines.local.engine import LocalEngine

__all__ = ["LocalEngine", "create_engine"]


def create_engine(settings: Settings) -> LocalEngine:
    """The local engine, as GENKEEP_ENGINE=local asks for."""
    return LocalEngine(settings)
