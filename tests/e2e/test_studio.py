"""What a seller sees in the studio, in a real browser against a real server: tasks survive refreshes, page
changes, other tabs and server restarts, and each one ends as its image or its error."""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.browser import (
    DESKTOP,
    ENGINE,
    PHONE,
    SCREENSHOTS,
    Server,
    make_server,
    new_context,
    picture,
    upload,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

INTERVAL = 2.0
DONE_TIMEOUT = 30_000  # ms: a 5 s generation, with room for a slow machine


@dataclass(frozen=True)
class Kind:
    type: str
    path: str
    prompt: str
    references: int
    fill: Callable[[Page, str], None]
    label: str

    @property
    def prompt_read(self) -> bool:
        """Whether the page offers a prompt box: the local engine's cut-out and try-on work from photos alone."""
        return self.type == "CREATE" or ENGINE != "local"

    @property
    def shown_prompt(self) -> str:
        return self.prompt if self.prompt_read else "No prompt"

    @property
    def result_alt(self) -> str:
        return f"Generated image: {self.prompt}" if self.prompt_read else f"Generated image ({self.label})"


def fill_prompt(page: Page, prompt: str) -> None:
    if page.locator("#prompt").count():
        page.fill("#prompt", prompt)


def fill_create(page: Page, prompt: str) -> None:
    page.fill("#prompt", prompt)
    page.set_input_files("#file-references", [upload("mug.png", picture((196, 120, 80))),
                                              upload("table.png", picture((150, 110, 70), size=(600, 400)))])


def fill_white_background(page: Page, prompt: str) -> None:
    page.set_input_files("#file-product", upload("bag.png", picture((176, 58, 58))))
    fill_prompt(page, prompt)


def fill_clothing_change(page: Page, prompt: str) -> None:
    page.set_input_files("#file-person", upload("model.png", picture((186, 150, 130), "person")))
    page.set_input_files("#file-garment", upload("shirt.png", picture((58, 92, 160), "shirt")))
    fill_prompt(page, prompt)


KINDS = [
    Kind("CREATE", "/create", "A ceramic mug on a sunlit oak table, soft morning light", 2, fill_create, "Create"),
    Kind("WHITE_BACKGROUND", "/white-background", "Keep the soft shadow under the bag", 1, fill_white_background,
         "White background"),
    Kind("CLOTHING_CHANGE", "/clothing-change", "Tuck the shirt in, keep the pose", 2, fill_clothing_change,
         "Clothing change"),
]
CREATE = KINDS[0]


def card(page: Page, task_id: str, where: str = "") -> Any:
    return page.locator(f'{where} .card[data-id="{task_id}"]'.strip())


def open_studio(page: Page, kind: Kind) -> None:
    page.goto(kind.path)
    # The recovery list has been answered once: whatever is unfinished is on the page now.
    page.wait_for_selector("html[data-recovered=true]", state="attached")


def submit(page: Page, kind: Kind, prompt: str | None = None) -> dict[str, Any]:
    kind.fill(page, prompt or kind.prompt)
    with page.expect_response(lambda r: r.url.endswith("/api/tasks") and r.request.method == "POST") as answer:
        page.click("#submit")
    assert answer.value.status == 201, answer.value.text()
    assert answer.value.request.header_value("idempotency-key")
    task: dict[str, Any] = answer.value.json()
    expect(card(page, task["id"], "#in-progress")).to_be_visible()
    return task


def in_view(page: Page, selector: str) -> None:
    """Bring each picture near the screen once: cards load theirs lazily."""
    for shown in page.locator(selector).all():
        shown.scroll_into_view_if_needed()


def images_loaded(page: Page, selector: str) -> None:
    page.wait_for_function(
        """selector => {
            const images = [...document.querySelectorAll(selector)];
            return images.length > 0 && images.every((img) => img.complete && img.naturalWidth > 0);
        }""", arg=selector)


def is_list_poll(url: str, kind: Kind) -> bool:
    return "/api/tasks?" in url and f"type={kind.type}" in url and "status=processing" in url


def wait_until_idle(page: Page) -> None:
    """Until the page's monitor has nothing unfinished, out or failing, so its 2-second clock is not armed."""
    page.wait_for_function("() => window.genkeep && !window.genkeep.monitor.ticking", timeout=10_000)


def requests_while_idle(page: Page, seconds: float) -> list[str]:
    """The requests the page makes over `seconds` from now. Absence needs a window: this one is a bound, never a
    deadline a slow machine could miss, since nothing is waited for inside it."""
    made: list[str] = []

    def note(request: Any) -> None:
        made.append(request.url)

    page.on("request", note)
    page.wait_for_timeout(seconds * 1000)
    page.remove_listener("request", note)
    return made


@pytest.mark.parametrize("skew", [600, -600], ids=["browser-ahead", "browser-behind"])
def test_a_browser_whose_clock_is_ten_minutes_off_shows_how_long_a_task_really_runs(page: Page, skew: int) -> None:
    # The server's clock is right; the browser's runs ten minutes off (Playwright's clock, still flowing).
    page.clock.install(time=time.time() + skew)
    open_studio(page, CREATE)
    task = submit(page, CREATE)
    elapsed = card(page, task["id"], "#in-progress").locator("[data-elapsed]")
    # Seconds that count up from the server's clock: not "10m 3s", and not stuck at "0s" (a task from the future).
    expect(elapsed).to_have_text(re.compile(r"^Running for [1-9]s$"))
    page.reload()
    expect(card(page, task["id"], "#in-progress").locator("[data-elapsed]")).to_have_text(
        re.compile(r"^Running for [1-9]s$"))


@pytest.mark.parametrize("kind", KINDS, ids=[k.type for k in KINDS])
def test_a_task_survives_a_refresh_and_turns_into_its_image(page: Page, kind: Kind) -> None:
    open_studio(page, kind)
    task = submit(page, kind)
    assert task["type"] == kind.type
    expect(page.locator("#announcer")).to_contain_text("Generation started")

    page.reload()
    busy = card(page, task["id"], "#in-progress")
    expect(busy).to_be_visible()
    expect(busy).to_have_attribute("aria-busy", "true")
    expect(busy.locator(".spinner")).to_be_visible()
    expect(busy.locator(".card-prompt")).to_have_text(kind.shown_prompt)
    expect(busy.locator(".thumbs img")).to_have_count(kind.references)
    images_loaded(page, f'.card[data-id="{task["id"]}"] .thumbs img')
    expect(busy.locator("[data-elapsed]")).to_contain_text("Running for")

    page.evaluate("window.sameDocument = true")  # gone if the page reloads
    done = card(page, task["id"], "#history")
    expect(done).to_have_attribute("data-status", "completed", timeout=DONE_TIMEOUT)
    expect(done).to_have_attribute("aria-busy", "false")
    expect(page.locator("#history .card").first).to_have_attribute("data-id", task["id"])
    expect(page.locator("#in-progress .card")).to_have_count(0)
    result = done.locator(".media-result img")
    expect(result).to_have_attribute("alt", kind.result_alt)
    images_loaded(page, f'#history .card[data-id="{task["id"]}"] .media-result img')
    # The card shows a thumbnail; the download is the original.
    original = page.request.get(f"/api/tasks/{task['id']}").json()["image_url"]
    expect(done.locator("a[download]")).to_have_attribute("href", original)
    assert (result.get_attribute("src") or "").startswith(f"{original}.")
    if ENGINE == "local":
        # A stand-in's result says so on its card (the engine's name is in the viewer, for operators).
        stand_in = kind.type != "WHITE_BACKGROUND"
        expect(done.locator(".stand-in-mark")).to_have_count(1 if stand_in else 0)
    expect(page.locator("#announcer")).to_contain_text("Image ready")
    assert page.evaluate("window.sameDocument") is True, "the page reloaded"


def test_a_task_stays_on_its_own_type_page(page: Page) -> None:
    open_studio(page, CREATE)
    task = submit(page, CREATE)

    for other in KINDS[1:]:
        open_studio(page, other)
        expect(page.locator(".card")).to_have_count(0)

    open_studio(page, CREATE)
    expect(card(page, task["id"])).to_be_visible()  # still running, or already in the history
    expect(card(page, task["id"], "#history")).to_have_attribute("data-status", "completed", timeout=DONE_TIMEOUT)


def test_a_failure_shows_its_message_and_polling_for_it_stops(page: Page) -> None:
    open_studio(page, CREATE)
    task = submit(page, CREATE)
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))

    # Another client stops the task; this page only learns of it by polling.
    canceled = page.request.post(f"/api/tasks/{task['id']}/cancel").json()
    assert canceled["status"] == "failed"
    failed = card(page, task["id"], "#history")
    expect(failed).to_have_attribute("data-status", "failed", timeout=10_000)
    # Canceled is a failed task to the API, and its own calm state to the seller.
    expect(failed).to_have_attribute("data-outcome", "canceled")
    expect(failed.locator(".media-canceled")).to_have_text("You canceled this generation")
    expect(page.locator("#announcer")).to_contain_text("You canceled this generation")
    seen_when_failed = len(requests)

    # Nothing else is unfinished, so the page goes idle: over three intervals not one request, so certainly none
    # about the failed task.
    wait_until_idle(page)
    assert requests_while_idle(page, 3 * INTERVAL + 0.5) == []
    about_task = [url for url in requests[seen_when_failed:] if f"/api/tasks/{task['id']}" in url]
    assert about_task == []

    with page.expect_response(lambda r: r.url.endswith(f"/api/tasks/{task['id']}/retry")) as answer:
        failed.locator("[data-action=retry]").click()
    again = answer.value.json()
    assert answer.value.status == 201 and again["id"] != task["id"]
    expect(card(page, again["id"], "#in-progress")).to_have_attribute("aria-busy", "true")
    expect(card(page, again["id"], "#in-progress").locator(".card-prompt")).to_have_text(CREATE.prompt)


