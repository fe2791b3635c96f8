"""A task's pictures as the browser gets them: thumbnails for cards, the original bytes for the viewer and the
download, every file cached for good and revalidated with a strong ETag."""

from __future__ import annotations

import io
from typing import Any

from fastapi.testclient import TestClient
from PIL import Image

from genkeep.previews import REFERENCE_THUMBNAIL_SIDES, THUMBNAIL_SIDES, thumbnail_name
from genkeep.studio import Studio
from tests.conftest import new_client
from tests.support.api import submit, wait_final
from tests.support.images import png_bytes


def finished_white_background(client: TestClient, photo: bytes) -> dict[str, Any]:
    task = wait_final(client, submit(client, "WHITE_BACKGROUND", prompt="a mug", images=[photo]).json()["id"])
    assert task["status"] == "completed"
    return task


def test_cards_get_small_webp_thumbnails_and_the_original_stays_whole(client: TestClient) -> None:
    photo = png_bytes(1600, 1200, (180, 40, 40))
    task = finished_white_background(client, photo)
    reference = task["reference_images"][0]
    assert [thumb["max_side"] for thumb in reference["thumbnails"]] == list(REFERENCE_THUMBNAIL_SIDES)
    for thumb in reference["thumbnails"]:
        answer = client.get(thumb["url"])
        assert answer.status_code == 200 and answer.headers["content-type"] == "image/webp"
        assert max(Image.open(io.BytesIO(answer.content)).size) == thumb["max_side"]
    assert [thumb["url"] for thumb in task["image_thumbnails"]] == [
        thumbnail_name(task["image_url"], side) for side in THUMBNAIL_SIDES]
    original = client.get(reference["url"])
    assert Image.open(io.BytesIO(original.content)).size == (1600, 1200), "the viewer's picture is the original"
    # Another owner gets none of them.
    assert new_client(client).get(reference["thumbnails"][0]["url"]).status_code == 404


def test_a_second_visit_revalidates_every_picture_with_304(client: TestClient) -> None:
    task = finished_white_background(client, png_bytes(800, 600))
    urls = [task["image_url"], task["reference_images"][0]["url"],
            *(thumb["url"] for thumb in task["image_thumbnails"])]
    for url in urls:
        first = client.get(url)
        etag = first.headers["etag"]
        assert first.status_code == 200 and etag.startswith('"') and "immutable" in first.headers["cache-control"]
        again = client.get(url, headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
        assert client.get(url, headers={"If-None-Match": f'"other", W/{etag}'}).status_code == 304
        assert client.get(url, headers={"If-None-Match": '"other"'}).status_code == 200
        assert new_client(client).get(url, headers={"If-None-Match": etag}).status_code == 404, "the owner's alone"
    assert len({client.get(url).headers["etag"] for url in urls}) == len(urls), "one version per file"


def test_a_task_older_than_thumbnails_gets_them_made_on_the_first_request(client: TestClient) -> None:
    task = finished_white_background(client, png_bytes(1000, 500))
    studio: Studio = client.app.state.studio  # type: ignore[attr-defined]
    result = task["image_url"].rsplit("/", 1)[1]
    for side in THUMBNAIL_SIDES:
        studio.storage.remove_file(task["id"], thumbnail_name(result, side))
    answer = client.get(task["image_thumbnails"][1]["url"])
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/webp"
    assert max(Image.open(io.BytesIO(answer.content)).size) == min(THUMBNAIL_SIDES[1], 64), "never enlarged"
    assert studio.storage.read(task["id"], thumbnail_name(result, THUMBNAIL_SIDES[0])) is not None, "kept"


def test_names_that_are_no_thumbnail_of_the_task_s_pictures_are_not_found(client: TestClient) -> None:
    task = finished_white_background(client, png_bytes(400, 300))
    base = task["reference_images"][0]["url"]
    for url in (f"{base}.100.webp", f"{base}.640.webp", base.replace("reference-1", "reference-2") + ".320.webp",
                f"{base}.320.png"):
        assert client.get(url).status_code == 404


def test_a_picture_that_cannot_be_shrunk_is_shown_whole_in_its_thumbnail_s_place(client: TestClient) -> None:
    task = finished_white_background(client, png_bytes(400, 300))
    studio: Studio = client.app.state.studio  # type: ignore[attr-defined]
    result = task["image_url"].rsplit("/", 1)[1]
    for side in THUMBNAIL_SIDES:
        studio.storage.remove_file(task["id"], thumbnail_name(result, side))
    studio.storage.write_result(task["id"], result, b"\x89PNG but cut off")
    answer = client.get(task["image_thumbnails"][0]["url"])
    assert answer.status_code == 200 and answer.content == b"\x89PNG but cut off"
    assert answer.headers["cache-control"] == "private, no-cache", "not kept as the thumbnail"
