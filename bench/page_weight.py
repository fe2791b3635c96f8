"""Page weight: what a studio page with 50 finished tasks costs a browser, before and after thumbnails.

Run: .venv/bin/python bench/page_weight.py [--before REV] [--pages create,white-background,clothing-change]
     [--no-write]

Makes one owner's history through the task manager (no engine runs): on each studio page 50 completed tasks of
real photographs, scikit-image's sample pictures, each result a 1024 x 1024 PNG (what the local engine's CREATE
makes, ~1-1.8 MB) and each reference photo as uploaded, one of them enlarged to 4000 x 3000 (a phone's photo). Then
`genkeep serve` (SQLite, no workers) serves it, from this checkout and, with --before (default: the commit before
thumbnails), from the package as it was at REV, on the same data; Debian's Chromium (GENKEEP_CHROMIUM) loads each
page through Playwright at two sizes and counts, from the DevTools protocol's network events, the bytes
transferred (headers included) and the requests:
- first visit: a new browser context (empty cache) until the page is quiet; the phone (390 x 844 at 3x) with the
  CPU throttled 4x and a mobile network (Lighthouse's: 150 ms, 1.6 Mbit/s down, 750 kbit/s up), the desktop
  (1280 x 800 at 1x) unthrottled; the largest contentful paint from a PerformanceObserver;
- 50 cards: the same page after "More" until all 50 cards show, scrolled to the end, every picture loaded
  (unthrottled, so the old full-size pages finish in minutes): the bytes of the whole visit and of pictures a card;
- repeat visit: a new tab in the same context (its cache), the page again until quiet: its bytes against the
  first visit's.
A first visit that is not quiet after CAP_SECONDS is cut off there (the table says so). The thumbnails' cost (ms
to make a picture's thumbnails, bytes stored beside the originals) is measured on the same pictures.
`make bench` runs this and writes its section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import io
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(ROOT))

import sections  # noqa: E402
from PIL import Image  # noqa: E402
from playwright.sync_api import TimeoutError as PlaywrightTimeout  # noqa: E402
from server import SECRET_KEY, Server, bench_env  # noqa: E402 - bench/ goes on the path first
from tests.e2e.browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from tests.support.history import seed_finished  # noqa: E402

from genkeep.config import Settings  # noqa: E402
from genkeep.previews import (  # noqa: E402
    REFERENCE_THUMBNAIL_SIDES,
    THUMBNAIL_SIDES,
    encode_thumbnails,
    thumbnail_name,
)
from genkeep.tasks.model import TaskType  # noqa: E402
from genkeep.web.owner import COOKIE_NAME, OwnerCookies  # noqa: E402

DOC = ROOT / "docs" / "benchmarks.md"
SECTION = "## Page weight (bench/page_weight.py)"
# The studio as it was before thumbnails (cards drew the originals).
BEFORE = "b96f55d"
HISTORY = 50
PAGES = {"create": TaskType.CREATE, "white-background": TaskType.WHITE_BACKGROUND,
         "clothing-change": TaskType.CLOTHING_CHANGE}
REFERENCES = {TaskType.CREATE: 1, TaskType.WHITE_BACKGROUND: 1, TaskType.CLOTHING_CHANGE: 2}
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
          "stereo_motorcycle")
PHONE_PHOTO = (4000, 3000)
RESULT_SIDE = 1024
DESKTOP = {"viewport": {"width": 1280, "height": 800}, "device_scale_factor": 1}
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 3, "is_mobile": True, "has_touch": True}
# Lighthouse's mobile throttling: a slow 4G network and a mid-range phone's CPU.
MOBILE_NETWORK = {"offline": False, "latency": 150, "downloadThroughput": 1_638_400 / 8,
                  "uploadThroughput": 750_000 / 8}
CPU_SLOWDOWN = 4
CAP_SECONDS = 60.0
QUIET_SECONDS = 1.0
# A page is loaded when every picture it asked for has arrived: Chromium announces the lazy ones below the screen
# (it holds them back), and a throttled download can go seconds without an event, so the network alone cannot tell.
PICTURES_LOADED = """() => [...document.images].every((img) => img.complete
    || (img.loading === "lazy" && img.getBoundingClientRect().top >= innerHeight))"""
LCP_SCRIPT = """
window.__lcp = null;
new PerformanceObserver((list) => {
  const last = list.getEntries().at(-1);
  window.__lcp = {time: last.startTime, what: last.url ? last.url.split("/").pop() : last.element?.tagName};
}).observe({type: "largest-contentful-paint", buffered: true});
"""


# ---- the pictures ---------------------------------------------------------------------------------------------

def _encoded(picture: Image.Image, kind: str) -> bytes:
    out = io.BytesIO()
    if kind == "PNG":
        picture.save(out, "PNG")
    else:
        picture.save(out, "JPEG", quality=92)
    return out.getvalue()


@dataclass
class Pictures:
    """The sample photographs as uploads (JPEG, one at 4000 x 3000) and as results (1024 x 1024 PNG)."""

    uploads: list[bytes]
    results: list[bytes]

    @classmethod
    def load(cls) -> Pictures:
        import skimage.data

        def photo(name: str) -> Image.Image:
            pixels = getattr(skimage.data, name)()
            # A stereo pair comes as (left, right, disparity): the left one.
            return Image.fromarray(pixels[0] if isinstance(pixels, tuple) else pixels).convert("RGB")

        originals = [photo(name) for name in PHOTOS]
        uploads = [_encoded(picture, "JPEG") for picture in originals]
        uploads[0] = _encoded(originals[0].resize(PHONE_PHOTO, Image.Resampling.BICUBIC), "JPEG")
        results = [_encoded(picture.resize((RESULT_SIDE, RESULT_SIDE), Image.Resampling.LANCZOS), "PNG")
                   for picture in originals]
        return cls(uploads, results)

    def references(self, task_type: TaskType) -> Callable[[int], list[bytes]]:
        count = REFERENCES[task_type]
        return lambda index: [self.uploads[(index + offset * 3) % len(self.uploads)] for offset in range(count)]

    def result(self, index: int) -> bytes:
        return self.results[index % len(self.results)]


@dataclass
class Cost:
    """What making thumbnails costs, measured on the benchmark's own pictures."""

    result_ms: float
    upload_ms: float
    phone_photo_ms: float
    originals_mb: float
    thumbnails_mb: float


