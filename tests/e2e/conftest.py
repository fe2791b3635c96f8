"""Browser tests: Debian's Chromium, driven by Playwright, against real `genkeep serve` processes.

Without /usr/bin/chromium these tests skip and say why; with GENKEEP_REQUIRE_BROWSER=1 (CI) that is a failure.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.browser import CHROMIUM, CHROMIUM_ARGS, REQUIRE_BROWSER, Server, make_server, new_context


# Module scope, not session: while Playwright's sync API is open it keeps an asyncio loop running in the main
# thread, and the tests collected after tests/e2e (tests/tasks calls asyncio.run) would fail on it.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        reason = f"no browser: {CHROMIUM} is missing (apt-get install chromium)"
        if REQUIRE_BROWSER:
            pytest.fail(reason + " and GENKEEP_REQUIRE_BROWSER=1")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def server(browser: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The module's shared server: each test gets its own browser context, hence its own owner and tasks."""
    shared = make_server(tmp_path_factory.mktemp("serve"))
    shared.start()
    yield shared
    shared.stop()


@pytest.fixture
def context(browser: Any, server: Server) -> Iterator[Any]:
    opened = new_context(browser, server)
    yield opened
    opened.close()


@pytest.fixture
def page(context: Any) -> Any:
    return context.new_page()
