"""A product photo becomes a listing photo: the product alone, centred on pure white, with a soft ground shadow."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image

from genkeep.engines.base import EngineError
from genkeep.engines.local.pictures import PREVIEW_SIDE, preview
from genkeep.engines.local.segmentation import Cutout, subject_colors

Float = NDArray[np.float32]

CANVAS = 1024
# The product's longer side fills this share of the canvas, as marketplaces ask for.
FILL = 0.85
# The darkest the ground shadow gets, as a fraction of white taken away.
SHADOW_STRENGTH = 0.22
# A product smaller than this share of the photo is noise, not a product.
SMALLEST_PRODUCT = 0.002


@dataclass(frozen=True)
class Listing:
    """The finished listing picture, with where the product and its shadow ended up (0..1 each)."""

    rgb: NDArray[np.uint8]
    product_alpha: Float
    shadow: Float
    # The product runs off the photo's edge, so part of it is missing from the listing: the seller should know.
    cut_by_frame: bool = False


def _bounds(mask: NDArray[np.bool_]) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _place(rgb: NDArray[np.uint8], alpha: Float, mask: NDArray[np.bool_]) -> tuple[Float, Float]:
    """Premultiplied colour and alpha on the canvas, the product's bounds scaled to FILL and centred."""
    x0, y0, x1, y1 = _bounds(mask)
    scale = FILL * CANVAS / max(x1 - x0, y1 - y0)
    # A margin keeps the feathered edge that lies just outside the hard mask.
    margin = 4
    height, width = alpha.shape
    cx0, cy0 = max(0, x0 - margin), max(0, y0 - margin)
    cx1, cy1 = min(width, x1 + margin), min(height, y1 + margin)
    crop_alpha = alpha[cy0:cy1, cx0:cx1]
    size = (max(1, round((cx1 - cx0) * scale)), max(1, round((cy1 - cy0) * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    # Colours were extended past the edge (subject_colors), so they resize without dragging the backdrop in.
    colors = subject_colors(rgb, alpha, (cx0, cy0, cx1, cy1))
    placed_colors = np.clip(cv2.resize(colors, size, interpolation=interpolation), 0, 255)
    placed_alpha = cv2.resize(crop_alpha, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    if scale > 1:
        # Enlarging blurs the edge by the scale factor; steepen it back to a light feather of a pixel or two.
        placed_alpha = (placed_alpha - 0.5) * min(scale, 4.0) + 0.5
    placed_alpha = np.clip(placed_alpha, 0, 1)
    pre = placed_colors * placed_alpha[..., None]
    # The mask's bounds, not the crop's, are what must sit in the middle.
    left = round(CANVAS / 2 - ((x0 + x1) / 2 - cx0) * scale)
    top = round(CANVAS / 2 - ((y0 + y1) / 2 - cy0) * scale)
    canvas_pre = np.zeros((CANVAS, CANVAS, 3), np.float32)
    canvas_alpha = np.zeros((CANVAS, CANVAS), np.float32)
    sx0, sy0 = max(0, -left), max(0, -top)
    dx0, dy0 = max(0, left), max(0, top)
    w = min(size[0] - sx0, CANVAS - dx0)
    h = min(size[1] - sy0, CANVAS - dy0)
    canvas_pre[dy0:dy0 + h, dx0:dx0 + w] = pre[sy0:sy0 + h, sx0:sx0 + w]
    canvas_alpha[dy0:dy0 + h, dx0:dx0 + w] = placed_alpha[sy0:sy0 + h, sx0:sx0 + w]
    return canvas_pre, canvas_alpha


def ground_shadow(alpha: Float) -> Float:
    """A soft contact shadow: a flat ellipse under the product's lowest part, no wider than its footprint."""
    mask = alpha >= 0.5
    shadow = np.zeros_like(alpha)
    if not mask.any():
        return shadow
    _, y0, _, y1 = _bounds(mask)
    footprint_rows = mask[max(y0, y1 - max(2, (y1 - y0) // 25)):y1]
    columns = np.flatnonzero(footprint_rows.any(axis=0))
    left, right = int(columns.min()), int(columns.max()) + 1
    half_width = max(8, round((right - left) * 0.55))
    half_height = min(18, max(4, round(half_width * 0.05)))
    center = (round((left + right) / 2), y1 - half_height // 2)
    cv2.ellipse(shadow, center, (half_width, half_height), 0, 0, 360, 1.0, -1, cv2.LINE_AA)
    shadow = cv2.GaussianBlur(shadow, (0, 0), half_height * 0.7) * SHADOW_STRENGTH
    # Below half a grey level the shadow would not change a pixel; cut it there so the rest stays exactly white.
    shadow[shadow < 0.5 / 255] = 0
    return shadow


@dataclass(frozen=True)
class Placement:
    """The product placed on the canvas, before the final polish (the ground shadow): premultiplied colour and
    alpha, both CANVAS x CANVAS."""

    pre: Float
    alpha: Float
    cut_by_frame: bool = False

    def preview(self) -> Image.Image:
        """The product on the white frame, without its shadow yet, at preview size."""
        side = PREVIEW_SIDE
        pre = cv2.resize(self.pre, (side, side), interpolation=cv2.INTER_AREA)
        alpha = cv2.resize(self.alpha, (side, side), interpolation=cv2.INTER_AREA)
        out = pre + 255.0 * (1.0 - alpha[..., None])
        return preview(np.clip(out + 0.5, 0, 255).astype(np.uint8))


def place_product(rgb: NDArray[np.uint8], cutout: Cutout) -> Placement:
    """The product of `cutout` scaled and centred on the canvas."""
    height, width = cutout.mask.shape
    if cutout.mask.sum() < SMALLEST_PRODUCT * height * width:
        raise EngineError("invalid_input", "No product stands out in this photo; upload a photo where the product "
                                           "fills more of the frame and differs from its background.")
    pre, alpha = _place(rgb, cutout.alpha, cutout.mask)
    return Placement(pre=pre, alpha=alpha, cut_by_frame=cutout.cut_by_frame)


def finish_listing(placement: Placement, shadow: bool = True) -> Listing:
    """The placed product over pure white, with its soft ground shadow."""
    pre, alpha = placement.pre, placement.alpha
    shade = ground_shadow(alpha) if shadow else np.zeros_like(alpha)
    backdrop = 255.0 * (1.0 - shade)
    out = pre + backdrop[..., None] * (1.0 - alpha[..., None])
    return Listing(rgb=np.clip(out + 0.5, 0, 255).astype(np.uint8), product_alpha=alpha, shadow=shade,
                   cut_by_frame=placement.cut_by_frame)


def compose_listing(rgb: NDArray[np.uint8], cutout: Cutout, shadow: bool = True) -> Listing:
    """The product of `cutout` on a white 1024x1024 canvas."""
    return finish_listing(place_product(rgb, cutout), shadow)
