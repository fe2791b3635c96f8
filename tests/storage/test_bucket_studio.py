"""The studio with its images in a bucket, as a browser and a provider see it (one process; a real S3 server)."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from botocore.exceptions import EndpointConnectionError
from fastapi.testclient import TestClient
from PIL import Image

from genkeep.config import Settings
from genkeep.storage.s3 import S3Storage
from genkeep.studio import Studio
from genkeep.web.app import create_app
from tests.conftest import new_client
from tests.support import s3
from tests.support.api import submit, wait_final
from tests.support.images import png_bytes
from tests.support.waiting import wait_for


@pytest.fixture
def bucket_settings(settings: Settings, s3_url: str) -> Settings:
    return settings.with_overrides(storage_url=s3_url)


@pytest.fixture
def web(bucket_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(bucket_settings)) as test_client:
        yield test_client


def bucket_of(web: TestClient) -> S3Storage:
    storage = web.app.state.studio.storage  # type: ignore[attr-defined]
    assert isinstance(storage, S3Storage)
    return storage


def task_keys(web: TestClient, task_id: str) -> list[str]:
    storage = bucket_of(web)
    return [key.rsplit("/", 1)[1] for key in s3.keys(os.environ["AWS_ENDPOINT_URL"], storage.bucket, storage.prefix)
            if task_id in key]


def test_images_live_in_the_bucket_and_the_owner_gets_them_through_genkeep(web: TestClient,
                                                                           bucket_settings: Settings) -> None:
    photo = png_bytes(200, 150, (180, 40, 40))
    task = wait_final(web, submit(web, "WHITE_BACKGROUND", prompt="a mug", images=[photo]).json()["id"])
    assert task["status"] == "completed"
    result = web.get(task["image_url"])
    assert result.status_code == 200 and result.headers["content-type"] == "image/png"
    assert int(result.headers["content-length"]) == len(result.content)
    assert "immutable" in result.headers["cache-control"]
    assert Image.open(io.BytesIO(result.content)).size == (64, 64)
    reference = web.get(task["reference_images"][0]["url"])
    assert reference.status_code == 200 and Image.open(io.BytesIO(reference.content)).size == (200, 150)
    # Nothing in the data folder; in the bucket, the task's files and no staging marker.
    images = bucket_settings.data_dir / "images"
    assert not images.exists() or not any(path.is_file() for path in images.rglob("*"))
    # Each picture with its thumbnails beside it.
    result_name = task["image_url"].rsplit("/", 1)[1]
    assert sorted(task_keys(web, task["id"])) == sorted(
        ["reference-1.png", "reference-1.png.320.webp", result_name, f"{result_name}.320.webp",
         f"{result_name}.640.webp"])
    for thumbnail in [*task["image_thumbnails"], *task["reference_images"][0]["thumbnails"]]:
        served = web.get(thumbnail["url"])
        assert served.status_code == 200 and served.headers["content-type"] == "image/webp"
        assert Image.open(io.BytesIO(served.content)).format == "WEBP"
    # The same authorization as before: another owner sees nothing.
    assert new_client(web).get(task["image_url"]).status_code == 404
    assert new_client(web).get(task["reference_images"][0]["url"]).status_code == 404

    assert web.delete(f"/api/tasks/{task['id']}").status_code == 204
    assert task_keys(web, task["id"]) == []
    assert web.get(task["image_url"]).status_code == 404


def test_previews_come_from_the_bucket_and_go_when_the_task_finishes(web: TestClient) -> None:
    task = submit(web, prompt="slow:2 preview of a kite").json()

    def with_preview() -> dict[str, Any] | None:
        current: dict[str, Any] = web.get(f"/api/tasks/{task['id']}").json()
        return current if current["preview_url"] else None

    running = wait_for(with_preview, message="a preview while the task runs")
    picture = web.get(running["preview_url"])
    assert picture.status_code == 200 and picture.headers["content-type"] == "image/webp"
    done = wait_final(web, task["id"])
    assert done["status"] == "completed"
    assert web.get(running["preview_url"]).status_code == 404
    wait_for(lambda: not [name for name in task_keys(web, task["id"]) if name.startswith("preview-")],
             message="the last preview to be removed")


def test_a_retry_has_its_own_copies_of_the_references(web: TestClient) -> None:
    failed = wait_final(web, submit(web, "WHITE_BACKGROUND", prompt="fail on purpose").json()["id"])
    assert failed["status"] == "failed"
    retried = web.post(f"/api/tasks/{failed['id']}/retry").json()
    assert web.delete(f"/api/tasks/{failed['id']}").status_code == 204
    again = wait_final(web, retried["id"])
    assert again["status"] == "failed", "the same prompt fails again, but ran on its own reference"
    assert web.get(again["reference_images"][0]["url"]).status_code == 200


def test_providers_get_the_bucket_s_own_short_lived_links_without_a_public_address(
        bucket_settings: Settings) -> None:
    with TestClient(create_app(bucket_settings)) as web:
        task = wait_final(web, submit(web, "WHITE_BACKGROUND", prompt="a mug").json()["id"])
        studio: Studio = web.app.state.studio  # type: ignore[attr-defined]
        link = studio.signed_url(task["id"], "reference-1.png")
        assert link.startswith(os.environ["AWS_ENDPOINT_URL"]) and "X-Amz-Expires=600" in link
        assert httpx.get(link, timeout=10).content == web.get(task["reference_images"][0]["url"]).content
    # With a public address, genkeep's own signed link, streamed from the bucket.
    public = bucket_settings.with_overrides(public_base_url="https://studio.example", https=False)
    with TestClient(create_app(public)) as web:
        task = wait_final(web, submit(web, "WHITE_BACKGROUND", prompt="a mug").json()["id"])
        studio = web.app.state.studio  # type: ignore[attr-defined]
        link = studio.signed_url(task["id"], "reference-1.png")
        assert link.startswith("https://studio.example/files/")
        provider = TestClient(web.app)
        assert provider.get(link.removeprefix("https://studio.example")).content == web.get(
            task["reference_images"][0]["url"]).content


def test_an_unreachable_bucket_answers_503_and_accepts_nothing(settings: Settings, s3_url: str) -> None:
    missing = settings.with_overrides(storage_url=s3_url.replace("s3://", "s3://missing-"))
    with TestClient(create_app(missing)) as web:
        answer = submit(web, "WHITE_BACKGROUND", prompt="a mug")
        assert answer.status_code == 503 and answer.headers["retry-after"]
        problem = answer.json()
        assert problem["code"] == "storage_unavailable"
        assert s3.SECRET_KEY not in answer.text and s3.ACCESS_KEY not in answer.text
        assert web.get("/api/tasks").json()["items"] == [], "no task without its images"
        ready = web.get("/readyz")
        assert ready.status_code == 503 and ready.json()["failed"] == ["image storage"]


def test_a_delete_while_the_bucket_is_unreachable_removes_the_images_once_it_answers(
        web: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    task = submit(web, "WHITE_BACKGROUND", prompt="a portrait").json()
    web.post(f"/api/tasks/{task['id']}/cancel")
    wait_for(lambda: "reference-1.png" in task_keys(web, task["id"]), message="the photo in the bucket")
    storage = bucket_of(web)

    def unreachable(*_args: Any, **_kwargs: Any) -> None:
        raise EndpointConnectionError(endpoint_url=os.environ["AWS_ENDPOINT_URL"])

    with monkeypatch.context() as outage:
        outage.setattr(storage, "_put", unreachable)
        outage.setattr(storage, "_delete", unreachable)
        assert web.delete(f"/api/tasks/{task['id']}").status_code == 204
        assert web.get(f"/api/tasks/{task['id']}").status_code == 404
    assert "reference-1.png" in task_keys(web, task["id"]), "the outage kept the photo for now"
    # What the sweeper runs every interval, once the bucket answers again.
    web.app.state.studio.manager.finish_removals()  # type: ignore[attr-defined]
    assert task_keys(web, task["id"]) == []
