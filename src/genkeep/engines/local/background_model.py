"""The classical way to find a product: model the backdrop from the picture's border, keep what does not fit it.

The backdrop is modelled as a smooth surface of brightness and chromaticity (rgb / (r+g+b)), fitted to the border
pixels. Chromaticity does not change when light is dimmed, so a cast shadow (same chromaticity, darker) and wood
grain or a vignette (brightness changes only) stay background, while a product shows up by a different hue, by being
brighter than the backdrop, or by being much darker than any shadow.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

Float = NDArray[np.float32]
Mask = NDArray[np.bool_]

# A pixel darker than this fraction of the backdrop is a dark product, not a shadow.
_DARKEST_SHADOW = 0.3


@dataclass(frozen=True)
class BackdropFit:
    """How far each pixel is from the modelled backdrop, and how far the border itself strays (its noise)."""

    log_brightness: Float  # log(pixel brightness / backdrop brightness)
    chroma_distance: Float  # distance of the pixel's chromaticity from the backdrop's
    brightness_noise: float
    chroma_noise: float


def _design(xs: Float, ys: Float) -> Float:
    return np.stack([np.ones_like(xs), xs, ys, xs * xs, xs * ys, ys * ys], axis=-1)


def _border(height: int, width: int) -> Mask:
    band = max(3, round(0.04 * min(height, width)))
    border = np.zeros((height, width), bool)
    border[:band] = border[-band:] = True
    border[:, :band] = border[:, -band:] = True
    return border


def fit_backdrop(rgb: NDArray[np.uint8]) -> BackdropFit:
    """Fit the backdrop to the border of `rgb` and measure every pixel against it."""
    height, width = rgb.shape[:2]
    # A median keeps sensor noise and fine texture from reading as a hue change without moving the product's edge.
    smooth = cv2.medianBlur(rgb, 5).astype(np.float32)
    total = smooth[..., 0] + smooth[..., 1] + smooth[..., 2] + 3.0
    features = np.concatenate([np.log(total)[..., None], smooth / total[..., None]], axis=2)

    xs = np.arange(width, dtype=np.float32) / max(width - 1, 1) * 2 - 1
    ys = np.arange(height, dtype=np.float32) / max(height - 1, 1) * 2 - 1
    border = _border(height, width)
    rows, cols = np.nonzero(border)
    a, b = _design(xs[cols], ys[rows]), features[border]
    keep = np.ones(len(a), bool)
    # Refit without the worst-fitting border pixels: a product or shadow touching the frame must not bend the fit.
    for _ in range(2):
        coef, *_ = np.linalg.lstsq(a[keep], b[keep], rcond=None)
        error = np.abs(a @ coef - b)
        brightness_error, chroma_error = error[:, 0], error[:, 1:].sum(1)
        score = brightness_error / (np.median(brightness_error) + 1e-6)
        score += chroma_error / (np.median(chroma_error) + 1e-6)
        keep = score <= np.quantile(score, 0.8)
    coef = coef.astype(np.float32)
    # The fitted quadratic surface, term by term (1, x, y, x^2, xy, y^2), without a full-size design matrix.
    by_row = coef[0] + ys[:, None] * coef[2] + (ys * ys)[:, None] * coef[5]
    by_column = xs[:, None] * coef[1] + (xs * xs)[:, None] * coef[3]
    residual = features - by_row[:, None, :]
    residual -= by_column[None, :, :]
    residual -= (ys[:, None, None] * xs[None, :, None]) * coef[4]
    log_brightness = residual[..., 0]
    chroma = np.sqrt(residual[..., 1] ** 2 + residual[..., 2] ** 2 + residual[..., 3] ** 2)
    return BackdropFit(
        log_brightness=log_brightness.astype(np.float32),
        chroma_distance=chroma.astype(np.float32),
        brightness_noise=float(np.quantile(np.abs(log_brightness[border]), 0.98)),
        chroma_noise=float(np.quantile(chroma[border], 0.98)),
    )


def product_evidence(fit: BackdropFit) -> Mask:
    """Pixels that cannot be backdrop, cast shadow included."""
    chroma_limit = max(2.0 * fit.chroma_noise, 0.012)
    bright_limit = max(2.0 * fit.brightness_noise, 0.05)
    other_hue = fit.chroma_distance > chroma_limit
    brighter = fit.log_brightness > bright_limit
    too_dark = fit.log_brightness < np.log(_DARKEST_SHADOW)
    return np.asarray(other_hue | brighter | too_dark)


def _fill_product_holes(mask: Mask, fit: BackdropFit) -> Mask:
    """Fill enclosed holes unless they look exactly like the backdrop (a mug handle's opening)."""
    inverse = (~mask).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(inverse, connectivity=4)
    height, width = mask.shape
    filled = mask.copy()
    for label in range(1, count):
        x, y, w, h, _area = stats[label]
        if x == 0 or y == 0 or x + w == width or y + h == height:
            continue
        hole = labels == label
        looks_like_backdrop = (
            float(np.median(np.abs(fit.log_brightness[hole]))) <= fit.brightness_noise
            and float(np.median(fit.chroma_distance[hole])) <= fit.chroma_noise
        )
        if not looks_like_backdrop:
            filled |= hole
    return filled


def _main_objects(mask: Mask) -> Mask:
    """The largest region and any other region at least a sixth of its size (a product in several pieces)."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count <= 1:
        return np.zeros_like(mask)
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.flatnonzero(areas >= areas.max() / 6) + 1
    return np.isin(labels, keep)


def _cleaned_evidence(rgb: NDArray[np.uint8]) -> tuple[Mask, BackdropFit]:
    fit = fit_backdrop(rgb)
    evidence = product_evidence(fit).astype(np.uint8)
    bridge = max(3, round(min(evidence.shape) * 0.012) | 1)
    opened = cv2.morphologyEx(evidence, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)))
    closed = cv2.morphologyEx(opened, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (bridge, bridge)))
    return np.asarray(closed, bool), fit


def evidence_regions(rgb: NDArray[np.uint8]) -> Mask:
    """Every region that does not fit the backdrop, cleaned of specks, holes filled."""
    mask, fit = _cleaned_evidence(rgb)
    return _fill_product_holes(mask, fit)


def classical_mask(rgb: NDArray[np.uint8]) -> Mask:
    """The product's mask by backdrop modelling alone (the fallback when the model file is absent)."""
    mask, fit = _cleaned_evidence(rgb)
    return _fill_product_holes(_main_objects(mask), fit)
