"""What providers say stays with the operator; result links cannot lead genkeep into private networks.

- A user reads genkeep's short sentence; the provider's words (which may echo headers, pages or keys) go to the
  log, with credentials masked; no URL in a message or a log line carries its user:password.
- httpx's request log (which prints full URLs) is quiet.
- Results come only from https links or the configured provider's own address, never through a redirect into a
  loopback, private or link-local network the provider itself is not in.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterator

import httpx
import pytest

from genkeep.config import Settings
from genkeep.engines.base import EngineError
from genkeep.engines.comfyui import ComfyUIEngine
from genkeep.engines.dashscope import DashScopeEngine
from genkeep.engines.provider_http import ResultLinks, redacted, without_userinfo
from genkeep.tasks.model import TaskType
from tests.engines.providers.fake_comfyui import RESULT_COLOR as COMFY_COLOR
from tests.engines.providers.fake_comfyui import FakeComfyUI
from tests.engines.providers.fake_dashscope import API_KEY, RESULT_COLOR, FakeDashScope
from tests.engines.providers.fakes import FakeApp, FakeContext, Reply, Request, image_color, make_job, serving

PASSWORD = "s3cret-pa55word"


class InternalService(FakeApp):
    """Something on the private side that must never be fetched for a provider."""

    def handle(self, request: Request) -> Reply:
        return Reply(200, b"<html>INTERNAL-ONLY admin console</html>", "text/html")


@pytest.fixture
def dashscope() -> Iterator[FakeDashScope]:
    with serving(FakeDashScope()) as app:
        yield app


@pytest.fixture
def internal() -> Iterator[InternalService]:
    with serving(InternalService()) as app:
        yield app


def dashscope_engine(fake: FakeDashScope) -> DashScopeEngine:
    return DashScopeEngine(Settings(engine="dashscope", dashscope_api_key=API_KEY,
                                    dashscope_base_url=f"{fake.base_url}/api/v1", dashscope_timeout=5))


def comfyui_engine(url: str) -> ComfyUIEngine:
    return ComfyUIEngine(Settings(engine="comfyui", comfyui_url=url, comfyui_timeout=5))


def generate(engine: DashScopeEngine | ComfyUIEngine) -> bytes:
    ctx = FakeContext()
    job = make_job(TaskType.CREATE)
    try:
        return engine.wait(job, engine.submit(job, ctx), ctx).data
    finally:
        engine.close()


def failure(engine: DashScopeEngine | ComfyUIEngine) -> EngineError:
    with pytest.raises(EngineError) as caught:
        generate(engine)
    return caught.value


# ---- messages and logs --------------------------------------------------------------------------------------

def test_a_password_in_the_provider_url_never_reaches_messages_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with serving(FakeComfyUI()) as fake:
        base = fake.base_url.replace("http://", f"http://genkeep:{PASSWORD}@")
        # It works (the password goes to the server as HTTP basic auth) and no log line shows it.
        assert image_color(generate(comfyui_engine(base))) == COMFY_COLOR
        assert fake.requests and all(r.headers.get("authorization", "").startswith("Basic ") for r in fake.requests)
    error = failure(comfyui_engine(f"http://genkeep:{PASSWORD}@127.0.0.1:9"))
    assert error.message.startswith("ComfyUI could not be reached at http://127.0.0.1:9;")
    assert PASSWORD not in error.message and "genkeep:" not in error.message
    assert "127.0.0.1:9" in caplog.text
    assert PASSWORD not in caplog.text


def test_httpx_does_not_log_each_request() -> None:
    # Its INFO line prints the full URL, user:password included.
    assert logging.getLogger("httpx").getEffectiveLevel() >= logging.WARNING
    assert logging.getLogger("httpcore").getEffectiveLevel() >= logging.WARNING


def test_an_error_page_that_echoes_the_api_key_reaches_neither_user_nor_log(
        dashscope: FakeDashScope, caplog: pytest.LogCaptureFixture) -> None:
    dashscope.submit_mode = "echo"
    error = failure(dashscope_engine(dashscope))
    assert (error.code, error.message) == (
        "provider_error",
        "DashScope rejected the request (HTTP 400); retry the task, and if it fails again the studio's log says why.")
    assert "Bad request" in caplog.text  # the operator sees what the gateway said…
    assert API_KEY not in caplog.text and "Bearer ***" in caplog.text  # …without the key


def test_redaction_masks_credentials_in_any_text() -> None:
    text = "GET https://bob:hunter2@gw.example/v1 failed; Authorization: Bearer sk-live-123 and Basic Ym9iOmh1bnRlcjI="
    assert redacted(text) == "GET https://***@gw.example/v1 failed; Authorization: Bearer *** and Basic ***"
    assert without_userinfo("https://bob:hunter2@gw.example:8443/v1?x=1") == "https://gw.example:8443/v1?x=1"


def test_a_result_that_is_a_web_page_is_not_echoed(dashscope: FakeDashScope) -> None:
    dashscope.outcome = "not_image"
    error = failure(dashscope_engine(dashscope))
    assert error.code == "engine_error" and "<html>" not in error.message


# ---- where results may come from ---------------------------------------------------------------------------

def test_a_result_link_redirecting_elsewhere_on_plain_http_is_not_followed(
        dashscope: FakeDashScope, internal: InternalService, caplog: pytest.LogCaptureFixture) -> None:
    dashscope.outcome = "redirect"
    dashscope.redirect_to = f"{internal.base_url}/admin"
    error = failure(dashscope_engine(dashscope))
    assert error.code == "provider_error"
    assert error.message.startswith("DashScope made the image, but its result link points somewhere genkeep does "
                                    "not download from")
    assert "INTERNAL-ONLY" not in error.message
    assert internal.requests == []
    assert f"{internal.base_url}/admin" in caplog.text


def test_a_result_url_on_another_plain_http_address_is_not_fetched(
        dashscope: FakeDashScope, internal: InternalService) -> None:
    dashscope.outcome = "elsewhere"
    dashscope.redirect_to = f"{internal.base_url}/secret.png"
    assert failure(dashscope_engine(dashscope)).code == "provider_error"
    assert internal.requests == []


def test_a_redirect_within_the_providers_own_address_is_followed(dashscope: FakeDashScope) -> None:
    dashscope.outcome = "redirect"
    dashscope.redirect_to = f"{dashscope.base_url}/results/final.png"
    assert image_color(generate(dashscope_engine(dashscope))) == RESULT_COLOR
    assert [r.path for r in dashscope.seen("GET", "/results/")][-2:] == ["/results/task-0001.png",
                                                                           "/results/final.png"]


def test_endless_redirects_give_up(dashscope: FakeDashScope) -> None:
    dashscope.outcome = "redirect"
    dashscope.redirect_to = f"{dashscope.base_url}/results/again.png"
    assert failure(dashscope_engine(dashscope)).code == "provider_error"
    assert len(dashscope.seen("GET", "/results/")) == 6


ADDRESSES = {
    "dashscope.example": ["47.88.1.1"],
    "oss.example": ["47.88.2.2"],
    "rebound.example": ["47.88.2.2", "127.0.0.1"],
    "metadata.example": ["169.254.169.254"],
    "lan.example": ["10.1.2.3"],
    "v6-loopback.example": ["::ffff:127.0.0.1"],
    "comfy.lan": ["192.168.1.20"],
}


def resolve(host: str) -> list[str]:
    """A stand-in DNS: the names above, and addresses as themselves."""
    if host in ADDRESSES:
        return ADDRESSES[host]
    ipaddress.ip_address(host)
    return [host]


@pytest.mark.parametrize(("url", "allowed"), [
    ("https://oss.example/result.png?sig=1", True),
    ("https://dashscope.example/api/v1/file.png", True),
    ("http://oss.example/result.png", False),  # not https
    ("https://127.0.0.1/admin", False),
    ("https://[::1]/admin", False),
    ("https://0.0.0.0/admin", False),
    ("https://v6-loopback.example/admin", False),
    ("https://rebound.example/result.png", False),  # one of its addresses is loopback
    ("https://metadata.example/latest/meta-data/", False),
    ("https://169.254.169.254/latest/meta-data/", False),
    ("https://lan.example/result.png", False),
    ("https://192.168.1.1/", False),
])
def test_result_links_of_a_public_provider(url: str, allowed: bool) -> None:
    links = ResultLinks("https://dashscope.example/api/v1", resolve=resolve)
    assert (links.refusal(httpx.URL(url)) is None) is allowed


def test_result_links_of_a_provider_on_the_lan() -> None:
    links = ResultLinks("http://comfy.lan:8188/", resolve=resolve)
    assert links.refusal(httpx.URL("http://comfy.lan:8188/view?filename=a.png")) is None
    assert links.refusal(httpx.URL("https://lan.example/result.png")) is None  # the provider's own kind of network
    assert links.refusal(httpx.URL("http://comfy.lan:9000/other")) is not None  # another port is another service
    assert links.refusal(httpx.URL("https://127.0.0.1/admin")) is not None
    assert links.refusal(httpx.URL("https://169.254.169.254/")) is not None


def test_results_of_a_fake_provider_on_this_machine_still_download(dashscope: FakeDashScope) -> None:
    # The configured provider itself is on loopback, so its own links are fine (the fakes in these tests).
    assert image_color(generate(dashscope_engine(dashscope))) == RESULT_COLOR
