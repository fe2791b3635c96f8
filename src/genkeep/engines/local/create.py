"""CREATE offline: a procedural picture from the prompt's words. This is a stand-in, not an AI model.

The prompt's words are hashed to a palette and a composition (sky, a light, soft shapes, rolling hills); colour words
in English or Chinese ("red", "红", "gold", "金" ...) and a few scene words ("night", "sea", "森林" ...) take effect
directly. Reference images are cut out and stood on the ground in the middle of the scene. The same prompt and
references always make the same picture.
"""

from __future__ import annotations

import colorsys
import hashlib
import re
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image

from genkeep.engines.local.pictures import fit_within, preview
from genkeep.engines.local.segmentation import Cutout, subject_colors

Float = NDArray[np.float32]
RGB = tuple[float, float, float]

SIZE = 1024
# CREATE's preview: the same scene drawn small, before the full-size picture.
DRAFT_SIZE = 256

# Hue (0..1), saturation, value for colour words a prompt may use.
COLOR_WORDS: dict[str, tuple[float, float, float]] = {
    "red": (0.0, 0.8, 0.85), "红": (0.0, 0.8, 0.85),
    "orange": (0.07, 0.85, 0.95), "橙": (0.07, 0.85, 0.95),
    "yellow": (0.14, 0.75, 0.98), "黄": (0.14, 0.75, 0.98),
    "gold": (0.12, 0.7, 0.9), "golden": (0.12, 0.7, 0.9), "金": (0.12, 0.7, 0.9),
    "green": (0.33, 0.65, 0.7), "绿": (0.33, 0.65, 0.7),
    "cyan": (0.5, 0.6, 0.85), "teal": (0.48, 0.7, 0.6), "青": (0.5, 0.6, 0.85),
    "blue": (0.6, 0.7, 0.85), "蓝": (0.6, 0.7, 0.85),
    "purple": (0.77, 0.6, 0.7), "violet": (0.75, 0.5, 0.8), "紫": (0.77, 0.6, 0.7),
    "pink": (0.92, 0.45, 0.95), "粉": (0.92, 0.45, 0.95),
    "brown": (0.07, 0.6, 0.5), "棕": (0.07, 0.6, 0.5), "褐": (0.07, 0.6, 0.5),
    "white": (0.6, 0.05, 0.97), "白": (0.6, 0.05, 0.97), "silver": (0.6, 0.06, 0.8), "银": (0.6, 0.06, 0.8),
    "black": (0.65, 0.3, 0.15), "黑": (0.65, 0.3, 0.15),
}
# Scene words that set the light: (sky brightness, warmth of the light from -1 cold to 1 warm).
MOOD_WORDS: dict[str, tuple[float, float]] = {
    "night": (0.35, -0.6), "夜": (0.35, -0.6), "moon": (0.4, -0.5), "月": (0.4, -0.5),
    "sunset": (0.8, 0.9), "日落": (0.8, 0.9), "夕阳": (0.8, 0.9), "dawn": (0.9, 0.5), "黎明": (0.9, 0.5),
    "sun": (1.0, 0.5), "阳光": (1.0, 0.5), "snow": (1.0, -0.4), "雪": (1.0, -0.4),
    "sea": (0.95, -0.3), "ocean": (0.95, -0.3), "海": (0.95, -0.3),
    "forest": (0.8, 0.1), "森林": (0.8, 0.1), "desert": (1.0, 0.7), "沙漠": (1.0, 0.7),
}
_WORD = re.compile(r"[a-z0-9']+|[\u4e00-\u9fff]", re.IGNORECASE)


@dataclass(frozen=True)
class Palette:
    """The scene's colours (RGB, 0..255) and the numbers that place its shapes."""

    sky_top: RGB
    sky_horizon: RGB
    light: RGB
    hills: tuple[RGB, ...]
    accents: tuple[RGB, ...]
    sun_x: float
    sun_y: float
    seed: int


def _digest(text: str) -> int:
    # Python's hash() changes per process; a fixed digest keeps pictures the same across runs and machines.
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def _rgb(h: float, s: float, v: float) -> RGB:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0))
    return (r * 255, g * 255, b * 255)


def prompt_words(prompt: str) -> list[str]:
    """The prompt's words, lower-case; Chinese two-character colour and scene words kept together."""
    text = prompt.lower()
    words = [word for word in (*COLOR_WORDS, *MOOD_WORDS) if len(word) > 1 and not word.isascii() and word in text]
    return words + _WORD.findall(text)


