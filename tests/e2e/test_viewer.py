"""The result viewer in a real browser: a finished card opens full size, zooms, compares with its photo, moves to
the next result and gives the focus back; the address keeps it open across a reload; "Use as product photo" takes
a CREATE result into a WHITE_BACKGROUND task that finishes."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from playwright.sync_api import Locator, Page, expect

from tests.e2e.browser import DESKTOP, PHONE, SCREENSHOTS, Server, make_server, new_context, picture, upload
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.e2e]


@pytest.fixture(scope="module")
def fast_server(browser: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """These tests need finished results, not long generations: a server whose local engine takes no extra time
    (starting it costs about a second; waiting for the shared server's 5 s generations would cost more)."""
    started = make_server(tmp_path_factory.mktemp("viewer"), GENKEEP_LOCAL_DELAY="0")
    started.start()
    yield started
    started.stop()


@pytest.fixture
def page(browser: Any, fast_server: Server) -> Iterator[Page]:
    context = new_context(browser, fast_server)
    yield context.new_page()
    context.close()


def start_task(page: Page, task_type: str, prompt: str | None = None, image: bytes | None = None) -> dict[str, Any]:
    """A task started the way a script would, as the page's owner (the page has been to the studio once)."""
    fields: dict[str, Any] = {"type": task_type}
    if prompt is not None:
        fields["prompt"] = prompt
    if image is not None:
        fields["reference_images"] = upload("photo.png", image)
    answer = page.request.post("/api/tasks", multipart=fields)
    assert answer.status == 201, answer.text()
    task: dict[str, Any] = answer.json()
    return task


def finished(page: Page, task: dict[str, Any]) -> dict[str, Any]:
    def final() -> dict[str, Any] | None:
        now: dict[str, Any] = page.request.get(f"/api/tasks/{task['id']}").json()
        return now if now["status"] in ("completed", "failed") else None

    return wait_for(final, timeout=30, interval=0.1, message=f"task {task['id']} to finish")


def white_backgrounds(page: Page, count: int) -> list[dict[str, Any]]:
    """`count` finished WHITE_BACKGROUND results, oldest first."""
    page.goto("/white-background")
    colors = [(176, 58, 58), (58, 92, 160), (90, 140, 60)]
    started = [start_task(page, "WHITE_BACKGROUND", f"Bag number {n + 1}", picture(colors[n % 3]))
               for n in range(count)]
    return [finished(page, task) for task in started]


def open_history(page: Page, path: str) -> None:
    page.goto(path)
    expect(page.locator("#history")).to_have_attribute("aria-busy", "false")


def viewer(page: Page) -> Locator:
    return page.get_by_role("dialog")


def picture_loaded(page: Page) -> None:
    page.wait_for_function("""() => {
        const img = document.querySelector("dialog[open] .viewer-after");
        return img && img.complete && img.naturalWidth > 0 && img.classList.contains("is-loaded");
    }""")


def focused_inside(page: Page, selector: str) -> bool:
    return bool(page.evaluate("s => document.querySelector(s)?.contains(document.activeElement)", selector))


def test_open_zoom_compare_next_and_escape_gives_the_focus_back(page: Page) -> None:
    older, newer = white_backgrounds(page, 2)
    open_history(page, "/white-background")
    newest_card = page.locator(f'#history .card[data-id="{newer["id"]}"]')

    # Enter on the card's picture opens it: a modal dialog named after the type, the address names the task.
    newest_card.locator(".media-open").focus()
    page.keyboard.press("Enter")
    dialog = viewer(page)
    expect(dialog).to_be_visible()
    expect(page.get_by_role("dialog", name="White background")).to_be_visible()
    assert page.evaluate("document.querySelector('dialog.viewer').matches(':modal')")
    expect(page).to_have_url(re.compile(f"#task={newer['id']}$"))
    expect(dialog.locator(".viewer-prompt")).to_have_text("Bag number 2")
    expect(dialog.locator(".viewer-count")).to_have_text("1 of 2")
    picture_loaded(page)
    expect(dialog.locator(".viewer-facts")).to_contain_text("local")
    expect(dialog.locator(".viewer-facts")).to_contain_text("1024 × 1024 px")

    # Zoom: fitted at first, then 100 % (the picture at its own size), a step further, and fitted again.
    level = dialog.locator(".viewer-zoom-level")
    fitted = level.inner_text()
    assert int(fitted.rstrip("%")) < 100
    level.click()
    expect(level).to_have_text("100%")
    box = dialog.locator(".viewer-picture").bounding_box()
    assert box is not None and round(box["width"]) == 1024
    # Dragging moves the zoomed picture with the pointer.
    middle = (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.move(*middle)
    page.mouse.down()
    page.mouse.move(middle[0] - 120, middle[1] - 90, steps=4)
    page.mouse.up()
    moved = dialog.locator(".viewer-picture").bounding_box()
    assert moved is not None
    assert (round(moved["x"] - box["x"]), round(moved["y"] - box["y"])) == (-120, -90)
    page.keyboard.press("+")
    expect(level).to_have_text("125%")
    page.keyboard.press("0")
    expect(level).to_have_text(fitted)

    # Compare with the product photo; the divider is a slider the keyboard moves.
    compare = dialog.get_by_role("button", name="Compare")
    compare.click()
    expect(compare).to_have_attribute("aria-pressed", "true")
    before = dialog.locator(".viewer-before img")
    expect(before).to_be_visible()
    expect(before).to_have_attribute("src", newer["reference_images"][0]["url"])
    divider = dialog.get_by_role("slider", name="Before and after divider")
    expect(divider).to_be_focused()
    expect(divider).to_have_attribute("aria-valuenow", "50")
    page.keyboard.press("ArrowLeft")  # on the divider, arrows move it and do not change picture
    page.keyboard.press("ArrowLeft")
    expect(divider).to_have_attribute("aria-valuenow", "40")
    expect(divider).to_have_attribute("aria-valuetext", "40% before, 60% after")
    expect(dialog.locator(".viewer-before")).to_have_css("clip-path", "inset(0px 60% 0px 0px)")
    expect(page).to_have_url(re.compile(f"#task={newer['id']}$"))

    # Next: the older result, still compared; the end of the list does not wrap around.
    dialog.get_by_role("button", name="Next").click()
    expect(page).to_have_url(re.compile(f"#task={older['id']}$"))
    expect(dialog.locator(".viewer-prompt")).to_have_text("Bag number 1")
    expect(dialog.locator(".viewer-count")).to_have_text("2 of 2")
    expect(before).to_have_attribute("src", older["reference_images"][0]["url"])
    expect(dialog.get_by_role("button", name="Next")).to_have_attribute("aria-disabled", "true")
    page.keyboard.press("ArrowRight")
    expect(dialog.locator(".viewer-count")).to_have_text("2 of 2")
    page.keyboard.press("ArrowLeft")
    expect(dialog.locator(".viewer-count")).to_have_text("1 of 2")
    page.keyboard.press("ArrowRight")
    expect(dialog.locator(".viewer-count")).to_have_text("2 of 2")

    # Tab and Shift+Tab stay inside the dialog.
    dialog.get_by_role("button", name="Close").focus()
    page.keyboard.press("Shift+Tab")
    assert focused_inside(page, "dialog.viewer")
    for _ in range(25):
        page.keyboard.press("Tab")
        assert focused_inside(page, "dialog.viewer")

    # Esc closes; the focus is on the card of the picture last seen, and the address no longer names it.
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(page.locator(f'#history .card[data-id="{older["id"]}"] .media-open')).to_be_focused()
    expect(page).not_to_have_url(re.compile("#task="))


def test_the_address_reopens_the_viewer_and_an_unknown_id_opens_nothing(page: Page) -> None:
    [done] = white_backgrounds(page, 1)
    stopped = start_task(page, "WHITE_BACKGROUND", None, picture((90, 140, 60)))
    page.request.post(f"/api/tasks/{stopped['id']}/cancel")
    failed = finished(page, stopped)

    page.goto(f"/white-background#task={done['id']}")
    expect(viewer(page)).to_be_visible()
    expect(viewer(page).locator(".viewer-prompt")).to_have_text("Bag number 1")
    page.reload()
    expect(viewer(page)).to_be_visible()
    picture_loaded(page)
    expect(viewer(page).locator(".viewer-after")).to_have_attribute("src", done["image_url"])

    # A task that ended unfinished opens too: how it ended (canceled, said calmly) and the photo it was given.
    page.goto(f"/white-background#task={failed['id']}")
    page.reload()
    expect(viewer(page)).to_be_visible()
    expect(viewer(page).locator(".viewer-failure strong")).to_have_text("You canceled this generation")
    # The photo drawn at 168 px: its thumbnail.
    expect(viewer(page).locator(".viewer-failure img")).to_have_attribute(
        "src", failed["reference_images"][0]["thumbnails"][0]["url"])
    expect(viewer(page).get_by_role("button", name="Try again")).to_be_visible()

    # Gone, or never there: nothing opens, nothing complains, and the address lets go of it.
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto("/create#task=00000000000000000000000000000000")
    expect(page.locator("html")).to_have_attribute("data-recovered", "true")
    expect(page).not_to_have_url(re.compile("#task="))
    expect(viewer(page)).to_be_hidden()
    assert errors == []


def test_use_as_product_photo_takes_a_create_result_to_a_finished_white_background(page: Page) -> None:
    page.goto("/create")
    created = finished(page, start_task(page, "CREATE", "A ceramic mug on a sunlit oak table"))
    assert created["status"] == "completed"
    open_history(page, "/create")
    card = page.locator(f'#history .card[data-id="{created["id"]}"]')

    # The card's own menu offers the same next steps; Esc puts the focus back on its button.
    menu_button = card.get_by_role("button", name="Use in a new generation")
    menu_button.click()
    expect(page.locator("#use-as-menu")).to_be_visible()
    expect(page.locator("#use-as-menu").get_by_role("link", name=re.compile("Use as product photo"))).to_be_focused()
    page.keyboard.press("Escape")
    expect(page.locator("#use-as-menu")).to_be_hidden()
    expect(menu_button).to_be_focused()

    card.locator(".media-open").click()
    viewer(page).get_by_role("link", name=re.compile("Use as product photo")).click()

    # The white background page, with the result in its slot as if the file had been chosen.
    expect(page).to_have_url(re.compile(r"/white-background$"))
    preview = page.locator('[data-slot="product"] .slot-preview img')
    expect(preview).to_be_visible()
    page.wait_for_function("img => img.complete && img.naturalWidth === 1024", arg=preview.element_handle())
    expect(page.locator("#announcer")).to_contain_text("Added from your result: Product photo")
    expect(page.locator("#submit")).to_be_focused()

    with page.expect_response(lambda r: r.url.endswith("/api/tasks") and r.request.method == "POST") as answer:
        page.keyboard.press("Enter")
    assert answer.value.status == 201, answer.value.text()
    task = answer.value.json()
    assert task["type"] == "WHITE_BACKGROUND"
    assert [(image["width"], image["height"]) for image in task["reference_images"]] == [(1024, 1024)]
    expect(page.locator(f'#history .card[data-id="{task["id"]}"]')).to_have_attribute(
        "data-status", "completed", timeout=30_000)
    # What went up is the result itself: the server kept the very same pixels.
    sent = page.request.get(task["reference_images"][0]["url"]).body()
    original = page.request.get(created["image_url"]).body()
    assert pixels(sent) == pixels(original)

    # A link naming a result that is gone (or someone else's) fills nothing and says so beside the slot.
    page.goto("/create")
    page.goto("/white-background#use=00000000000000000000000000000000&as=product")
    expect(page.locator("#reference_images-error")).to_have_text(
        "That result's image is no longer available; choose a file instead.")
    expect(preview).to_be_hidden()
    expect(page).not_to_have_url(re.compile("use="))


def pixels(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB").tobytes()


def test_screenshots_of_the_viewer(browser: Any, fast_server: Server) -> None:
    """Writes the viewer comparing a white background result, at desktop and phone width, in both languages, to
    tests/e2e/screenshots/."""
    SCREENSHOTS.mkdir(exist_ok=True)
    context = new_context(browser, fast_server)
    try:
        page = context.new_page()
        newest = white_backgrounds(page, 2)[-1]
        for lang in ("en", "zh-CN"):
            context.add_cookies([{"name": "genkeep_lang", "value": lang, "url": fast_server.base}])
            for size_name, size in (("desktop", DESKTOP), ("phone", PHONE)):
                page.set_viewport_size(size)
                page.goto("/")  # a new document, in the new language (a hash alone would not reload)
                page.goto(f"/white-background#task={newest['id']}")
                expect(page.locator("html")).to_have_attribute("lang", lang)
                expect(viewer(page)).to_be_visible()
                picture_loaded(page)
                page.keyboard.press("c")
                page.keyboard.press("ArrowLeft")
                shot(page, SCREENSHOTS / f"viewer-{size_name}-{lang}.png")
    finally:
        context.close()


def shot(page: Page, path: Path) -> None:
    page.screenshot(path=str(path), animations="disabled")
