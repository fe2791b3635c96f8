"""In a real browser, /docs is the published document: every operation of /openapi.json is listed, and the
new-task form it draws from the schema (a type menu, the prompt, file pickers) starts a real generation."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.e2e.browser import Server, picture

pytestmark = [pytest.mark.e2e]


def test_the_docs_list_every_operation_and_try_it_out_uploads_a_photo(page: Any, server: Server,
                                                                       tmp_path: Any) -> None:
    document = httpx.get(f"{server.base}/openapi.json").json()
    page.goto("/docs")
    for path, item in document["paths"].items():
        for method, operation in item.items():
            block = page.locator(f"#operations-{operation['tags'][0]}-{operation['operationId']}")
            expect(block).to_be_visible()
            expect(block.locator(".opblock-summary-method")).to_have_text(method.upper())
            expect(block.locator(".opblock-summary-path")).to_have_attribute("data-path", path)

    create = page.locator("#operations-tasks-create_task")
    create.locator(".opblock-summary").click()
    create.locator(".try-out__btn").click()
    body = create.locator(".opblock-section-request-body")
    body.locator("select:not(.content-type)").first.select_option("WHITE_BACKGROUND")
    photo = tmp_path / "bottle.png"
    photo.write_bytes(picture((40, 90, 200)))
    body.locator("input[type=file]").first.set_input_files(str(photo))
    create.locator(".execute").click()
    answer = create.locator(".live-responses-table tr.response .response-col_status").first
    expect(answer).to_have_text("201")
    expect(create.locator(".live-responses-table .microlight").first).to_contain_text('"type": "WHITE_BACKGROUND"')
