"""An engine for tests whose behaviour the prompt scripts, usable in-process and by worker subprocesses.

Prompt words: "fail" → EngineError; "crash" → an unexpected exception; "slow:N" → takes N seconds (stoppable);
"preview" → with slow:N, a preview picture at every step; "big:N" → a result of about N MB (a PNG of noise).
GENKEEP_TEST_RUN_SECONDS=N makes every run take N seconds (as if its prompt said slow:N) unless its prompt says
otherwise: tasks then stay unfinished long enough to cancel.
Every run appends the task id to the file named by GENKEEP_TEST_RUN_LOG, so tests count engine runs across
processes. With GENKEEP_TEST_RUN_EVENTS, every run also writes "start <task> <run> <pid> <time>" when it begins
and "end <task> <run> <pid> <time> <outcome>" when it returns or raises (wall-clock seconds, shared by every
process on the machine), so tests see which runs of one task overlapped; a run killed with its process has no
end line.
"""

from __future__ import annotations

import io
import os
import re
import secrets
import time

from PIL import Image

from genkeep.config import Settings
from genkeep.engines.base import EngineContext, EngineError, EngineJob, EngineResult, RunToCompletionEngine


def _record_event(*words: str) -> None:
    path = os.environ.get("GENKEEP_TEST_RUN_EVENTS")
    if not path:
        return
    line = (" ".join(words) + "\n").encode()
    # One O_APPEND write per line: lines from concurrent threads and processes never interleave.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


class ScriptedEngine(RunToCompletionEngine):
    name = "scripted"
    rerun_safe = True

    def run(self, job: EngineJob, ctx: EngineContext) -> EngineResult:
        log_path = os.environ.get("GENKEEP_TEST_RUN_LOG")
        if log_path:
            with open(log_path, "a") as log:
                log.write(job.task_id + "\n")
        run_id = secrets.token_hex(4)
        _record_event("start", job.task_id, run_id, str(os.getpid()), f"{time.time():.6f}", str(job.attempt))
        outcome = "ok"
        try:
            return self._run(job, ctx)
        except BaseException as error:
            outcome = type(error).__name__
            raise
        finally:
            _record_event("end", job.task_id, run_id, str(os.getpid()), f"{time.time():.6f}", outcome)

    def _run(self, job: EngineJob, ctx: EngineContext) -> EngineResult:
        prompt = job.prompt or ""
        match = re.search(r"slow:([\d.]+)", prompt)
        seconds = match.group(1) if match else os.environ.get("GENKEEP_TEST_RUN_SECONDS")
        if seconds:
            total = float(seconds)
            steps = max(1, int(total / 0.1))
            for step in range(steps):
                ctx.sleep(total / steps)
                if "preview" in prompt:
                    ctx.report_preview(Image.new("RGB", (600, 400), (step * 9 % 256, 90, 160)), (step + 1) / steps)
                else:
                    ctx.report_progress((step + 1) / steps)
        if "crash" in prompt:
            raise RuntimeError("scripted crash")
        if "fail" in prompt:
            raise EngineError("engine_error", "The scripted engine failed as asked; remove 'fail' from the prompt.")
        image = Image.new("RGB", (64, 64), (len(prompt) * 7 % 256, 120, 200))
        big = re.search(r"big:(\d+)", prompt)
        if big:
            side = int((int(big.group(1)) * 1024 * 1024 / 3) ** 0.5)
            image = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
        out = io.BytesIO()
        image.save(out, "PNG", compress_level=0 if big else 6)
        return EngineResult(out.getvalue())


def create_engine(_settings: Settings) -> ScriptedEngine:
    return ScriptedEngine()
