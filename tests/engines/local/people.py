"""A synthetic person photo and a garment photo for the clothing-change tests."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

SKIN = (214, 170, 140)
SHIRT = (190, 45, 45)
GARMENT = (40, 90, 200)
BACKDROP = (226, 224, 218)


@dataclass(frozen=True)
class PersonPhoto:
    """A person standing, facing the camera, and where their face and torso are."""

    rgb: NDArray[np.uint8]
    silhouette: NDArray[np.bool_]
    face: tuple[int, int, int, int]  # x0, y0, x1, y1
    torso: tuple[int, int, int, int]


def person_photo(width: int = 600, height: int = 800) -> PersonPhoto:
    """A cartoon-like person: head, neck, shirt with sleeves, arms, trousers, on a plain backdrop."""
    image = np.zeros((height, width, 3), np.uint8)
    image[:] = BACKDROP
    silhouette = np.zeros((height, width), np.uint8)
    cx = width // 2

    def fill(poly: list[tuple[int, int]], color: tuple[int, int, int]) -> None:
        pts = np.array(poly, np.int32).reshape(-1, 1, 2)
        cv2.fillPoly(image, [pts], color, cv2.LINE_AA)
        cv2.fillPoly(silhouette, [pts], 255)

    fill([(cx - 95, 760), (cx - 85, 470), (cx + 85, 470), (cx + 95, 760), (cx + 10, 760), (cx, 560), (cx - 10, 760)],
         (45, 60, 100))
    fill([(cx - 20, 170), (cx + 20, 170), (cx + 22, 215), (cx - 22, 215)], SKIN)
    fill([(cx - 150, 215), (cx + 150, 215), (cx + 175, 470), (cx + 140, 470), (cx + 120, 300), (cx + 95, 480),
          (cx - 95, 480), (cx - 120, 300), (cx - 140, 470), (cx - 175, 470)], SHIRT)
    fill([(cx - 175, 470), (cx - 140, 470), (cx - 140, 510), (cx - 172, 510)], SKIN)
    fill([(cx + 140, 470), (cx + 175, 470), (cx + 172, 510), (cx + 140, 510)], SKIN)
    cv2.ellipse(image, (cx, 120), (52, 65), 0, 0, 360, SKIN, -1, cv2.LINE_AA)
    cv2.ellipse(silhouette, (cx, 120), (52, 65), 0, 0, 360, 255, -1)
    cv2.ellipse(image, (cx, 90), (54, 40), 0, 180, 360, (50, 35, 25), -1, cv2.LINE_AA)
    for eye in (cx - 20, cx + 20):
        cv2.circle(image, (eye, 118), 5, (40, 30, 30), -1, cv2.LINE_AA)
    # Folds: darker bands across the shirt, which the new garment should keep.
    shade = np.ones((height, width), np.float32)
    ys, xs = np.mgrid[0:height, 0:width]
    shade -= 0.18 * ((np.sin(xs / 17.0 + ys / 40.0) > 0.6) & (ys > 215) & (ys < 480) & (silhouette > 0))
    image = np.clip(image * shade[..., None], 0, 255).astype(np.uint8)
    return PersonPhoto(image, silhouette > 0, (cx - 45, 75, cx + 45, 165), (cx - 80, 260, cx + 80, 440))


def garment_photo(width: int = 500, height: int = 500) -> NDArray[np.uint8]:
    """A T-shirt laid flat on white, with a soft fold shadow."""
    image = np.full((height, width, 3), 250, np.uint8)
    poly = [(150, 60), (210, 50), (250, 75), (290, 50), (350, 60), (460, 150), (410, 200), (370, 170), (370, 450),
            (130, 450), (130, 170), (90, 200), (40, 150)]
    cv2.fillPoly(image, [np.array(poly, np.int32).reshape(-1, 1, 2)], GARMENT, cv2.LINE_AA)
    cv2.line(image, (250, 120), (250, 440), (30, 70, 170), 6, cv2.LINE_AA)
    return image
