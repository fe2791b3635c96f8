"""What a seller meets in the studio beyond the happy path: a wait that explains itself, a calm cancel, results
marked as samples where they are, refusals in the page's language, files checked the moment they are chosen,
and the keyboard kept where it was."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.browser import ENGINE, SCREENSHOTS, Server, make_server, new_context, picture, upload

pytestmark = [pytest.mark.e2e]

DONE_TIMEOUT = 40_000  # ms: two 3 s generations one after the other on one worker, with room for a slow machine
PHONE = {"width": 390, "height": 844}
OWNER_CAP = 3


@pytest.fixture(scope="module")
def server(browser: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One worker, so a second task waits for it; few unfinished tasks per owner and no line behind them, so the
    cap is quick to reach (a catalog's waiting line is tests/e2e/test_catalog.py's)."""
    shared = make_server(tmp_path_factory.mktemp("seller"), GENKEEP_WORKERS="1", GENKEEP_LOCAL_DELAY="3",
                         GENKEEP_MAX_UNFINISHED_PER_OWNER=str(OWNER_CAP), GENKEEP_MAX_WAITING_PER_OWNER="0")
    shared.start()
    yield shared
    shared.stop()


def open_studio(page: Page, path: str) -> None:
    page.goto(path)
    page.wait_for_selector("html[data-recovered=true]", state="attached")


def generate(page: Page, prompt: str) -> dict[str, Any]:
    page.fill("#prompt", prompt)
    with page.expect_response(lambda r: r.url.endswith("/api/tasks") and r.request.method == "POST") as answer:
        page.click("#submit")
    assert answer.value.status == 201, answer.value.text()
    task: dict[str, Any] = answer.value.json()
    return task


def card(page: Page, task_id: str) -> Any:
    return page.locator(f'.card[data-id="{task_id}"]')


def shoot(locator: Any, name: str) -> None:
    """A card as the seller sees it, for people reviewing the states (tests/e2e/screenshots/, not committed)."""
    SCREENSHOTS.mkdir(exist_ok=True)
    locator.screenshot(path=str(SCREENSHOTS / f"card-{name}.png"), animations="disabled")


def api_task(page: Page, prompt: str) -> dict[str, Any]:
    answer = page.request.post("/api/tasks", multipart={"type": "CREATE", "prompt": prompt})
    assert answer.status == 201, answer.text()
    task: dict[str, Any] = answer.json()
    return task


def cancel_all(page: Page, tasks: list[dict[str, Any]]) -> None:
    for task in tasks:
        page.request.post(f"/api/tasks/{task['id']}/cancel")


def test_a_task_waits_for_a_free_worker_in_words_then_runs_and_its_sample_says_so(page: Page) -> None:
    if ENGINE != "local":
        pytest.skip(f"the stand-in mark is the local engine's; the browser tests run {ENGINE}")
    open_studio(page, "/create")
    first = generate(page, "A ceramic mug, first in line")
    second = generate(page, "A teapot, second in line")

    # One worker: the second task waits for it, and says so, instead of pretending to generate.
    waiting = card(page, second["id"])
    expect(waiting).to_have_attribute("data-phase", "waiting")
    expect(waiting.locator(".media-status")).to_have_text("Waiting for a free worker")
    expect(waiting.locator("[data-elapsed]")).to_contain_text("Waiting for")
    running = card(page, first["id"])
    expect(running).to_have_attribute("data-phase", "running")
    expect(running.locator(".media-status")).to_have_text("Generating")
    expect(running.locator("[data-elapsed]")).to_contain_text("Running for")
    shoot(page.locator("#in-progress"), "waiting-and-generating")
    # Its turn comes: the same card now generates.
    expect(waiting).to_have_attribute("data-phase", "running", timeout=DONE_TIMEOUT)
    expect(waiting.locator(".media-status")).to_have_text("Generating")

    done = page.locator(f'#history .card[data-id="{first["id"]}"]')
    expect(done).to_have_attribute("data-status", "completed", timeout=DONE_TIMEOUT)
    # A stand-in's result is marked as one, and so is the file it downloads as; "Use as" is still offered.
    expect(done.locator(".stand-in-mark")).to_have_text("Sample, not an AI result")
    download = done.locator("a[download]")
    expect(download).to_have_attribute("download", re.compile(r"^sample-not-an-AI-result-\w{8}\.png$"))
    expect(done.locator("[data-action=use-as]")).to_be_visible()
    shoot(done, "stand-in")
    # Download comes before Delete, for the keyboard as for the eye.
    order = done.evaluate("""card => [...card.querySelectorAll("a[href], button")]
        .map((node) => node.matches("a[download]") ? "download" : node.dataset.action).filter(Boolean)""")
    assert order.index("download") < order.index("delete"), order

    done.locator(".media-open").click()
    viewer = page.locator("dialog.viewer")
    expect(viewer).to_be_visible()
    expect(viewer.locator(".stand-in-mark")).to_have_text("Sample, not an AI result")
    expect(viewer.locator("a[download]")).to_have_attribute("download", re.compile(r"^sample-not-an-AI-result-"))
    page.keyboard.press("Escape")
    expect(card(page, second["id"]).and_(page.locator("#history .card"))).to_have_attribute(
        "data-status", "completed", timeout=DONE_TIMEOUT)