def thumbnail_cost(pictures: Pictures, data_dir: Path) -> Cost:
    def median_ms(data: list[bytes], sides: tuple[int, ...]) -> float:
        times = []
        for picture in data:
            started = time.perf_counter()
            encode_thumbnails(picture, sides)
            times.append((time.perf_counter() - started) * 1000)
        return statistics.median(times)

    suffixes = tuple(thumbnail_name("", side) for side in THUMBNAIL_SIDES)
    files = [path for path in (data_dir / "images").rglob("*") if path.is_file()]
    thumbnails = sum(path.stat().st_size for path in files if path.name.endswith(suffixes))
    originals = sum(path.stat().st_size for path in files if not path.name.endswith(suffixes))
    return Cost(median_ms(pictures.results, THUMBNAIL_SIDES),
                median_ms(pictures.uploads[1:], REFERENCE_THUMBNAIL_SIDES),
                median_ms(pictures.uploads[:1], REFERENCE_THUMBNAIL_SIDES), originals / 1e6, thumbnails / 1e6)


# ---- the browser ----------------------------------------------------------------------------------------------

@dataclass
class Traffic:
    """One tab's requests, from the DevTools protocol: what each transferred (headers included; nothing for one
    served from the browser's cache)."""

    urls: dict[str, str] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    cached: set[str] = field(default_factory=set)
    last_event: float = field(default_factory=time.monotonic)

    def sent(self, event: dict[str, Any]) -> None:
        self.urls[event["requestId"]] = event["request"]["url"]
        self.heard()

    def from_cache(self, event: dict[str, Any]) -> None:
        self.cached.add(event["requestId"])

    def done(self, event: dict[str, Any]) -> None:
        self.sizes[event["requestId"]] = int(event.get("encodedDataLength", 0))
        self.heard()

    def heard(self, _event: object = None) -> None:
        self.last_event = time.monotonic()

    @property
    def requests(self) -> int:
        return len(self.urls)

    def _transferred(self, request: str) -> int:
        return 0 if request in self.cached else self.sizes.get(request, 0)

    @property
    def bytes(self) -> int:
        return sum(self._transferred(request) for request in self.sizes)

    @property
    def picture_bytes(self) -> int:
        return sum(self._transferred(request) for request in self.sizes if "/files/" in self.urls.get(request, ""))

    def quiet(self, deadline: float) -> bool:
        """Wait until the network has said nothing for QUIET_SECONDS; False if `deadline` (monotonic) came first."""
        while time.monotonic() < deadline:
            if time.monotonic() - self.last_event >= QUIET_SECONDS:
                return True
            time.sleep(0.1)
        return False


