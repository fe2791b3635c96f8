"""A `genkeep worker`'s memory with the local engine: resident size idle, and its peak during one task of each type.

Run by `make bench`, or alone: python bench/worker_memory.py OUT_DIR. A fresh SQLite studio in OUT_DIR; one
`genkeep serve` without workers takes the tasks over HTTP, and one `genkeep worker` (the product's defaults:
GENKEEP_WORKERS threads, local engine) runs them. Each task's inputs are drawn at 1024 px on the long side (the
pictures of bench/local_timing.py). The worker's numbers come from /proc/<pid>/status: VmRSS idle, and VmHWM (the
kernel's high-water mark, reset before each task through /proc/<pid>/clear_refs) for each task's peak; where the
reset is not allowed, the peak is the highest VmRSS sampled every 5 ms instead.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import cv2  # noqa: E402 - bench/ goes on the path first
import numpy as np  # noqa: E402
import routes  # noqa: E402
from local_timing import garment_photo, person_photo, product_photo  # noqa: E402
from numpy.typing import NDArray  # noqa: E402
from owners import cookie_for  # noqa: E402
from server import GENKEEP, SECRET_KEY, Server, bench_env, status_kb, stop  # noqa: E402

from genkeep.web.owner import COOKIE_NAME  # noqa: E402

IDLE_SETTLE_SECONDS = 3.0
SAMPLE_SECONDS = 0.005
TASK_DEADLINE_SECONDS = 120.0
CREATE_PROMPT = "a blue bottle on a marble counter, soft daylight"


@dataclass(frozen=True)
class WorkerMemory:
    """Resident MB of a fresh worker process that runs one task: idle before it, at its peak, and idle after."""

    task_type: str
    idle_mb: float
    peak_mb: float
    idle_after_mb: float
    threads: int
    peak_source: str  # how the peak was taken: "VmHWM" or "VmRSS samples"


def reset_peak(pid: int) -> bool:
    """Reset the process's VmHWM to its current VmRSS (Linux 4.0+); False where that is not allowed."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


class RssSampler:
    """The highest VmRSS seen while running, sampled on a thread (a fallback for when VmHWM cannot be reset)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.highest_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.highest_kb = max(self.highest_kb, status_kb(self.pid, "VmRSS"))
            self._stop.wait(SAMPLE_SECONDS)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def jpeg(picture: NDArray[np.uint8]) -> bytes:
    ok, encoded = cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise RuntimeError("could not encode a bench picture")
    return bytes(encoded.tobytes())


def task_bodies() -> dict[str, bytes]:
    """One POST /api/tasks body per local type, in the order they run."""
    product = jpeg(product_photo())
    return {
        "WHITE_BACKGROUND": routes.multipart_body([product], "WHITE_BACKGROUND", None),
        "CLOTHING_CHANGE": routes.multipart_body([jpeg(person_photo()), jpeg(garment_photo())], "CLOTHING_CHANGE",
                                                 None),
        "CREATE": routes.multipart_body([product], "CREATE", CREATE_PROMPT),
    }


def call(base_url: str, path: str, cookie: str, body: bytes | None = None) -> dict[str, object]:
    headers = {"Cookie": f"{COOKIE_NAME}={cookie}"}
    if body is not None:
        headers["Content-Type"] = f"multipart/form-data; boundary={routes.BOUNDARY}"
    request = urllib.request.Request(f"{base_url}{path}", data=body, method="POST" if body else "GET",
                                     headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        answer: dict[str, object] = json.loads(response.read())
        return answer


def run_task(base_url: str, cookie: str, body: bytes) -> None:
    """Submit one task and wait until it is finished; raises unless it completed."""
    task_id = str(call(base_url, "/api/tasks", cookie, body)["id"])
    deadline = time.monotonic() + TASK_DEADLINE_SECONDS
    while time.monotonic() < deadline:
        task = call(base_url, f"/api/tasks/{task_id}", cookie)
        if task["status"] == "completed":
            return
        if task["status"] == "failed":
            raise RuntimeError(f"task {task_id} failed: {task.get('error')}")
        time.sleep(0.05)
    raise RuntimeError(f"task {task_id} did not finish within {TASK_DEADLINE_SECONDS:.0f} s")


def settled_rss_mb(pid: int) -> float:
    """VmRSS once the process has sat idle for a moment (its threads parked, start-up garbage collected)."""
    time.sleep(IDLE_SETTLE_SECONDS)
    return status_kb(pid, "VmRSS") / 1024


def measure(out_dir: Path, progress: Callable[[str], None] = print,
            extra_env: dict[str, str] | None = None) -> list[WorkerMemory]:
    """Each local type in a fresh worker, so each peak is that type's own (memory a process once took stays)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("genkeep.db*"):
        old.unlink()
    url = f"sqlite:///{out_dir / 'genkeep.db'}"
    serve_env = bench_env(url, out_dir)
    # The worker runs as shipped: the default thread count and poll interval, the local engine.
    worker_env = {key: value for key, value in serve_env.items()
                  if key not in ("GENKEEP_WORKERS", "GENKEEP_WORKER_POLL_INTERVAL", "GENKEEP_ENGINE")}
    worker_env.update(extra_env or {})
    cookie = cookie_for(SECRET_KEY, "bench-memory-owner")
    results = []
    with Server(serve_env, out_dir / "serve.log") as server:
        for task_type, body in task_bodies().items():
            progress(f"  worker memory: a fresh worker, one {task_type} task")
            results.append(_one_task(task_type, partial(run_task, server.base_url, cookie, body), worker_env,
                                     out_dir / f"worker-{task_type.lower()}.log"))
    return results


def _one_task(task_type: str, run: Callable[[], None], env: dict[str, str], log_path: Path) -> WorkerMemory:
    with open(log_path, "wb") as log:
        worker = subprocess.Popen([str(GENKEEP), "worker"], env=env, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        threads = _wait_running(worker, log_path)
        idle = settled_rss_mb(worker.pid)
        hwm = reset_peak(worker.pid)
        with RssSampler(worker.pid) as sampler:
            run()
        peak = status_kb(worker.pid, "VmHWM") if hwm else sampler.highest_kb
        idle_after = settled_rss_mb(worker.pid)
    finally:
        stop(worker, signal.SIGTERM)
    return WorkerMemory(task_type, idle, peak / 1024, idle_after, threads, "VmHWM" if hwm else "VmRSS samples")


def _wait_running(worker: subprocess.Popen[bytes], log_path: Path) -> int:
    """Wait for the worker's "running N at a time" line; returns N."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise RuntimeError(f"genkeep worker exited with {worker.returncode}; see {log_path}")
        for line in log_path.read_text(errors="replace").splitlines():
            if line.startswith("genkeep worker") and " running " in line:
                return int(line.split(" running ")[1].split()[0])
        time.sleep(0.1)
    raise RuntimeError(f"genkeep worker did not start within a minute; see {log_path}")


if __name__ == "__main__":
    for measured in measure(Path(sys.argv[1]) if len(sys.argv) > 1 else BENCH_DIR / "results" / "worker-memory"):
        print(json.dumps(asdict(measured)))