def test_cancel_and_delete_from_the_cards(page: Page) -> None:
    open_studio(page, CREATE)
    task = submit(page, CREATE)
    card(page, task["id"], "#in-progress").locator("[data-action=cancel]").click()
    stopped = card(page, task["id"], "#history")
    expect(stopped).to_have_attribute("data-status", "failed")

    stopped.locator("[data-action=delete]").click()
    dialog = page.locator("#confirm-delete")
    expect(dialog).to_be_visible()
    dialog.locator("button[value=delete]").click()
    expect(card(page, task["id"])).to_have_count(0)
    assert page.request.get(f"/api/tasks/{task['id']}").status == 404
    expect(page.locator("#history-empty")).to_be_visible()


def test_a_new_task_shows_in_a_second_tab_within_one_interval(context: Any) -> None:
    first, second = context.new_page(), context.new_page()
    open_studio(second, CREATE)
    open_studio(first, CREATE)
    task = submit(first, CREATE)
    started = time.monotonic()
    expect(card(second, task["id"], "#in-progress")).to_be_visible(timeout=int((INTERVAL + 0.6) * 1000))
    assert time.monotonic() - started <= INTERVAL + 0.6
    expect(card(second, task["id"], "#in-progress").locator(".card-prompt")).to_have_text(CREATE.prompt)
    expect(card(second, task["id"], "#history")).to_have_attribute("data-status", "completed",
                                                                   timeout=DONE_TIMEOUT)


