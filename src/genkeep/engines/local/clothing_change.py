"""Clothing change as a compositing approximation, not a generative try-on.

The person and the garment are cut out; the person's torso is found from the silhouette's width profile (head,
narrow neck, wide shoulders); the garment's collar line and hem are warped by a perspective transform onto the
person's shoulders and hips, clipped to the silhouette, shaded with the photo's own light and blended with feathered
edges. Poses other than upright and facing the camera give rougher results.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image

from genkeep.engines.base import EngineError
from genkeep.engines.local.pictures import preview
from genkeep.engines.local.segmentation import Cutout, subject_colors

Float = NDArray[np.float32]
Mask = NDArray[np.bool_]

# An adult's shoulder-to-hip length is about this many head heights (crown to the neck's narrowest point).
TORSO_IN_HEADS = 2.2


@dataclass(frozen=True)
class Torso:
    """Where the garment goes on the person, in pixels: the head's lowest row, the shoulder and hip lines."""

    neck_y: int
    shoulder_y: int
    hip_y: int
    shoulder_left: float
    shoulder_right: float
    hip_left: float
    hip_right: float


def _central_run(row: Mask, center: int) -> tuple[int, int] | None:
    """The run of True around `center` (the torso at that height, without arms hanging apart from it)."""
    columns = np.flatnonzero(row)
    if columns.size == 0:
        return None
    if not row[center]:
        center = int(columns[np.argmin(np.abs(columns - center))])
    left = center
    while left > 0 and row[left - 1]:
        left -= 1
    right = center
    while right < row.size - 1 and row[right + 1]:
        right += 1
    return left, right + 1


