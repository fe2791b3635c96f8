"""The product is found: mask IoU against the synthetic set's ground truth, with the model and without it."""

from __future__ import annotations

import numpy as np
import pytest

from genkeep.engines.local.segmentation import Cutout
from tests.engines.local.synthetic import ProductPhoto


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def iou_table(photos: list[ProductPhoto], cutouts: list[Cutout], label: str) -> tuple[list[float], str]:
    scores = [iou(cutout.mask, photo.truth) for photo, cutout in zip(photos, cutouts, strict=True)]
    lines = [f"{label}: mask IoU per case"]
    lines += [f"  {photo.name:24s} {score:.3f}" for photo, score in zip(photos, scores, strict=True)]
    lines.append(f"  {'mean':24s} {np.mean(scores):.3f}   min {min(scores):.3f}")
    return scores, "\n".join(lines)


def test_model_with_backdrop_model_finds_every_product(photos: list[ProductPhoto], model_cutouts: list[Cutout]) -> None:
    scores, table = iou_table(photos, model_cutouts, "u2netp + backdrop model")
    print("\n" + table)
    assert np.mean(scores) >= 0.95, table
    assert min(scores) >= 0.85, table


def test_backdrop_model_alone_finds_products(photos: list[ProductPhoto], classical_cutouts: list[Cutout]) -> None:
    """The fallback without the model file: weaker on low contrast, still usable."""
    scores, table = iou_table(photos, classical_cutouts, "backdrop model alone (fallback)")
    print("\n" + table)
    assert np.mean(scores) >= 0.93, table
    assert min(scores) >= 0.80, table


def test_a_photo_with_nothing_in_it_has_no_subject() -> None:
    from genkeep.engines.local.segmentation import find_subject

    rng = np.random.default_rng(0)
    blank = np.clip(235 + rng.normal(0, 2, (300, 400, 3)), 0, 255).astype(np.uint8)
    assert find_subject(blank, None).mask.mean() < 0.002


@pytest.mark.parametrize("side", [320, 700])
def test_cutout_has_the_photo_size(photos: list[ProductPhoto], side: int) -> None:
    import cv2

    from genkeep.engines.local.segmentation import find_subject

    rgb = np.asarray(cv2.resize(photos[0].rgb, (side, side * 5 // 4)), np.uint8)
    cutout = find_subject(rgb, None)
    assert cutout.alpha.shape == cutout.mask.shape == rgb.shape[:2]
    assert float(cutout.alpha.min()) >= 0.0 and float(cutout.alpha.max()) <= 1.0
