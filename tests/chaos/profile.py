"""How hard the chaos suite pushes: a short form inside `make test`, the long form with GENKEEP_CHAOS=long."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    name: str
    kill_rounds: int  # kill -9 rounds, alternating worker and server
    stream_after_kill: float  # seconds the steady stream goes on after the takeover kill
    blip_seconds: float  # seconds of connections terminated every 50 ms
    cut_seconds: float  # seconds the database is cut off
    fault_seconds: float  # seconds the images folder stays full or read-only


SHORT = Profile("short", kill_rounds=4, stream_after_kill=6.0, blip_seconds=8.0, cut_seconds=10.0,
                fault_seconds=5.0)
LONG = Profile("long", kill_rounds=14, stream_after_kill=30.0, blip_seconds=40.0, cut_seconds=20.0,
               fault_seconds=20.0)

PROFILE = LONG if os.environ.get("GENKEEP_CHAOS") == "long" else SHORT