def test_a_canceled_task_is_its_own_calm_state_not_a_failure(page: Page) -> None:
    open_studio(page, "/create")
    task = generate(page, "A kite I will change my mind about")
    busy = card(page, task["id"])
    busy.locator("[data-action=cancel]").click()
    ended = page.locator(f'#history .card[data-id="{task["id"]}"]')
    expect(ended).to_have_attribute("data-outcome", "canceled", timeout=DONE_TIMEOUT)
    expect(ended.locator(".media-canceled")).to_have_text("You canceled this generation")
    expect(ended.locator(".media-error")).to_have_count(0)
    expect(ended.locator(".pill")).to_have_text("Canceled")
    shoot(ended, "canceled")
    expect(page.locator("#announcer")).to_contain_text("You canceled this generation")
    ended.locator(".media-open").click()
    failure = page.locator("dialog.viewer .viewer-failure")
    expect(failure).to_contain_text("You canceled this generation")
    expect(failure).not_to_contain_text("null")
    expect(failure).not_to_contain_text("failed")


def test_a_chinese_page_shows_the_servers_refusal_in_chinese(browser: Any, server: Server) -> None:
    context = new_context(browser, server, locale="zh-CN")
    try:
        page = context.new_page()
        open_studio(page, "/create")
        expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
        running = [api_task(page, f"占位任务 {n}") for n in range(OWNER_CAP)]
        page.fill("#prompt", "一只陶瓷杯")
        page.click("#submit")
        error = page.locator("#form-error")
        expect(error).to_have_text(f"你已有 {OWNER_CAP} 个生成任务在进行中，请等其中一个完成，或取消一个。")
        cancel_all(page, running)
    finally:
        context.close()


def test_a_file_is_checked_the_moment_it_is_chosen(page: Page) -> None:
    posted: list[str] = []
    page.on("request", lambda request: posted.append(request.url) if request.method == "POST" else None)
    open_studio(page, "/white-background")
    slot = page.locator('[data-slot="product"]')
    # The limit is written beside the slot, from the server's own setting.
    expect(slot.locator(".dropzone-hint")).to_contain_text("up to 15 MB")
    error = page.locator("#reference_images-error")

    page.set_input_files("#file-product", {"name": "notes.jpg", "mimeType": "image/jpeg",
                                           "buffer": b"these are my notes, not a photo\n" * 20})
    expect(error).to_have_text("notes.jpg could not be opened as an image; choose a PNG, JPEG or WebP photo.")
    expect(slot.locator(".slot-preview")).to_be_hidden()

    page.set_input_files("#file-product", upload("tiny.png", picture((200, 40, 40), size=(40, 30))))
    expect(error).to_have_text("tiny.png is only 40×30 pixels; use an image at least 64 pixels on each side.")

    page.set_input_files("#file-product", {"name": "huge.png", "mimeType": "image/png",
                                           "buffer": b"\0" * (16 * 1024 * 1024)})
    expect(error).to_have_text("huge.png is 16 MB; each image can be up to 15 MB.")
    expect(slot.locator(".slot-preview")).to_be_hidden()

    page.set_input_files("#file-product", upload("bag.png", picture((176, 58, 58))))
    expect(error).to_be_hidden()
    expect(slot.locator(".slot-preview")).to_be_visible()
    assert posted == [], "a file was checked by sending it"


def test_a_type_whose_engine_ignores_the_prompt_offers_no_prompt_box(page: Page) -> None:
    if ENGINE != "local":
        pytest.skip(f"the local engine's cut-out reads no prompt; the browser tests run {ENGINE}")
    open_studio(page, "/white-background")
    expect(page.locator("#prompt")).to_have_count(0)
    expect(page.locator("#prompt-unread")).to_have_text("No prompt needed: this type works from your photos alone.")
    # Seller's words in sight; the model's name and the README pointer wait behind "details".
    expect(page.locator(".engine-note-seller")).to_be_visible()
    expect(page.get_by_text("u2netp", exact=False)).to_be_hidden()
    page.locator(".engine-note-details summary").click()
    expect(page.get_by_text("u2netp", exact=False)).to_be_visible()


def test_after_generate_the_keyboard_stays_on_the_form_and_the_new_card_comes_into_view(
        browser: Any, server: Server) -> None:
    context = new_context(browser, server, viewport=PHONE)
    try:
        page = context.new_page()
        open_studio(page, "/create")
        page.fill("#prompt", "A linen shirt on a hanger")
        page.focus("#submit")
        with page.expect_response(lambda r: r.url.endswith("/api/tasks") and r.request.method == "POST") as answer:
            page.keyboard.press("Enter")
        task = answer.value.json()
        new_card = card(page, task["id"])
        expect(new_card).to_be_in_viewport()
        expect(page.locator("#announcer")).to_contain_text("Generation started")
        assert page.evaluate("document.querySelector('#task-form').contains(document.activeElement)")
        cancel_all(page, [task])
    finally:
        context.close()
