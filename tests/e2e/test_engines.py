"""Each page says, beside its form, which engine will run its tasks and what that engine is, in both languages:
the offline CREATE engine says it is a stand-in, not an AI model, and points to connecting a real one."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.browser import ENGINE, Server, new_context

pytestmark = [pytest.mark.e2e]

# What the shared server (the local engine) says on each page, in each language.
NOTES = {
    "en-US": {
        "/create": ["Engine: local.", "built-in offline stand-in, which is not an AI model",
                    "Connecting a real model"],
        "/white-background": ["Engine: local.", "Made offline on this server", "cut-out model (u2netp)",
                              "the product itself is not redrawn"],
        "/clothing-change": ["Engine: local.", "compositing approximation, not an AI try-on model",
                             "Connecting a real model"],
    },
    "zh-CN": {
        "/create": ["引擎：local。", "离线替身生成，它不是 AI 模型", "Connecting a real model"],
        "/white-background": ["引擎：local。", "在本服务器上离线生成", "商品本身不会被重新绘制"],
        "/clothing-change": ["引擎：local。", "不是 AI 试衣模型", "Connecting a real model"],
    },
}


@pytest.mark.parametrize("locale", list(NOTES))
def test_each_page_says_which_engine_runs_it_and_what_it_is(browser: Any, server: Server, locale: str) -> None:
    if ENGINE != "local":
        pytest.skip(f"these are the local engine's notes; the browser tests run {ENGINE}")
    context = new_context(browser, server, locale=locale)
    try:
        page = context.new_page()
        for path, sentences in NOTES[locale].items():
            page.goto(path)
            note = page.locator("#engine-note")
            expect(note).to_be_visible()
            # Beside the form: inside the same panel, before it.
            expect(page.locator(".composer #engine-note + #task-form")).to_have_count(1)
            for sentence in sentences:
                expect(note).to_contain_text(sentence)
            stand_in = "Connecting a real model" in sentences
            expect(note.locator(".engine-note-more")).to_have_count(1 if stand_in else 0)
    finally:
        context.close()