@pytest.fixture
def own_server(browser: Any, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Server]:
    """A server of the test's own, with the GENKEEP_* settings the test passes as its parameter."""
    started = make_server(tmp_path, **getattr(request, "param", {}))
    started.start()
    yield started
    started.stop()


# The generation outlasts the seven polls watched, so the page is monitoring it throughout.
@pytest.mark.parametrize("own_server", [{"GENKEEP_LOCAL_DELAY": "30"}], indirect=True, ids=["delay-30s"])
def test_the_poll_cadence_is_two_seconds(browser: Any, own_server: Server) -> None:
    context = new_context(browser, own_server)
    try:
        check_the_poll_cadence(context.new_page())
    finally:
        context.close()


def check_the_poll_cadence(page: Page) -> None:
    starts: list[float] = []

    def finished(request: Any) -> None:
        if is_list_poll(request.url, CREATE):
            # The browser's own clock for when the request started, in ms since the epoch.
            starts.append(request.timing["startTime"] / 1000)

    page.on("requestfinished", finished)
    open_studio(page, CREATE)
    submit(page, CREATE)
    # The clock starts when the task joins: the recovery list before it was sent by an idle page, off the grid.
    starts.clear()
    for _ in range(7):
        with page.expect_request_finished(lambda r: is_list_poll(r.url, CREATE), timeout=5_000):
            pass
    intervals = [round(b - a, 3) for a, b in itertools.pairwise(sorted(starts))]
    assert len(intervals) >= 5, starts
    assert all(abs(gap - INTERVAL) <= 0.25 for gap in intervals), intervals


