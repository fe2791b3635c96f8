"""What a seller reads from the API: problems in the page's language, engines that say whether they read the
prompt and whether their results are stand-ins, and tasks that tell waiting from running."""

from __future__ import annotations

import io
import os
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from genkeep.config import Settings
from genkeep.studio import Studio
from genkeep.tasks.model import TaskType
from genkeep.web.app import create_app
from tests.support.api import submit
from tests.support.images import png_bytes

ZH = {"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"}


def _noise_png(side: int) -> bytes:
    """A PNG that does not compress: its size in bytes is about its pixels' (3 bytes each)."""
    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(out, "PNG")
    return out.getvalue()


def _problem(answer: Any, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = answer.json()
    return problem


@pytest.mark.parametrize(("images", "status", "english", "chinese"), [
    ([b"just some words\n" * 10], 415, "is not a PNG, JPEG or WebP image", "商品照片不是 PNG、JPEG 或 WebP 图片"),
    ([png_bytes(20, 20)], 422, "is only 20x20 pixels", "商品照片只有 20×20 像素"),
    ([png_bytes(), png_bytes()], 422, "takes exactly 1 product photo", "白底图需要正好 1 张商品照片；你发送了 2 张"),
])
def test_a_problem_is_told_in_chinese_to_a_page_that_asks_and_in_english_otherwise(
        client: TestClient, images: list[bytes], status: int, english: str, chinese: str) -> None:
    files = [("reference_images", (f"photo{i}.jpg", body, "image/jpeg")) for i, body in enumerate(images)]
    in_chinese = _problem(client.post("/api/tasks", data={"type": "WHITE_BACKGROUND"}, files=files, headers=ZH),
                          status)
    asked_nothing = _problem(client.post("/api/tasks", data={"type": "WHITE_BACKGROUND"}, files=files), status)
    assert chinese in in_chinese["detail"]
    assert english in asked_nothing["detail"]
    # The same problem otherwise: a client keyed on code and field sees no difference.
    assert {key: in_chinese[key] for key in ("code", "field", "status")} == \
        {key: asked_nothing[key] for key in ("code", "field", "status")}


def test_a_file_over_the_size_limit_is_refused_in_chinese(settings: Settings) -> None:
    small_cap = settings.with_overrides(max_upload_bytes=64 * 1024)
    with TestClient(create_app(small_cap)) as client:
        big = _noise_png(400)
        assert len(big) > 64 * 1024
        problem = _problem(client.post("/api/tasks", data={"type": "WHITE_BACKGROUND"}, headers=ZH,
                                       files=[("reference_images", ("big.png", big, "image/png"))]), 413)
    assert problem["detail"] == "商品照片超过 0.0625 MB，请上传更小的文件。"


def test_too_many_unfinished_tasks_is_said_in_chinese(settings: Settings) -> None:
    capped = settings.with_overrides(max_unfinished_per_owner=1, max_waiting_per_owner=0, workers=0)
    with TestClient(create_app(capped)) as client:
        assert submit(client, prompt="a kite").status_code == 201
        problem = _problem(submit(client, prompt="a boat", headers=ZH), 429)
    assert problem["detail"] == "你已有 1 个生成任务在进行中，请等其中一个完成，或取消一个。"


def test_a_full_line_is_said_in_chinese(settings: Settings) -> None:
    capped = settings.with_overrides(max_unfinished_per_owner=1, max_waiting_per_owner=1, workers=0)
    with TestClient(create_app(capped)) as client:
        assert [submit(client, prompt="a kite").json()["status"] for _ in range(2)] == ["processing", "pending"]
        problem = _problem(submit(client, prompt="a boat", headers=ZH), 429)
    assert problem["detail"] == "你已有 1 个生成任务在进行中，另有 1 个在排队，请等一些完成，或取消一些。"


def test_a_problem_without_a_sentence_of_its_own_is_still_chinese(client: TestClient) -> None:
    problem = _problem(client.get("/api/tasks?limit=banana", headers=ZH), 422)
    assert problem["detail"] == "请求内容有误，请检查后重新发送。"
    assert _problem(client.get("/nowhere", headers=ZH), 404)["detail"] == "这里什么都没有，请检查地址。"


def test_a_task_no_worker_has_started_has_no_attempts_yet(settings: Settings) -> None:
    # No workers: the task waits, and its JSON says so on both databases (attempts comes from the SQL view).
    with TestClient(create_app(settings.with_overrides(workers=0))) as client:
        task = submit(client).json()
        assert task["attempts"] == 0
        assert client.get(f"/api/tasks/{task['id']}").json()["attempts"] == 0
        studio: Studio = client.app.state.studio  # type: ignore[attr-defined]
        [claimed] = studio.manager.claim("worker-1", {TaskType.CREATE: "scripted"})
        listed = client.get("/api/tasks?status=processing").json()["items"]
    assert claimed.id == task["id"]
    assert [item["attempts"] for item in listed] == [1]


def test_api_engines_says_which_engines_read_the_prompt_and_which_make_stand_ins(settings: Settings) -> None:
    with TestClient(create_app(settings.with_overrides(engine="local", workers=0))) as client:
        items = {item["type"]: item for item in client.get("/api/engines").json()["items"]}
        white_page = client.get("/white-background").text
        create_page = client.get("/create").text
    assert {kind: (item["reads_prompt"], item["stand_in"]) for kind, item in items.items()} == {
        "CREATE": (True, True), "WHITE_BACKGROUND": (False, False), "CLOTHING_CHANGE": (False, True)}
    # A box the engine would not read is not offered; where it is read, the page says what it changes.
    assert 'id="prompt"' not in white_page and "No prompt needed" in white_page
    assert 'id="prompt"' in create_page and "Your words choose the sample" in create_page


def test_a_hosted_model_reads_the_prompt_and_makes_real_results(settings: Settings) -> None:
    hosted = settings.with_overrides(engine="openai", workers=0)
    with TestClient(create_app(hosted)) as client:
        items = client.get("/api/engines").json()["items"]
        page = client.get("/white-background").text
    assert all(item["reads_prompt"] and not item["stand_in"] for item in items)
    assert 'id="prompt"' in page and "The model follows what you write here." in page
