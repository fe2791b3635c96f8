"""Shared fixtures: reference images on disk, as the store keeps uploads."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from tests.engines.providers.fakes import png

PERSON_COLOR = (200, 30, 30)
GARMENT_COLOR = (30, 30, 200)


@pytest.fixture
def person_and_garment(tmp_path: Path) -> tuple[Path, Path]:
    """A person photo (PNG) and a garment photo (JPEG)."""
    person = tmp_path / "ref-1.png"
    person.write_bytes(png(PERSON_COLOR))
    garment = tmp_path / "ref-2.jpg"
    Image.new("RGB", (40, 40), GARMENT_COLOR).save(garment, "JPEG")
    return person, garment
