"""Reference images in: recognised by decoding, bounded before the full decode, stored clean.

Only PNG, JPEG and WebP are accepted, whatever the file is called or claims to be. The pixel count is checked
from the header before the pixels are decoded (decompression bombs), and so is a JPEG's number of scans (each scan
of a progressive JPEG is one more pass over every pixel: a small file with hundreds of them costs seconds of CPU);
orientation is applied and every piece of metadata (EXIF, GPS, ICC, text chunks) is dropped by re-encoding, or for
an upright JPEG by keeping only its image segments, up to the end-of-image marker: bytes after it (a hidden page,
another file) are never stored.

Memory is bounded by pixels, not requests: a decode starts only when the process's pixel budget (its pixels being
decoded at once, GENKEEP_DECODE_PIXELS) has room for the image's pixels, read from its header; a burst of uploads
queues, and one that waits too long is answered 503 with Retry-After. At most one decode per core runs at a time
(CPU). Freed decode buffers go back to the system (workers/heap.py) rather than staying in the process.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from genkeep.errors import InvalidInput, TooLarge, Unavailable, UnsupportedImage
from genkeep.previews import REFERENCE_THUMBNAIL_SIDES, cores, encode_thumbnails

log = logging.getLogger(__name__)

ACCEPTED_FORMATS = {"PNG": ("image/png", ".png"), "JPEG": ("image/jpeg", ".jpg"), "WEBP": ("image/webp", ".webp")}
READ_CHUNK = 256 * 1024
ORIENTATION = 0x0112
# JPEG segments kept by the lossless path, rewritten to their fixed fields only (a JFIF thumbnail or bytes past
# Adobe's flags are the uploader's, not the image's): JFIF and Adobe say how to read the colours.
JFIF_TAG, ADOBE_TAG, ICC_TAG = b"JFIF\0", b"Adobe", b"ICC_PROFILE\0"
JFIF_FIELDS = 14  # tag, version, units, densities, and a thumbnail of 0x0
ADOBE_FIELDS = 12  # tag, version, two flag words, transform
# A colour profile is kept only if it is this small and parses: display profiles are a few KB (sRGB 3 KB, Display
# P3 0.5 KB); anything far larger is not one a picture needs.
MAX_ICC_BYTES = 64 * 1024
# Encoders write 1 scan (baseline) or about 10 (libjpeg's progressive script); far more is a CPU bomb.
MAX_JPEG_SCANS = 64
_SOI, _EOI, _SOS = 0xD8, 0xD9, 0xDA
# Inside entropy-coded data a 0xFF byte is followed by 0x00 (stuffing) or a restart marker; anything else (after
# optional 0xFF fill bytes) starts the next segment.
_NEXT_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")


_DECODES = threading.BoundedSemaphore(cores())
# How long an upload waits for room in the pixel budget before it is answered 503 (try again).
DECODE_WAIT_S = 10.0
class DecodesBusy(Unavailable):
    code = "decodes_busy"


class PixelBudget:
    """Pixels being decoded at once in this process: a semaphore counted in pixels, not requests."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._free = capacity
        self._changed = threading.Condition()

    @property
    def in_flight(self) -> int:
        with self._changed:
            return self.capacity - self._free

    @contextlib.contextmanager
    def hold(self, pixels: int, *, wait: float = DECODE_WAIT_S) -> Iterator[None]:
        # An image larger than the whole budget (a smaller budget than the pixel limit) waits to be alone.
        wanted = min(pixels, self.capacity)
        with self._changed:
            if not self._changed.wait_for(lambda: self._free >= wanted, timeout=wait):
                raise DecodesBusy("The studio is busy reading other uploads; send the images again in a few "
                                  "seconds.")
            self._free -= wanted
        try:
            yield
        finally:
            with self._changed:
                self._free += wanted
                self._changed.notify_all()


@dataclass(frozen=True)
class CleanImage:
    """A validated reference image, re-encoded and ready to store."""

    data: bytes
    width: int
    height: int
    content_type: str
    extension: str
    # Its card thumbnails (long side, WebP bytes), made while the picture is decoded anyway, within the same pixel
    # budget: a second decode at accept would double what an upload holds at its peak.
    thumbnails: tuple[tuple[int, bytes], ...] = ()


