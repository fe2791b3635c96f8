"""Synthetic product photos with known ground-truth masks, drawn with numpy and OpenCV (nothing is committed).

Each photo has a product (bottle, box, shoe, mug) with shading, a specular highlight and a soft cast shadow on the
ground, over a plain, textured or coloured background. Shadows belong to the background in the ground truth, as they
do in a white-background listing photo.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

Float = NDArray[np.float32]
Mask = NDArray[np.bool_]
# Drawing happens at this multiple of the final size, then is area-averaged, so edges are anti-aliased like a photo's.
SUPERSAMPLE = 2


@dataclass(frozen=True)
class ProductPhoto:
    """One test photo: RGB uint8, the product's ground-truth mask, and a description for the IoU table."""

    name: str
    rgb: NDArray[np.uint8]
    truth: Mask


@dataclass(frozen=True)
class Layer:
    """A part of the product: where it is (soft, 0..1) and its colour there."""

    alpha: Float
    color: Float


def _canvas_mask(width: int, height: int, draw: Callable[[NDArray[np.uint8], int], None]) -> Float:
    """Draw at SUPERSAMPLE× with `draw(image, scale)` and area-average down to a soft 0..1 mask."""
    big = np.zeros((height * SUPERSAMPLE, width * SUPERSAMPLE), np.uint8)
    draw(big, SUPERSAMPLE)
    small = cv2.resize(big, (width, height), interpolation=cv2.INTER_AREA)
    return small.astype(np.float32) / 255.0


def _pts(points: list[tuple[float, float]], scale: int) -> NDArray[np.int32]:
    return (np.array(points, np.float64) * scale).round().astype(np.int32).reshape(-1, 1, 2)


def _grid(width: int, height: int) -> tuple[Float, Float]:
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    return xs, ys


def _cylinder_shading(
    width: int,
    height: int,
    left: float,
    right: float,
    base: tuple[int, int, int],
    highlight_at: float = 0.3,
    highlight: float = 0.7,
) -> Float:
    """Colour of a lit cylinder between x=left and x=right: darker at the rims, a soft specular stripe."""
    xs, _ = _grid(width, height)
    u = np.clip((xs - left) / max(right - left, 1.0), 0.0, 1.0)
    lambert = 0.55 + 0.45 * np.sin(np.pi * u)
    spec = highlight * np.exp(-(((u - highlight_at) / 0.05) ** 2))
    color = np.array(base, np.float32)[None, None, :] * lambert[..., None]
    return np.clip(color + 255.0 * spec[..., None], 0, 255).astype(np.float32)


def bottle(width: int, height: int, cx: float, bottom: float, size: float, color: tuple[int, int, int]) -> list[Layer]:
    """A wine-bottle-like shape: body, sloping shoulders, neck and cap."""
    w = size * 0.34
    body_top = bottom - size * 0.62
    neck_w = w * 0.32
    neck_top = bottom - size * 0.92
    outline = [
        (cx - w / 2, bottom),
        (cx - w / 2, body_top),
        (cx - neck_w / 2, body_top - size * 0.14),
        (cx - neck_w / 2, neck_top),
        (cx + neck_w / 2, neck_top),
        (cx + neck_w / 2, body_top - size * 0.14),
        (cx + w / 2, body_top),
        (cx + w / 2, bottom),
    ]

    def draw_body(img: NDArray[np.uint8], s: int) -> None:
        cv2.fillPoly(img, [_pts(outline, s)], 255, cv2.LINE_AA)

    def draw_cap(img: NDArray[np.uint8], s: int) -> None:
        cap = [
            (cx - neck_w * 0.6, neck_top + size * 0.06),
            (cx - neck_w * 0.6, bottom - size),
            (cx + neck_w * 0.6, bottom - size),
            (cx + neck_w * 0.6, neck_top + size * 0.06),
        ]
        cv2.fillPoly(img, [_pts(cap, s)], 255, cv2.LINE_AA)

    body = Layer(
        _canvas_mask(width, height, draw_body), _cylinder_shading(width, height, cx - w / 2, cx + w / 2, color)
    )
    cap = Layer(
        _canvas_mask(width, height, draw_cap),
        _cylinder_shading(width, height, cx - neck_w, cx + neck_w, (200, 170, 60), highlight=0.4),
    )
    return [body, cap]


