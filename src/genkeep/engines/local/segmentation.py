"""Cut the main subject (a product, a person, a garment) out of a picture.

The u2netp model says where the subject is; the backdrop model adds the parts the network overlooks (a pale sole on a
pale floor) and serves alone when the model file is absent. Where the mask runs into the photo's edge, the part
that is backdrop (a cast shadow, a patch of table) is cut off along the picture's own edges. A guided filter then
snaps the mask's edge to the picture's own edges at full resolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from genkeep.engines.local.background_model import classical_mask, evidence_regions
from genkeep.engines.local.model import SaliencyModel
from genkeep.engines.local.pictures import fit_within

Float = NDArray[np.float32]
Mask = NDArray[np.bool_]

# The classical backdrop model works at this size: large enough for thin parts, small enough to be quick.
CLASSICAL_SIDE = 512
# Within this share of the photo's shorter side from the photo's edge or the backdrop, a pixel of the mask may be
# backdrop the network swept in; farther in it is taken as product.
FRAME_REACH = 0.1
# The product touches the photo's edge when its mask covers at least this share of one side of the photo; a few
# stray pixels at the edge are not the product cut off.
FRAME_TOUCH = 0.02


@dataclass(frozen=True)
class Cutout:
    """The subject's alpha (0..1, lightly feathered) and its hard mask (alpha >= 0.5), at the picture's size."""

    alpha: Float
    mask: Mask

    @property
    def found(self) -> bool:
        return bool(self.mask.any())

    @property
    def cut_by_frame(self) -> bool:
        """True when the subject runs off the photo's edge: part of it is missing from the picture."""
        return touches_frame(self.mask)


def touches_frame(mask: Mask) -> bool:
    """True when `mask` covers at least FRAME_TOUCH of any one side of the picture."""
    return any(float(side.mean()) >= FRAME_TOUCH for side in (mask[0], mask[-1], mask[:, 0], mask[:, -1]))


def subject_colors(rgb: NDArray[np.uint8], alpha: Float, box: tuple[int, int, int, int] | None = None) -> Float:
    """The product's own colour at its edge, where the photo mixes it with the backdrop (no grey or coloured fringe).

    With `box` (x0, y0, x1, y1) only that part of the picture is worked out and returned, with the same values.
    """
    height, width = alpha.shape
    sigma = max(2.0, max(height, width) / 300)
    x0, y0, x1, y1 = box or (0, 0, width, height)
    # The blurs reach about 4 sigma, the erosion one pixel: a margin that wide keeps the box's values exact.
    margin = int(np.ceil(4 * sigma)) + 3
    cx0, cy0, cx1, cy1 = max(0, x0 - margin), max(0, y0 - margin), min(width, x1 + margin), min(height, y1 + margin)
    alpha = alpha[cy0:cy1, cx0:cx1]
    solid = (alpha > 0.98).astype(np.float32)
    solid = np.asarray(cv2.erode(solid, np.ones((3, 3), np.uint8)), np.float32)
    colors = rgb[cy0:cy1, cx0:cx1].astype(np.float32)
    weight = cv2.GaussianBlur(solid, (0, 0), sigma)
    spread = cv2.GaussianBlur(colors * solid[..., None], (0, 0), sigma)
    inside = spread / np.maximum(weight, 1e-4)[..., None]
    # Blend toward the inside colour only where the pixel is partly backdrop and an inside colour is known.
    use = (np.clip((1.0 - alpha) * 4.0, 0, 1) * (weight > 0.02))[..., None]
    mixed = colors * (1 - use) + inside * use
    return np.asarray(mixed[y0 - cy0:y1 - cy0, x0 - cx0:x1 - cx0], np.float32)


def _guided_filter(guide: Float, source: Float, radius: int, eps: float) -> Float:
    """He et al.'s guided filter: `source` smoothed, but with edges where `guide` has them."""
    size = (2 * radius + 1, 2 * radius + 1)

    def box(x: Float) -> Float:
        return np.asarray(cv2.boxFilter(x, cv2.CV_32F, size, borderType=cv2.BORDER_REFLECT), np.float32)

    mean_i, mean_p = box(guide), box(source)
    var_i = box(np.asarray(guide * guide, np.float32)) - mean_i * mean_i
    cov_ip = box(np.asarray(guide * source, np.float32)) - mean_i * mean_p
    a = np.asarray(cov_ip / (var_i + eps), np.float32)
    b = np.asarray(mean_p - a * mean_i, np.float32)
    return np.asarray(box(a) * guide + box(b), np.float32)


def combine(saliency: Float, regions: Mask) -> Mask:
    """The network's subject, plus backdrop-model regions that touch it (parts the network overlooked)."""
    subject = saliency > 0.5
    if not subject.any():
        return subject
    count, labels = cv2.connectedComponents(regions.astype(np.uint8), connectivity=8)
    if count <= 1:
        return subject
    reach = max(3, round(min(subject.shape) * 0.01))
    near = cv2.dilate(subject.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1,) * 2))
    touching = np.unique(labels[(near > 0) & (labels > 0)])
    subject_area = int(subject.sum())
    extra = np.zeros_like(subject)
    for label in touching:
        region = (labels == label) & ~subject
        # A region mostly outside the subject and as big as it is backdrop texture, not an overlooked part.
        if int(region.sum()) < 0.5 * subject_area:
            extra |= region
    # Thin slivers along the subject's edge are texture next to it, not parts of it: only solid additions count.
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1,) * 2)
    extra = cv2.morphologyEx(extra.astype(np.uint8), cv2.MORPH_OPEN, kernel) > 0
    return np.asarray(subject | extra)


