"""Reference images in: recognised by decoding, bounded before the full decode, stored clean.

Only PNG, JPEG and WebP are accepted, whatever the file is called or claims to be. The pixel count is checked
from the header before the pixels are decoded (decompression bombs); orientation is applied and every piece of
metadata (EXIF, GPS, ICC, text chunks) is dropped by re-encoding.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from typing import BinaryIO

from PIL import Image, ImageOps, UnidentifiedImageError

from genkeep.tasks.errors import InvalidInput, TooLarge, UnsupportedImage

ACCEPTED_FORMATS = {"PNG": ("image/png", ".png"), "JPEG": ("image/jpeg", ".jpg"), "WEBP": ("image/webp", ".webp")}
READ_CHUNK = 256 * 1024
ORIENTATION = 0x0112
# JPEG segments kept by the lossless path: JFIF and Adobe (they say how to read the colours) and the ICC profile.
KEPT_JPEG_APP_SEGMENTS = ((0xE0, b"JFIF\0"), (0xEE, b"Adobe"), (0xE2, b"ICC_PROFILE\0"))


@dataclass(frozen=True)
class CleanImage:
    """A validated reference image, re-encoded and ready to store."""

    data: bytes
    width: int
    height: int
    content_type: str
    extension: str


def read_capped(stream: BinaryIO, max_bytes: int, label: str) -> bytes:
    """Read a whole upload, refusing it as soon as it passes the byte cap."""
    buffer = bytearray()
    while chunk := stream.read(READ_CHUNK):
        buffer += chunk
        if len(buffer) > max_bytes:
            megabytes = max_bytes / (1024 * 1024)
            raise TooLarge(f"{label} is larger than {megabytes:g} MB; upload a smaller file.",
                           field="reference_images")
    return bytes(buffer)


def clean_image(data: bytes, label: str, *, max_pixels: int, min_side: int) -> CleanImage:
    """Decode, check and re-encode one uploaded image."""
    if not data:
        raise InvalidInput(f"{label} is empty (0 bytes); choose the image file again.", field="reference_images")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image: Image.Image = Image.open(io.BytesIO(data))
            image_format = image.format or ""
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidInput(
            f"{label} has more than the {max_pixels / 1e6:g} megapixels allowed; resize it and upload it again.",
            field="reference_images",
        ) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise UnsupportedImage(
            f"{label} is not a PNG, JPEG or WebP image; export it in one of those formats.",
            field="reference_images",
        ) from None
    if image_format not in ACCEPTED_FORMATS:
        raise UnsupportedImage(
            f"{label} is a {image_format or 'unknown'} file; only PNG, JPEG and WebP images are accepted.",
            field="reference_images",
        )
    width, height = image.size
    if width * height > max_pixels:
        raise InvalidInput(
            f"{label} is {width}x{height} pixels, more than the {max_pixels / 1e6:g} megapixels allowed; "
            "resize it and upload it again.",
            field="reference_images",
        )
    if min(width, height) < min_side:
        raise InvalidInput(
            f"{label} is only {width}x{height} pixels; use an image at least {min_side} pixels on each side.",
            field="reference_images",
        )
    if image_format == "JPEG" and image.mode == "RGB" and image.getexif().get(ORIENTATION, 1) == 1:
        stripped = _jpeg_without_metadata(data)
        if stripped is not None:
            _check_decodes(image, label, fast=True)
            return CleanImage(stripped, width, height, "image/jpeg", ".jpg")
    _check_decodes(image, label, fast=False)
    try:
        # In place: the default makes a full copy of the pixels even when there is nothing to rotate.
        ImageOps.exif_transpose(image, in_place=True)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        raise InvalidInput(
            f"{label} could not be decoded (the file is damaged or incomplete); export it again.",
            field="reference_images",
        ) from None
    content_type, extension = ACCEPTED_FORMATS[image_format]
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    mode = "RGBA" if has_alpha and image_format != "JPEG" else "RGB"
    if image.mode != mode:
        image = image.convert(mode)
    out = io.BytesIO()
    if image_format == "JPEG":
        image.save(out, "JPEG", quality=95, subsampling=0)
    elif image_format == "WEBP":
        image.save(out, "WEBP", lossless=True, method=1)
    else:
        image.save(out, "PNG", compress_level=1)
    return CleanImage(out.getvalue(), image.width, image.height, content_type, extension)


def _check_decodes(image: Image.Image, label: str, *, fast: bool) -> None:
    """Decode every pixel (the pixel count is bounded, so this is safe); damaged or cut-off files fail here."""
    try:
        if fast:
            # A JPEG decoded at 1/8 scale still reads every entropy-coded block, so damage shows, at a fraction
            # of the cost; the file itself is kept as uploaded, minus its metadata.
            image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))
        image.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        raise InvalidInput(
            f"{label} could not be decoded (the file is damaged or incomplete); export it again.",
            field="reference_images",
        ) from None


def _jpeg_without_metadata(data: bytes) -> bytes | None:
    """The same JPEG, losslessly, without EXIF, XMP, IPTC, comments or trailing bytes; None if it is unusual."""
    if data[:2] != b"\xff\xd8":
        return None
    out = bytearray(b"\xff\xd8")
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker == 0xDA:  # start of scan: image data up to the last end-of-image marker
            end = data.rfind(b"\xff\xd9")
            if end < position:
                return None
            out += data[position:end + 2]
            return bytes(out)
        length = int.from_bytes(data[position + 2:position + 4], "big")
        segment = data[position:position + 2 + length]
        if length < 2 or len(segment) < 2 + length:
            return None
        is_metadata = 0xE0 <= marker <= 0xEF or marker == 0xFE
        if not is_metadata or any(marker == kept and segment[4:4 + len(tag)] == tag
                                  for kept, tag in KEPT_JPEG_APP_SEGMENTS):
            out += segment
        position += 2 + length
    return None
