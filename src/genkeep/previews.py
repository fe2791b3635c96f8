"""Small WebP renditions of a task's pictures: an engine's intermediate previews (shrunk small enough to poll every
2 seconds) and the thumbnails cards show of a result and of each reference image (the original bytes stay
untouched, for the viewer and the download)."""

from __future__ import annotations

import contextlib
import io
import os
import threading

from PIL import Image

# Long side of a stored preview: enough to see the work take shape on a card, a few KB as WebP.
PREVIEW_MAX_SIDE = 384
PREVIEW_QUALITY = 70
PREVIEW_EXTENSION = ".webp"
PREVIEW_PREFIX = "preview-"

# Long sides of a result's thumbnails, for 1x and 2x screens: a card's picture is 170-390 CSS pixels wide (the
# grid's columns, phone to desktop), so 320 serves a 1x screen and 640 a 2x one. A photograph's 640 is ~10-40 KB
# at this quality, its 320 ~4-15 KB (docs/benchmarks.md, page weight).
THUMBNAIL_SIDES = (320, 640)
# A reference image is never drawn larger than 168 CSS pixels (a card's chip is 36, the viewer's panel 88, a failed
# task's 168): one 320 serves every screen, and accepting a task makes one thumbnail per photo instead of two (the
# 640 of a 768 px JPEG cost ~12 of the ~18 ms both took).
REFERENCE_THUMBNAIL_SIDES = (320,)
THUMBNAIL_QUALITY = 72
THUMBNAIL_EXTENSION = ".webp"


def cores() -> int:
    """The cores this process may run on: how many whole-picture decodes may run at once."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# Making thumbnails decodes whole pictures (up to GENKEEP_MAX_IMAGE_PIXELS): one per core at a time, so a burst
# of uploads, or a history of old tasks opened at once, queues instead of multiplying memory.
_THUMBNAIL_DECODES = threading.BoundedSemaphore(cores())


def _shrunk(image: bytes | Image.Image, max_side: int) -> Image.Image:
    """The picture decoded (cheaply: a JPEG at a reduced scale) and shrunk to fit `max_side`, never enlarged."""
    picture = Image.open(io.BytesIO(image)) if isinstance(image, bytes) else image
    picture.draft("RGB", (max_side, max_side))  # JPEG: decode at a reduced scale, cheaply
    picture = picture.convert("RGBA" if "A" in picture.getbands() else "RGB")
    picture.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    return picture


def _webp(picture: Image.Image, quality: int, method: int) -> bytes:
    out = io.BytesIO()
    picture.save(out, "WEBP", quality=quality, method=method)
    return out.getvalue()


def encode_preview(image: bytes | Image.Image) -> bytes:
    """The picture as a small WebP, whatever it came as (encoded bytes of any format Pillow reads, or an image)."""
    return _webp(_shrunk(image, PREVIEW_MAX_SIDE), PREVIEW_QUALITY, method=2)


def is_preview_name(name: str) -> bool:
    return name.startswith(PREVIEW_PREFIX) and name.endswith(PREVIEW_EXTENSION)


def thumbnail_name(name: str, side: int) -> str:
    """A thumbnail's file name, beside its original's: derived from it, so no task row has to remember it."""
    return f"{name}.{side}{THUMBNAIL_EXTENSION}"


def thumbnail_of(name: str) -> tuple[str, int] | None:
    """The original's name and the side a thumbnail's name stands for; None if it is not a thumbnail's name."""
    stem, dot, extension = name.rpartition(".")
    if f".{extension}" != THUMBNAIL_EXTENSION:
        return None
    original, dot, side = stem.rpartition(".")
    if not dot or not side.isdigit() or int(side) not in THUMBNAIL_SIDES:
        return None
    return original, int(side)


def encode_thumbnails(picture: bytes | Image.Image, sides: tuple[int, ...]) -> list[tuple[int, bytes]]:
    """A picture's thumbnails, largest side first, each smaller one shrunk from the one before: from encoded bytes
    of any format Pillow reads (one decode, at a reduced scale where the format allows), or from an image already
    decoded, which is shrunk in place (its caller is done with it: no second copy at full size). Raises what Pillow
    raises for a picture it cannot read."""
    sides = tuple(sorted(sides, reverse=True))
    with _THUMBNAIL_DECODES if isinstance(picture, bytes) else contextlib.nullcontext():
        if isinstance(picture, bytes):
            picture = _shrunk(picture, sides[0])
        elif picture.mode not in ("RGB", "RGBA"):
            picture = picture.convert("RGBA" if "A" in picture.getbands() else "RGB")
        made = []
        for side in sides:
            picture.thumbnail((side, side), Image.Resampling.BILINEAR)
            # method 2, as previews: a 640 of a photograph came out 29 KB in 24 ms, against 28 KB in 64 ms with
            # Pillow's default 4 (skimage's astronaut, best of 5 on a busy 2-core box).
            made.append((side, _webp(picture, THUMBNAIL_QUALITY, method=2)))
    return made
