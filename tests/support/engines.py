"""An engine for tests whose behaviour the prompt scripts, usable in-process and by worker subprocesses.

Prompt words: "fail" → EngineError; "crash" → an unexpected exception; "slow:N" → takes N seconds (stoppable).
Every run appends the task id to the file named by GENKEEP_TEST_RUN_LOG, so tests count engine runs across
processes.
"""

from __future__ import annotations

import io
import os
import re

from PIL import Image

from genkeep.config import Settings
from genkeep.engines.base import EngineContext, EngineError, EngineJob, EngineResult, RunToCompletionEngine


class ScriptedEngine(RunToCompletionEngine):
    name = "scripted"
    rerun_safe = True

    def run(self, job: EngineJob, ctx: EngineContext) -> EngineResult:
        log_path = os.environ.get("GENKEEP_TEST_RUN_LOG")
        if log_path:
            with open(log_path, "a") as log:
                log.write(job.task_id + "\n")
        prompt = job.prompt or ""
        match = re.search(r"slow:([\d.]+)", prompt)
        if match:
            total = float(match.group(1))
            steps = max(1, int(total / 0.1))
            for step in range(steps):
                ctx.sleep(total / steps)
                ctx.report_progress((step + 1) / steps)
        if "crash" in prompt:
            raise RuntimeError("scripted crash")
        if "fail" in prompt:
            raise EngineError("engine_error", "The scripted engine failed as asked; remove 'fail' from the prompt.")
        image = Image.new("RGB", (64, 64), (len(prompt) * 7 % 256, 120, 200))
        out = io.BytesIO()
        image.save(out, "PNG")
        return EngineResult(out.getvalue())


def create_engine(_settings: Settings) -> ScriptedEngine:
    return ScriptedEngine()
