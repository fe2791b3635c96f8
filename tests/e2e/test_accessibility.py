"""axe-core finds no accessibility violation (moderate, serious or critical) on any page, in either language, at
desktop and phone width, whether the studio is empty, generating, showing results, showing one full size, or
reconnecting to a stopped server.

axe-core comes from the npm registry, installed beside the virtualenv by `make test` (see the Makefile; the
GENKEEP_AXE variable names another copy). One server and one browser serve every state, to keep this quick."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.browser import DESKTOP, REQUIRE_BROWSER, Server, make_server, picture
from tests.support.processes import REPO

pytestmark = [pytest.mark.e2e]

AXE = Path(os.environ.get("GENKEEP_AXE", REPO / ".venv/axe-core/node_modules/axe-core/axe.min.js"))
PHONE = {"width": 390, "height": 844}
IMPACTS = ("moderate", "serious", "critical")
PAGES = ("/", "/create", "/white-background", "/clothing-change")
TYPE_PAGES = PAGES[1:]
DONE_TIMEOUT = 60_000
# Every fade and slide has ended (spinners and pulses go on for ever and are left out): a half-faded text would be
# measured at a contrast it only passes through.
FADES_DONE = """() => document.getAnimations().every((a) => a.playState !== "running"
    || a.effect?.getTiming().iterations === Infinity)"""


@pytest.fixture(scope="module")
def server(browser: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # Long enough generations to look at them running; short enough to wait for their results.
    shared = make_server(tmp_path_factory.mktemp("axe"), GENKEEP_LOCAL_DELAY="10")
    shared.start()
    yield shared
    shared.stop()


def violations(page: Page, state: str) -> list[str]:
    """axe's findings on the page as it is now, one line per rule: the state, the rule, its impact, where."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    found = page.evaluate("""async (impacts) => {
        const result = await axe.run(document, {resultTypes: ["violations"]});
        return result.violations.filter((v) => impacts.includes(v.impact)).map((v) =>
            `${v.id} (${v.impact}, ${v.nodes.length} nodes): `
            + v.nodes.map((n) => n.target.join(" ")).slice(0, 4).join(", "));
    }""", list(IMPACTS))
    return [f"{state}: {line}" for line in found]


def settled(page: Page) -> None:
    """Recovered, history listed, and no card or picture still fading in (a half-faded text has no contrast)."""
    page.wait_for_selector("html[data-recovered=true]", state="attached")
    page.wait_for_function("""() => ![...document.querySelectorAll("[aria-busy=true]")]
        .some((node) => node.matches("#history, #recent"))""")
    page.wait_for_function(FADES_DONE)


PHOTOS = {"CREATE": [], "WHITE_BACKGROUND": [picture((176, 58, 58))],
          "CLOTHING_CHANGE": [picture((186, 150, 130), "person"), picture((58, 92, 160), "shirt")]}


def start(page: Page, task_type: str, prompt: str) -> None:
    """A task of this owner, sent from the page itself as its form would."""
    photos = [base64.b64encode(photo).decode() for photo in PHOTOS[task_type]]
    status = page.evaluate("""async ({type, prompt, photos}) => {
        const body = new FormData();
        body.append("type", type);
        body.append("prompt", prompt);
        photos.forEach((photo, n) => body.append("reference_images",
            new File([Uint8Array.from(atob(photo), (c) => c.charCodeAt(0))], `photo${n}.png`, {type: "image/png"})));
        return (await fetch("/api/tasks", {method: "POST", body})).status;
    }""", {"type": task_type, "prompt": prompt, "photos": photos})
    assert status == 201


def test_no_page_in_any_state_has_an_accessibility_violation(browser: Any, server: Server) -> None:
    if not AXE.exists():
        reason = f"no axe-core at {AXE} (make test installs it with npm)"
        if REQUIRE_BROWSER:
            pytest.fail(reason + " and GENKEEP_REQUIRE_BROWSER=1")
        pytest.skip(reason)
    found: list[str] = []
    checked = 0
    views: dict[str, Page] = {}
    contexts: list[Any] = []
    owner: Any = None  # one owner (the first context's cookie) for all: its tasks are made once
    try:
        for locale in ("en-US", "zh-CN"):
            for size_name, size in (("desktop", DESKTOP), ("phone", PHONE)):
                # bypass_csp: the studio's policy allows no inline script, and axe is injected as one.
                context = browser.new_context(base_url=server.base, locale=locale, viewport=size, bypass_csp=True,
                                              reduced_motion="reduce", storage_state=owner)
                context.set_default_timeout(20_000)
                contexts.append(context)
                views[f"{locale} {size_name}"] = context.new_page()
                views[f"{locale} {size_name}"].goto("/")
                owner = owner or context.storage_state()

        def check_all(state: str) -> None:
            nonlocal found, checked
            for where, page in views.items():
                for path in PAGES:
                    page.goto(path)
                    settled(page)
                    found += violations(page, f"{where} {path} {state}")
                    checked += 1

        check_all("empty")  # a new seller: nothing made yet
        first = views["en-US desktop"]
        for task_type in ("CREATE", "WHITE_BACKGROUND", "CLOTHING_CHANGE"):
            start(first, task_type, "A ceramic mug, soft light")
        check_all("running")
        for path in TYPE_PAGES:
            first.goto(path)
            first.wait_for_function("() => !document.querySelector('#in-progress .card')"
                                    " && document.querySelector('#history .card')", timeout=DONE_TIMEOUT)
        check_all("results")
        for where, page in views.items():  # one result full size, on each type's page
            for path in TYPE_PAGES:
                page.goto(path)
                settled(page)
                page.locator("#history .card .media-open").first.click()
                expect(page.locator("dialog.viewer")).to_be_visible()
                page.wait_for_function(FADES_DONE)
                found += violations(page, f"{where} {path} viewer")
                checked += 1

        # The studio stops answering while a generation runs: every open page says it is reconnecting.
        start(first, "CREATE", "A teapot while the studio restarts")
        for page in views.values():
            page.goto("/create")
            settled(page)
            expect(page.locator("#in-progress .card")).to_have_count(1)
        server.stop()
        for where, page in views.items():
            expect(page.locator("#connection-banner")).to_be_visible(timeout=20_000)
            found += violations(page, f"{where} /create reconnecting")
            checked += 1
    finally:
        if server.process is None:
            server.start()
        for context in contexts:
            context.close()
    print(f"axe-core: {checked} page states checked, {len(found)} violations")
    assert not found, "\n".join(found)