def trim_at_frame(rgb: NDArray[np.uint8], subject: Mask) -> Mask:
    """`subject` without the backdrop it swept in where it meets the photo's edge.

    The network marks a saucer's dark cast shadow, or a patch of table, as subject when that patch runs to the
    photo's edge: the subject then seems cut by the frame and its backdrop is kept. A watershed on the picture
    grows the backdrop in from outside the mask and from the photo's edge, and the product in from the mask's
    inside (away from the edge), until they meet at the strongest edge between them; what the backdrop reached
    from the photo's edge is dropped where it looks like the backdrop beside it or like a shadow cast on it. A
    product that truly runs off the edge looks like the rest of itself there and stays whole; nothing is dropped
    when it would take more than a third of the mask.
    """
    height, width = subject.shape
    frame = np.zeros((height, width), bool)
    frame[0] = frame[-1] = True
    frame[:, 0] = frame[:, -1] = True
    at_frame = subject & frame
    if not at_frame.any():
        return subject
    reach = max(3, round(FRAME_REACH * min(height, width)))
    # Product seeds: the mask's inside, `reach` away from the backdrop and from the photo's edge (which counts as
    # backdrop here); for a product thinner than that, its inside far from where it meets the photo's edge.
    product_seeds = cv2.erode(np.pad(subject.astype(np.uint8), 1), cv2.getStructuringElement(
        cv2.MORPH_ELLIPSE, (2 * reach + 1,) * 2))[1:-1, 1:-1] > 0
    if not product_seeds.any():
        inner = cv2.erode(subject.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))) > 0
        from_edge = cv2.distanceTransform((~at_frame).astype(np.uint8), cv2.DIST_L2, 3)
        product_seeds = inner & (from_edge > 2 * reach)
    if not product_seeds.any():
        return subject
    outside = cv2.erode((~subject).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    markers = np.zeros((height, width), np.int32)
    markers[outside | at_frame] = 1
    markers[product_seeds] = 2
    grown = cv2.watershed(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), markers)
    backdrop = (subject & (grown != 2)).astype(np.uint8)
    # Only backdrop that reaches the photo's edge is dropped; elsewhere the mask's edge stays the network's.
    count, labels = cv2.connectedComponents(backdrop, connectivity=8)
    if count <= 1:
        return subject
    swept = np.zeros_like(subject)
    colors = rgb.astype(np.float32)
    band = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9))
    for label in np.unique(labels[at_frame & (labels > 0)]):
        part = labels == label
        near = cv2.dilate(part.astype(np.uint8), band) > 0
        beside_backdrop, beside_product = near & ~subject, near & subject & ~part
        if not beside_backdrop.any() or not beside_product.any():
            continue
        color = np.median(colors[part], axis=0)
        backdrop_color = np.median(colors[beside_backdrop], axis=0)
        product_color = np.median(colors[beside_product], axis=0)
        # Backdrop is either the backdrop's own colour or a shadow cast on the ground under the product (much darker
        # than both the lit backdrop and the product beside it, running off the photo's bottom edge, where the
        # ground runs out); a product cut by the photo's edge looks like the rest of it. A dark part of the product
        # cut by a side edge (a motorbike's tyre) is not a shadow.
        shadow = part[-1].any() and color.sum() < 0.5 * min(backdrop_color.sum(), product_color.sum())
        # Clearly nearer: a dark tyre between a grey floor and a chrome rim is about as near to either.
        like_backdrop = np.linalg.norm(color - backdrop_color) < 0.5 * np.linalg.norm(color - product_color)
        if shadow or like_backdrop:
            swept |= part
    if not swept.any() or int(swept.sum()) > int(subject.sum()) // 3:
        return subject
    trimmed = subject & ~swept
    # The watershed's one-pixel boundary line goes back to the product where it borders it.
    line = (grown == -1) & subject
    return np.asarray(trimmed | (line & (cv2.dilate(trimmed.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0)))


def refine(rgb: NDArray[np.uint8], rough: Mask) -> Cutout:
    """Scale a rough mask to the picture's size, snap its edge to the picture's edges, feather it lightly."""
    height, width = rgb.shape[:2]
    alpha = np.zeros((height, width), np.float32)
    if not rough.any():
        return Cutout(alpha=alpha, mask=alpha >= 0.5)
    source = np.asarray(cv2.resize(rough.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR),
                        np.float32)
    radius = max(2, round(max(height, width) / 256))
    # Far from the mask the filter gives exactly 0, so it runs only on the mask's bounds plus its reach (2 radii,
    # twice over so the crop's own border cannot matter).
    x, y, w, h = cv2.boundingRect((source > 0).astype(np.uint8))
    margin = 4 * radius + 4
    x0, y0, x1, y1 = max(0, x - margin), max(0, y - margin), min(width, x + w + margin), min(height, y + h + margin)
    guide = cv2.cvtColor(rgb[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    # eps ~ (0.1)^2: only edges stronger than about 25 grey levels pull the mask; wood grain and noise do not.
    snapped = _guided_filter(guide, source[y0:y1, x0:x1], radius, 1e-2)
    alpha[y0:y1, x0:x1] = np.clip((snapped - 0.5) * 2.0 + 0.5, 0.0, 1.0)
    return Cutout(alpha=alpha, mask=alpha >= 0.5)


def find_subject(rgb: NDArray[np.uint8], model: SaliencyModel | None) -> Cutout:
    """The main subject of `rgb`; `model=None` uses the backdrop model alone."""
    small = fit_within(rgb, CLASSICAL_SIDE)
    if model is None:
        return refine(rgb, classical_mask(small))
    saliency = model.saliency(small)
    rough = combine(saliency, evidence_regions(small))
    if not rough.any():
        rough = classical_mask(small)
    return refine(rgb, trim_at_frame(small, rough))
