"""A second owner gets 404 from every endpoint and every image URL of the first owner's tasks."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.conftest import new_client
from tests.support.api import submit, wait_final


def test_another_owner_never_sees_or_touches_a_task(client: TestClient) -> None:
    done = wait_final(client, submit(client, "CLOTHING_CHANGE", prompt="a linen shirt").json()["id"])
    running = submit(client, prompt="slow:30 still going").json()
    stranger = new_client(client)
    assert stranger.get("/api/tasks").json()["items"] == []
    assert stranger.get("/api/tasks", params={"status": "processing"}).json()["items"] == []
    for task in (done, running):
        task_id = task["id"]
        for method, path in (("GET", f"/api/tasks/{task_id}"), ("POST", f"/api/tasks/{task_id}/cancel"),
                             ("POST", f"/api/tasks/{task_id}/retry"), ("DELETE", f"/api/tasks/{task_id}")):
            answer = stranger.request(method, path)
            assert answer.status_code == 404, (method, path)
            assert answer.headers["content-type"] == "application/problem+json"
        for image in task["reference_images"]:
            assert stranger.get(image["url"]).status_code == 404
    assert stranger.get(done["image_url"]).status_code == 404
    # The owner still has everything.
    assert client.get(done["image_url"]).status_code == 200
    assert client.get(f"/api/tasks/{running['id']}").json()["status"] == "processing"
    client.post(f"/api/tasks/{running['id']}/cancel")


def test_a_forged_owner_cookie_is_a_new_owner(client: TestClient) -> None:
    task = submit(client, prompt="slow:30").json()
    forger = new_client(client)
    owner_cookie = client.cookies.get("genkeep_owner")
    assert owner_cookie is not None
    owner_id = owner_cookie.rpartition(".")[0]
    forger.cookies.set("genkeep_owner", owner_id + ".forgedsignature")
    assert forger.get(f"/api/tasks/{task['id']}").status_code == 404
    client.post(f"/api/tasks/{task['id']}/cancel")


def test_the_owner_cookie_is_signed_httponly_and_lasts_a_year(client: TestClient) -> None:
    fresh = new_client(client)
    header = fresh.get("/healthz").headers["set-cookie"]
    assert header.startswith("genkeep_owner=")
    assert "HttpOnly" in header and "SameSite=Lax" in header and "Max-Age=31536000" in header