def watch(context: Any, page: Any, *, throttled: bool) -> tuple[Traffic, Any]:
    traffic = Traffic()
    cdp = context.new_cdp_session(page)
    cdp.on("Network.requestWillBeSent", traffic.sent)
    cdp.on("Network.requestServedFromCache", traffic.from_cache)
    cdp.on("Network.dataReceived", traffic.heard)
    cdp.on("Network.responseReceived", traffic.heard)
    cdp.on("Network.loadingFinished", traffic.done)
    cdp.on("Network.loadingFailed", traffic.heard)
    cdp.send("Network.enable")
    throttle(cdp, throttled)
    return traffic, cdp


def throttle(cdp: Any, on: bool) -> None:
    cdp.send("Network.emulateNetworkConditions", MOBILE_NETWORK if on else {
        "offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
    cdp.send("Emulation.setCPUThrottlingRate", {"rate": CPU_SLOWDOWN if on else 1})


@dataclass
class Visit:
    bytes: int
    requests: int
    lcp_ms: float | None
    lcp_of: str
    cut_off: bool


@dataclass
class Measured:
    page: str
    device: str
    client: str
    first: Visit
    all_bytes: int
    all_requests: int
    picture_bytes_per_card: float
    cards: int
    repeat: Visit


def _visit(page: Any, path: str, traffic: Traffic) -> Visit:
    started = time.monotonic()
    page.goto(path, wait_until="commit")
    page.wait_for_selector("#history[aria-busy=false]", state="attached", timeout=CAP_SECONDS * 1000)
    deadline = started + CAP_SECONDS
    try:
        page.wait_for_function(PICTURES_LOADED, timeout=max(1.0, deadline - time.monotonic()) * 1000)
        quiet = traffic.quiet(deadline)
    except PlaywrightTimeout:
        quiet = False
    lcp = page.evaluate("window.__lcp")
    return Visit(traffic.bytes, traffic.requests, lcp and lcp["time"], (lcp or {}).get("what") or "?", not quiet)


def measure_page(browser: Any, base_url: str, path: str, device: str, cookie: dict[str, Any],
                 client: str) -> Measured:
    phone = device == "phone"
    context = browser.new_context(base_url=base_url, **(PHONE if phone else DESKTOP))
    try:
        context.add_cookies([cookie])
        context.add_init_script(LCP_SCRIPT)
        page = context.new_page()
        traffic, cdp = watch(context, page, throttled=phone)
        first = _visit(page, path, traffic)

        throttle(cdp, False)
        cards = page.locator("#history .card")
        more = page.locator("#load-more")
        deadline = time.monotonic() + 4 * CAP_SECONDS
        while cards.count() < HISTORY and more.is_visible() and time.monotonic() < deadline:
            shown = cards.count()
            more.click()
            page.wait_for_function("n => document.querySelectorAll('#history .card').length > n", arg=shown)
        for index in range(cards.count()):
            cards.nth(index).scroll_into_view_if_needed()
        page.wait_for_function("""() => [...document.querySelectorAll('#history .card img')]
            .every((img) => img.complete)""", timeout=4 * CAP_SECONDS * 1000)
        traffic.quiet(time.monotonic() + CAP_SECONDS)
        shown = cards.count()
        all_bytes, all_requests, pictures = traffic.bytes, traffic.requests, traffic.picture_bytes
        page.close()

        again = context.new_page()
        repeat_traffic, _ = watch(context, again, throttled=phone)
        repeat = _visit(again, path, repeat_traffic)
        return Measured(path, device, client, first, all_bytes, all_requests, pictures / max(1, shown), shown,
                        repeat)
    finally:
        context.close()


def measure_client(base_url: str, cookie: dict[str, Any], client: str, pages: list[str],
                   progress: Callable[[str], None]) -> list[Measured]:
    from playwright.sync_api import sync_playwright

    measured = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            for path in pages:
                for device in ("desktop", "phone"):
                    progress(f"page weight: {client}, /{path}, {device}")
                    measured.append(measure_page(browser, base_url, f"/{path}", device, cookie, client))
        finally:
            browser.close()
    return measured


# ---- the servers ----------------------------------------------------------------------------------------------

def package_at(revision: str, into: Path) -> Path:
    """The package's source as it was at a git revision (for PYTHONPATH, ahead of this checkout's)."""
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision, "src"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into / "src"


def serve(data_dir: Path, database_url: str, source: Path | None, log_name: str) -> Server:
    env = bench_env(database_url, data_dir, GENKEEP_SHUTDOWN_GRACE="0.5")
    if source is not None:
        env["PYTHONPATH"] = f"{source}:{env['PYTHONPATH']}"
    return Server(env, data_dir / log_name)


def measure(before: str | None, pages: list[str], progress: Callable[[str], None]) -> tuple[list[Measured], Cost]:
    pictures = Pictures.load()
    with tempfile.TemporaryDirectory(prefix="genkeep-page-weight-") as tmp:
        data_dir = Path(tmp) / "data"
        database_url = f"sqlite:///{data_dir / 'genkeep.db'}"
        settings = Settings(data_dir=data_dir, database_url=database_url, secret_key=SECRET_KEY)
        owner, value = OwnerCookies(SECRET_KEY).mint()
        for path in pages:
            progress(f"page weight: {HISTORY} finished tasks on /{path}")
            task_type = PAGES[path]
            seed_finished(settings, owner, task_type, HISTORY, pictures.references(task_type), pictures.result)
        cost = thumbnail_cost(pictures, data_dir)
        measured: list[Measured] = []
        clients: list[tuple[str, Path | None]] = [("this checkout", None)]
        if before:
            clients.insert(0, (f"before ({before})", package_at(before, Path(tmp) / "before")))
        for client, source in clients:
            with serve(data_dir, database_url, source, f"serve-{len(measured)}.log") as server:
                cookie = {"name": COOKIE_NAME, "value": value, "url": server.base_url, "httpOnly": True,
                          "sameSite": "Lax"}
                measured += measure_client(server.base_url, cookie, client, pages, progress)
    return measured, cost


# ---- the report -----------------------------------------------------------------------------------------------

def _kb(value: float) -> str:
    return f"{value / 1024:,.0f} KB" if value < 1024 * 1024 else f"{value / 1024 / 1024:,.1f} MB"


def _lcp(visit: Visit) -> str:
    if visit.lcp_ms is None:
        return "none"
    shown = f"{visit.lcp_ms / 1000:.2f} s ({visit.lcp_of})"
    return shown + (f", cut off at {CAP_SECONDS:g} s" if visit.cut_off else "")


def table(measured: list[Measured]) -> str:
    lines = ["| page | device | client | first visit: bytes | requests | LCP (element) | 50 cards: bytes "
             "| requests | pictures a card | repeat visit: bytes | of the first |",
             "|---|---|---|---:|---:|---|---:|---:|---:|---:|---:|"]
    for row in measured:
        lines.append(
            f"| {row.page} | {row.device} | {row.client} | {_kb(row.first.bytes)} | {row.first.requests} "
            f"| {_lcp(row.first)} | {_kb(row.all_bytes)} | {row.all_requests} | {_kb(row.picture_bytes_per_card)} "
            f"| {_kb(row.repeat.bytes)} | {100 * row.repeat.bytes / max(1, row.first.bytes):.1f} % |")
    return "\n".join(lines)


def section(measured: list[Measured], cost: Cost, seconds: float) -> str:
    sides = " and ".join(str(side) for side in THUMBNAIL_SIDES)
    reference_sides = " and ".join(str(side) for side in REFERENCE_THUMBNAIL_SIDES)
    return "\n".join([
        "", SECTION, "",
        f"{HISTORY} finished tasks per studio page, of scikit-image's sample photographs: results 1024 x 1024 PNG, "
        "reference photos as uploaded JPEGs (one 4000 x 3000). First visit: a new browser context until the page "
        "is quiet; the phone (390 x 844 at 3x) with the CPU throttled 4x and Lighthouse's mobile network "
        "(150 ms, 1.6 Mbit/s), the desktop (1280 x 800) unthrottled. 50 cards: the same visit after \"More\" "
        "until every card shows, scrolled to the end (unthrottled). Repeat visit: a new tab with the same cache. "
        "Bytes as transferred (headers included), from the DevTools protocol; LCP from a PerformanceObserver. "
        "One run, this machine; the \"before\" rows are the studio at the commit before thumbnails, on the "
        "same data.", "",
        table(measured), "",
        f"Thumbnails (WebP, on the long side: {sides} px of a result, made when it is saved; {reference_sides} px "
        f"of a reference photo, made when the task is accepted): {cost.result_ms:.0f} ms for a 1024 x 1024 PNG "
        f"result, {cost.upload_ms:.0f} ms for an uploaded JPEG photo and {cost.phone_photo_ms:.0f} ms for the "
        "4000 x 3000 one (medians, one core, while the benchmark ran); "
        f"stored: {cost.thumbnails_mb:.1f} MB of thumbnails beside {cost.originals_mb:.0f} MB of originals "
        f"({100 * cost.thumbnails_mb / max(cost.originals_mb, 1e-9):.1f} %). Measured in {seconds:.0f} s.",
    ]) + "\n"


def kept_section(doc: Path = DOC) -> str:
    """This script's section of `doc`, for `make bench` to keep when it rewrites the rest ("" if none)."""
    return sections.kept_section(SECTION, doc)


def run(before: str | None = BEFORE, pages: list[str] | None = None,
        progress: Callable[[str], None] = print) -> str:
    """Measure and return the section for docs/benchmarks.md."""
    started = time.monotonic()
    measured, cost = measure(before, pages or list(PAGES), progress)
    return section(measured, cost, time.monotonic() - started)


def replace_section(text: str, doc: Path = DOC) -> None:
    sections.replace_section(SECTION, text, doc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", default=BEFORE, help="the revision to compare with ('' for none)")
    parser.add_argument("--pages", default=",".join(PAGES), help="studio pages, comma separated")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    pages = [page.strip() for page in args.pages.split(",") if page.strip()]
    if unknown := [page for page in pages if page not in PAGES]:
        parser.error(f"unknown pages {unknown}; choose from {', '.join(PAGES)}")
    if not CHROMIUM.exists():
        parser.error(f"no browser at {CHROMIUM} (apt-get install chromium, or set GENKEEP_CHROMIUM)")
    text = run(args.before or None, pages)
    print(text)
    if not args.no_write:
        replace_section(text)
        print(f"written to {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