def find_torso(person: Mask) -> Torso:
    """The torso of an upright person from the silhouette's width profile."""
    rows = np.flatnonzero(person.any(axis=1))
    if rows.size < 20:
        raise EngineError("invalid_input", "No person stands out in the first photo; upload a photo of one person "
                                           "facing the camera, head and shoulders visible.")
    top, bottom = int(rows[0]), int(rows[-1]) + 1
    height = bottom - top
    widths = person.sum(axis=1).astype(np.float32)
    widths = np.convolve(widths, np.ones(5, np.float32) / 5, mode="same")
    # The head is widest somewhere in the top of the figure; the neck is the narrowest row below that, before the
    # shoulders spread out.
    head_rows = widths[top:top + max(3, height // 6)]
    head_width = float(head_rows.max())
    head_peak = top + int(np.argmax(head_rows))
    below = widths[head_peak:bottom]
    spread = np.flatnonzero(below > 1.6 * head_width)
    if spread.size == 0:
        raise EngineError("invalid_input", "The person's shoulders are not visible; upload a photo showing the "
                                           "person's head and shoulders, facing the camera.")
    shoulder_y = head_peak + int(spread[0])
    neck_y = head_peak + int(np.argmin(below[: max(1, spread[0])]))
    head_height = max(neck_y - top, 1)
    hip_y = min(bottom - 1, shoulder_y + round(TORSO_IN_HEADS * head_height))

    center = round(float(np.mean(np.flatnonzero(person[neck_y]))) if person[neck_y].any() else person.shape[1] / 2)
    # The shoulder line is measured a little lower, where the shoulders are fully formed.
    line = min(bottom - 1, shoulder_y + head_height // 4)
    shoulders = _central_run(person[line], center) or (center - head_height, center + head_height)
    hips = _central_run(person[hip_y], center) or shoulders
    hip_half = min((hips[1] - hips[0]) / 2, (shoulders[1] - shoulders[0]) / 2)
    hip_center = (hips[0] + hips[1]) / 2
    return Torso(neck_y=neck_y, shoulder_y=shoulder_y, hip_y=hip_y,
                 shoulder_left=float(shoulders[0]), shoulder_right=float(shoulders[1]),
                 hip_left=hip_center - hip_half, hip_right=hip_center + hip_half)


def _garment_outline(mask: Mask) -> NDArray[np.float32]:
    """The garment's collar-line corners and hem corners, in its own picture, as four points."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size < 10:
        raise EngineError("invalid_input", "No garment stands out in the second photo; upload the garment laid flat "
                                           "or on a plain background.")
    top, bottom = int(rows[0]), int(rows[-1]) + 1
    height = bottom - top
    collar = mask[min(bottom - 1, top + height // 12)]
    hem = mask[max(top, bottom - 1 - height // 20)]
    collar_cols, hem_cols = np.flatnonzero(collar), np.flatnonzero(hem)
    if hem_cols.size == 0:
        hem_cols = collar_cols
    return np.array([[collar_cols.min(), top], [collar_cols.max() + 1, top],
                     [hem_cols.max() + 1, bottom], [hem_cols.min(), bottom]], np.float32)


def _shading(person_rgb: NDArray[np.uint8], where: Mask) -> Float:
    """The photo's light on the torso, 1.0 on average: folds and shadows the garment should keep."""
    luminance = cv2.cvtColor(person_rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    reference = float(np.median(luminance[where])) if where.any() else float(luminance.mean())
    shading = luminance / max(reference, 1.0)
    # Softened and bounded: the old garment's own print and colour must not show through the new one.
    return np.clip(cv2.GaussianBlur(shading, (0, 0), 2.0), 0.55, 1.3).astype(np.float32)


def _box(mask: NDArray[np.uint8]) -> tuple[int, int, int, int]:
    x, y, w, h = cv2.boundingRect(mask)
    return x, y, x + w, y + h


def _grow(box: tuple[int, int, int, int], margin: int, width: int, height: int) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = box
    return max(0, x0 - margin), max(0, y0 - margin), min(width, x1 + margin), min(height, y1 + margin)


# How far (person pixels) the work reaches past the warped garment: the coverage blur, then the shading blur.
_REACH = 24


@dataclass(frozen=True)
class Fitting:
    """The garment warped onto the person, before it is blended in: its colours and coverage over the part of the
    person photo it lands on (rows y0:y1, columns x0:x1)."""

    person_rgb: NDArray[np.uint8]
    person: Cutout
    torso: Torso
    box: tuple[int, int, int, int]
    colors: Float
    coverage: Float

    def placed(self) -> Image.Image:
        """The garment laid over the photo where it will go, not yet clipped, shaded or blended, as a preview."""
        x0, y0, x1, y1 = self.box
        out = self.person_rgb.copy()
        if x1 > x0 and y1 > y0:
            a = np.clip(self.coverage, 0, 1)[..., None]
            roi = out[y0:y1, x0:x1].astype(np.float32)
            out[y0:y1, x0:x1] = np.clip(roi * (1 - a) + self.colors * a + 0.5, 0, 255).astype(np.uint8)
        return preview(out)

    def blend(self) -> NDArray[np.uint8]:
        """The person wearing the garment, at the person photo's size."""
        x0, y0, x1, y1 = self.box
        out = self.person_rgb.copy()
        if x1 <= x0 or y1 <= y0:
            return out
        coverage = self.coverage.copy()
        # Nothing above the neck: hair and face stay the person's own.
        coverage[: max(0, self.torso.neck_y - y0)] = 0
        person_alpha = self.person.alpha[y0:y1, x0:x1]
        coverage = np.minimum(cv2.GaussianBlur(np.minimum(coverage, person_alpha), (0, 0), 1.2), person_alpha)

        roi = self.person_rgb[y0:y1, x0:x1]
        shaded = self.colors * _shading(roi, coverage > 0.5)[..., None]
        a = coverage[..., None]
        blended = roi.astype(np.float32) * (1 - a) + shaded * a
        out[y0:y1, x0:x1] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
        return out


def fit_garment(person_rgb: NDArray[np.uint8], person: Cutout, garment_rgb: NDArray[np.uint8], garment: Cutout,
                ) -> Fitting:
    """The garment's collar line and hem warped onto the person's shoulders and hips."""
    torso = find_torso(person.mask)
    source = _garment_outline(garment.mask)
    # The garment's collar sits a little above the shoulder line, at the base of the neck.
    collar_y = torso.neck_y + 0.35 * (torso.shoulder_y - torso.neck_y)
    sleeve_room = 0.06 * (torso.shoulder_right - torso.shoulder_left)
    target = np.array([[torso.shoulder_left - sleeve_room, collar_y], [torso.shoulder_right + sleeve_room, collar_y],
                       [torso.hip_right, torso.hip_y], [torso.hip_left, torso.hip_y]], np.float32)
    height, width = person.mask.shape
    garment_height, garment_width = garment.mask.shape
    # Only the garment's part of its photo and the person's pixels it lands on are worked on; every other pixel of
    # the person photo stays exactly as it was. The garment crop keeps enough of the photo around the garment for
    # the coverage blur to find the same colours it would in the whole photo.
    src_len = np.linalg.norm(source - np.roll(source, -1, axis=0), axis=1)
    dst_len = np.linalg.norm(target - np.roll(target, -1, axis=0), axis=1)
    shrink = float(np.max(src_len / np.maximum(dst_len, 1.0)))
    gx0, gy0, gx1, gy1 = _grow(_box((garment.alpha > 0).astype(np.uint8)), int(np.ceil(_REACH * max(shrink, 1.0))) + 4,
                               garment_width, garment_height)
    shift = np.array([gx0, gy0], np.float32)
    transform = cv2.getPerspectiveTransform(source - shift, target)
    corners = np.array([[[0, 0], [gx1 - gx0, 0], [gx1 - gx0, gy1 - gy0], [0, gy1 - gy0]]], np.float32)
    landed = cv2.perspectiveTransform(corners, transform)[0]
    x0 = max(0, int(np.floor(landed[:, 0].min())) - _REACH)
    y0 = max(0, int(np.floor(landed[:, 1].min())) - _REACH)
    x1 = min(width, int(np.ceil(landed[:, 0].max())) + _REACH + 1)
    y1 = min(height, int(np.ceil(landed[:, 1].max())) + _REACH + 1)
    if x1 <= x0 or y1 <= y0:
        return Fitting(person_rgb, person, torso, (x0, y0, x1, y1), np.zeros((0, 0, 3), np.float32),
                       np.zeros((0, 0), np.float32))
    to_roi = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]], np.float64) @ transform

    def warp(image: Float) -> Float:
        moved = cv2.warpPerspective(image, to_roi, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_CONSTANT)
        return np.asarray(moved, np.float32)

    colors = warp(subject_colors(garment_rgb, garment.alpha, (gx0, gy0, gx1, gy1)))
    coverage = warp(np.ascontiguousarray(garment.alpha[gy0:gy1, gx0:gx1]))
    return Fitting(person_rgb, person, torso, (x0, y0, x1, y1), colors, coverage)


def dress(person_rgb: NDArray[np.uint8], person: Cutout, garment_rgb: NDArray[np.uint8], garment: Cutout,
          ) -> NDArray[np.uint8]:
    """The person wearing the garment, at the person photo's size."""
    return fit_garment(person_rgb, person, garment_rgb, garment).blend()
