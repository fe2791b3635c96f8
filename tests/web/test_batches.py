"""A catalog through the API: one task per photo with the page's batch id, its own list, one ZIP of its results."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import pytest
from fastapi.testclient import TestClient

from genkeep.config import Settings
from genkeep.web.app import create_app
from tests.support.api import wait_final
from tests.support.images import png_bytes


@pytest.fixture
def client(settings: Settings) -> Any:
    # Two at a time, the rest waiting: the catalog is bigger than what may run at once.
    with TestClient(create_app(settings.with_overrides(max_unfinished_per_owner=2))) as test_client:
        yield test_client


def send_photo(client: TestClient, filename: str, batch: str | None = "spring-2f9c", key: str | None = None,
               color: tuple[int, int, int] = (200, 40, 40), prompt: str = "") -> Any:
    data = {"type": "WHITE_BACKGROUND", "prompt": prompt} | ({"batch": batch} if batch is not None else {})
    headers = {"Idempotency-Key": key} if key else {}
    return client.post("/api/tasks", data=data, headers=headers,
                       files=[("reference_images", (filename, png_bytes(color=color), "image/png"))])


def test_a_catalog_waits_in_line_lists_as_its_batch_and_downloads_named_after_its_photos(client: TestClient) -> None:
    names = ["shoe-01.png", "shoe-02.png", "bag.png", "../../etc/passwd.png", "C:\\photos\\bag.png"]
    answers = [send_photo(client, name, color=(40 * n, 90, 200), prompt="slow:1") for n, name in enumerate(names)]
    assert [answer.status_code for answer in answers] == [201] * 5
    assert sum(answer.json()["status"] == "pending" for answer in answers) >= 1, "beyond two at a time, they wait"
    assert {answer.json()["batch"] for answer in answers} == {"spring-2f9c"}
    assert [answer.json()["reference_images"][0]["filename"] for answer in answers] == \
        ["shoe-01.png", "shoe-02.png", "bag.png", "passwd.png", "bag.png"]
    lone = send_photo(client, "lone.png", batch=None).json()
    assert lone["batch"] is None

    listed = client.get("/api/tasks", params={"batch": "spring-2f9c", "limit": 100}).json()["items"]
    assert sorted(task["id"] for task in listed) == sorted(answer.json()["id"] for answer in answers)
    for answer in answers:
        assert wait_final(client, answer.json()["id"], timeout=60)["status"] == "completed"

    download = client.get("/api/results.zip", params={"batch": "spring-2f9c"})
    assert download.status_code == 200 and download.headers["content-type"] == "application/zip"
    assert 'filename="genkeep-spring-2f9c.zip"' in download.headers["content-disposition"]
    archive = zipfile.ZipFile(io.BytesIO(download.content))
    assert sorted(archive.namelist()) == sorted(["shoe-01.png", "shoe-02.png", "bag.png", "passwd.png",
                                                 "bag (2).png"])
    first = next(task for task in listed if task["reference_images"][0]["filename"] == "shoe-01.png")
    assert archive.read("shoe-01.png") == client.get(wait_final(client, first["id"])["image_url"]).content

    wait_final(client, lone["id"], timeout=60)
    chosen = client.get("/api/results.zip", params={"id": [answers[0].json()["id"], lone["id"]]})
    assert sorted(zipfile.ZipFile(io.BytesIO(chosen.content)).namelist()) == ["lone.png", "shoe-01.png"]
    both = client.get("/api/results.zip", params={"batch": "spring-2f9c", "id": lone["id"]})
    assert len(zipfile.ZipFile(io.BytesIO(both.content)).namelist()) == 6, "a batch and ids: all of them"


def test_a_resent_photo_with_its_key_is_the_same_task(client: TestClient) -> None:
    first = send_photo(client, "shoe.png", key="photo-1")
    again = send_photo(client, "shoe.png", key="photo-1")
    assert (first.status_code, again.status_code) == (201, 200) and first.json()["id"] == again.json()["id"]
    assert len(client.get("/api/tasks", params={"batch": "spring-2f9c"}).json()["items"]) == 1


def test_downloads_hold_only_the_owners_completed_results(client: TestClient, settings: Settings) -> None:
    task = send_photo(client, "mine.png").json()
    wait_final(client, task["id"], timeout=60)
    with TestClient(create_app(settings)) as stranger:
        refused = stranger.get("/api/results.zip", params={"batch": "spring-2f9c"})
        assert refused.status_code == 404 and refused.json()["code"] == "not_found"
        assert "none of these tasks has completed" in refused.json()["detail"]
        assert stranger.get("/api/results.zip", params={"id": task["id"]}).status_code == 404


@pytest.mark.parametrize(("params", "field"), [
    ({"batch": "a b"}, "batch"),
    ({"batch": ""}, "batch"),
    ({"batch": "x" * 65}, "batch"),
    ({"id": ["9f0c2d6e4b1a4c7e8d3f5a6b7c8d9e0f"] * 201}, "id"),
])
def test_a_download_named_wrongly_answers_422(client: TestClient, params: dict[str, Any], field: str) -> None:
    refused = client.get("/api/results.zip", params=params)
    assert refused.status_code == 422 and refused.json()["field"] == field


def test_a_download_that_names_nothing_has_nothing_to_download(client: TestClient) -> None:
    refused = client.get("/api/results.zip")
    assert refused.status_code == 404 and "batch=<your batch id> or id=<task id>" in refused.json()["detail"]


def test_a_wrong_batch_id_answers_422_and_leaves_nothing_behind(client: TestClient) -> None:
    refused = send_photo(client, "shoe.png", batch="spring catalog!")
    assert refused.status_code == 422 and refused.json()["field"] == "batch"
    assert "letters, digits" in refused.json()["detail"]
    assert client.get("/api/tasks").json()["items"] == []
