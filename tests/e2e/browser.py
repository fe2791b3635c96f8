"""What the browser tests share: the server they start, the browser they drive, the photos they upload."""

from __future__ import annotations

import io
import os
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from PIL import Image, ImageDraw
from playwright.sync_api import FilePayload

from tests.support.processes import REPO, free_port, genkeep_env, start, stop
from tests.support.waiting import wait_for

CHROMIUM = Path(os.environ.get("GENKEEP_CHROMIUM", "/usr/bin/chromium"))
REQUIRE_BROWSER = os.environ.get("GENKEEP_REQUIRE_BROWSER") == "1"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]
# The local engine, slowed down so a generation lasts long enough to refresh, navigate and restart in the middle.
ENGINE = os.environ.get("GENKEEP_E2E_ENGINE", "local")
LOCAL_DELAY = "5"
SCREENSHOTS = Path(__file__).parent / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 360, "height": 740}

@dataclass
class Server:
    """One `genkeep serve` process on a fixed port and data folder, which a test may stop and start again."""

    data_dir: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        process = start(["serve", "--port", str(self.port)], self.env, self.data_dir / "serve.log")
        self.process = process

        def healthy() -> bool:
            if process.poll() is not None:
                log = (self.data_dir / "serve.log").read_text(errors="replace")[-3000:]
                raise AssertionError(f"genkeep serve exited early:\n{log}")
            try:
                return httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(healthy, timeout=40, interval=0.1, message="genkeep serve to answer /healthz")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None:
            stop(self.process, sig=sig, timeout=20)
            self.process = None


def make_server(tmp: Path, **extra: str) -> Server:
    """A server (not started yet) with its own data folder; `extra` overrides GENKEEP_* settings."""
    data_dir = tmp / "data"
    data_dir.mkdir(parents=True)
    settings = {
        "GENKEEP_ENGINE": ENGINE,
        "GENKEEP_LOCAL_DELAY": LOCAL_DELAY,
        # Quick to stop and to hand work over, so restarts fit in a test.
        "GENKEEP_SHUTDOWN_GRACE": "0.5",
        "GENKEEP_LEASE_SECONDS": "3",
        "GENKEEP_SWEEP_INTERVAL": "1",
        **extra,
    }
    env = genkeep_env(data_dir, f"sqlite:///{data_dir / 'genkeep.db'}", **settings)
    # Keep what the caller had on the path (a custom engine), after the repository.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return Server(data_dir, env)


def new_context(browser: Any, server: Server, *, locale: str = "en-US", viewport: dict[str, int] = DESKTOP,
                **options: Any) -> Any:
    context = browser.new_context(base_url=server.base, locale=locale, viewport=viewport, **options)
    context.set_default_timeout(15_000)
    return context


def picture(color: tuple[int, int, int], shape: str = "box", size: tuple[int, int] = (480, 600)) -> bytes:
    """A small recognisable photo: a coloured shape on a light background."""
    image = Image.new("RGB", size, (238, 236, 232))
    draw = ImageDraw.Draw(image)
    w, h = size
    if shape == "person":
        draw.ellipse((w * 0.38, h * 0.12, w * 0.62, h * 0.32), fill=color)
        draw.rounded_rectangle((w * 0.3, h * 0.34, w * 0.7, h * 0.9), radius=40, fill=color)
    elif shape == "shirt":
        draw.polygon([(w * .3, h * .2), (w * .7, h * .2), (w * .9, h * .38), (w * .78, h * .46), (w * .72, h * .4),
                      (w * .72, h * .85), (w * .28, h * .85), (w * .28, h * .4), (w * .22, h * .46),
                      (w * .1, h * .38)], fill=color)
    else:
        draw.rounded_rectangle((w * 0.25, h * 0.25, w * 0.75, h * 0.8), radius=24, fill=color)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def upload(name: str, data: bytes) -> FilePayload:
    return {"name": name, "mimeType": "image/png", "buffer": data}
