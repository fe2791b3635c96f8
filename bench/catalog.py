"""A 100-photo catalog, end to end: dropped on the white-background page, cut out by two local workers, downloaded.

Run: PYTHONPATH=src:. .venv/bin/python bench/catalog.py [--photos 100] [--no-write]

Starts its own `genkeep serve` (SQLite in a temporary folder, two workers in the serve process, the local engine
doing its real work with no added delay, the default caps: 10 running per owner, the rest waiting in line, sweeps
on) and opens /white-background in Debian's Chromium (GENKEEP_CHROMIUM) through Playwright. First one photo alone,
from Generate until its card is finished (the per-photo yardstick of the same run); then the catalog: the photos
(scikit-image's sample pictures, framed anew each time: tests/support/photos.py, as the browser test uses) chosen
in the file picker at once, Generate, and every request the page makes counted until the batch card has settled.
Then the card's "Download all" ZIP is fetched. The serve process's peak resident memory (VmHWM) covers its
workers (threads of it). Writes its section of docs/benchmarks.md unless --no-write.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(ROOT))

import sections  # noqa: E402 - bench/ goes on the path first
from server import Server, bench_env, status_kb  # noqa: E402
from tests.e2e.browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from tests.support.photos import Photo, catalog_photos  # noqa: E402

SECTION = "## A 100-photo catalog (bench/catalog.py)"
WORKERS = 2
OWNER_CAP = 10
DONE_SECONDS = 1800.0
KINDS = ("uploads", "list polls", "task GETs", "images", "other")


@dataclass
class Traffic:
    """Every request the page makes, with when (seconds on the bench's clock) and of which kind."""

    made: list[tuple[float, str]] = field(default_factory=list)
    uploads_done: list[float] = field(default_factory=list)

    def note(self, request: Any) -> None:
        self.made.append((time.monotonic(), kind(request)))

    def finished(self, request: Any) -> None:
        if kind(request) == "uploads":
            self.uploads_done.append(time.monotonic())

    def between(self, start: float, end: float) -> dict[str, int]:
        counts = dict.fromkeys(KINDS, 0)
        for at, what in self.made:
            if start <= at <= end:
                counts[what] += 1
        return counts


def kind(request: Any) -> str:
    path = urlsplit(request.url).path
    if request.method == "POST" and path == "/api/tasks":
        return "uploads"
    if path == "/api/tasks":
        return "list polls"
    if path.startswith("/api/tasks/"):
        return "task GETs"
    if request.resource_type == "image" or path.startswith("/files/"):
        return "images"
    return "other"


@dataclass
class Run:
    photos: int
    single_s: float
    done_s: float
    uploads_s: float
    counts: dict[str, int]
    done: int
    failed: list[str]  # the photos the engine refused
    zip_mb: float
    zip_s: float
    zip_entries: int
    peak_rss_mb: float
    upload_mb: float

    @property
    def per_minute(self) -> dict[str, float]:
        return {what: count * 60 / self.done_s for what, count in self.counts.items()}


def wait_settled(page: Any, selector: str, timeout_s: float) -> float:
    page.wait_for_selector(selector, state="attached", timeout=timeout_s * 1000)
    return time.monotonic()


def one_photo(page: Any, photo: Photo) -> float:
    """Seconds from Generate to the finished card for one photo alone."""
    page.set_input_files("#file-product", {"name": photo.name, "mimeType": photo.mime_type, "buffer": photo.data})
    page.wait_for_selector('[data-slot="product"] .slot-preview:not([hidden])')
    with page.expect_response(lambda r: r.url.endswith("/api/tasks") and r.request.method == "POST") as answer:
        started = time.monotonic()
        page.click("#submit")
    task_id = answer.value.json()["id"]
    ended = wait_settled(page, f'#history .card[data-id="{task_id}"][data-status=completed]', 300)
    return ended - started


def api_items(page: Any, query: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = ""
    while True:
        answer = page.request.get(f"/api/tasks?{query}&limit=100" + (f"&cursor={cursor}" if cursor else ""))
        listed = answer.json()
        items += listed["items"]
        cursor = listed.get("next_cursor") or ""
        if not cursor:
            return items


def catalog(page: Any, photos: list[Photo], traffic: Traffic) -> tuple[float, float, str, dict[str, int]]:
    """Drops the photos, presses Generate; returns (seconds to all done, seconds of uploads, batch id, counts)."""
    page.set_input_files("#file-product", [{"name": photo.name, "mimeType": photo.mime_type, "buffer": photo.data}
                                           for photo in photos])
    page.wait_for_selector(f'#submit:has-text("{len(photos)}")')
    page.on("request", traffic.note)
    page.on("requestfinished", traffic.finished)
    started = time.monotonic()
    page.click("#submit")
    card = page.wait_for_selector("#in-progress .batch")
    batch = card.get_attribute("data-batch")
    ended = wait_settled(page, f'.batch[data-batch="{batch}"].is-settled', DONE_SECONDS)
    page.remove_listener("request", traffic.note)
    page.remove_listener("requestfinished", traffic.finished)
    uploads_s = max(traffic.uploads_done, default=started) - started
    return ended - started, uploads_s, batch, traffic.between(started, ended)


def download(page: Any, batch: str) -> tuple[float, float, int]:
    """Fetches the card's "Download all" link: (MB, seconds, entries)."""
    href = page.locator(f'.batch[data-batch="{batch}"] .batch-download').get_attribute("href")
    started = time.monotonic()
    answer = page.request.get(href, timeout=300_000)
    seconds = time.monotonic() - started
    body = answer.body()
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        entries = len(archive.namelist())
    return len(body) / 1e6, seconds, entries


def measure(base_url: str, pid: int, count: int) -> Run:
    from playwright.sync_api import sync_playwright

    photos = catalog_photos(count + 1)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 800})
            context.set_default_timeout(60_000)
            page = context.new_page()
            page.goto("/white-background")
            page.wait_for_selector("html[data-recovered=true]", state="attached")
            single_s = one_photo(page, photos[-1])
            done_s, uploads_s, batch, counts = catalog(page, photos[:count], Traffic())
            tasks = api_items(page, f"batch={batch}")
            zip_mb, zip_s, entries = download(page, batch)
            context.close()
        finally:
            browser.close()
    done = sum(task["status"] == "completed" for task in tasks)
    failed = [f"{task['reference_images'][0]['filename']} ({task['error']['code']})" for task in tasks
              if task["status"] != "completed"]
    return Run(count, single_s, done_s, uploads_s, counts, done, failed, zip_mb, zip_s, entries,
               status_kb(pid, "VmHWM") / 1024,
               sum(len(photo.data) for photo in photos[:count]) / 1e6)


