"""Requests per minute of a studio page in Chromium: idle (nothing unfinished), and with one generation running.

Run: .venv/bin/python bench/idle_page.py [--seconds 60] [--scripts-from REV]

Starts its own `genkeep serve` (SQLite in a temporary folder, one worker, the local engine slowed down with
GENKEEP_LOCAL_DELAY so the generation outlasts the window), opens /create in Debian's Chromium (GENKEEP_CHROMIUM,
/usr/bin/chromium by default) through Playwright, and counts every request the page makes over the window:
first idle (a new browser context, so a new owner with nothing unfinished, counted from once the recovery list
was answered), then with one CREATE generation started from the page's form. --scripts-from REV serves the
page scripts (/static/*.js) as they were at a git revision, to measure the client before a change with the same
harness and server. The numbers go by hand into docs/benchmarks.md, in a section `make bench` keeps.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(ROOT))

import sections  # noqa: E402
from server import Server, bench_env  # noqa: E402 - bench/ goes on the path first
from tests.e2e.browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

DOC = ROOT / "docs" / "benchmarks.md"
SECTION = "## Idle pages (bench/idle_page.py)"
STATIC = "src/genkeep/web/static"
LIST_POLL = "/api/tasks?"


@dataclass
class Count:
    page: str
    seconds: float
    urls: list[str]

    @property
    def per_minute(self) -> float:
        return len(self.urls) * 60 / self.seconds

    @property
    def list_polls(self) -> int:
        return sum(LIST_POLL in url for url in self.urls)

    @property
    def others(self) -> str:
        paths = sorted({urlsplit(url).path for url in self.urls if LIST_POLL not in url})
        return ", ".join(paths) or "none"


def requests_over(page: Any, seconds: float) -> list[str]:
    made: list[str] = []

    def note(request: Any) -> None:
        made.append(request.url)

    page.on("request", note)
    page.wait_for_timeout(seconds * 1000)
    page.remove_listener("request", note)
    return made


def serve_scripts_from(context: Any, revision: str) -> None:
    """Answers /static/*.js with the files of `revision`, so the same server measures an older client."""
    def fulfil(route: Any) -> None:
        name = route.request.url.split("/static/", 1)[1].split("?", 1)[0]
        shown = subprocess.run(["git", "-C", str(ROOT), "show", f"{revision}:{STATIC}/{name}"],
                               capture_output=True, check=False)
        if shown.returncode != 0:
            route.fulfill(status=404, body="")
        else:
            route.fulfill(status=200, body=shown.stdout, headers={"Content-Type": "text/javascript"})

    context.route("**/static/*.js", fulfil)


def open_create_page(context: Any) -> Any:
    page = context.new_page()
    page.goto("/create")
    page.wait_for_selector("html[data-recovered=true]", state="attached", timeout=30_000)
    # Counted once the monitor has settled (its clock disarmed, on clients that have one): the window measures
    # the page at rest, not the tail of its loading.
    page.wait_for_function(
        "() => { const m = window.genkeep?.monitor; return m && !('ticking' in m && m.ticking); }",
        timeout=30_000)
    return page


def measure(base_url: str, seconds: float, scripts_from: str | None) -> list[Count]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(base_url=base_url)
            if scripts_from:
                serve_scripts_from(context, scripts_from)
            page = open_create_page(context)
            idle = Count("studio (/create), nothing unfinished", seconds, requests_over(page, seconds))

            page.fill("#prompt", "A ceramic mug on a sunlit oak table")
            with page.expect_response(lambda r: r.url.endswith("/api/tasks") and r.request.method == "POST") as posted:
                page.click("#submit")
            if posted.value.status != 201:
                raise RuntimeError(f"the generation was not accepted: {posted.value.status} {posted.value.text()}")
            running = Count("studio (/create), one generation running", seconds, requests_over(page, seconds))
            unfinished = page.evaluate("window.genkeep.monitor.tasks.length")
            if unfinished != 1:
                raise RuntimeError("the generation ended inside the window: the count is not of a running task")
            context.close()
        finally:
            browser.close()
    return [idle, running]


def table(counts: list[Count], client: str) -> str:
    lines = [f"| page ({client}) | window s | requests | per minute | of which list polls | the others |",
             "|---|---:|---:|---:|---:|---|"]
    for count in counts:
        lines.append(f"| {count.page} | {count.seconds:g} | {len(count.urls)} | {count.per_minute:.1f} "
                     f"| {count.list_polls} | {count.others} |")
    return "\n".join(lines)


def kept_section(doc: Path = DOC) -> str:
    """This script's section of `doc`, for `make bench` to keep when it rewrites the rest ("" if none)."""
    return sections.kept_section(SECTION, doc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="the counting window of each page state")
    parser.add_argument("--scripts-from", metavar="REV", help="serve /static/*.js as they were at a git revision")
    args = parser.parse_args(argv)
    if not 1 <= args.seconds <= 600:
        parser.error("--seconds must be between 1 and 600")
    if not CHROMIUM.exists():
        parser.error(f"no browser at {CHROMIUM} (apt-get install chromium, or set GENKEEP_CHROMIUM)")
    client = f"scripts of {args.scripts_from}" if args.scripts_from else "this checkout"

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="genkeep-idle-page-") as tmp:
        data_dir = Path(tmp)
        env = bench_env(f"sqlite:///{data_dir / 'genkeep.db'}", data_dir,
                        GENKEEP_WORKERS="1", GENKEEP_ENGINE="local",
                        # The generation must still be running when the second window closes.
                        GENKEEP_LOCAL_DELAY=str(args.seconds * 2 + 60), GENKEEP_SHUTDOWN_GRACE="0.5")
        with Server(env, data_dir / "serve.log") as server:
            counts = measure(server.base_url, args.seconds, args.scripts_from)
    text = table(counts, client)
    print(text)
    print(f"(measured in {time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
