"""Previews: an engine's intermediate picture, shrunk and encoded small enough to poll every 2 seconds."""

from __future__ import annotations

import io

from PIL import Image

# Long side of a stored preview: enough to see the work take shape on a card, a few KB as WebP.
PREVIEW_MAX_SIDE = 384
PREVIEW_QUALITY = 70
PREVIEW_EXTENSION = ".webp"
PREVIEW_PREFIX = "preview-"


def encode_preview(image: bytes | Image.Image) -> bytes:
    """The picture as a small WebP, whatever it came as (encoded bytes of any format Pillow reads, or an image)."""
    picture = Image.open(io.BytesIO(image)) if isinstance(image, bytes) else image
    picture.draft("RGB", (PREVIEW_MAX_SIDE, PREVIEW_MAX_SIDE))  # JPEG: decode at a reduced scale, cheaply
    picture = picture.convert("RGBA" if "A" in picture.getbands() else "RGB")
    picture.thumbnail((PREVIEW_MAX_SIDE, PREVIEW_MAX_SIDE), Image.Resampling.BILINEAR)
    out = io.BytesIO()
    picture.save(out, "WEBP", quality=PREVIEW_QUALITY, method=2)
    return out.getvalue()


def is_preview_name(name: str) -> bool:
    return name.startswith(PREVIEW_PREFIX) and name.endswith(PREVIEW_EXTENSION)
