"""WHITE_BACKGROUND: the product alone, 85% of a pure-white 1024 canvas, centred, the backdrop exactly #FFFFFF."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from genkeep.config import Settings
from genkeep.engines.base import EngineError, EngineJob, EngineStopped
from genkeep.engines.local import LocalEngine, create_engine
from genkeep.engines.local.segmentation import Cutout
from genkeep.engines.local.white_background import CANVAS, compose_listing
from genkeep.tasks.model import TaskType
from tests.engines.local.conftest import FakeContext, save_rgb
from tests.engines.local.synthetic import ProductPhoto
from tests.support.previews import fractions_rise


def job(*paths: Path, type: TaskType = TaskType.WHITE_BACKGROUND, prompt: str | None = None) -> EngineJob:
    return EngineJob(task_id="t1", type=type, prompt=prompt, reference_paths=paths)


def decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG"
        assert image.mode == "RGB"
        return np.asarray(image)


@pytest.mark.parametrize("which", ["model", "classical"])
def test_every_listing_is_pure_white_around_a_centred_product(
    photos: list[ProductPhoto], model_cutouts: list[Cutout], classical_cutouts: list[Cutout], which: str
) -> None:
    cutouts = model_cutouts if which == "model" else classical_cutouts
    for photo, cutout in zip(photos, cutouts, strict=True):
        listing = compose_listing(photo.rgb, cutout)
        rgb = listing.rgb
        assert rgb.shape == (CANVAS, CANVAS, 3)
        for y, x in ((0, 0), (0, -1), (-1, 0), (-1, -1)):
            assert tuple(rgb[y, x]) == (255, 255, 255), photo.name
        product = (listing.product_alpha > 0.02).astype(np.uint8)
        near_product = cv2.dilate(product, np.ones((9, 9), np.uint8)) > 0
        # The soft ground shadow is the one deliberate non-white area outside the product.
        background = ~near_product & (listing.shadow == 0)
        white = (rgb[background] == 255).all(axis=1).mean()
        assert white >= 0.99, f"{photo.name}: only {white:.3%} of the background is #FFFFFF"
        visible_shadow = (listing.shadow > 0) & ~near_product
        assert visible_shadow.mean() < 0.04, f"{photo.name}: the shadow covers {visible_shadow.mean():.1%}"

        ys, xs = np.nonzero(listing.product_alpha >= 0.5)
        width, height = xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()
        assert abs(max(width, height) / CANVAS - 0.85) <= 0.02, photo.name
        assert abs((xs.min() + xs.max() + 1) / 2 / CANVAS - 0.5) <= 0.02, photo.name
        assert abs((ys.min() + ys.max() + 1) / 2 / CANVAS - 0.5) <= 0.02, photo.name


def test_run_makes_a_1024_png_the_same_every_time(tmp_path: Path, photos: list[ProductPhoto]) -> None:
    path = save_rgb(tmp_path / "ref-1.png", photos[0].rgb)
    engine = create_engine(Settings())
    assert engine.name == "local" and engine.rerun_safe
    first = engine.run(job(path), FakeContext()).data
    second = create_engine(Settings()).run(job(path), FakeContext()).data
    assert first == second
    rgb = decode(first)
    assert rgb.shape == (1024, 1024, 3)
    assert tuple(rgb[0, 0]) == (255, 255, 255)


def test_run_without_the_model_uses_the_backdrop_model(tmp_path: Path, photos: list[ProductPhoto],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import genkeep.engines.local.engine as engine_module

    monkeypatch.setattr(engine_module, "load_model", lambda: None)
    path = save_rgb(tmp_path / "ref-1.jpg", photos[1].rgb)
    rgb = decode(LocalEngine(Settings()).run(job(path), FakeContext()).data)
    assert rgb.shape == (1024, 1024, 3) and tuple(rgb[-1, -1]) == (255, 255, 255)
    assert (rgb != 255).any(axis=2).mean() > 0.2


def test_model_file_is_found_in_the_installed_wheel() -> None:
    from genkeep.engines.local.model import find_model_file

    path = find_model_file()
    assert path is not None and path.name == "u2netp.onnx" and path.stat().st_size > 4_000_000


def test_a_photo_without_a_product_is_refused_with_advice(tmp_path: Path) -> None:
    blank = np.full((400, 400, 3), 238, np.uint8)
    path = save_rgb(tmp_path / "blank.png", blank)
    with pytest.raises(EngineError) as caught:
        LocalEngine(Settings(), use_model=False).run(job(path), FakeContext())
    assert caught.value.code == "invalid_input"
    assert "upload" in caught.value.message


def test_local_delay_is_spent_in_small_stoppable_slices(tmp_path: Path, photos: list[ProductPhoto]) -> None:
    path = save_rgb(tmp_path / "ref-1.png", photos[0].rgb)
    ctx = FakeContext()
    LocalEngine(Settings(local_delay=3.0)).run(job(path), ctx)
    assert ctx.slept == pytest.approx(3.0)
    assert ctx.sleeps >= 12
    assert ctx.progress == sorted(ctx.progress) and ctx.progress[-1] == 1.0
    with pytest.raises(EngineStopped):
        LocalEngine(Settings(local_delay=3.0)).run(job(path), FakeContext(stop_after_sleeps=2))


def test_an_already_cut_out_product_keeps_its_own_transparency(tmp_path: Path) -> None:
    rgba = np.zeros((300, 200, 4), np.uint8)
    rgba[50:250, 60:140] = (20, 120, 200, 255)
    path = tmp_path / "cut.png"
    Image.fromarray(rgba, "RGBA").save(path)
    rgb = decode(LocalEngine(Settings(), use_model=False).run(job(path), FakeContext()).data)
    ys, _ = np.nonzero((rgb < 200).any(axis=2))
    assert abs((ys.max() + 1 - ys.min()) / 1024 - 0.85) <= 0.02


def test_previews_show_the_cut_out_then_the_product_on_the_white_frame(
        tmp_path: Path, photos: list[ProductPhoto]) -> None:
    photo = photos[0]
    path = save_rgb(tmp_path / "ref-1.png", photo.rgb)
    ctx = FakeContext()
    result = decode(LocalEngine(Settings()).run(job(path), ctx).data)

    cut_out, placed = ctx.previews
    assert fractions_rise(ctx.previews) and placed.fraction < 1.0  # type: ignore[operator]
    assert ctx.progress == sorted(ctx.progress) and ctx.progress[-1] == 1.0
    # First the product as segmentation found it, over white, framed as in the photo.
    height, width = photo.rgb.shape[:2]
    assert max(cut_out.size) <= 512 and abs(cut_out.size[0] / cut_out.size[1] - width / height) < 0.02
    assert cut_out.color(0.01, 0.01) == (255, 255, 255)
    ys, xs = np.nonzero(photo.truth)
    inside = cut_out.color((xs.mean() + 0.5) / width, (ys.mean() + 0.5) / height)
    assert np.abs(np.subtract(inside, photo.rgb[int(ys.mean()), int(xs.mean())])).max() < 40
    assert inside != (255, 255, 255)
    # Then the product centred on the white frame: the result without its final polish, the ground shadow.
    assert placed.size == (512, 512)
    shrunk = cv2.resize(result, placed.size, interpolation=cv2.INTER_AREA).astype(int)
    differs = np.abs(shrunk - np.asarray(placed.image, int)).max(axis=2) > 8
    assert 0 < differs.mean() < 0.03
    rows = np.flatnonzero(differs.any(axis=1))
    product = np.any(np.asarray(placed.image, int) < 250, axis=2)
    product_rows = np.flatnonzero(np.any(product, axis=1))
    # What the polish changed lies at the product's foot.
    assert rows.min() >= (product_rows.min() + product_rows.max()) / 2


def test_with_a_delay_each_preview_stays_on_screen_for_its_share(tmp_path: Path, photos: list[ProductPhoto]) -> None:
    path = save_rgb(tmp_path / "ref-1.png", photos[0].rgb)
    ctx = FakeContext()
    LocalEngine(Settings(local_delay=3.0)).run(job(path), ctx)

    # No waiting before the first preview; after each, half the delay in small slices.
    assert ctx.events[0] == ("preview", 0)
    second = ctx.events.index(("preview", 1))
    assert sum(seconds for kind, seconds in ctx.events[1:second] if kind == "sleep") == pytest.approx(1.5)
    assert sum(seconds for kind, seconds in ctx.events[second + 1:] if kind == "sleep") == pytest.approx(1.5)
