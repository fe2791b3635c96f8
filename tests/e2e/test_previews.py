"""Live previews in a real browser: a recovered card shows the engine's latest preview at once, then the result."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.browser import SCREENSHOTS
from tests.e2e.test_studio import DONE_TIMEOUT, INTERVAL, KINDS, card, images_loaded, open_studio, submit

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.mark.parametrize("kind", [k for k in KINDS if k.type == "WHITE_BACKGROUND"], ids=["WHITE_BACKGROUND"])
def test_a_recovered_card_shows_the_latest_preview_then_the_result(page: Page, kind: object) -> None:
    open_studio(page, kind)  # type: ignore[arg-type]
    task = submit(page, kind)  # type: ignore[arg-type]
    page.reload()
    busy = card(page, task["id"], "#in-progress")
    preview = busy.locator(".media-preview")
    # Within two polls of the reload: the recovery list carries it, or the next poll does.
    expect(preview).to_be_visible(timeout=int(2 * INTERVAL * 1000) + 1000)
    expect(preview).to_have_attribute("alt", "Preview of the image being generated (not the final result)")
    images_loaded(page, f'.card[data-id="{task["id"]}"] .media-preview')
    assert "/files/" in (preview.get_attribute("src") or "")
    expect(busy.locator(".spinner")).to_be_visible()
    busy.screenshot(path=SCREENSHOTS / "card-with-preview.png")
    done = card(page, task["id"], "#history")
    expect(done).to_have_attribute("data-status", "completed", timeout=DONE_TIMEOUT)
    expect(done.locator(".media-preview")).to_have_count(0)
    images_loaded(page, f'#history .card[data-id="{task["id"]}"] .media-result img')
