"""Product masks drawn by hand on scikit-image's sample photos, for judging WHITE_BACKGROUND on real pictures.

Each product is a union of polygons and ellipses traced by eye on the photo at its own size (x, y in pixels).
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

Point = tuple[int, int]
# An ellipse: centre, half axes, rotation in degrees.
Ellipse = tuple[Point, Point, float]

POLYGONS: dict[str, list[list[Point]]] = {
    # The cup, its saucer and the spoon; the table and the saucer's dark cast shadow below-left are backdrop.
    "coffee": [[
        (176, 76), (150, 88), (120, 104), (100, 120), (90, 140), (82, 160), (80, 180), (78, 208), (80, 250),
        (88, 280), (100, 300), (120, 325), (150, 350), (175, 365), (200, 377), (250, 388), (300, 393), (340, 390),
        (368, 376), (395, 362), (414, 350), (440, 328), (459, 300), (470, 275), (475, 250), (477, 200), (470, 170),
        (459, 150), (440, 125), (420, 108), (420, 74), (409, 67), (402, 70), (405, 100),
    ]],
    # The rocket alone: the launch towers, the lights and the pad under it are backdrop.
    "rocket": [[
        (322, 128), (317, 134), (313, 145), (312, 160), (312, 404), (336, 404), (336, 160), (333, 145), (328, 134),
    ]],
    # The cat, cut by the frame on three sides; the cushions top-left and right are backdrop.
    "chelsea": [[
        (0, 118), (11, 91), (20, 70), (30, 45), (36, 20), (41, 0), (398, 0), (378, 45), (369, 82), (362, 118),
        (357, 150), (348, 182), (337, 209), (325, 236), (316, 264), (307, 299), (0, 299),
    ]],
    # The astronaut and the helmet she holds; the flag, the shuttle model and its black stand are backdrop.
    "astronaut": [[
        (117, 200), (133, 167), (160, 150), (177, 130), (160, 107), (153, 73), (167, 40), (193, 20), (227, 15),
        (267, 27), (293, 53), (301, 87), (293, 117), (277, 137), (267, 150), (293, 180), (303, 220), (303, 240),
        (333, 260), (353, 287), (363, 333), (363, 353), (320, 373), (280, 453), (280, 511), (27, 511), (20, 453),
        (20, 400), (27, 347), (40, 293), (53, 253), (80, 227),
    ]],
}
ELLIPSES: dict[str, list[Ellipse]] = {
    "coffee": [((290, 110), (118, 93), 0.0)],
    "astronaut": [((390, 460), (113, 117), 0.0)],
}


def hand_mask(name: str, shape: tuple[int, int]) -> NDArray[np.bool_]:
    """The hand-drawn product mask of sample photo `name`, at `shape` (height, width)."""
    mask = np.zeros(shape, np.uint8)
    for polygon in POLYGONS.get(name, []):
        cv2.fillPoly(mask, [np.array(polygon, np.int32).reshape(-1, 1, 2)], 1)
    for center, axes, angle in ELLIPSES.get(name, []):
        cv2.ellipse(mask, center, axes, angle, 0, 360, 1, -1)
    return mask > 0
