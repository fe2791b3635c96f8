"""CREATE: the prompt's words decide the picture; the references appear in it."""

from __future__ import annotations

import colorsys
import io
from pathlib import Path

import numpy as np
from PIL import Image

from genkeep.config import Settings
from genkeep.engines.base import EngineJob
from genkeep.engines.local import LocalEngine
from genkeep.tasks.model import TaskType
from tests.engines.local.conftest import FakeContext, save_rgb


def create(prompt: str, *paths: Path) -> bytes:
    job = EngineJob(task_id="t", type=TaskType.CREATE, prompt=prompt, reference_paths=paths)
    return LocalEngine(Settings()).run(job, FakeContext()).data


def decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


def mean_hue(rgb: np.ndarray) -> float:
    """The hue (degrees) of the picture's mean colour."""
    r, g, b = rgb.reshape(-1, 3).mean(0) / 255
    return colorsys.rgb_to_hsv(r, g, b)[0] * 360


def test_same_prompt_same_bytes_other_prompt_other_picture() -> None:
    first = create("a quiet harbour at dawn")
    assert first == create("a quiet harbour at dawn")
    other = create("a busy market at noon")
    assert np.abs(decode(first).astype(int) - decode(other)).mean() > 10
    assert decode(first).shape == (1024, 1024, 3)


def test_colour_words_take_effect_in_english_and_chinese() -> None:
    for prompt in ("a red landscape", "红色的山"):
        assert min(mean_hue(decode(create(prompt))), 360 - mean_hue(decode(create(prompt)))) < 25, prompt
    for prompt in ("a blue landscape", "蓝色的山"):
        assert 190 < mean_hue(decode(create(prompt))) < 250, prompt
    assert 30 < mean_hue(decode(create("gold"))) < 60


def test_references_appear_in_the_picture(tmp_path: Path) -> None:
    product = np.full((400, 300, 3), 245, np.uint8)
    product[80:360, 90:210] = (0, 200, 0)
    path = save_rgb(tmp_path / "ref-1.png", product)
    without = decode(create("a red landscape"))
    with_reference = decode(create("a red landscape", path))
    green = (with_reference[..., 1] > 150) & (with_reference[..., 0] < 80) & (with_reference[..., 2] < 80)
    assert green.mean() > 0.05
    assert ((without[..., 1] > 150) & (without[..., 0] < 80)).mean() == 0


def test_the_preview_is_a_low_resolution_draft_of_the_picture(tmp_path: Path) -> None:
    product = np.full((400, 300, 3), 245, np.uint8)
    product[80:360, 90:210] = (0, 200, 0)
    path = save_rgb(tmp_path / "ref-1.png", product)
    job = EngineJob(task_id="t", type=TaskType.CREATE, prompt="a red landscape", reference_paths=(path,))
    ctx = FakeContext()
    result = decode(LocalEngine(Settings()).run(job, ctx).data)

    draft, = ctx.previews
    assert draft.fraction is not None and 0 < draft.fraction < 1
    assert ctx.progress == sorted(ctx.progress) and ctx.progress[-1] == 1.0
    # A quarter of the size, the same scene: the result shrunk to the draft's size looks the same.
    assert draft.size == (256, 256)
    shrunk = np.asarray(Image.fromarray(result).resize(draft.size, Image.Resampling.BOX), int)
    assert np.abs(shrunk - np.asarray(draft.image, int)).mean() < 4
    green = (shrunk[..., 1] > 150) & (shrunk[..., 0] < 80)
    draft_green = (np.asarray(draft.image)[..., 1] > 150) & (np.asarray(draft.image)[..., 0] < 80)
    assert green.mean() > 0.05 and (green & draft_green).sum() > 0.8 * green.sum()
