"""The local engine's time per task type at 1024 px, run in its own process (python bench/local_timing.py OUT_DIR).

Prints one JSON object: {"available": bool, "note": str, "seconds": {type: median seconds}}. The inputs are drawn
here (a product on a textured table, a standing person, a T-shirt on white), 1024 px on the long side.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

SIDE = 1024
RUNS = 3


class QuietContext:
    """An EngineContext that never stops the engine and drops progress and preview reports."""

    def report_progress(self, fraction: float) -> None:
        return None

    def report_preview(self, image: object, fraction: float | None = None) -> None:
        return None

    def should_stop(self) -> bool:
        return False

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def check(self) -> None:
        return None


def product_photo() -> NDArray[np.uint8]:
    rng = np.random.default_rng(11)
    image = np.full((SIDE, 768, 3), (170, 150, 120), np.uint8)
    image = np.clip(image + rng.normal(0, 9, image.shape), 0, 255).astype(np.uint8)
    cv2.ellipse(image, (400, 860), (220, 40), 0, 0, 360, (110, 95, 80), -1, cv2.LINE_AA)
    cv2.rectangle(image, (260, 300), (520, 860), (40, 120, 200), -1, cv2.LINE_AA)
    cv2.rectangle(image, (330, 200), (450, 300), (30, 90, 160), -1, cv2.LINE_AA)
    cv2.line(image, (300, 320), (300, 820), (200, 230, 255), 12, cv2.LINE_AA)
    return image


def person_photo() -> NDArray[np.uint8]:
    image = np.full((SIDE, 768, 3), (218, 224, 226), np.uint8)
    cx = 384
    cv2.ellipse(image, (cx, 160), (70, 88), 0, 0, 360, (140, 170, 214), -1, cv2.LINE_AA)
    body = np.array([(cx - 190, 290), (cx + 190, 290), (cx + 220, 620), (cx - 220, 620)], np.int32)
    cv2.fillPoly(image, [body.reshape(-1, 1, 2)], (45, 45, 190), cv2.LINE_AA)
    legs = np.array([(cx - 120, 620), (cx + 120, 620), (cx + 130, 1000), (cx - 130, 1000)], np.int32)
    cv2.fillPoly(image, [legs.reshape(-1, 1, 2)], (100, 60, 45), cv2.LINE_AA)
    return image


def garment_photo() -> NDArray[np.uint8]:
    image = np.full((SIDE, SIDE, 3), (250, 250, 250), np.uint8)
    shirt = np.array([(300, 200), (724, 200), (900, 380), (800, 460), (720, 400), (720, 860), (304, 860),
                      (304, 400), (224, 460), (124, 380)], np.int32)
    cv2.fillPoly(image, [shirt.reshape(-1, 1, 2)], (200, 90, 40), cv2.LINE_AA)
    return image


def measure(out_dir: Path) -> dict[str, Any]:
    try:
        from genkeep.config import Settings
        from genkeep.engines.base import EngineJob
        from genkeep.engines.local import create_engine
        from genkeep.tasks.model import TaskType
    except ImportError as error:
        return {"available": False, "note": f"local engine not available ({error})", "seconds": {}}
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, draw in (("product", product_photo), ("person", person_photo), ("garment", garment_photo)):
        paths[name] = out_dir / f"{name}.png"
        cv2.imwrite(str(paths[name]), draw())
    jobs = {
        TaskType.WHITE_BACKGROUND: (None, (paths["product"],)),
        TaskType.CLOTHING_CHANGE: (None, (paths["person"], paths["garment"])),
        TaskType.CREATE: ("a blue bottle on a marble counter, soft daylight", (paths["product"],)),
    }
    engine = create_engine(Settings(data_dir=out_dir, local_delay=0.0))
    seconds: dict[str, float] = {}
    ctx = QuietContext()
    for task_type, (prompt, refs) in jobs.items():
        job = EngineJob(task_id=f"bench{task_type.value.lower()}", type=task_type, prompt=prompt,
                        reference_paths=refs)
        engine.run(job, ctx)  # warm: the model loads on first use
        runs = []
        for _ in range(RUNS):
            started = time.perf_counter()
            engine.run(job, ctx)
            runs.append(time.perf_counter() - started)
        seconds[task_type.value] = statistics.median(runs)
    return {"available": True, "note": f"median of {RUNS} warm runs, inputs 1024 px on the long side",
            "seconds": seconds}


if __name__ == "__main__":
    result = measure(Path(sys.argv[1]))
    print("BENCHJSON " + json.dumps(result))
