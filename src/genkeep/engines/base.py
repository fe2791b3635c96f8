"""The engine interface, in its two shapes.

- RunToCompletionEngine: one call makes the image (the local engine, synchronous HTTP providers). A rerun after
  a crash may generate (and bill) again, so the engine says whether a rerun is safe.
- SubmitPollEngine: submit a provider job, then poll it (DashScope, ComfyUI, Replicate). The worker saves the
  provider's job id in the task row before the first poll, so a worker that takes the task over resumes the
  same job instead of paying for a new one.

Engines run on worker threads, never on the web server's event loop. They report progress and intermediate
previews, and learn that they must stop (timeout, cancel, shutdown), through the EngineContext.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import PIL.Image

from genkeep.tasks.model import ResultNote, TaskType


class EngineError(Exception):
    """A generation failed: `code` is a short stable word, `message` a sentence a person can act on."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class EngineStopped(Exception):
    """The task no longer needs a result (it timed out, was canceled, or the worker is shutting down)."""


@dataclass(frozen=True)
class EngineJob:
    """What an engine needs to know about a task."""

    task_id: str
    type: TaskType
    prompt: str | None
    # Local paths of the reference images, in upload order (CLOTHING_CHANGE: person, then garment).
    reference_paths: tuple[Path, ...]
    # URLs a provider can fetch the reference images from, when genkeep has a public base URL; else empty.
    reference_urls: tuple[str, ...] = ()
    # The provider job this task already submitted, when a worker takes a task over.
    provider_job_id: str | None = None
    attempt: int = 1


@dataclass(frozen=True)
class EngineResult:
    """The generated image, encoded, and what the seller should know about it."""

    data: bytes
    content_type: str = "image/png"
    notes: tuple[ResultNote, ...] = ()


class EngineContext(Protocol):
    """What a running engine can ask of the worker that runs it."""

    def report_progress(self, fraction: float) -> None:
        """Tell the user how far along the generation is (0.0 to 1.0)."""

    def report_preview(self, image: bytes | PIL.Image.Image, fraction: float | None = None) -> None:
        """Show the user an intermediate picture (any size; encoded bytes of PNG/JPEG/WebP, or a PIL image) and,
        optionally, how far along the generation is. Never raises; cheap to call often (the worker keeps at most
        about one per second per task and shrinks it)."""

    def should_stop(self) -> bool:
        """True once the result is no longer wanted; the engine should stop soon."""

    def sleep(self, seconds: float) -> None:
        """Wait, waking early and raising EngineStopped if the task must stop."""

    def check(self) -> None:
        """Raise EngineStopped if the task must stop."""


class Engine(abc.ABC):  # noqa: B024 - the two shapes below add the abstract methods
    """Common ground of both shapes."""

    #: Short name recorded on each task the engine makes ("local", "openai", ...).
    name: str = "engine"

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and pools."""


class RunToCompletionEngine(Engine):
    #: True when running the same task twice costs nothing and harms nothing (a rerun after a crash).
    rerun_safe: bool = False

    @abc.abstractmethod
    def run(self, job: EngineJob, ctx: EngineContext) -> EngineResult:
        """Make the image; raise EngineError on failure."""


class SubmitPollEngine(Engine):
    @abc.abstractmethod
    def submit(self, job: EngineJob, ctx: EngineContext) -> str:
        """Start a provider job and return its id. Nothing else may be billed before this returns."""

    @abc.abstractmethod
    def wait(self, job: EngineJob, provider_job_id: str, ctx: EngineContext) -> EngineResult:
        """Poll the provider job until it finishes; download and return the image."""

    def cancel(self, job: EngineJob, provider_job_id: str) -> None:
        """Ask the provider to drop a job whose task was canceled or timed out (best effort)."""
