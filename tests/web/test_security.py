"""No other site can take or replace a user's studio; secrets stay secret; hostile uploads are bounded.

Requests are shaped the way browsers send them: Sec-Fetch-Site and Origin say which page made the request.
Clients that are not browsers send neither and are served exactly as before.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import io
import ipaddress
import os
import re
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from genkeep import config, reference_images
from genkeep.config import PROXY_SECRET_HEADER, Settings, SettingsError, load_secret_key
from genkeep.reference_images import MAX_JPEG_SCANS, clean_image
from genkeep.storage import SIGNED_URL_SECONDS
from genkeep.storage import base as storage_base
from genkeep.tasks import manager as manager_module
from genkeep.tasks.model import now_millis
from genkeep.web.app import create_app
from genkeep.web.clients import client_address
from genkeep.web.security_headers import relative_location
from tests.conftest import SCRIPTED_ENGINE
from tests.support.api import submit, wait_final
from tests.support.images import png_bytes
from tests.support.processes import REPO, genkeep_env
from tests.support.waiting import wait_for

KEY = "test-secret-key-" + "k" * 24
PROXY_SECRET = "proxy-secret-" + "p" * 24
CROSS_SITE = {"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}
# A sibling subdomain or another port of the same host: same site, other origin.
SAME_SITE = {"Sec-Fetch-Site": "same-site", "Origin": "http://blog.testserver"}
SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin", "Origin": "http://testserver"}


@pytest.fixture
def base_settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 'genkeep.db'}",
                    engine=SCRIPTED_ENGINE, workers=2, secret_key=KEY)


@pytest.fixture
def web(base_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(base_settings)) as test_client:
        yield test_client


def stranger(app_client: TestClient, **kwargs: Any) -> TestClient:
    """Another browser on the same studio, with no cookie yet."""
    return TestClient(app_client.app, **kwargs)


def assert_problem(answer: Any, status: int, code: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = answer.json()
    assert {"type", "title", "status", "detail", "code"} <= set(body)
    assert (body["status"], body["code"]) == (status, code)
    assert body["detail"].endswith(".")
    return body


def owner_cookie(answer: Any) -> str | None:
    header = answer.headers.get("set-cookie")
    return header if header and "genkeep_owner" in header else None


def items(client: TestClient, headers: dict[str, str] | dict[bytes, bytes] | None = None) -> list[dict[str, Any]]:
    answer = client.get("/api/tasks", headers=headers)
    assert answer.status_code == 200
    found: list[dict[str, Any]] = answer.json()["items"]
    return found


# ---- 1. other sites cannot act as the user or replace their owner ------------------------------------------

def test_a_cross_site_form_post_neither_creates_nor_replaces_the_owner(web: TestClient) -> None:
    task = submit(web, prompt="slow:30 the victim's work").json()
    victim_cookie = web.cookies.get("genkeep_owner")
    # The attack from the issue: a top-level form POST from another site, which carries no SameSite=Lax cookie.
    cookieless = stranger(web)
    for answer in (cookieless.post("/api/tasks", headers=CROSS_SITE, data={"type": "CREATE", "prompt": "pwned"}),
                   cookieless.post("/api/tasks", headers={**CROSS_SITE, "Content-Type": "text/plain"},
                                   content=b"type=CREATE&prompt=pwned")):
        assert_problem(answer, 403, "cross_origin")
        assert owner_cookie(answer) is None
    # A bare form aimed at the home page is refused the same way, and sets no cookie either.
    bare = cookieless.post("/", headers=CROSS_SITE)
    assert_problem(bare, 403, "cross_origin")
    assert owner_cookie(bare) is None
    assert cookieless.cookies.get("genkeep_owner") is None
    assert web.cookies.get("genkeep_owner") == victim_cookie
    assert [t["id"] for t in items(web)] == [task["id"]]
    web.post(f"/api/tasks/{task['id']}/cancel")


@pytest.mark.parametrize("origin_headers", [SAME_SITE, CROSS_SITE, {"Origin": "https://evil.example"},
                                            {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"}],
                         ids=["same-site", "cross-site", "origin only", "null origin", "fetch-site only"])
def test_unsafe_requests_from_another_origin_change_nothing(web: TestClient,
                                                            origin_headers: dict[str, str]) -> None:
    done = wait_final(web, submit(web, prompt="done").json()["id"])
    running = submit(web, prompt="slow:30").json()
    # The victim's own cookie is sent along (same-site requests carry it): still nothing happens.
    for method, path in (("POST", "/api/tasks"), ("POST", f"/api/tasks/{running['id']}/cancel"),
                         ("POST", f"/api/tasks/{done['id']}/retry"), ("DELETE", f"/api/tasks/{done['id']}"),
                         ("PUT", f"/api/tasks/{done['id']}"), ("PATCH", f"/api/tasks/{done['id']}")):
        answer = web.request(method, path, headers=origin_headers, data={"type": "CREATE", "prompt": "pwned"})
        assert_problem(answer, 403, "cross_origin")
        assert owner_cookie(answer) is None
    assert web.get(f"/api/tasks/{running['id']}").json()["status"] == "processing"
    assert sorted(t["id"] for t in items(web)) == sorted([running["id"], done["id"]])
    web.post(f"/api/tasks/{running['id']}/cancel")


def test_the_studios_own_pages_and_other_clients_still_work(base_settings: Settings, web: TestClient) -> None:
    # The studio's pages (same origin, default port written out or not), and a client that is not a browser.
    for headers in (SAME_ORIGIN, {"Sec-Fetch-Site": "same-origin", "Origin": "http://testserver:80"},
                    {"Origin": "http://TestServer"}, {}):
        browser = stranger(web)
        created = submit(browser, prompt="mine", headers=headers)
        assert created.status_code == 201, created.text
        assert owner_cookie(created) is not None
    # Behind a proxy that changes the host, the public address is the studio's origin too.
    public = base_settings.with_overrides(public_base_url="https://studio.example")
    with TestClient(create_app(public)) as proxied:
        headers = {"Sec-Fetch-Site": "same-origin", "Origin": "https://studio.example"}
        assert submit(proxied, prompt="via the proxy", headers=headers).status_code == 201


def test_a_proxy_that_changes_the_host_is_named_in_the_log(web: TestClient,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    # The page is at https://studio.example, but the proxy in front passes Host: testserver.
    answer = submit(stranger(web), headers={"Sec-Fetch-Site": "same-origin", "Origin": "https://studio.example"})
    assert_problem(answer, 403, "cross_origin")
    assert "set GENKEEP_PUBLIC_BASE_URL" in caplog.text


def test_no_owner_is_minted_for_another_sites_request(web: TestClient) -> None:
    passer_by = stranger(web)
    for path in ("/", "/create", "/api/tasks", "/healthz"):
        answer = passer_by.get(path, headers=CROSS_SITE)
        assert answer.status_code == 200
        assert owner_cookie(answer) is None
    assert passer_by.get("/api/tasks", headers=SAME_SITE).json()["items"] == []
    # Typed in the address bar (Sec-Fetch-Site: none) or asked by the page itself: an owner is minted.
    assert owner_cookie(passer_by.get("/create", headers={"Sec-Fetch-Site": "none"})) is not None
    assert owner_cookie(stranger(web).get("/api/tasks", headers=SAME_ORIGIN)) is not None


def test_a_link_from_another_site_still_opens_the_users_own_studio(web: TestClient) -> None:
    task = submit(web, prompt="slow:30").json()
    # A top-level navigation from another site carries the SameSite=Lax cookie.
    answer = web.get("/api/tasks", headers=CROSS_SITE)
    assert [t["id"] for t in answer.json()["items"]] == [task["id"]]
    assert owner_cookie(answer) is None
    web.post(f"/api/tasks/{task['id']}/cancel")


# ---- 2. the owner cookie ----------------------------------------------------------------------------------

def test_over_https_the_owner_cookie_is_host_only_and_secure(base_settings: Settings) -> None:
    settings = base_settings.with_overrides(public_base_url="https://studio.example")
    assert settings.served_over_https
    with TestClient(create_app(settings), base_url="https://studio.example") as browser:
        header = owner_cookie(browser.get("/healthz"))
        assert header is not None and header.startswith("__Host-genkeep_owner=")
        attributes = [part.strip() for part in header.split(";")]
        assert {"Secure", "HttpOnly", "Path=/", "SameSite=Lax"} <= set(attributes)
        assert not any(part.lower().startswith("domain") for part in attributes)
        task = submit(browser, prompt="slow:30").json()
        assert [t["id"] for t in items(browser)] == [task["id"]]
        # A cookie without the prefix (which any sibling subdomain could set) is not an owner here.
        value = browser.cookies.get("__Host-genkeep_owner")
        planted = stranger(browser, base_url="https://studio.example")
        assert planted.get("/api/tasks", headers={"Cookie": f"genkeep_owner={value}"}).json()["items"] == []
        browser.post(f"/api/tasks/{task['id']}/cancel")


def test_behind_a_trusted_tls_proxy_the_owner_cookie_is_host_only_and_secure(base_settings: Settings) -> None:
    settings = base_settings.with_overrides(trusted_proxies=(ipaddress.ip_network("10.0.0.0/8"),), workers=0)
    app = create_app(settings)
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.7"}
    with TestClient(app, client=("10.0.0.2", 40000)) as proxied:
        header = owner_cookie(proxied.get("/healthz", headers=forwarded))
        assert header is not None and header.startswith("__Host-genkeep_owner=") and "; Secure" in header
        # Plain http through the proxy: the plain cookie.
        header = owner_cookie(stranger(proxied, client=("10.0.0.2", 40001)).get(
            "/healthz", headers={"X-Forwarded-Proto": "http"}))
        assert header is not None and header.startswith("genkeep_owner=")
    # Anyone else saying https is not believed.
    with TestClient(app, client=("203.0.113.9", 40000)) as direct:
        header = owner_cookie(direct.get("/healthz", headers=forwarded))
        assert header is not None and header.startswith("genkeep_owner=") and "Secure" not in header


def test_https_is_a_setting_defaulting_from_the_public_address() -> None:
    assert Settings.from_env({"GENKEEP_PUBLIC_BASE_URL": "https://studio.example"}).served_over_https
    assert not Settings.from_env({"GENKEEP_PUBLIC_BASE_URL": "http://studio.example"}).served_over_https
    assert Settings.from_env({"GENKEEP_HTTPS": "1"}).served_over_https
    assert not Settings.from_env({"GENKEEP_HTTPS": "false",
                                  "GENKEEP_PUBLIC_BASE_URL": "https://studio.example"}).served_over_https
    with pytest.raises(SettingsError, match="GENKEEP_HTTPS"):
        Settings.from_env({"GENKEEP_HTTPS": "maybe"})


def test_several_owner_cookies_are_refused_not_resolved(web: TestClient) -> None:
    task = submit(web, prompt="slow:30").json()
    victim = web.cookies.get("genkeep_owner")
    attacker = stranger(web)
    attacker.get("/healthz")
    planted = attacker.cookies.get("genkeep_owner")
    assert victim and planted and victim != planted
    # A sibling subdomain planted its cookie on /api: the browser sends it first, then the victim's.
    tossed = stranger(web)
    for order in (f"genkeep_owner={planted}; genkeep_owner={victim}",
                  f"genkeep_owner={victim}; genkeep_owner={planted}"):
        for method, path in (("GET", "/api/tasks"), ("POST", "/api/tasks")):
            answer = tossed.request(method, path, headers={"Cookie": order}, data={"type": "CREATE", "prompt": "x"})
            body = assert_problem(answer, 400, "several_owner_cookies")
            assert "genkeep_owner" in body["detail"]
            assert owner_cookie(answer) is None
    assert items(attacker) == []
    # The same cookie twice is not ambiguous.
    twice = tossed.get("/api/tasks", headers={"Cookie": f"genkeep_owner={victim}; genkeep_owner={victim}"})
    assert [t["id"] for t in twice.json()["items"]] == [task["id"]]
    web.post(f"/api/tasks/{task['id']}/cancel")


# ---- 3. keys and signed links ------------------------------------------------------------------------------

def test_the_secret_key_file_is_private_and_never_seen_half_written(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(data_dir=tmp_path / "data")

    def crash(_fd: int) -> None:
        raise OSError("disk full")

    # A crash while the key is being written leaves no key file behind (not an empty one), and no litter.
    with monkeypatch.context() as patched:
        patched.setattr(config.os, "fsync", crash)
        with pytest.raises(OSError, match="disk full"):
            load_secret_key(settings)
    assert os.listdir(settings.data_dir) == []
    key = load_secret_key(settings)
    assert len(key) >= 32
    assert os.listdir(settings.data_dir) == ["secret_key"]
    assert stat.S_IMODE((settings.data_dir / "secret_key").stat().st_mode) == 0o600


def test_processes_starting_together_agree_on_one_key(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    keys: list[str] = []
    start = threading.Barrier(8)

    def starting() -> None:
        start.wait()
        keys.append(load_secret_key(settings))

    threads = [threading.Thread(target=starting) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(keys) == 8 and len(set(keys)) == 1
    assert os.listdir(settings.data_dir) == ["secret_key"]


@pytest.mark.parametrize("content", ["", "\n", "too-short-key"])
def test_a_short_key_file_stops_the_start_with_what_to_do(tmp_path: Path, content: str) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    settings.data_dir.mkdir()
    (settings.data_dir / "secret_key").write_text(content)
    with pytest.raises(SettingsError, match=r"secret_key holds a key of \d+ characters.*at least 32.*Delete the file"):
        load_secret_key(settings)


def test_a_short_key_from_the_environment_stops_the_start(base_settings: Settings) -> None:
    with pytest.raises(SettingsError, match="GENKEEP_SECRET_KEY must be at least 32 characters"):
        create_app(base_settings.with_overrides(secret_key="x" * 31))


def test_signed_links_serve_reference_images_only_and_briefly(web: TestClient) -> None:
    task = wait_final(web, submit(web, "WHITE_BACKGROUND", prompt=None).json()["id"])
    assert task["status"] == "completed"
    storage = web.app.state.studio.storage  # type: ignore[attr-defined]
    reference = task["reference_images"][0]["url"]
    result = task["image_url"]
    provider = stranger(web)  # a provider: no owner cookie of the user's

    def signed(url: str, expires: int | None = None) -> str:
        _, _, task_id, name = url.split("/")
        if expires is None:
            return f"{url}?{storage.signed_query(task_id, name)}"
        return f"{url}?expires={expires}&sig={storage.sign(task_id, name, expires)}"

    assert provider.get(signed(reference)).status_code == 200
    query_expires = int(re.search(r"expires=(\d+)", signed(reference)).group(1))  # type: ignore[union-attr]
    assert query_expires - time.time() <= SIGNED_URL_SECONDS <= 600
    # The result is the user's alone, signed or not.
    assert provider.get(signed(result)).status_code == 404
    assert provider.get(result).status_code == 404
    assert web.get(result).status_code == 200
    # Expired, or made to last longer than genkeep makes them: refused.
    assert provider.get(signed(reference, int(time.time()) - 1)).status_code == 404
    assert provider.get(signed(reference, int(time.time()) + 24 * 3600)).status_code == 404


def test_a_link_made_by_a_worker_whose_clock_is_behind_works_for_its_whole_life(web: TestClient) -> None:
    """The worker that makes a provider's link and the API machine that checks it read one clock (the database's,
    as each estimates it), so a worker ten minutes behind does not hand out links that are already expired."""
    task = wait_final(web, submit(web, "WHITE_BACKGROUND", prompt=None).json()["id"])
    studio = web.app.state.studio  # type: ignore[attr-defined]
    _, _, task_id, name = task["reference_images"][0]["url"].split("/")
    behind = 600.0
    with pytest.MonkeyPatch.context() as patch:  # the worker's machine: its whole clock ten minutes behind
        patch.setattr(manager_module, "now_millis", lambda: now_millis() - int(behind * 1000))
        patch.setattr(storage_base, "time", SimpleNamespace(time=lambda: time.time() - behind))
        studio.manager.learn_clock()
        link = studio.signed_url(task_id, name)
    studio.manager.learn_clock()  # the API machine's clock is right
    expires = int(re.search(r"expires=(\d+)", link).group(1))  # type: ignore[union-attr]
    assert abs(expires - (time.time() + SIGNED_URL_SECONDS)) < 5
    assert stranger(web).get(link.removeprefix(studio.settings.public_base_url)).status_code == 200


# ---- 4. trusted-header mode ------------------------------------------------------------------------------

@pytest.fixture
def header_settings(base_settings: Settings) -> Settings:
    return base_settings.with_overrides(owner_header="X-Remote-User", owner_header_secret=PROXY_SECRET)


def test_header_mode_needs_a_way_to_know_the_proxy(base_settings: Settings) -> None:
    with pytest.raises(SettingsError, match=r"GENKEEP_OWNER_HEADER_SECRET.*GENKEEP_TRUSTED_PROXIES"):
        create_app(base_settings.with_overrides(owner_header="X-Remote-User"))
    with pytest.raises(SettingsError, match=r"GENKEEP_OWNER_HEADER_SECRET.*GENKEEP_TRUSTED_PROXIES"):
        Settings.from_env({"GENKEEP_OWNER_HEADER": "X-Remote-User"})
    with pytest.raises(SettingsError, match="GENKEEP_OWNER_HEADER_SECRET must be at least 32"):
        Settings.from_env({"GENKEEP_OWNER_HEADER": "X-Remote-User", "GENKEEP_OWNER_HEADER_SECRET": "short"})
    with pytest.raises(SettingsError, match=r"GENKEEP_TRUSTED_PROXIES.*'10\.0\.0\.300'"):
        Settings.from_env({"GENKEEP_OWNER_HEADER": "X-Remote-User", "GENKEEP_TRUSTED_PROXIES": "10.0.0.300"})
    settings = Settings.from_env({"GENKEEP_OWNER_HEADER": "X-Remote-User",
                                  "GENKEEP_TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8,::1"})
    assert [str(network) for network in settings.trusted_proxies] == ["127.0.0.1/32", "10.0.0.0/8", "::1/128"]


def test_only_the_proxy_with_its_secret_may_name_the_user(header_settings: Settings) -> None:
    with TestClient(create_app(header_settings)) as direct:
        alice = {"X-Remote-User": "alice"}
        proxy = {PROXY_SECRET_HEADER: PROXY_SECRET}
        created = submit(direct, prompt="slow:30", headers={**alice, **proxy})
        assert created.status_code == 201 and owner_cookie(created) is None
        task_id = created.json()["id"]
        # Someone reaching genkeep directly, claiming to be alice: with no secret or a wrong one.
        for proof in ({}, {PROXY_SECRET_HEADER: "guess-" + "x" * 26}, {PROXY_SECRET_HEADER: PROXY_SECRET[:-1]}):
            assert_problem(direct.get(f"/api/tasks/{task_id}", headers={**alice, **proof}), 403, "untrusted_proxy")
            assert_problem(direct.post(f"/api/tasks/{task_id}/cancel", headers={**alice, **proof}), 403,
                           "untrusted_proxy")
        # Without a user, pages and health checks work and owner routes ask for a login.
        assert direct.get("/healthz").status_code == 200
        assert direct.get("/").status_code == 200
        assert_problem(direct.get("/api/tasks"), 401, "unauthenticated")
        assert direct.get(f"/api/tasks/{task_id}", headers={**alice, **proxy}).json()["status"] == "processing"
        direct.post(f"/api/tasks/{task_id}/cancel", headers={**alice, **proxy})


@pytest.mark.parametrize(("peer", "trusted"), [("10.0.0.5", True), ("::ffff:10.0.0.5", True),
                                               ("192.168.1.9", False), ("testclient", False)])
def test_only_the_proxys_address_may_name_the_user(base_settings: Settings, peer: str, trusted: bool) -> None:
    settings = Settings.from_env({"GENKEEP_OWNER_HEADER": "X-Remote-User", "GENKEEP_TRUSTED_PROXIES": "10.0.0.0/8"})
    app = create_app(base_settings.with_overrides(owner_header=settings.owner_header,
                                                  trusted_proxies=settings.trusted_proxies))
    with TestClient(app, client=(peer, 40000)) as caller:
        answer = caller.get("/api/tasks", headers={"X-Remote-User": "alice"})
        if trusted:
            assert answer.status_code == 200
        else:
            assert_problem(answer, 403, "untrusted_proxy")


@pytest.mark.parametrize(("value", "status", "code"), [
    ([b"alice", b"mallory"], 400, "several_owner_headers"),
    ([b"\xff\xfealice"], 400, "invalid_owner_header"),
    ([b"alice\x01"], 400, "invalid_owner_header"),
    ([b"ali\x7fce"], 400, "invalid_owner_header"),
    ([b"\xc2\x85alice"], 400, "invalid_owner_header"),  # U+0085, a C1 control character
])
def test_ambiguous_or_unreadable_user_headers_are_refused(header_settings: Settings, value: list[bytes],
                                                          status: int, code: str) -> None:
    app = create_app(header_settings)
    headers = [(b"X-Remote-User", one) for one in value] + [(PROXY_SECRET_HEADER.encode(), PROXY_SECRET.encode())]

    async def ask() -> httpx.Response:
        # Straight to the app: TestClient would re-encode header bytes it cannot read as text.
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
            return await client.get("/api/tasks", headers=headers)

    # On a thread of its own: the browser tests' driver may keep an event loop running on this one.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        answer = pool.submit(asyncio.run, ask()).result(timeout=30)
    assert_problem(answer, status, code)
    app.state.studio.close()


def test_every_user_id_maps_to_its_own_owner(header_settings: Settings) -> None:
    with TestClient(create_app(header_settings), headers={PROXY_SECRET_HEADER: PROXY_SECRET}) as proxied:
        long_user = "someone@" + "example." * 20 + "com"
        # Before: a user literally named "sha256:<digest of the long id>" shared the long id's owner.
        impostor = "sha256:" + hashlib.sha256(long_user.encode()).hexdigest()
        accented = "zoë@example.com"
        def as_user(user: str) -> dict[bytes, bytes]:
            return {b"X-Remote-User": user.encode()}

        made = {user: proxied.post("/api/tasks", data={"type": "CREATE", "prompt": "slow:30"},
                                   headers=as_user(user)).json()["id"]
                for user in (long_user, impostor, accented)}
        for user, task_id in made.items():
            assert [t["id"] for t in items(proxied, as_user(user))] == [task_id]
        for user, task_id in made.items():
            proxied.post(f"/api/tasks/{task_id}/cancel", headers=as_user(user))


# ---- 5. headers, docs, redirects, file modes -------------------------------------------------------------

def test_every_response_carries_the_security_headers(web: TestClient) -> None:
    task = wait_final(web, submit(web, "WHITE_BACKGROUND", prompt=None).json()["id"])
    answers = {
        "page": web.get("/create"), "api": web.get("/api/tasks"), "script": web.get("/static/studio.js"),
        "image": web.get(task["image_url"]), "missing": web.get("/nothing-here"),
        "refused": web.post("/api/tasks", headers=CROSS_SITE), "docs": web.get("/docs"),
        "openapi": web.get("/openapi.json"), "health": web.get("/healthz"),
    }
    for what, answer in answers.items():
        policy = answer.headers.get("content-security-policy", "")
        assert "frame-ancestors 'none'" in policy, what
        assert "script-src 'self';" in policy and "unsafe-eval" not in policy, what
        assert answer.headers.get("x-content-type-options") == "nosniff", what
        assert answer.headers.get("x-frame-options") == "DENY", what
        assert answer.headers.get("referrer-policy") == "same-origin", what
    page_policy = answers["page"].headers["content-security-policy"]
    assert "default-src 'self'" in page_policy and "object-src 'none'" in page_policy
    assert "unsafe-inline" not in page_policy


INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>", re.IGNORECASE)


def test_pages_have_nothing_inline_the_policy_would_block(web: TestClient) -> None:
    for path in ("/", "/create", "/white-background", "/clothing-change", "/docs"):
        html = web.get(path).text
        assert not INLINE_SCRIPT.search(html), path
        assert not re.search(r"\sstyle=", html), path
        assert not re.search(r"\son[a-z]+=", html), path
        # Everything the page loads comes from this server.
        assert not re.search(r"(src|href)=\"(https?:)?//", html), path


def test_docs_are_served_from_installed_files(web: TestClient) -> None:
    page = web.get("/docs")
    assert page.status_code == 200 and "swagger-ui" in page.text
    assets = re.findall(r"(?:src|href)=\"(/[^\"]+)\"", page.text)
    assert "/docs/assets/swagger-ui-bundle.js" in assets and "/static/docs.js" in assets
    for asset in assets:
        answer = web.get(asset)
        assert answer.status_code == 200, asset
    assert "SwaggerUIBundle" in web.get("/docs/assets/swagger-ui-bundle.js").text
    assert web.get("/redoc").status_code == 404


def test_redirects_are_relative_and_never_repeat_the_host(base_settings: Settings) -> None:
    # With the host check off (GENKEEP_ALLOWED_HOSTS=*), as a deployment may choose; otherwise evil.example is 400.
    with TestClient(create_app(base_settings.with_overrides(allowed_hosts=("*",), workers=0))) as web:
        answer = web.get("/create/", headers={"Host": "evil.example"}, follow_redirects=False)
    assert answer.status_code in (301, 302, 307, 308)
    assert answer.headers["location"] == "/create"
    assert relative_location("http://evil.example//evil.example/x?a=1") == "/evil.example/x?a=1"
    assert relative_location("/\\evil.example") == "/evil.example"


def test_the_data_folder_is_private(base_settings: Settings) -> None:
    os.umask(0o022)  # what a shell usually gives
    settings = base_settings.with_overrides(secret_key="", database_url="")
    with TestClient(create_app(settings)) as browser:
        task = wait_final(browser, submit(browser, "WHITE_BACKGROUND", prompt=None).json()["id"])
        assert task["status"] == "completed"
    made = [settings.data_dir, *settings.data_dir.rglob("*")]
    assert any(path.name == "genkeep.db" for path in made) and any(path.name == "secret_key" for path in made)
    assert len([path for path in made if path.is_file()]) >= 4  # database, key, reference image, result
    for path in made:
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path


def test_every_genkeep_command_keeps_its_files_private(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = genkeep_env(data_dir, "")
    del env["GENKEEP_SECRET_KEY"]  # generated, so the key file is made too
    del env["GENKEEP_DATABASE_URL"]  # the SQLite file in the data folder
    finished = subprocess.run([sys.executable, "-m", "genkeep.cli", "worker", "--burst"], env=env, cwd=REPO,
                              capture_output=True, timeout=120, preexec_fn=lambda: os.umask(0o022))
    assert finished.returncode == 0, finished.stderr.decode(errors="replace")[-2000:]
    made = [data_dir, *data_dir.rglob("*")]
    assert {"genkeep.db", "secret_key", "images"} <= {path.name for path in made}
    for path in made:
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path


# ---- 6. hostile JPEGs ---------------------------------------------------------------------------------

def jpeg(progressive: bool = False, size: tuple[int, int] = (160, 120)) -> bytes:
    out = io.BytesIO()
    Image.effect_noise(size, 60).convert("RGB").save(out, "JPEG", progressive=progressive, quality=90)
    return out.getvalue()


def scan_bomb(scans: int) -> bytes:
    """A progressive JPEG whose last scan is repeated: a small file that costs a pass over every pixel per scan."""
    data = jpeg(progressive=True)
    last_scan = data[data.rfind(b"\xff\xda"):-2]
    return data[:-2] + last_scan * (scans - data.count(b"\xff\xda")) + b"\xff\xd9"


def test_a_jpeg_with_hundreds_of_scans_is_refused_before_decoding(web: TestClient) -> None:
    answer = submit(web, "WHITE_BACKGROUND", prompt=None, images=[scan_bomb(300)])
    body = assert_problem(answer, 422, "invalid_input")
    assert body["field"] == "reference_images"
    assert "300 scans" in body["detail"] and str(MAX_JPEG_SCANS) in body["detail"]
    assert items(web) == []
    # Ordinary baseline and progressive JPEGs go through.
    for image in (jpeg(), jpeg(progressive=True), scan_bomb(MAX_JPEG_SCANS)):
        assert submit(web, "WHITE_BACKGROUND", prompt=None, images=[image]).status_code == 201


@pytest.mark.parametrize("progressive", [False, True])
def test_bytes_after_the_end_of_a_jpeg_are_never_stored(web: TestClient, progressive: bool) -> None:
    photo = jpeg(progressive)
    hidden = b"<html><script>alert(document.cookie)</script></html>\xff\xd9more hidden data\xff\xd9"
    task = submit(web, "WHITE_BACKGROUND", prompt=None, images=[photo + hidden]).json()
    stored = web.get(task["reference_images"][0]["url"])
    assert stored.headers["content-type"] == "image/jpeg"
    assert stored.content == photo  # the same image, losslessly, ending at its end-of-image marker
    assert b"<html>" not in stored.content and b"hidden" not in stored.content


def test_concurrent_decodes_are_bounded_by_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    cores = reference_images.cores()
    callers = cores + 2
    lock = threading.Lock()
    release = threading.Event()
    state = {"arrived": 0, "decoding": 0, "most": 0}
    original = reference_images._clean

    def decoding(*args: Any, **kwargs: Any) -> Any:
        with lock:
            state["decoding"] += 1
            state["most"] = max(state["most"], state["decoding"])
        release.wait(20)
        try:
            return original(*args, **kwargs)
        finally:
            with lock:
                state["decoding"] -= 1

    monkeypatch.setattr(reference_images, "_clean", decoding)

    def upload() -> None:
        with lock:
            state["arrived"] += 1
        clean_image(png_bytes(), "image 1", max_pixels=40_000_000, min_side=64)

    threads = [threading.Thread(target=upload) for _ in range(callers)]
    for thread in threads:
        thread.start()
    wait_for(lambda: state["arrived"] == callers and state["decoding"] == cores, timeout=10,
             message="every upload to arrive and the first ones to decode")
    release.set()
    for thread in threads:
        thread.join(20)
    assert state["most"] == cores


# ---- 7. what one client's uploads may take -------------------------------------------------------------------

def test_new_generations_are_rated_per_address_refused_ones_included(base_settings: Settings) -> None:
    with TestClient(create_app(base_settings.with_overrides(client_rate=3, workers=0))) as web:
        # Refused requests count too: they cost the server their body and their decode.
        for _ in range(3):
            assert_problem(stranger(web).post("/api/tasks", data={"type": "PAINT"}), 422, "invalid_input")
        # A new cookie is no new client: the address is the same.
        refused = assert_problem(submit(stranger(web), prompt="a kite"), 429, "too_many_requests")
        assert "minute" in refused["detail"]
        # Reading is not rated.
        assert web.get("/api/tasks").status_code == 200


def test_the_client_address_is_a_trusted_proxys_forwarded_one_only() -> None:
    trusted = (ipaddress.ip_network("10.0.0.0/8"),)

    def scope(peer: str, forwarded: str | None = None) -> dict[str, Any]:
        headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
        return {"client": (peer, 5000), "headers": headers}

    assert client_address(scope("203.0.113.9", "198.51.100.1"), trusted) == "203.0.113.9"
    assert client_address(scope("10.0.0.2", "198.51.100.1"), trusted) == "198.51.100.1"
    # Hops a client wrote itself, left of the last untrusted one, are not believed.
    assert client_address(scope("10.0.0.2", "1.2.3.4, 198.51.100.1, 10.0.0.3"), trusted) == "198.51.100.1"
    assert client_address(scope("10.0.0.2"), trusted) == "10.0.0.2"


def test_the_pixel_budget_admits_pixels_not_requests() -> None:
    budget = reference_images.PixelBudget(1_000_000)
    with budget.hold(600_000):
        with budget.hold(400_000):
            assert budget.in_flight == 1_000_000
        with pytest.raises(reference_images.DecodesBusy), budget.hold(600_000, wait=0.05):
            pass
    # An image larger than the whole budget waits to be alone, then goes.
    with budget.hold(5_000_000):
        assert budget.in_flight == 1_000_000
    assert budget.in_flight == 0


# ---- 8. DNS rebinding: only the studio's own host names ------------------------------------------------------

REBOUND = {"Host": "attacker.example:8000", "Origin": "http://attacker.example:8000",
           "Sec-Fetch-Site": "same-origin"}


@pytest.mark.parametrize("public_base_url", ["", "https://studio.example.com"])
def test_a_rebound_host_name_is_refused_with_the_setting_named(base_settings: Settings, public_base_url: str) -> None:
    settings = base_settings.with_overrides(public_base_url=public_base_url, workers=0)
    with TestClient(create_app(settings)) as web:
        for answer in (web.post("/api/tasks", headers=REBOUND, data={"type": "CREATE", "prompt": "pwned"}),
                       web.get("/metrics", headers={"Host": "attacker.example"}),
                       web.get("/", headers={"Host": "attacker.example"})):
            body = assert_problem(answer, 400, "unknown_host")
            assert "GENKEEP_ALLOWED_HOSTS" in body["detail"]
            assert "content-security-policy" in answer.headers
        assert items(web) == []
        # Probes address a process by its IP: liveness and readiness answer any host.
        assert web.get("/healthz", headers={"Host": "10.1.2.3:8000"}).status_code == 200


@pytest.mark.parametrize("host", ["127.0.0.1:8000", "localhost", "[::1]:8000", "studio.example.com",
                                  "STUDIO.example.com:8443", "studio.lan"])
def test_the_studios_own_host_names_are_served(base_settings: Settings, host: str) -> None:
    # A reverse proxy with `Host $host` sends the public name without its port.
    settings = base_settings.with_overrides(public_base_url="https://studio.example.com:8443",
                                            allowed_hosts=("studio.lan",), workers=0)
    with TestClient(create_app(settings)) as web:
        assert web.get("/api/tasks", headers={"Host": host}).status_code == 200
        assert web.get("/", headers={"Host": host}).status_code == 200


def test_monitors_may_ask_for_pages_with_head(web: TestClient) -> None:
    for path in ("/", "/create", "/white-background", "/clothing-change"):
        got, head = web.get(path), web.head(path)
        assert head.status_code == got.status_code == 200, path
        assert head.content == b"" and head.headers["content-type"] == got.headers["content-type"]
        assert "content-security-policy" in head.headers


def test_metrics_can_be_kept_for_the_holder_of_a_token(base_settings: Settings) -> None:
    token = "scrape-" + "t" * 30
    with TestClient(create_app(base_settings.with_overrides(metrics_token=token, workers=0))) as web:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Bearer \u00e9".encode()}):
            refused = web.get("/metrics", headers=headers)  # type: ignore[arg-type]
            assert_problem(refused, 401, "unauthenticated")
            assert refused.headers["www-authenticate"] == "Bearer" and "genkeep_" not in refused.text
        scraped = web.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert scraped.status_code == 200 and "genkeep_tasks_accepted_total" in scraped.text