def box(width: int, height: int, cx: float, bottom: float, size: float, color: tuple[int, int, int]) -> list[Layer]:
    """A carton seen from slightly above: front, side and top faces in three shades, and a label."""
    fw, fh, depth = size * 0.55, size * 0.6, size * 0.22
    x0, y0 = cx - fw / 2 - depth / 2, bottom
    front = [(x0, y0), (x0, y0 - fh), (x0 + fw, y0 - fh), (x0 + fw, y0)]
    side = [
        (x0 + fw, y0),
        (x0 + fw, y0 - fh),
        (x0 + fw + depth, y0 - fh - depth * 0.6),
        (x0 + fw + depth, y0 - depth * 0.6),
    ]
    top = [
        (x0, y0 - fh),
        (x0 + depth, y0 - fh - depth * 0.6),
        (x0 + fw + depth, y0 - fh - depth * 0.6),
        (x0 + fw, y0 - fh),
    ]
    label = [
        (x0 + fw * 0.2, y0 - fh * 0.35),
        (x0 + fw * 0.2, y0 - fh * 0.65),
        (x0 + fw * 0.8, y0 - fh * 0.65),
        (x0 + fw * 0.8, y0 - fh * 0.35),
    ]
    base = np.array(color, np.float32)
    _, ys = _grid(width, height)
    # A soft vertical gradient on every face, as a studio light from above gives.
    ramp = (1.05 - 0.15 * np.clip((ys - (y0 - fh)) / fh, 0, 1))[..., None]
    layers = []
    for poly, shade in ((front, 1.0), (side, 0.72), (top, 1.18), (label, 0.0)):

        def draw(img: NDArray[np.uint8], s: int, poly: list[tuple[float, float]] = poly) -> None:
            cv2.fillPoly(img, [_pts(poly, s)], 255, cv2.LINE_AA)

        face = np.clip(base * shade * ramp, 0, 255) if shade else np.full((height, width, 3), 245, np.float32)
        layers.append(Layer(_canvas_mask(width, height, draw), face.astype(np.float32)))
    return layers


def shoe(width: int, height: int, cx: float, bottom: float, size: float, color: tuple[int, int, int]) -> list[Layer]:
    """A trainer-like blob: an upper made of overlapping ellipses over a pale sole."""
    L = size * 0.95
    s_h = size * 0.07

    def draw_upper(img: NDArray[np.uint8], s: int) -> None:
        def e(x: float, y: float, ax: float, ay: float, angle: float) -> None:
            cv2.ellipse(
                img, (round(x * s), round(y * s)), (round(ax * s), round(ay * s)), angle, 0, 360, 255, -1, cv2.LINE_AA
            )

        e(cx - L * 0.18, bottom - s_h - size * 0.12, L * 0.32, size * 0.14, 0)
        e(cx + L * 0.12, bottom - s_h - size * 0.2, L * 0.26, size * 0.22, -12)
        e(cx + L * 0.28, bottom - s_h - size * 0.32, L * 0.12, size * 0.16, 0)

    def draw_sole(img: NDArray[np.uint8], s: int) -> None:
        cv2.ellipse(
            img,
            (round(cx * s), round((bottom - s_h / 2) * s)),
            (round(L / 2 * s), round(s_h * s)),
            0,
            0,
            360,
            255,
            -1,
            cv2.LINE_AA,
        )

    xs, ys = _grid(width, height)
    shade = 0.7 + 0.35 * np.clip(1 - (ys - (bottom - size * 0.55)) / (size * 0.55), 0, 1)
    spec = 90.0 * np.exp(
        -(((xs - (cx + L * 0.05)) / (L * 0.08)) ** 2 + ((ys - (bottom - size * 0.33)) / (size * 0.05)) ** 2)
    )
    upper = np.clip(np.array(color, np.float32) * shade[..., None] + spec[..., None], 0, 255)
    sole = np.full((height, width, 3), 232, np.float32)
    sole *= (0.92 + 0.08 * np.clip((xs - cx + L / 2) / L, 0, 1))[..., None]
    return [Layer(_canvas_mask(width, height, draw_sole), sole), Layer(_canvas_mask(width, height, draw_upper), upper)]


