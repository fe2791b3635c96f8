"""Bad input gets the status API.md gives, a sentence saying what to change, and leaves nothing behind."""

from __future__ import annotations

import io
import json
import re
import time
import zlib
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from genkeep.config import Settings
from genkeep.reference_images import ACCEPTED_FORMATS
from genkeep.studio import Studio
from genkeep.web.app import create_app
from tests.support.images import png_bytes
from tests.support.storage import folder_of


def _stored_files(studio: Studio) -> list[Path]:
    return [path for path in folder_of(studio).root.rglob("*") if path.is_file()]


def _bomb_png(side: int = 20000) -> bytes:
    """A tiny PNG whose header claims side x side pixels (a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    header = side.to_bytes(4, "big") * 2 + bytes([8, 0, 0, 0, 0])
    row = b"\x00" * (side // 8 + 1)
    pixels = zlib.compress(row * 64, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100"><rect width="100" height="100"/></svg>'
CASES = {
    "unknown type": ({"type": "PAINT", "prompt": "x"}, [], 422, "type"),
    "CREATE without prompt": ({"type": "CREATE"}, [], 422, "prompt"),
    "wrong image count": ({"type": "CLOTHING_CHANGE"}, [png_bytes()], 422, "reference_images"),
    "a 0-byte file": ({"type": "WHITE_BACKGROUND"}, [b""], 422, "reference_images"),
    "a truncated PNG": ({"type": "WHITE_BACKGROUND"}, [png_bytes(300, 300)[:200]], 422, "reference_images"),
    "a text file named .png": ({"type": "WHITE_BACKGROUND"}, [b"just some words\n" * 10], 415,
                               "reference_images"),
    "an SVG": ({"type": "WHITE_BACKGROUND"}, [SVG], 415, "reference_images"),
    "a decompression bomb": ({"type": "WHITE_BACKGROUND"}, [_bomb_png()], 422, "reference_images"),
    "a prompt over the cap": ({"type": "CREATE", "prompt": "x" * 2001}, [], 422, "prompt"),
    "a tiny image": ({"type": "WHITE_BACKGROUND"}, [png_bytes(20, 20)], 422, "reference_images"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_refused_and_leaves_nothing(client: TestClient, case: str) -> None:
    data, images, status, field = CASES[case]
    files = [("reference_images", (f"upload{i}.png", body, "image/png")) for i, body in enumerate(images)]
    answer = client.post("/api/tasks", data=data, files=files or None)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["status"] == status and problem["code"] and problem["field"] == field
    assert len(problem["detail"]) > 20 and problem["detail"].endswith(".")
    assert client.get("/api/tasks").json()["items"] == []
    assert _stored_files(client.app.state.studio) == []  # type: ignore[attr-defined]


def test_a_file_over_the_byte_cap_is_413(client: TestClient) -> None:
    studio: Studio = client.app.state.studio  # type: ignore[attr-defined]
    big = io.BytesIO()
    big.write(png_bytes(200, 200))
    big.write(b"\0" * (studio.settings.max_upload_bytes + 10))
    files = [("reference_images", ("huge.png", big.getvalue(), "image/png"))]
    answer = client.post("/api/tasks", data={"type": "WHITE_BACKGROUND"}, files=files)
    assert answer.status_code == 413
    assert "MB" in answer.json()["detail"]
    assert client.get("/api/tasks").json()["items"] == []
    assert _stored_files(studio) == []


def test_an_unknown_task_id_is_404(client: TestClient) -> None:
    answer = client.get("/api/tasks/0123456789abcdef0123456789abcdef")
    assert answer.status_code == 404 and answer.headers["content-type"] == "application/problem+json"
    assert client.get("/files/0123456789abcdef0123456789abcdef/result.png").status_code == 404


@pytest.mark.parametrize("cursor", ["not-a-cursor", "!!!", "MTIz", "", "12-abc", "-1-" + "a" * 32,
                                    "12:" + "a" * 32, "12-" + "A" * 32, "12-" + "a" * 32 + "\n"])
def test_a_malformed_cursor_is_422(client: TestClient, cursor: str) -> None:
    answer = client.get("/api/tasks", params={"cursor": cursor})
    assert answer.status_code == 422
    assert answer.json()["field"] == "cursor"


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 101}, {"status": "done"}, {"type": "PAINT"},
                                    {"limit": "many"}])
def test_bad_list_parameters_are_422(client: TestClient, params: dict[str, str | int]) -> None:
    answer = client.get("/api/tasks", params=params)
    assert answer.status_code == 422
    assert answer.json()["detail"]


def test_metadata_is_stripped_and_orientation_applied(client: TestClient) -> None:
    from PIL import Image

    image = Image.new("RGB", (200, 100), (10, 20, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° on display
    exif[0x010F] = "SecretCam"
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif.tobytes())
    files = [("reference_images", ("../../etc/passwd.jpg", out.getvalue(), "image/jpeg"))]
    task = client.post("/api/tasks", data={"type": "WHITE_BACKGROUND", "prompt": "slow:30"}, files=files).json()
    reference = task["reference_images"][0]
    assert (reference["width"], reference["height"]) == (100, 200)
    stored = client.get(reference["url"])
    assert stored.headers["content-type"] == "image/jpeg"
    assert b"SecretCam" not in stored.content
    assert "passwd" not in reference["url"]
    client.post(f"/api/tasks/{task['id']}/cancel")


def test_an_upright_jpeg_keeps_its_pixels_and_loses_its_metadata(client: TestClient) -> None:
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(7).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=90, exif=exif.tobytes(), comment=b"secret comment")
    upload = out.getvalue() + b"trailing bytes after the image"
    files = [("reference_images", ("photo.jpg", upload, "image/jpeg"))]
    task = client.post("/api/tasks", data={"type": "WHITE_BACKGROUND", "prompt": "slow:30"}, files=files).json()
    stored = client.get(task["reference_images"][0]["url"]).content
    assert b"SecretCam" not in stored and b"secret comment" not in stored and b"trailing" not in stored
    original = np.asarray(Image.open(io.BytesIO(upload)))
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(stored))), original)  # lossless: not re-encoded
    client.post(f"/api/tasks/{task['id']}/cancel")


def _stored(client: TestClient, name: str, data: bytes, media_type: str) -> bytes:
    files = [("reference_images", (name, data, media_type))]
    task = client.post("/api/tasks", data={"type": "WHITE_BACKGROUND", "prompt": "slow:30"}, files=files).json()
    stored = client.get(task["reference_images"][0]["url"]).content
    client.post(f"/api/tasks/{task['id']}/cancel")
    return stored


def test_uploaders_bytes_in_colour_profiles_thumbnails_and_flags_are_not_stored(client: TestClient) -> None:
    import struct

    from PIL import Image, ImageCms

    padding = b"uploader's bytes " * 800_000  # 13.6 MB
    photo = Image.new("RGB", (400, 300), (10, 120, 30))
    out = io.BytesIO()
    photo.save(out, "JPEG", quality=90, icc_profile=padding)
    plain = out.getvalue()
    # The same JPEG with its JFIF segment carrying a payload past its fields, and an Adobe segment with extra bytes.
    jfif_end = 4 + struct.unpack(">H", plain[4:6])[0]
    fat_jfif = b"\xff\xe0" + struct.pack(">H", 2 + 14 + 5000) + plain[6:6 + 12] + b"\x00\x00" + b"J" * 5000
    adobe = b"\xff\xee" + struct.pack(">H", 2 + 12 + 5000) + b"Adobe\x00\x64\x00\x00\x00\x00\x01" + b"A" * 5000
    upright = plain[:2] + fat_jfif + adobe + plain[jfif_end:]
    stored = _stored(client, "photo.jpg", upright, "image/jpeg")
    assert len(stored) < 50_000, f"{len(stored)} bytes stored for a 400x300 picture"
    assert b"uploader's bytes" not in stored and b"JJJJ" not in stored and b"AAAA" not in stored

    out = io.BytesIO()
    photo.save(out, "PNG", icc_profile=b"not a profile " * 40_000)
    stored = _stored(client, "photo.png", out.getvalue(), "image/png")
    assert b"iCCP" not in stored and len(stored) < 50_000

    # A real, small profile is the picture's own: kept.
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    for image_format, media_type in (("JPEG", "image/jpeg"), ("PNG", "image/png")):
        out = io.BytesIO()
        photo.save(out, image_format, icc_profile=srgb)
        stored = _stored(client, "photo", out.getvalue(), media_type)
        assert Image.open(io.BytesIO(stored)).info.get("icc_profile") == srgb, image_format


def test_a_truncated_jpeg_is_422(client: TestClient) -> None:
    from tests.support.images import jpeg_bytes

    body = jpeg_bytes(400, 300)
    files = [("reference_images", ("cut.jpg", body[: len(body) * 2 // 3], "image/jpeg"))]
    answer = client.post("/api/tasks", data={"type": "WHITE_BACKGROUND"}, files=files)
    assert answer.status_code == 422 and "damaged or incomplete" in answer.json()["detail"]
    assert client.get("/api/tasks").json()["items"] == []


@pytest.mark.parametrize("task_id", ["%00", "x" * 5000, "../../etc/passwd", "ABCDEF" * 6])
def test_odd_task_ids_are_404_not_500(client: TestClient, task_id: str) -> None:
    answer = client.get(f"/api/tasks/{task_id}")
    assert answer.status_code == 404 and answer.headers["content-type"] == "application/problem+json"


def test_a_cursor_with_a_huge_number_is_422(client: TestClient) -> None:
    answer = client.get("/api/tasks", params={"cursor": "9" * 19 + "-" + "a" * 32})
    assert answer.status_code == 422 and answer.json()["field"] == "cursor"


def test_any_cursor_of_the_published_form_is_a_page(client: TestClient) -> None:
    """The document's pattern is exact: a well-formed cursor of a task that never existed still pages (after that
    moment), as schema-led clients and fuzzers expect."""
    client.post("/api/tasks", data={"type": "CREATE", "prompt": "a kite"})
    future = client.get("/api/tasks", params={"cursor": "999999999999999999-" + "f" * 32})
    past = client.get("/api/tasks", params={"cursor": "0-" + "0" * 32})
    assert future.status_code == 200 and len(future.json()["items"]) == 1
    assert past.status_code == 200 and past.json()["items"] == []


def test_a_chunked_upload_over_the_cap_is_413_and_leaves_nothing(client: TestClient) -> None:
    studio: Studio = client.app.state.studio  # type: ignore[attr-defined]
    boundary = "genkeepboundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"type\"\r\n\r\nWHITE_BACKGROUND\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"reference_images\"; filename=\"a.png\"\r\n"
            "Content-Type: image/png\r\n\r\n").encode()

    def body() -> object:
        yield head
        chunk = b"\0" * (1024 * 1024)
        for _ in range(studio.settings.max_upload_bytes * 4 // len(chunk) + 3):
            yield chunk

    answer = client.post("/api/tasks", content=body(),  # type: ignore[arg-type]
                         headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert answer.status_code == 413
    assert client.get("/api/tasks").json()["items"] == []
    assert _stored_files(studio) == []


def test_too_many_form_parts_is_422(client: TestClient) -> None:
    files = [("reference_images", (f"a{i}.png", png_bytes(), "image/png")) for i in range(20)]
    answer = client.post("/api/tasks", data={"type": "CREATE", "prompt": "x"}, files=files)
    assert answer.status_code == 422
    assert "at most 4" in answer.json()["detail"]


def test_the_page_offers_exactly_the_image_formats_the_server_accepts(client: TestClient) -> None:
    """One list: the file pickers, the page's own check of a dropped file, the form's schema and the server."""
    served = [media_type for media_type, _ in ACCEPTED_FORMATS.values()]
    page = client.get("/white-background").text
    config = json.loads(re.search(r'<script type="application/json" id="genkeep-config">(.*?)</script>', page,
                                  re.S).group(1))  # type: ignore[union-attr]
    assert config["acceptedTypes"] == served
    assert set(re.findall(r'accept="([^"]*)"', page)) == {",".join(served)}
    encoding = client.get("/openapi.json").json()["paths"]["/api/tasks"]["post"]["requestBody"]["content"][
        "multipart/form-data"]["encoding"]["reference_images"]["contentType"]
    assert encoding.split(", ") == served


SECURITY_HEADERS = ("content-security-policy", "x-content-type-options", "x-frame-options")


@pytest.mark.parametrize("case", ["non-ASCII owner cookie", "non-ASCII signature", "limit of 4,301 digits"])
def test_unreadable_unauthenticated_input_is_4xx_or_ignored_never_500(client: TestClient, case: str) -> None:
    task_id = "a" * 32
    if case == "non-ASCII owner cookie":
        cookie = "genkeep_owner=\u00e9t\u00e9.sign\u00e9".encode("latin-1")
        answer = client.get("/api/tasks", headers={b"cookie": cookie})
        # A cookie that is not genkeep's is no cookie: a new owner, with nothing.
        assert answer.status_code == 200 and answer.json()["items"] == []
    elif case == "non-ASCII signature":
        expires = int(time.time()) + 60
        answer = client.get(f"/files/{task_id}/reference-1.png", params={"expires": expires, "sig": "\u00e9" * 32})
        assert answer.status_code == 404
    else:
        answer = client.get("/api/tasks", params={"limit": "1" * 4301})
        assert answer.status_code == 422 and answer.json()["field"] == "limit"
    for name in SECURITY_HEADERS:
        assert name in answer.headers, name


def test_an_unexpected_error_is_a_500_problem_with_the_security_headers(settings: Settings) -> None:
    app = create_app(settings.with_overrides(workers=0))

    async def broken() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/broken", broken)
    with TestClient(app, raise_server_exceptions=False) as client:
        answer = client.get("/broken")
    assert answer.status_code == 500
    assert answer.headers["content-type"] == "application/problem+json"
    assert "try again" in answer.json()["detail"]
    for name in SECURITY_HEADERS:
        assert name in answer.headers, name
