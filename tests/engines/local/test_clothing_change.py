"""CLOTHING_CHANGE: the torso takes the garment's colour; face and backdrop stay as they were."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from genkeep.config import Settings
from genkeep.engines.base import EngineError, EngineJob
from genkeep.engines.local import LocalEngine
from genkeep.tasks.model import TaskType
from tests.engines.local.conftest import FakeContext, save_rgb
from tests.engines.local.people import GARMENT, SHIRT, garment_photo, person_photo


def change(tmp_path: Path, person: np.ndarray, garment: np.ndarray, use_model: bool = True) -> np.ndarray:
    paths = (save_rgb(tmp_path / "ref-1.png", person), save_rgb(tmp_path / "ref-2.png", garment))
    job = EngineJob(task_id="t", type=TaskType.CLOTHING_CHANGE, prompt=None, reference_paths=paths)
    data = LocalEngine(Settings(), use_model=use_model).run(job, FakeContext()).data
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


@pytest.mark.parametrize("use_model", [True, False])
def test_person_wears_the_garment(tmp_path: Path, use_model: bool) -> None:
    person = person_photo()
    out = change(tmp_path, person.rgb, garment_photo(), use_model)
    assert out.shape == person.rgb.shape

    fx0, fy0, fx1, fy1 = person.face
    face_change = np.abs(out[fy0:fy1, fx0:fx1].astype(int) - person.rgb[fy0:fy1, fx0:fx1]).mean()
    assert face_change < 2.0

    tx0, ty0, tx1, ty1 = person.torso
    before = person.rgb[ty0:ty1, tx0:tx1].reshape(-1, 3).mean(0)
    after = out[ty0:ty1, tx0:tx1].reshape(-1, 3).mean(0)
    garment = np.array(GARMENT, float)
    assert np.linalg.norm(after - garment) < 0.5 * np.linalg.norm(before - garment)
    assert np.linalg.norm(after - np.array(SHIRT, float)) > 80

    away = cv2.dilate(person.silhouette.astype(np.uint8), np.ones((15, 15), np.uint8)) == 0
    assert np.abs(out[away].astype(int) - person.rgb[away]).max() <= 2


def test_large_photos_come_back_at_most_1024(tmp_path: Path) -> None:
    person = person_photo()
    big = cv2.resize(person.rgb, (1200, 1600), interpolation=cv2.INTER_CUBIC)
    out = change(tmp_path, big, garment_photo())
    assert out.shape == (1024, 768, 3)


def test_a_photo_without_a_person_is_refused(tmp_path: Path) -> None:
    with pytest.raises(EngineError) as caught:
        change(tmp_path, np.full((400, 300, 3), 230, np.uint8), garment_photo(), use_model=False)
    assert caught.value.code == "invalid_input"


def test_the_preview_shows_the_garment_placed_before_it_is_blended_in(tmp_path: Path) -> None:
    person = person_photo()
    paths = (save_rgb(tmp_path / "ref-1.png", person.rgb), save_rgb(tmp_path / "ref-2.png", garment_photo()))
    job = EngineJob(task_id="t", type=TaskType.CLOTHING_CHANGE, prompt=None, reference_paths=paths)
    ctx = FakeContext()
    LocalEngine(Settings()).run(job, ctx)

    placed, = ctx.previews
    assert placed.fraction is not None and 0 < placed.fraction < 1
    assert ctx.progress == sorted(ctx.progress) and ctx.progress[-1] == 1.0
    # The person photo, shrunk for the preview, with the garment's own colour laid over the torso, unshaded.
    height, width = person.rgb.shape[:2]
    assert max(placed.size) <= 512 and abs(placed.size[0] / placed.size[1] - width / height) < 0.02
    scale = placed.size[0] / width
    tx0, ty0, tx1, ty1 = (round(v * scale) for v in person.torso)
    torso = np.median(np.asarray(placed.image)[ty0:ty1, tx0:tx1].reshape(-1, 3), axis=0)
    assert np.abs(torso - GARMENT).max() < 12
    fx0, fy0, fx1, fy1 = person.face
    face = placed.color((fx0 + fx1) / 2 / width, (fy0 + fy1) / 2 / height)
    assert np.abs(np.subtract(face, person.rgb[(fy0 + fy1) // 2, (fx0 + fx1) // 2])).max() < 12


def test_with_a_delay_the_preview_stays_on_screen_for_all_of_it(tmp_path: Path) -> None:
    paths = (save_rgb(tmp_path / "ref-1.png", person_photo().rgb), save_rgb(tmp_path / "ref-2.png", garment_photo()))
    job = EngineJob(task_id="t", type=TaskType.CLOTHING_CHANGE, prompt=None, reference_paths=paths)
    ctx = FakeContext()
    LocalEngine(Settings(local_delay=2.0)).run(job, ctx)
    assert ctx.events[0] == ("preview", 0)
    assert sum(seconds for kind, seconds in ctx.events[1:] if kind == "sleep") == pytest.approx(2.0)
