"""A catalog: forty real photos dropped at once on the white-background page, each its own task in one batch, seen
through a reload and a server restart to the last result and the ZIP named after the seller's photos."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.browser import PHONE, SCREENSHOTS, Server, make_server, new_context
from tests.e2e.test_accessibility import AXE, violations
from tests.support.photos import Photo, catalog_photos
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.e2e]

PHOTOS = 40
OWNER_CAP = 10  # running at once; the rest wait in line
WORKERS = 2
DONE_TIMEOUT = 240.0  # s: forty cut-outs on two workers of a busy two-core machine, with a restart on the way


@pytest.fixture(scope="module")
def server(browser: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    shared = make_server(tmp_path_factory.mktemp("catalog"), GENKEEP_WORKERS=str(WORKERS),
                         GENKEEP_LOCAL_DELAY="0.3", GENKEEP_MAX_UNFINISHED_PER_OWNER=str(OWNER_CAP))
    shared.start()
    yield shared
    shared.stop()


@pytest.fixture(scope="module")
def photos() -> list[Photo]:
    return catalog_photos(PHOTOS)


def open_studio(page: Page) -> None:
    page.goto("/white-background")
    page.wait_for_selector("html[data-recovered=true]", state="attached")


def batch_tasks(page: Page, batch: str, *statuses: str) -> list[dict[str, Any]]:
    """The batch's tasks as the API lists them (every page), optionally of some statuses only."""
    tasks: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: list[tuple[str, str | float | bool]] = [("batch", batch), ("limit", 100)]
        params += [("status", status) for status in statuses]
        if cursor:
            params.append(("cursor", cursor))
        answer = page.request.get("/api/tasks?" + "&".join(f"{key}={value}" for key, value in params))
        assert answer.ok, answer.text()
        listed = answer.json()
        tasks += listed["items"]
        cursor = listed.get("next_cursor")
        if not cursor:
            return tasks


def shoot(page: Page, card: Any, name: str) -> None:
    """The batch card as the seller sees it (tests/e2e/screenshots/, not committed)."""
    SCREENSHOTS.mkdir(exist_ok=True)
    card.scroll_into_view_if_needed()
    card.screenshot(path=str(SCREENSHOTS / f"batch-{name}.png"), animations="disabled")


def accessibility_violations(page: Page, state: str) -> list[str]:
    """axe-core's findings where make test installed it (test_accessibility.py says when it is missing)."""
    return violations(page, state) if AXE.exists() else []


def test_a_catalog_of_forty_photos_survives_a_reload_and_a_restart_and_downloads_as_one_zip(
        browser: Any, server: Server, photos: list[Photo]) -> None:
    # bypass_csp: the studio's policy allows no inline script, and axe is injected as one.
    context = new_context(browser, server, bypass_csp=True)
    try:
        page = context.new_page()
        open_studio(page)
        page.set_input_files("#file-product", [{"name": photo.name, "mimeType": photo.mime_type,
                                                "buffer": photo.data} for photo in photos])
        expect(page.locator("#batch-pick-count")).to_contain_text(f"{PHOTOS} photos")
        expect(page.locator("#submit")).to_contain_text(str(PHOTOS))
        page.click("#submit")

        card = page.locator("#in-progress .batch")
        expect(card.locator(".batch-title")).to_have_text(f"Batch of {PHOTOS}")
        batch = card.get_attribute("data-batch")
        assert batch
        # The seller sees the photos go up, then the counts move.
        expect(card.locator(".batch-upload")).to_contain_text(f"of {PHOTOS}")
        shoot(page, card, "uploading")

        # More photos than the owner may run at once: the rest wait in line, and the card says so.
        wait_for(lambda: batch_tasks(page, batch, "pending"), timeout=60, interval=0.2,
                 message="photos waiting in line behind the owner's running ones")
        expect(card.locator(".batch-counts")).to_have_text(re.compile(r"· [1-9]\d* waiting"), timeout=30_000)

        # A reload while some wait: the same one card comes back, for all forty photos.
        page.reload()
        page.wait_for_selector("html[data-recovered=true]", state="attached")
        card = page.locator(f'.batch[data-batch="{batch}"]')
        expect(card.locator(".batch-title")).to_have_text(f"Batch of {PHOTOS}")
        assert wait_for(lambda: batch_tasks(page, batch, "pending"), timeout=5, message="photos still in line")
        shoot(page, card, "waiting")
        # The card and its photos, opened, as a keyboard or screen-reader user meets them (axe-core, as in
        # tests/e2e/test_accessibility.py).
        card.locator("summary").click()
        assert not accessibility_violations(page, "a batch waiting in line, opened")

        # A restart while some still wait: the tasks a worker held may begin again, nothing else does.
        finished_before = {task["id"] for task in batch_tasks(page, batch, "completed", "failed")}
        assert len(finished_before) < PHOTOS
        server.stop()
        server.start()

        expect(card.locator(".batch-counts")).to_have_text(
            f"{PHOTOS} done · 0 failed · 0 waiting · 0 running", timeout=DONE_TIMEOUT * 1000)
        expect(card.locator(".batch-time")).to_contain_text("Took")
        download = card.locator(".batch-download")
        expect(download).to_be_visible()
        shoot(page, card, "done-desktop")
        page.set_viewport_size(PHONE)
        shoot(page, card, "done-phone")
        assert not accessibility_violations(page, "a finished batch on a phone")

        tasks = batch_tasks(page, batch)
        assert len(tasks) == PHOTOS, "a photo became two tasks, or one was lost"
        assert {task["status"] for task in tasks} == {"completed"}
        names = sorted(image["filename"] for task in tasks for image in task["reference_images"])
        assert names == sorted(photo.name for photo in photos), "each photo once, under its own name"
        # Only a task a worker held when the server stopped may have begun twice: at most one per worker, and
        # never one that had finished.
        again = [task for task in tasks if task["attempts"] > 1]
        assert len(again) <= WORKERS, [(task["id"], task["attempts"]) for task in again]
        assert not {task["id"] for task in again} & finished_before

        answer = page.request.get(download.get_attribute("href") or "")
        assert answer.ok, answer.text()
        with zipfile.ZipFile(io.BytesIO(answer.body())) as archive:
            entries = archive.namelist()
            assert archive.testzip() is None
        assert len(entries) == PHOTOS
        assert sorted(entry.rsplit(".", 1)[0] for entry in entries) == sorted(photo.stem for photo in photos)
    finally:
        context.close()
