"""In a real browser: another web page cannot act in the studio or replace its owner, and every page works under
the studio's Content-Security-Policy."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.browser import Server, new_context, picture, upload

pytestmark = [pytest.mark.e2e]

ATTACK_PAGE = """<!doctype html>
<html><body>
<form id="create" method="POST" action="{victim}/api/tasks" enctype="multipart/form-data">
  <input name="type" value="CREATE"><input name="prompt" value="pwned by another site">
</form>
<form id="bare" method="POST" action="{victim}/"></form>
<script>document.getElementById(location.hash === "#bare" ? "bare" : "create").submit();</script>
</body></html>
"""


class AttackerSite:
    """A page on another origin (another port, or another host name) that posts a form to the studio."""

    def __init__(self, victim: str) -> None:
        body = ATTACK_PAGE.format(victim=victim).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> AttackerSite:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def victim(browser: Any, server: Server) -> Iterator[Any]:
    context = new_context(browser, server)
    yield context
    context.close()


def tasks_of(page: Page) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = page.evaluate("fetch('/api/tasks').then((answer) => answer.json())")["items"]
    return found


def owner_cookie(context: Any, server: Server) -> str:
    values = [c["value"] for c in context.cookies(server.base) if c["name"] == "genkeep_owner"]
    assert len(values) == 1
    return str(values[0])


# "localhost" is another site than 127.0.0.1: the form post carries no SameSite=Lax cookie, and used to mint a
# new owner whose cookie replaced the user's. Another port of 127.0.0.1 is the same site: the cookie is sent,
# and the post used to act as the user.
@pytest.mark.parametrize("attacker_host", ["localhost", "127.0.0.1"], ids=["cross-site", "same-site"])
@pytest.mark.parametrize("form", ["create", "bare"])
def test_a_form_on_another_site_cannot_touch_the_studio(victim: Any, server: Server, attacker_host: str,
                                                        form: str) -> None:
    page = victim.new_page()
    page.goto("/create")
    page.wait_for_selector("html[data-recovered=true]", state="attached")
    mine = page.evaluate("""async () => {
        const body = new FormData();
        body.append("type", "CREATE");
        body.append("prompt", "the victim's own mug");
        const answer = await fetch("/api/tasks", {method: "POST", body});
        return {status: answer.status, task: await answer.json()};
    }""")
    assert mine["status"] == 201
    cookie = owner_cookie(victim, server)

    with AttackerSite(server.base) as attacker:
        evil = victim.new_page()
        with evil.expect_response(lambda r: r.request.method == "POST" and r.url.startswith(server.base)) as posted:
            evil.goto(f"http://{attacker_host}:{attacker.port}/attack.html#{form}")
        answer = posted.value
        assert answer.status == 403
        assert "set-cookie" not in answer.all_headers()
        assert answer.json()["code"] == "cross_origin"

    assert owner_cookie(victim, server) == cookie
    page.reload()
    page.wait_for_selector("html[data-recovered=true]", state="attached")
    expect(page.locator(f'.card[data-id="{mine["task"]["id"]}"]')).to_be_visible()
    prompts = [task["prompt"] for task in tasks_of(page)]
    assert "the victim's own mug" in prompts
    assert not any("pwned" in (prompt or "") for prompt in prompts)


def test_every_page_works_under_the_content_security_policy(victim: Any) -> None:
    page = victim.new_page()
    blocked: list[str] = []
    page.on("console", lambda message: blocked.append(message.text)
            if "Content Security Policy" in message.text or "Refused to" in message.text else None)
    page.on("pageerror", lambda error: blocked.append(str(error)))

    page.goto("/create")
    page.wait_for_selector("html[data-recovered=true]", state="attached")
    page.fill("#prompt", "A ceramic mug under the policy")
    # The previews of chosen files are blob: images.
    page.set_input_files("#file-references", [upload("mug.png", picture((196, 120, 80)))])
    expect(page.locator("#multi-previews img")).to_have_count(1)
    page.wait_for_function("() => [...document.querySelectorAll('#multi-previews img')]"
                           ".every((img) => img.complete && img.naturalWidth > 0)")
    with page.expect_response(lambda r: r.url.endswith("/api/tasks") and r.request.method == "POST") as answer:
        page.click("#submit")
    assert answer.value.status == 201
    task_id = answer.value.json()["id"]
    done = page.locator(f'#history .card[data-id="{task_id}"]')
    expect(done).to_have_attribute("data-status", "completed", timeout=30_000)
    page.wait_for_function("id => { const img = document.querySelector(`.card[data-id='${id}'] .media-result img`);"
                           " return img && img.complete && img.naturalWidth > 0; }", arg=task_id)

    page.goto("/")
    expect(page.locator("#recent")).to_have_attribute("aria-busy", "false")

    page.goto("/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("genkeep")
    operation = page.locator(".opblock-summary-path", has_text="/api/tasks/{task_id}/cancel")
    expect(operation).to_be_visible()
    operation.click()  # opened: parameters, responses and their highlighted examples
    expect(page.locator(".opblock-body .responses-wrapper").first).to_be_visible()
    page.locator(".try-out__btn").first.click()
    expect(page.locator(".opblock-body .execute").first).to_be_visible()
    assert blocked == []