def mug(width: int, height: int, cx: float, bottom: float, size: float, color: tuple[int, int, int]) -> list[Layer]:
    """A mug: a cylinder with an elliptical rim and a ring handle whose hole shows the background."""
    w = size * 0.55
    h = size * 0.62
    top = bottom - h
    rim = w * 0.12

    def draw_body(img: NDArray[np.uint8], s: int) -> None:
        cv2.rectangle(
            img,
            (round((cx - w / 2) * s), round(top * s)),
            (round((cx + w / 2) * s), round((bottom - rim) * s)),
            255,
            -1,
            cv2.LINE_AA,
        )
        cv2.ellipse(
            img,
            (round(cx * s), round((bottom - rim) * s)),
            (round(w / 2 * s), round(rim * s)),
            0,
            0,
            180,
            255,
            -1,
            cv2.LINE_AA,
        )
        cv2.ellipse(
            img, (round(cx * s), round(top * s)), (round(w / 2 * s), round(rim * s)), 0, 0, 360, 255, -1, cv2.LINE_AA
        )

    def draw_handle(img: NDArray[np.uint8], s: int) -> None:
        center = (round((cx + w / 2) * s), round((top + h * 0.45) * s))
        cv2.ellipse(
            img, center, (round(w * 0.3 * s), round(h * 0.27 * s)), 0, -90, 90, 255, round(w * 0.09 * s), cv2.LINE_AA
        )

    def draw_inside(img: NDArray[np.uint8], s: int) -> None:
        cv2.ellipse(
            img,
            (round(cx * s), round(top * s)),
            (round(w * 0.45 * s), round(rim * 0.8 * s)),
            0,
            0,
            360,
            255,
            -1,
            cv2.LINE_AA,
        )

    body = _cylinder_shading(width, height, cx - w / 2, cx + w / 2, color, highlight_at=0.25)
    handle = _cylinder_shading(width, height, cx + w / 2 - w * 0.05, cx + w / 2 + w * 0.4, color, highlight=0.2)
    inside = np.clip(np.array(color, np.float32) * 0.45, 0, 255)[None, None, :] * np.ones(
        (height, width, 1), np.float32
    )
    return [
        Layer(_canvas_mask(width, height, draw_handle), handle),
        Layer(_canvas_mask(width, height, draw_body), body),
        Layer(_canvas_mask(width, height, draw_inside), inside),
    ]


def plain(width: int, height: int, color: tuple[int, int, int], rng: np.random.Generator) -> Float:
    """A seamless studio backdrop: one colour, a gentle top-to-bottom falloff and faint sensor noise."""
    _, ys = _grid(width, height)
    falloff = (1.0 - 0.06 * ys / height)[..., None]
    noise = rng.normal(0, 1.5, (height, width, 3)).astype(np.float32)
    return np.asarray(np.array(color, np.float32) * falloff + noise, np.float32)


