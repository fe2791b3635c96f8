"""Time the local engine per task type at 1024 px on one thread, and print the segmentation IoU table.

Run: .venv/bin/python bench/local_engine.py   (median of REPEATS runs of LocalEngine.run, after one warm-up run
that loads the model; inputs are the synthetic photos of tests/engines/local, scaled to a 1024 px longer side.)
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2
import numpy as np
from tests.engines.local.conftest import FakeContext, save_rgb
from tests.engines.local.people import garment_photo, person_photo
from tests.engines.local.synthetic import product_photos

from genkeep.config import Settings
from genkeep.engines.base import EngineJob
from genkeep.engines.local import LocalEngine
from genkeep.engines.local.model import load_model
from genkeep.engines.local.segmentation import find_subject
from genkeep.tasks.model import TaskType

REPEATS = 5


def to_1024(rgb: np.ndarray) -> np.ndarray:
    height, width = rgb.shape[:2]
    scale = 1024 / max(height, width)
    return cv2.resize(rgb, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_CUBIC)


def time_runs(engine: LocalEngine, job: EngineJob) -> float:
    engine.run(job, FakeContext())
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        engine.run(job, FakeContext())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    cv2.setNumThreads(1)
    photos = product_photos()
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        product = save_rgb(tmp / "product.png", to_1024(photos[0].rgb))
        person = save_rgb(tmp / "person.png", to_1024(person_photo().rgb))
        garment = save_rgb(tmp / "garment.png", to_1024(garment_photo()))
        jobs = {
            "WHITE_BACKGROUND": EngineJob("b1", TaskType.WHITE_BACKGROUND, None, (product,)),
            "CLOTHING_CHANGE": EngineJob("b2", TaskType.CLOTHING_CHANGE, None, (person, garment)),
            "CREATE (no reference)": EngineJob("b3", TaskType.CREATE, "a red sunset over the sea", ()),
            "CREATE (1 reference)": EngineJob("b4", TaskType.CREATE, "golden bottle", (product,)),
        }
        print(f"local engine, 1024 px inputs, one thread, median of {REPEATS} runs after a warm-up")
        print(f"{'type':24s} {'model':>8s} {'fallback':>9s}")
        for name, job in jobs.items():
            with_model = time_runs(LocalEngine(Settings()), job)
            fallback = time_runs(LocalEngine(Settings(), use_model=False), job)
            print(f"{name:24s} {with_model:7.2f}s {fallback:8.2f}s")

    model = load_model()
    print("\nsegmentation mask IoU on the synthetic set (ground truth drawn with the photo)")
    print(f"{'case':24s} {'model':>6s} {'fallback':>9s}")
    scores: dict[str, list[float]] = {"model": [], "fallback": []}
    for photo in photos:
        row = []
        for label, which in (("model", model), ("fallback", None)):
            mask = find_subject(photo.rgb, which).mask
            score = float((mask & photo.truth).sum() / (mask | photo.truth).sum())
            scores[label].append(score)
            row.append(score)
        print(f"{photo.name:24s} {row[0]:6.3f} {row[1]:9.3f}")
    print(f"{'mean':24s} {np.mean(scores['model']):6.3f} {np.mean(scores['fallback']):9.3f}")
    print(f"{'min':24s} {min(scores['model']):6.3f} {min(scores['fallback']):9.3f}")


if __name__ == "__main__":
    main()
