"""An engine for the dispatch benchmark: it records when run() starts (time.time()) and returns a tiny image at once.

Each run appends "<task id> <epoch seconds>" to the file GENKEEP_BENCH_DISPATCH_LOG names.
"""

from __future__ import annotations

import io
import os
import time

from PIL import Image

from genkeep.config import Settings
from genkeep.engines.base import EngineContext, EngineJob, EngineResult, RunToCompletionEngine


class DispatchProbe(RunToCompletionEngine):
    name = "bench-dispatch"
    rerun_safe = True

    def __init__(self) -> None:
        self.log_path = os.environ["GENKEEP_BENCH_DISPATCH_LOG"]
        buffer = io.BytesIO()
        Image.new("RGB", (64, 64), (255, 255, 255)).save(buffer, "PNG")
        self.image = buffer.getvalue()

    def run(self, job: EngineJob, ctx: EngineContext) -> EngineResult:
        started = time.time()
        with open(self.log_path, "a") as log:
            log.write(f"{job.task_id} {started:.6f}\n")
        return EngineResult(self.image)


def create_engine(_settings: Settings) -> DispatchProbe:
    return DispatchProbe()