def read_capped(stream: BinaryIO, max_bytes: int, label: str) -> bytes:
    """Read a whole upload, refusing it as soon as it passes the byte cap."""
    buffer = bytearray()
    while chunk := stream.read(READ_CHUNK):
        buffer += chunk
        if len(buffer) > max_bytes:
            megabytes = max_bytes / (1024 * 1024)
            raise TooLarge(f"{label} is larger than {megabytes:g} MB; upload a smaller file.",
                           field="reference_images", sentence="file_too_large",
                           values={"image": label, "megabytes": f"{megabytes:g}"})
    return bytes(buffer)


@dataclass(frozen=True)
class _JpegLayout:
    """A JPEG walked segment by segment, without decoding."""

    scans: int
    # The same image without metadata segments and without anything after the end-of-image marker.
    stripped: bytes


def clean_image(data: bytes, label: str, *, max_pixels: int, min_side: int,
                budget: PixelBudget | None = None) -> CleanImage:
    """Decode, check and re-encode one uploaded image, within the pixel budget (unbounded without one)."""
    if not data:
        raise InvalidInput(f"{label} is empty (0 bytes); choose the image file again.", field="reference_images",
                           sentence="image_empty", values={"image": label})
    image, image_format = _open(data, label, max_pixels=max_pixels, min_side=min_side)
    with budget.hold(image.width * image.height) if budget is not None else contextlib.nullcontext(), _DECODES:
        return _clean(image, image_format, data, label)


