"""A seller's catalog of real photographs: scikit-image's sample pictures (shipped with the package, no download),
cropped and resized into as many distinct product photos as asked, JPEG and PNG in turn."""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import cache

from PIL import Image

# Pictures with a subject that stands out, as a product photo's does: the local engine's cut-out rightly refuses
# the all-over textures (hubble_deep_field, retina, brick, grass) with "no product stands out".
SAMPLES = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "stereo_motorcycle", "camera", "moon",
           "coins", "clock")
MIN_SIDE = 400


@dataclass(frozen=True)
class Photo:
    name: str
    mime_type: str
    data: bytes

    @property
    def stem(self) -> str:
        return self.name.rsplit(".", 1)[0]


@cache
def _sample(name: str) -> Image.Image:
    import skimage.data

    pixels = getattr(skimage.data, name)()
    # A stereo pair comes as (left, right, disparity): the left one.
    return Image.fromarray(pixels[0] if isinstance(pixels, tuple) else pixels).convert("RGB")


def _variant(picture: Image.Image, index: int) -> Image.Image:
    """The index-th framing of a picture: a crop that moves and narrows with the index, then scaled so its short
    side is between MIN_SIDE and about 1.6 times it (a different size each time)."""
    width, height = picture.size
    keep = 0.9 - 0.1 * (index % 4)  # 90 %, 80 %, 70 %, 60 % of each side
    crop_w, crop_h = int(width * keep), int(height * keep)
    left = (width - crop_w) * ((index * 37) % 100) // 100
    top = (height - crop_h) * ((index * 61) % 100) // 100
    framed = picture.crop((left, top, left + crop_w, top + crop_h))
    if index % 2:
        framed = framed.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    short = MIN_SIDE + (index * 29) % 240
    scale = short / min(framed.size)
    return framed.resize((round(framed.width * scale), round(framed.height * scale)), Image.Resampling.LANCZOS)


def catalog_photos(count: int) -> list[Photo]:
    """`count` distinct photos named `catalog-NNN-<sample>.jpg|png`: every sample in turn, each time framed anew."""
    photos = []
    for index in range(count):
        sample = SAMPLES[index % len(SAMPLES)]
        picture = _variant(_sample(sample), index // len(SAMPLES) * 5 + index)
        out = io.BytesIO()
        if index % 2:
            picture.save(out, "PNG")
            name, mime_type = f"catalog-{index + 1:03d}-{sample}.png", "image/png"
        else:
            picture.save(out, "JPEG", quality=88)
            name, mime_type = f"catalog-{index + 1:03d}-{sample}.jpg", "image/jpeg"
        photos.append(Photo(name, mime_type, out.getvalue()))
    return photos
