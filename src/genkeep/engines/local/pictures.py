"""Reference images in; PNG bytes and previews out."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image

from genkeep.engines.base import EngineError

# Every type works at most at this size: the results are 1024 px, and bigger inputs only cost time.
WORKING_SIDE = 1024
# Previews are handed to the worker at most this size: more than the worker keeps, and cheap to make (a preview
# is made from shrunk pictures wherever that saves work).
PREVIEW_SIDE = 512


@dataclass(frozen=True)
class Picture:
    """An RGB picture, and its own transparency when the upload had any (an already cut-out product)."""

    rgb: NDArray[np.uint8]
    alpha: NDArray[np.float32] | None = None


def fit_within(rgb: NDArray[np.uint8], side: int) -> NDArray[np.uint8]:
    """`rgb` scaled down so its longer side is at most `side`."""
    height, width = rgb.shape[:2]
    scale = side / max(height, width)
    if scale >= 1:
        return rgb
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), np.uint8)


def preview(rgb: NDArray[np.uint8]) -> Image.Image:
    """A picture as a preview for the worker: at most PREVIEW_SIDE on the longer side."""
    return Image.fromarray(np.ascontiguousarray(fit_within(rgb, PREVIEW_SIDE)), "RGB")


def preview_on_white(rgb: NDArray[np.uint8], alpha: NDArray[np.float32]) -> Image.Image:
    """A cut-out over white, as a preview: shrunk first, so it costs next to nothing."""
    small_rgb = fit_within(rgb, PREVIEW_SIDE)
    height, width = small_rgb.shape[:2]
    small_alpha = alpha if alpha.shape == (height, width) else cv2.resize(
        alpha, (width, height), interpolation=cv2.INTER_AREA)
    a = np.clip(small_alpha, 0, 1)[..., None]
    on_white = small_rgb.astype(np.float32) * a + 255.0 * (1.0 - a)
    return preview(np.clip(on_white + 0.5, 0, 255).astype(np.uint8))


def load_picture(path: Path, side: int = WORKING_SIDE) -> Picture:
    """Read a reference image as RGB (transparent parts on white), its longer side capped to `side`."""
    try:
        with Image.open(path) as image:
            image.load()
            opaque = image.mode in ("RGB", "L") and "transparency" not in image.info
            rgba = np.asarray(image.convert("RGB" if opaque else "RGBA"))
    except (OSError, ValueError) as error:
        message = f"A reference image could not be read ({error}); upload it again."
        raise EngineError("invalid_input", message) from error
    height, width = rgba.shape[:2]
    scale = min(1.0, side / max(height, width))
    if scale < 1:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        rgba = cv2.resize(rgba, size, interpolation=cv2.INTER_AREA)
    if opaque:
        # Nothing to put on white: skip the full-size float pass that would give the same pixels back.
        return Picture(rgb=np.ascontiguousarray(rgba))
    alpha = rgba[..., 3].astype(np.float32) / 255.0
    rgb = rgba[..., :3].astype(np.float32)
    on_white = rgb * alpha[..., None] + 255.0 * (1.0 - alpha[..., None])
    picture_rgb = np.clip(on_white + 0.5, 0, 255).astype(np.uint8)
    has_transparency = bool((rgba[..., 3] < 250).mean() > 0.01)
    return Picture(rgb=picture_rgb, alpha=alpha if has_transparency else None)


def encode_png(rgb: NDArray[np.uint8]) -> bytes:
    """PNG bytes of an RGB picture (the same pixels always give the same bytes)."""
    # zlib's run-length strategy is both the quickest and, on these pictures, the smallest: the default strategy
    # spends a third of a second on CREATE's film grain for a bigger file.
    params = [cv2.IMWRITE_PNG_COMPRESSION, 6, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]
    ok, data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise EngineError("engine_error", "The local engine could not encode its PNG; try again.")
    return bytes(data.tobytes())