def test_an_idle_page_makes_no_request_until_it_is_shown_again(page: Page) -> None:
    open_studio(page, CREATE)  # a new browser context: a new owner, with nothing unfinished
    wait_until_idle(page)
    assert requests_while_idle(page, 3 * INTERVAL + 0.5) == []

    # Coming back to the tab: the visibility change and the focus that comes with it make one list, together.
    lists: list[str] = []
    page.on("request", lambda request: lists.append(request.url) if is_list_poll(request.url, CREATE) else None)
    with page.expect_request(lambda r: is_list_poll(r.url, CREATE)):
        page.evaluate("""() => {
            document.dispatchEvent(new Event("visibilitychange"));
            window.dispatchEvent(new FocusEvent("focus"));
        }""")
    wait_until_idle(page)
    assert len(lists) == 1, lists


def test_a_delete_in_one_tab_removes_the_card_from_the_other(context: Any) -> None:
    first, second = context.new_page(), context.new_page()
    open_studio(first, CREATE)
    task = submit(first, CREATE)
    card(first, task["id"], "#in-progress").locator("[data-action=cancel]").click()
    expect(card(first, task["id"], "#history")).to_have_attribute("data-status", "failed")
    open_studio(second, CREATE)
    expect(card(second, task["id"], "#history")).to_have_attribute("data-status", "failed")

    card(first, task["id"], "#history").locator("[data-action=delete]").click()
    first.locator("#confirm-delete button[value=delete]").click()
    expect(card(second, task["id"])).to_have_count(0)


def test_the_home_page_counts_a_generation_started_in_another_tab(context: Any) -> None:
    home, studio = context.new_page(), context.new_page()
    home.goto("/")
    home.wait_for_selector("html[data-recovered=true]", state="attached")
    badge = home.locator('[data-busy-type="CREATE"]')
    expect(badge).to_be_hidden()
    open_studio(studio, CREATE)
    task = submit(studio, CREATE)
    expect(badge).to_have_text("1 generating", timeout=int(INTERVAL * 1000))
    # The home page polls while it runs, shows the result when it is done, and goes idle again.
    expect(home.locator(f'#recent .card[data-id="{task["id"]}"]')).to_be_visible(timeout=DONE_TIMEOUT)
    expect(badge).to_be_hidden()
    wait_until_idle(home)


@pytest.mark.parametrize("own_server", [{"GENKEEP_TASK_TIMEOUT": "5", "GENKEEP_LOCAL_DELAY": "60"}],
                         indirect=True, ids=["timeout-5s"])
def test_a_generation_that_runs_too_long_ends_with_the_timeout_error(browser: Any, own_server: Server) -> None:
    context = new_context(browser, own_server)
    page = context.new_page()
    try:
        open_studio(page, CREATE)
        task = submit(page, CREATE)
        failed = card(page, task["id"], "#history")
        expect(failed).to_have_attribute("data-status", "failed", timeout=20_000)
        final = page.request.get(f"/api/tasks/{task['id']}").json()
        assert final["error"]["code"] == "timeout"
        expect(failed.locator(".error-message")).to_have_text(final["error"]["message"])
        expect(failed.locator("[data-action=retry]")).to_be_visible()
    finally:
        context.close()


