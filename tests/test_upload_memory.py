"""Hostile uploads cannot take the server's memory: what decoding takes is bounded by pixels in flight, not by
the number of requests, and is given back afterwards. Measured from /proc on a real `genkeep serve`, not timed."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.support.processes import genkeep_env, serving

pytestmark = pytest.mark.slow

CONCURRENT_UPLOADS = 24


def status_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def reset_peak(pid: int) -> None:
    """VmHWM starts again from the current resident size (Linux 4.0 and later)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def tiny_huge_webp() -> bytes:
    """A lossless WebP of a couple of kilobytes that decodes to 24.5 megapixels (under the pixel limit)."""
    out = io.BytesIO()
    Image.new("RGB", (16383, 1500), (200, 10, 10)).save(out, "WEBP", lossless=True)
    return out.getvalue()


def upload(base: str, data: bytes) -> httpx.Response:
    # A new client each time: no cookie, a new owner, as a flood of throwaway cookies would be.
    with httpx.Client(base_url=base, timeout=120) as client:
        return client.post("/api/tasks", data={"type": "WHITE_BACKGROUND"},
                           files={"reference_images": ("product.webp", data, "image/webp")})


def test_concurrent_hostile_uploads_take_the_memory_of_one_and_give_it_back(tmp_path: Path) -> None:
    data = tiny_huge_webp()
    env = genkeep_env(tmp_path / "data", f"sqlite:///{tmp_path / 'genkeep.db'}", GENKEEP_WORKERS="0")
    with serving(env, tmp_path / "serve.log") as (process, base):
        assert upload(base, data).status_code == 201
        # What one decode of this image costs the server, at its peak.
        idle = status_mb(process.pid, "VmRSS")
        reset_peak(process.pid)
        assert upload(base, data).status_code == 201
        one = status_mb(process.pid, "VmHWM") - idle
        assert one > 50, f"one decode should show ({one:.0f} MB)"

        before = status_mb(process.pid, "VmRSS")
        reset_peak(process.pid)
        with ThreadPoolExecutor(CONCURRENT_UPLOADS) as pool:
            answers = list(pool.map(lambda _: upload(base, data), range(CONCURRENT_UPLOADS)))
        peak = status_mb(process.pid, "VmHWM") - before
        after = status_mb(process.pid, "VmRSS") - before

        codes = sorted(answer.status_code for answer in answers)
        assert set(codes) <= {201, 503}, codes
        assert codes.count(201) >= 2, codes
        for answer in answers:
            if answer.status_code == 503:
                assert int(answer.headers["retry-after"]) > 0 and "busy" in answer.json()["detail"]
        assert peak < 1.5 * one, (f"{CONCURRENT_UPLOADS} uploads at once took {peak:.0f} MB at their peak; one "
                                  f"takes {one:.0f} MB")
        assert after < max(50.0, 0.25 * one), f"{after:.0f} MB still held after the uploads ({one:.0f} MB each)"