def palette_for(prompt: str) -> Palette:
    """The palette and composition a prompt stands for."""
    words = prompt_words(prompt)
    colors = [COLOR_WORDS[w] for w in words if w in COLOR_WORDS]
    moods = [MOOD_WORDS[w] for w in words if w in MOOD_WORDS]
    seed = _digest(" ".join(words))
    hashed = [(_digest(w) % 1000) / 1000 for w in words] or [0.58]
    if colors:
        base_h, base_s, base_v = colors[0]
        second_h = colors[1][0] if len(colors) > 1 else (base_h + 0.08) % 1.0
    else:
        base_h, base_s, base_v = hashed[0], 0.55, 0.85
        second_h = hashed[1] if len(hashed) > 1 else (base_h + 0.5) % 1.0
    brightness, warmth = moods[0] if moods else (0.95, 0.0)
    # Neutral colour words (white, black, silver) keep their low saturation; hues get a pleasant, soft one.
    sat = base_s if base_s < 0.3 else min(base_s, 0.7)
    light_h = 0.1 if warmth >= 0 else 0.58
    return Palette(
        sky_top=_rgb(base_h, sat * 0.75, base_v * 0.75 * brightness),
        sky_horizon=_rgb(base_h + 0.03, sat * 0.35, min(1.0, base_v * 1.1) * brightness),
        light=_rgb(light_h, 0.15 + 0.3 * abs(warmth), 1.0),
        hills=(_rgb(second_h, sat * 0.5, 0.75 * brightness), _rgb(base_h - 0.02, sat * 0.8, 0.55 * brightness),
               _rgb(base_h + 0.02, sat * 0.9, 0.38 * brightness)),
        accents=tuple(_rgb(h, 0.35, 1.0) for h in (base_h, second_h, *(c[0] for c in colors[2:]))),
        sun_x=0.2 + 0.6 * ((seed >> 8) % 1000) / 1000,
        sun_y=0.15 + 0.2 * ((seed >> 20) % 1000) / 1000,
        seed=seed,
    )


def _blend(image: Float, color: RGB, alpha: Float) -> None:
    a = alpha[..., None]
    image *= 1 - a
    image += np.array(color, np.float32) * a


def _disc_box(cx: float, cy: float, radius: float, side: int) -> tuple[slice, slice]:
    """The rows and columns (pixels) that a disc of `radius` around (cx, cy), all fractions of the side, can touch."""
    y0, y1 = max(0, int((cy - radius) * side) - 1), min(side, int((cy + radius) * side) + 2)
    x0, x1 = max(0, int((cx - radius) * side) - 1), min(side, int((cx + radius) * side) + 2)
    return slice(y0, max(y0, y1)), slice(x0, max(x0, x1))


def _backdrop(p: Palette, side: int) -> tuple[Float, int]:
    """Sky, light and hills; returns the picture and the ground line's height."""
    # Every layer is separable or local, so it is drawn from 1-D profiles or only within its own bounds: a full-frame
    # pass per shape made this the slowest part of CREATE.
    axis = np.arange(side, dtype=np.float32) / side
    t = (np.clip(axis / 0.62, 0, 1) ** 1.3)[:, None]
    sky = (np.array(p.sky_top, np.float32) * (1 - t) + np.array(p.sky_horizon, np.float32) * t)[:, None, :]
    rng = np.random.default_rng(p.seed % 2**32)

    # exp(-(d/0.28)^2) of the distance to the sun is the product of one factor per axis.
    glow_x = np.exp(-(((axis - p.sun_x) / 0.28) ** 2))
    glow_y = np.exp(-(((axis - p.sun_y) / 0.28) ** 2))
    glow = (np.outer(glow_y, glow_x) * 0.55).astype(np.float32)
    image = np.asarray(sky + (np.array(p.light, np.float32) - sky) * glow[..., None], np.float32)

    def disc(cx: float, cy: float, radius: float, edge: float) -> tuple[tuple[slice, slice], Float]:
        rows, cols = _disc_box(cx, cy, radius, side)
        distance = np.sqrt((axis[cols][None, :] - cx) ** 2 + (axis[rows][:, None] - cy) ** 2)
        return (rows, cols), np.clip((radius - distance) / edge, 0, 1).astype(np.float32)

    box, sun = disc(p.sun_x, p.sun_y, 0.07, 0.006)
    _blend(image[box], p.light, sun * 0.9)

    for i in range(7):
        # Soft out-of-focus circles, the "bokeh" a photographer's background would have.
        cx, cy = rng.uniform(0.05, 0.95), rng.uniform(0.05, 0.5)
        radius = rng.uniform(0.03, 0.09)
        box, circle = disc(cx, cy, radius, radius * 0.5)
        _blend(image[box], p.accents[i % len(p.accents)], (circle * rng.uniform(0.12, 0.25)).astype(np.float32))

    lines = []
    for depth in range(len(p.hills)):
        phase = rng.uniform(0, 2 * np.pi)
        wave = (0.035 / (depth + 1)) * np.sin(axis * (3 + 2 * depth) + phase) + 0.02 * np.sin(axis * 11 + phase * 2)
        lines.append(0.55 + 0.085 * depth + wave)
    for depth, (color, line) in enumerate(zip(p.hills, lines, strict=True)):
        # Each hill is drawn from its highest point down to where the next hill covers every column completely.
        top = max(0, int(float(line.min()) * side) - 1)
        bottom = side if depth + 1 == len(lines) else min(side, int(float(lines[depth + 1].max()) * side + 1.5) + 2)
        below = axis[top:bottom, None] - line[None, :]
        # Anti-aliased hill edge, a little haze toward the horizon for depth.
        hill = np.clip(below * side / 1.5, 0, 1)
        shade = 1.0 - 0.25 * np.clip(below / 0.3, 0, 1)
        colored = np.array(color, np.float32) * shade[..., None]
        band = image[top:bottom]
        band *= 1 - hill[..., None]
        band += colored * hill[..., None]
    ground = 0.55 + 0.085 * (len(p.hills) - 1)
    off_center = (axis - 0.5) ** 2
    vignette = 1.0 - 0.35 * ((off_center[None, :] + off_center[:, None]) / 0.5)
    image *= vignette[..., None]
    return image, round((ground + 0.1) * side)