def _open(data: bytes, label: str, *, max_pixels: int, min_side: int) -> tuple[Image.Image, str]:
    """The image's header read and checked; no pixel decoded yet."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            # Only the accepted formats are tried: no other of Pillow's parsers ever sees an upload.
            image: Image.Image = Image.open(io.BytesIO(data), formats=tuple(ACCEPTED_FORMATS))
            image_format = image.format or ""
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidInput(
            f"{label} has more than the {max_pixels / 1e6:g} megapixels allowed; resize it and upload it again.",
            field="reference_images", sentence="image_too_many_pixels",
            values={"image": label, "megapixels": f"{max_pixels / 1e6:g}"},
        ) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise UnsupportedImage(
            f"{label} is not a PNG, JPEG or WebP image; export it in one of those formats.",
            field="reference_images", sentence="image_unsupported", values={"image": label},
        ) from None
    if image_format not in ACCEPTED_FORMATS:
        raise UnsupportedImage(
            f"{label} is a {image_format or 'unknown'} file; only PNG, JPEG and WebP images are accepted.",
            field="reference_images", sentence="image_unsupported", values={"image": label},
        )
    width, height = image.size
    if width * height > max_pixels:
        raise InvalidInput(
            f"{label} is {width}x{height} pixels, more than the {max_pixels / 1e6:g} megapixels allowed; "
            "resize it and upload it again.",
            field="reference_images", sentence="image_too_many_pixels",
            values={"image": label, "megapixels": f"{max_pixels / 1e6:g}"},
        )
    if min(width, height) < min_side:
        raise InvalidInput(
            f"{label} is only {width}x{height} pixels; use an image at least {min_side} pixels on each side.",
            field="reference_images", sentence="image_too_small",
            values={"image": label, "width": width, "height": height, "min_side": min_side},
        )
    return image, image_format


def _clean(image: Image.Image, image_format: str, data: bytes, label: str) -> CleanImage:
    width, height = image.size
    layout = _jpeg_layout(data) if image_format == "JPEG" else None
    if image_format == "JPEG":
        # A file too unusual to walk is counted the blunt way: 0xFF 0xDA never occurs inside scan data.
        scans = layout.scans if layout is not None else data.count(b"\xff\xda")
        if scans > MAX_JPEG_SCANS:
            raise InvalidInput(
                f"{label} is a JPEG made of {scans} scans, more than the {MAX_JPEG_SCANS} genkeep decodes; "
                "save it again as a standard (baseline or progressive) JPEG, or as PNG, and upload it again.",
                field="reference_images", sentence="jpeg_scans", values={"image": label},
            )
    if layout is not None and image.mode == "RGB" and image.getexif().get(ORIENTATION, 1) == 1:
        _check_decodes(image, label, fast=True)
        return CleanImage(layout.stripped, width, height, "image/jpeg", ".jpg", _thumbnails(layout.stripped))
    _check_decodes(image, label, fast=False)
    try:
        # In place: the default makes a full copy of the pixels even when there is nothing to rotate.
        ImageOps.exif_transpose(image, in_place=True)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        raise InvalidInput(
            f"{label} could not be decoded (the file is damaged or incomplete); export it again.",
            field="reference_images", sentence="image_undecodable", values={"image": label},
        ) from None
    content_type, extension = ACCEPTED_FORMATS[image_format]
    # Pillow writes the decoded profile back unless told otherwise: only a usable one goes.
    icc = usable_icc(image.info.pop("icc_profile", None))
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    mode = "RGBA" if has_alpha and image_format != "JPEG" else "RGB"
    if image.mode != mode:
        image = image.convert(mode)
    out = io.BytesIO()
    profile = {"icc_profile": icc} if icc else {}
    if image_format == "JPEG":
        image.save(out, "JPEG", quality=95, subsampling=0, **profile)
    elif image_format == "WEBP":
        image.save(out, "WEBP", lossless=True, method=1, **profile)
    else:
        image.save(out, "PNG", compress_level=1, **profile)
    stored_width, stored_height = image.size
    return CleanImage(out.getvalue(), stored_width, stored_height, content_type, extension, _thumbnails(image))


def _thumbnails(picture: bytes | Image.Image) -> tuple[tuple[int, bytes], ...]:
    """The card's thumbnails of a clean picture (an image is shrunk in place); none if they cannot be made (the file
    route makes them when first asked)."""
    try:
        return tuple(encode_thumbnails(picture, REFERENCE_THUMBNAIL_SIDES))
    except Exception as error:  # Pillow raises many types for a picture it can check but not shrink
        log.warning("no thumbnail of an uploaded image (%s)", type(error).__name__)
        return ()


def usable_icc(profile: bytes | None) -> bytes | None:
    """The colour profile if it is small and a real one (it parses); else None, and the picture goes without."""
    if not profile or len(profile) > MAX_ICC_BYTES:
        return None
    try:
        ImageCms.ImageCmsProfile(io.BytesIO(profile))
    except (OSError, ValueError, TypeError):
        return None
    return profile


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
            field="reference_images", sentence="image_undecodable", values={"image": label},
        ) from None


def _jpeg_layout(data: bytes) -> _JpegLayout | None:
    """Walk a JPEG's segments to its end-of-image marker: count the scans and keep the image without metadata
    (EXIF, XMP, IPTC, comments, thumbnails, an oversized or unreadable colour profile) and without trailing bytes;
    None if the file is unusual."""
    if data[:2] != b"\xff\xd8":
        return None
    out = bytearray(b"\xff\xd8")
    # The colour profile's chunks, and where in `out` they go if the whole profile is usable.
    icc_chunks: list[bytes] = []
    icc_at: int | None = None
    scans = 0
    position = 2
    while position + 2 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker == _EOI:
            out += b"\xff\xd9"
            if icc_at is not None and usable_icc(b"".join(chunk[14:] for chunk in icc_chunks)) is not None:
                out[icc_at:icc_at] = b"".join(_segment(0xE2, chunk) for chunk in icc_chunks)
            return _JpegLayout(scans, bytes(out))
        if marker == _SOI or 0xD0 <= marker <= 0xD7 or marker == 0x01:  # no length: not expected here
            return None
        length = int.from_bytes(data[position + 2:position + 4], "big")
        end = position + 2 + length
        if length < 2 or end > len(data):
            return None
        if marker == _SOS:
            scans += 1
            following = _NEXT_MARKER.search(data, end)
            if following is None:  # cut off before its end-of-image marker
                return None
            out += data[position:following.start()]
            position = following.start()
            continue
        segment = data[position:end]
        payload = segment[4:]
        if marker == 0xE0 and payload.startswith(JFIF_TAG) and len(payload) >= JFIF_FIELDS:
            out += _segment(0xE0, payload[:JFIF_FIELDS - 2] + b"\0\0")
        elif marker == 0xEE and payload.startswith(ADOBE_TAG) and len(payload) >= ADOBE_FIELDS:
            out += _segment(0xEE, payload[:ADOBE_FIELDS])
        elif marker == 0xE2 and payload.startswith(ICC_TAG):
            # Chunks are numbered (byte 12 of 13); written back in order, where the first one was.
            icc_at = len(out) if icc_at is None else icc_at
            icc_chunks.append(payload)
            icc_chunks.sort(key=lambda chunk: chunk[12:13])
        elif not (0xE0 <= marker <= 0xEF or marker == 0xFE):
            out += segment
        position = end
    return None


def _segment(marker: int, payload: bytes) -> bytes:
    return bytes((0xFF, marker)) + (len(payload) + 2).to_bytes(2, "big") + payload