def noisy(width: int, height: int, color: tuple[int, int, int], rng: np.random.Generator) -> Float:
    """A grainy surface such as paper or concrete."""
    coarse = cv2.resize(
        rng.normal(0, 10, (height // 8, width // 8, 3)).astype(np.float32),
        (width, height),
        interpolation=cv2.INTER_CUBIC,
    )
    return np.array(color, np.float32) + coarse + rng.normal(0, 6, (height, width, 3)).astype(np.float32)


def wood(width: int, height: int, color: tuple[int, int, int], rng: np.random.Generator) -> Float:
    """A wooden tabletop: wavy grain stripes in two tones."""
    xs, ys = _grid(width, height)
    wobble = 6 * np.sin(xs / 53.0) + 3 * np.sin(xs / 17.0 + 1.3)
    grain = 0.5 + 0.5 * np.sin((ys + wobble) / 7.0) * np.sin((ys + wobble) / 23.0 + 0.7)
    tone = 0.82 + 0.22 * grain
    base = np.array(color, np.float32)[None, None, :] * tone[..., None]
    return base + rng.normal(0, 3, (height, width, 3)).astype(np.float32)


def _cast_shadow(width: int, height: int, cx: float, bottom: float, extent: float, strength: float) -> Float:
    """How much light reaches each background pixel (1 = all): a blurred ellipse under the product, offset right."""
    shadow = np.zeros((height, width), np.float32)
    cv2.ellipse(
        shadow,
        (round(cx + extent * 0.2), round(bottom - extent * 0.02)),
        (round(extent * 0.6), round(extent * 0.08)),
        0,
        0,
        360,
        1.0,
        -1,
    )
    sigma = max(extent * 0.05, 2.0)
    return np.asarray(1.0 - strength * cv2.GaussianBlur(shadow, (0, 0), sigma), np.float32)


Product = Callable[[int, int, float, float, float, tuple[int, int, int]], list[Layer]]
Backdrop = Callable[[int, int, tuple[int, int, int], np.random.Generator], Float]


def photo(
    name: str,
    size: tuple[int, int],
    product: Product,
    color: tuple[int, int, int],
    backdrop: Backdrop,
    bg_color: tuple[int, int, int],
    *,
    scale: float = 0.6,
    shadow: float = 0.45,
    seed: int = 0,
    at: tuple[float, float] = (0.5, 0.82),
) -> ProductPhoto:
    """Compose one product photo: backdrop, cast shadow, then the product's layers back to front."""
    width, height = size
    rng = np.random.default_rng(seed)
    extent = min(width, height) * scale
    cx, bottom = width * at[0], height * at[1]
    image = backdrop(width, height, bg_color, rng)
    image *= _cast_shadow(width, height, cx, bottom, extent, shadow)[..., None]
    coverage = np.zeros((height, width), np.float32)
    for layer in product(width, height, cx, bottom, extent, color):
        a = layer.alpha[..., None]
        image = image * (1 - a) + layer.color * a
        coverage = np.maximum(coverage, layer.alpha)
    rgb = np.clip(image + rng.normal(0, 1.0, image.shape), 0, 255).round().astype(np.uint8)
    return ProductPhoto(name, rgb, coverage >= 0.5)


def product_photos() -> list[ProductPhoto]:
    """The whole synthetic set, always the same."""
    return [
        photo("bottle/white", (640, 800), bottle, (40, 110, 60), plain, (246, 246, 244), seed=1),
        photo("box/white", (800, 640), box, (200, 60, 40), plain, (250, 250, 250), seed=2),
        photo("shoe/light-grey", (800, 600), shoe, (40, 70, 160), plain, (214, 216, 220), scale=0.75, seed=3),
        photo("mug/white", (720, 720), mug, (190, 40, 60), plain, (244, 242, 238), seed=4),
        photo("bottle/pastel-blue", (600, 800), bottle, (150, 40, 40), plain, (170, 200, 230), seed=5),
        photo("box/orange", (800, 800), box, (40, 60, 150), plain, (235, 140, 50), seed=6),
        photo("mug/noise", (720, 720), mug, (240, 240, 236), noisy, (110, 110, 115), seed=7),
        photo("shoe/noise", (900, 600), shoe, (200, 50, 40), noisy, (180, 170, 150), scale=0.75, seed=8),
        photo("bottle/wood", (640, 800), bottle, (60, 90, 160), wood, (150, 100, 60), seed=9),
        photo("box/wood", (800, 640), box, (230, 220, 200), wood, (140, 95, 55), seed=10),
        photo("mug/low-contrast", (720, 720), mug, (222, 214, 200), plain, (244, 240, 232), seed=11, shadow=0.3),
        photo("box/low-contrast", (800, 640), box, (196, 178, 150), plain, (214, 200, 176), seed=12, shadow=0.3),
        photo(
            "bottle/small-in-wide",
            (1280, 720),
            bottle,
            (120, 40, 120),
            plain,
            (240, 240, 240),
            scale=0.3,
            at=(0.62, 0.7),
            seed=13,
        ),
        photo(
            "shoe/small-in-wide",
            (1280, 720),
            shoe,
            (230, 120, 30),
            noisy,
            (90, 120, 100),
            scale=0.3,
            at=(0.35, 0.75),
            seed=14,
        ),
    ]