def _slots(count: int) -> list[tuple[float, float]]:
    """Centre x and height (fractions of the picture) of each reference placed in the scene."""
    if count <= 1:
        return [(0.5, 0.55)] * count
    spacing = 0.8 / count
    return [(0.1 + spacing * (i + 0.5), min(0.48, spacing * 1.6)) for i in range(count)]


def _place_subject(image: Float, rgb: NDArray[np.uint8], cutout: Cutout, center_x: float, height: float,
                   ground: int, side: int) -> None:
    ys, xs = np.nonzero(cutout.mask)
    if ys.size == 0:
        return
    y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
    scale = min(height * side / (y1 - y0), (0.8 * side) / (x1 - x0))
    size = (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    colors = subject_colors(rgb, cutout.alpha, (x0, y0, x1, y1))
    alpha = cutout.alpha[y0:y1, x0:x1]
    pre = cv2.resize(colors * alpha[..., None], size, interpolation=interpolation)
    alpha = np.clip(cv2.resize(alpha, size, interpolation=interpolation), 0, 1)
    pre = np.clip(pre, 0, 255 * alpha[..., None])
    left = round(center_x * side - size[0] / 2)
    top = min(side - size[1], ground - size[1])
    # A soft contact shadow grounds the subject in the scene; it is drawn only within its own reach of the frame.
    center, axes = (left + size[0] // 2, top + size[1]), (max(4, size[0] // 2), max(3, size[0] // 14))
    sigma = max(2.0, size[0] / 30)
    reach = int(np.ceil(4 * sigma)) + 3
    bx0, by0 = max(0, center[0] - axes[0] - 2 * reach), max(0, center[1] - axes[1] - 2 * reach)
    bx1, by1 = min(side, center[0] + axes[0] + 2 * reach), min(side, center[1] + axes[1] + 2 * reach)
    if bx1 > bx0 and by1 > by0:
        shadow = np.zeros((by1 - by0, bx1 - bx0), np.float32)
        cv2.ellipse(shadow, (center[0] - bx0, center[1] - by0), axes, 0, 0, 360, 1.0, -1, cv2.LINE_AA)
        shadow = cv2.GaussianBlur(shadow, (0, 0), sigma) * 0.35
        image[by0:by1, bx0:bx1] *= (1 - shadow)[..., None]
    sx0, sy0, dx0, dy0 = max(0, -left), max(0, -top), max(0, left), max(0, top)
    w, h = min(size[0] - sx0, side - dx0), min(size[1] - sy0, side - dy0)
    a = alpha[sy0:sy0 + h, sx0:sx0 + w, None]
    region = image[dy0:dy0 + h, dx0:dx0 + w]
    region[...] = pre[sy0:sy0 + h, sx0:sx0 + w] + region * (1 - a)


def render_scene(prompt: str, references: list[tuple[NDArray[np.uint8], Cutout]], side: int = SIZE,
                 ) -> NDArray[np.uint8]:
    """The picture for a prompt, `side` pixels square (the result: 1024), with the cut-out references composed in."""
    palette = palette_for(prompt)
    image, ground = _backdrop(palette, side)
    for (center_x, height), (rgb, cutout) in zip(_slots(len(references)), references, strict=False):
        _place_subject(image, rgb, cutout, center_x, height, ground, side)
    rng = np.random.default_rng((palette.seed >> 32) % 2**32)
    # Fine grain hides gradient banding in 8-bit output.
    image += rng.normal(0, 1.2, image.shape).astype(np.float32)
    return np.clip(image + 0.5, 0, 255).astype(np.uint8)


def render_draft(prompt: str, references: list[tuple[NDArray[np.uint8], Cutout]]) -> Image.Image:
    """The same picture at DRAFT_SIZE, as a preview: the references shrunk first, so it costs next to nothing."""
    small = []
    for rgb, cutout in references:
        small_rgb = fit_within(rgb, DRAFT_SIZE)
        height, width = small_rgb.shape[:2]
        alpha = np.asarray(cv2.resize(cutout.alpha, (width, height), interpolation=cv2.INTER_AREA), np.float32)
        small.append((small_rgb, Cutout(alpha=alpha, mask=alpha >= 0.5)))
    return preview(render_scene(prompt, small, DRAFT_SIZE))