def section(run: Run, seconds: float) -> str:
    per_photo = run.done_s / run.photos
    rates = run.per_minute
    rows = [
        ("Generate → every photo finished", f"{run.done_s:.1f} s",
         f"{per_photo:.2f} s a photo: {per_photo / run.single_s:.2f}× one photo alone ({run.single_s:.1f} s)"),
        ("uploads (Generate → last photo accepted)", f"{run.uploads_s:.1f} s",
         f"{run.upload_mb:.1f} MB, {run.upload_mb / max(run.uploads_s, 1e-9):.1f} MB/s; "
         f"{100 * run.uploads_s / run.done_s:.0f} % of the batch's time"),
        ("photos finished a minute", f"{60 * run.photos / run.done_s:.1f}",
         f"one photo alone: {60 / run.single_s:.1f} a minute"),
        ("finished", f"{run.done} done, {len(run.failed)} failed", ", ".join(run.failed) or ""),
        ("page requests a minute while it ran", f"{sum(rates.values()):.0f}",
         ", ".join(f"{what} {rates[what]:.1f} ({run.counts[what]})" for what in KINDS)),
        ("serve process peak RSS (VmHWM)", f"{run.peak_rss_mb:.0f} MB", "the web app and both workers"),
        ("Download all (ZIP)", f"{run.zip_mb:.1f} MB in {run.zip_s:.2f} s",
         f"{run.zip_entries} entries, {run.zip_mb / max(run.zip_s, 1e-9):.0f} MB/s"),
    ]
    lines = ["| measure | value | detail |", "|---|---:|---|"]
    lines += [f"| {name} | {value} | {detail} |" for name, value, detail in rows]
    return "\n".join([
        "", SECTION, "",
        f"{run.photos} photos (scikit-image's sample pictures framed anew, half JPEG and half PNG, short side "
        f"400-640 px) chosen at once on /white-background in Chromium; one `genkeep serve` (SQLite) with "
        f"{WORKERS} worker threads and the local engine doing its real cut-out, no added delay; the default caps "
        f"({OWNER_CAP} running per owner, the rest waiting in line). The page counts are every request the page "
        "made from Generate until the batch card settled (in brackets: how many). One run on this machine, "
        f"measured in {seconds:.0f} s.", "",
        "\n".join(lines),
    ]) + "\n"


def kept_section(doc: Path = sections.DOC) -> str:
    """This script's section of `doc`, for `make bench` to keep when it rewrites the rest ("" if none)."""
    return sections.kept_section(SECTION, doc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=100, help="photos in the catalog")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    if not 2 <= args.photos <= 200:
        parser.error("--photos must be between 2 and 200")
    if not CHROMIUM.exists():
        parser.error(f"no browser at {CHROMIUM} (apt-get install chromium, or set GENKEEP_CHROMIUM)")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="genkeep-catalog-") as tmp:
        data_dir = Path(tmp)
        env = bench_env(f"sqlite:///{data_dir / 'genkeep.db'}", data_dir, GENKEEP_ENGINE="local",
                        GENKEEP_WORKERS=str(WORKERS), GENKEEP_MAX_UNFINISHED_PER_OWNER=str(OWNER_CAP),
                        GENKEEP_SWEEP_INTERVAL="10", GENKEEP_TASK_TIMEOUT="300", GENKEEP_SHUTDOWN_GRACE="0.5")
        with Server(env, data_dir / "serve.log") as server:
            run = measure(server.base_url, server.pid, args.photos)
    text = section(run, time.monotonic() - started)
    print(text)
    if not args.no_write:
        sections.replace_section(SECTION, text)
        print(f"written to {sections.DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
