"""What engine tests keep of the previews an engine reports: each one decoded as the worker would, and its fraction."""

from __future__ import annotations

import io
import itertools
from dataclasses import dataclass

from PIL import Image

# The encoded formats report_preview promises to accept.
ACCEPTED_FORMATS = {"PNG", "JPEG", "WEBP"}


@dataclass(frozen=True)
class Preview:
    """One reported preview: the picture (RGB) and the fraction that came with it."""

    image: Image.Image
    fraction: float | None

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size

    def color(self, x: float = 0.5, y: float = 0.5) -> tuple[int, int, int]:
        """The colour at a point given as fractions of the width and height."""
        width, height = self.image.size
        pixel = self.image.getpixel((min(width - 1, int(x * width)), min(height - 1, int(y * height))))
        assert isinstance(pixel, tuple)
        return (int(pixel[0]), int(pixel[1]), int(pixel[2]))


def received(image: bytes | Image.Image, fraction: float | None) -> Preview:
    """A preview as the worker gets it; fails the test if the picture is not one the worker can decode."""
    if isinstance(image, bytes):
        with Image.open(io.BytesIO(image)) as opened:
            assert opened.format in ACCEPTED_FORMATS, f"a preview in {opened.format}"
            decoded = opened.convert("RGB")
    else:
        assert isinstance(image, Image.Image), f"a preview of type {type(image).__name__}"
        decoded = image.convert("RGB")
    assert fraction is None or 0.0 <= fraction <= 1.0, f"a preview at fraction {fraction}"
    return Preview(decoded, fraction)


def fractions_rise(previews: list[Preview]) -> bool:
    """True when every preview has a fraction and each is larger than the one before."""
    fractions = [preview.fraction for preview in previews]
    known = [f for f in fractions if f is not None]
    return len(known) == len(fractions) and all(a < b for a, b in itertools.pairwise(known))
