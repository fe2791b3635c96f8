"""Light pages in a real browser: a history of 50 finished tasks pulls only thumbnails, and the viewer the
original picture."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image
from playwright.sync_api import Page, Response, expect

from genkeep.config import Settings
from genkeep.previews import THUMBNAIL_SIDES
from genkeep.tasks.model import TaskType
from tests.e2e.browser import PHONE, Server, make_server, new_context, picture
from tests.support.history import browser_owner, seed_finished

pytestmark = [pytest.mark.e2e]
HISTORY = 50
COLORS = [(176, 58, 58), (58, 92, 160), (90, 140, 60), (200, 150, 40)]


@pytest.fixture(scope="module")
def quiet_server(browser: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """No workers: the history is made by the test, through the task manager."""
    started = make_server(tmp_path_factory.mktemp("thumbnails"), GENKEEP_WORKERS="0")
    started.start()
    yield started
    started.stop()


def server_settings(server: Server) -> Settings:
    return Settings(data_dir=server.data_dir, database_url=server.env["GENKEEP_DATABASE_URL"],
                    secret_key=server.env["GENKEEP_SECRET_KEY"])


def result_png(index: int) -> bytes:
    return picture(COLORS[index % len(COLORS)], shape="shirt", size=(720, 720))


def test_a_history_of_50_loads_only_thumbnails_and_the_viewer_the_original(browser: Any,
                                                                            quiet_server: Server) -> None:
    context = new_context(browser, quiet_server, viewport=PHONE)
    page: Page = context.new_page()
    page.goto("/white-background")
    settings = server_settings(quiet_server)
    ids = seed_finished(settings, browser_owner(settings, context.cookies()), TaskType.WHITE_BACKGROUND, HISTORY,
                        references=lambda n: [picture(COLORS[n % len(COLORS)], size=(1200, 900))],
                        result=result_png)

    pictures: list[Response] = []
    page.on("response", lambda response: pictures.append(response) if "/files/" in response.url else None)
    page.reload()
    history = page.locator("#history .card")
    more = page.locator("#load-more")
    while history.count() < HISTORY:
        shown = history.count()
        more.click()
        expect(history).not_to_have_count(shown)
    expect(history).to_have_count(HISTORY)
    # Down the whole page, so every lazy picture is asked for.
    for index in range(HISTORY):
        history.nth(index).scroll_into_view_if_needed()
    page.wait_for_function("""() => [...document.querySelectorAll('#history .card img')]
        .every((img) => img.complete && img.naturalWidth > 0)""")

    urls = [response.url for response in pictures]
    suffixes = tuple(f".{side}.webp" for side in THUMBNAIL_SIDES)
    assert urls and all(url.endswith(suffixes) for url in urls), [u for u in urls if not u.endswith(suffixes)]
    results = {url.rsplit("/", 2)[1] for url in urls if "/result-" in url}
    assert results == set(ids), "every card's result, as a thumbnail"
    weight = sum(len(response.body()) for response in pictures)
    assert weight / HISTORY < 60 * 1024, f"{weight / HISTORY / 1024:.0f} KB of pictures a card"

    # The viewer shows the original result, and the download is its original bytes.
    newest = page.locator(f'#history .card[data-id="{ids[-1]}"]')
    newest.scroll_into_view_if_needed()
    task = page.request.get(f"/api/tasks/{ids[-1]}").json()
    with page.expect_response(lambda response: response.url.endswith(task["image_url"])) as full:
        newest.locator(".media-open").click()
    assert full.value.status == 200 and Image.open(io.BytesIO(full.value.body())).size == (720, 720)
    expect(page.get_by_role("dialog").locator(".viewer-after")).to_have_attribute("src", task["image_url"])
    expect(newest.locator("a[download]")).to_have_attribute("href", task["image_url"])
    context.close()