@pytest.mark.parametrize("own_server", [{"GENKEEP_LOCAL_DELAY": "6"}], indirect=True, ids=["delay-6s"])
def test_the_page_recovers_a_task_across_a_server_restart(browser: Any, own_server: Server) -> None:
    context = new_context(browser, own_server)
    page = context.new_page()
    try:
        open_studio(page, CREATE)
        task = submit(page, CREATE)
        busy = card(page, task["id"], "#in-progress")
        expect(busy).to_have_attribute("data-phase", "running")
        # Well under way, so the attempt that follows the restart is seen behind it.
        page.wait_for_function("""id => Number(document.querySelector(`.card[data-id="${id}"] .progress`)
            ?.getAttribute("aria-valuenow")) >= 40""", arg=task["id"])
        own_server.stop()
        expect(page.locator("#connection-banner")).to_be_visible(timeout=6_000)
        expect(page.locator("#connection-banner")).to_contain_text("Reconnecting")
        expect(busy).to_have_attribute("aria-busy", "true")
        # Generate while the studio is down: the form says the studio is not answering (not the seller's network).
        page.fill("#prompt", "A second mug, sent while the studio restarts")
        page.click("#submit")
        expect(page.locator("#form-error")).to_have_text(
            "The studio is not answering right now; nothing was sent. Try again in a moment.")

        own_server.start()
        expect(page.locator("#connection-banner")).to_be_hidden(timeout=6_000)
        # Once it answers again, the form's "not answering" goes, and the card says it was taken over.
        expect(page.locator("#form-error")).to_be_hidden()
        # The restarted server's worker claims the task again and the next poll sees it begin anew: seconds on a busy
        # machine, so the deadline is the context's 15 s rather than expect's 5 s.
        expect(busy.locator(".media-status")).to_have_text("Restarted after an interruption", timeout=15_000)
        SCREENSHOTS.mkdir(exist_ok=True)
        busy.screenshot(path=str(SCREENSHOTS / "card-restarted.png"), animations="disabled")
        done = card(page, task["id"], "#history")
        expect(done).to_have_attribute("data-status", "completed", timeout=DONE_TIMEOUT)
        images_loaded(page, f'#history .card[data-id="{task["id"]}"] .media-result img')
    finally:
        context.close()


# The slowest case of make test (132 s of its 23 min on a 2-core machine): it asserts little beyond what the
# accessibility and studio cases do, and writes pictures for people, so it runs in its own target.
@pytest.mark.screenshots
def test_screenshots_of_every_page(browser: Any, server: Server) -> None:
    """Writes what a seller sees, at desktop and phone width, in both languages, to tests/e2e/screenshots/:
    each type page with a finished image, a failure and a generation in progress; the home page."""
    SCREENSHOTS.mkdir(exist_ok=True)
    context = new_context(browser, server)
    try:
        pages = {kind.type: context.new_page() for kind in KINDS}
        finished = {}
        for kind in KINDS:  # one finished image per page, all generating at once
            open_studio(pages[kind.type], kind)
            finished[kind.type] = submit(pages[kind.type], kind)
        for kind in KINDS:
            page = pages[kind.type]
            expect(card(page, finished[kind.type]["id"], "#history")).to_have_attribute(
                "data-status", "completed", timeout=DONE_TIMEOUT)
            failed = submit(page, kind, prompt=kind.prompt + ", second try")
            page.request.post(f"/api/tasks/{failed['id']}/cancel")
            expect(card(page, failed["id"], "#history")).to_have_attribute("data-status", "failed")
        page = pages["CREATE"]

        def shoot(name: str) -> None:
            for size_name, size in (("desktop", DESKTOP), ("phone", PHONE)):
                page.set_viewport_size(size)
                page.screenshot(path=str(SCREENSHOTS / f"{name}-{size_name}-{lang}.png"), full_page=True,
                                animations="disabled")

        for lang in ("en", "zh-CN"):
            for kind in KINDS:
                open_studio(page, kind)
                submit(page, kind, prompt=f"{kind.prompt} ({lang})")  # generating while the pictures are taken
                in_view(page, "#history .media-result img")  # cards load their pictures near the screen
                images_loaded(page, "#history .media-result img")
                shoot(kind.path.strip("/"))
            page.goto("/")
            expect(page.locator("#recent")).to_have_attribute("aria-busy", "false")
            in_view(page, "#recent .media-result img")
            images_loaded(page, "#recent .media-result img")
            shoot("home")
            page.set_viewport_size(DESKTOP)
            # The switch is remembered: every later page comes in Chinese.
            page.locator('[data-set-lang="zh-CN"]').click()
            expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    finally:
        context.close()
