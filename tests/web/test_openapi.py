"""The OpenAPI document says what the server does: its examples fit its schemas, the task JSON fits Task, the
form's schema accepts exactly what the task rules accept, every error is a declared problem, 405 names the
methods, docs/api.md is the document as published, and Redocly's recommended lint finds nothing in it."""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from fastapi.testclient import TestClient

from genkeep.config import Settings
from genkeep.errors import InvalidInput
from genkeep.tasks.manager import decode_cursor
from genkeep.tasks.model import ReferenceImage, Task, TaskError, TaskStatus, TaskType
from genkeep.tasks.new_task import TASK_ID_PATTERN, NewTask, is_task_id
from genkeep.tasks.view import task_json
from genkeep.web.reference_markdown import published_document, render
from tests.support.api import submit
from tests.support.images import png_bytes

REPO = Path(__file__).resolve().parents[2]
PROBLEM_JSON = "application/problem+json"
# Installed by `make redocly` (a step of `make test`), at the version the Makefile pins.
REDOCLY = REPO / ".cache" / "redocly" / "node_modules" / ".bin" / "redocly"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return published_document()


def _validator(document: dict[str, Any], schema: dict[str, Any]) -> Any:
    return jsonschema_rs.validator_for({**schema, "components": document["components"]})


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, path, operation) for path, item in document["paths"].items()
            for method, operation in item.items()]


def test_docs_api_md_is_the_published_document(document: dict[str, Any]) -> None:
    page = (REPO / "docs" / "api.md").read_text()
    assert page == render(document), "docs/api.md is out of date: run `make api-docs`"


def test_every_operation_has_examples_that_fit_its_schemas(document: dict[str, Any]) -> None:
    for method, path, operation in _operations(document):
        for status, answer in operation["responses"].items():
            for media_type, media in answer.get("content", {}).items():
                examples = ([media["example"]] if "example" in media
                            else [example["value"] for example in media.get("examples", {}).values()])
                if media.get("schema", {}).get("format") == "binary":
                    continue  # bytes (images, archives): no example would say more than the schema
                assert examples, f"{method} {path} {status} {media_type} has no example"
                for example in examples:
                    errors = [str(error) for error in _validator(document, media["schema"]).iter_errors(example)]
                    assert not errors, (method, path, status, errors)
                if int(status) >= 400:
                    assert media_type == PROBLEM_JSON and examples[0]["status"] == int(status)
            if int(status) in (429, 503):
                assert "Retry-After" in answer["headers"], (method, path, status)
        for media_type, media in operation.get("requestBody", {}).get("content", {}).items():
            assert "example" in media, (method, path, media_type)
    for name in ("Task", "TaskPage"):
        schema = document["components"]["schemas"][name]
        for example in schema["examples"]:
            assert _validator(document, {"$ref": f"#/components/schemas/{name}"}).is_valid(example)


def _task(status: TaskStatus, **fields: Any) -> Task:
    return Task(**{
        "id": "0123456789abcdef0123456789abcdef", "owner_id": "owner", "type": TaskType.CLOTHING_CHANGE,
        "status": status, "prompt": None, "created_at": 1_700_000_000_000, "updated_at": 1_700_000_000_500,
        "reference_images": (ReferenceImage("reference-1.png", 640, 480, "image/png"),
                             ReferenceImage("reference-2.jpg", 800, 1200, "image/jpeg")),
    } | fields)


@pytest.mark.parametrize("task", [
    _task(TaskStatus.PENDING),
    _task(TaskStatus.PROCESSING, progress=0.25, preview_name="preview-1.webp", engine="local", prompt="linen"),
    _task(TaskStatus.COMPLETED, progress=1.0, result_name="result.png", engine="local",
          finished_at=1_700_000_009_000),
    _task(TaskStatus.FAILED, error=TaskError("canceled", "You canceled this generation."),
          finished_at=1_700_000_001_000),
], ids=["pending", "processing", "completed", "failed"])
def test_the_task_json_fits_the_task_schema(document: dict[str, Any], task: Task) -> None:
    encoded = task_json(task)
    schema = document["components"]["schemas"]["Task"]
    assert set(encoded) == set(schema["properties"]) == set(schema["required"])
    errors = [str(error) for error in _validator(document, schema).iter_errors(encoded)]
    assert not errors


PROMPTS = [None, "", "   ", "a kite", "x" * 2000, "x" * 2001, " " + "x" * 1999 + " ", "line\nbreak\ttab",
           "nul\x00byte", "bell\x07", "del\x7f", "c1\x85", "\u3000", "\ufeff", "文字"]


def test_the_forms_schema_accepts_exactly_what_the_task_rules_accept(document: dict[str, Any]) -> None:
    """The form is parsed by hand (its checks come before the body is read), and its schema is generated from
    the same rules: for every type, prompt and image count both must agree."""
    schemas = document["components"]["schemas"]
    with_images = _validator(document, schemas["TaskForm"])
    without_images = _validator(document, schemas["TaskFormWithoutImages"])
    for raw_type, prompt, count in itertools.product(["CREATE", "WHITE_BACKGROUND", "CLOTHING_CHANGE", "create",
                                                      "PAINT", ""], PROMPTS, range(6)):
        form: dict[str, Any] = {"type": raw_type}
        if prompt is not None:
            form["prompt"] = prompt
        try:
            NewTask.build(raw_type, prompt, count, max_prompt_chars=Settings().max_prompt_chars)
            accepted = True
        except InvalidInput:
            accepted = False
        case = (raw_type, prompt, count)
        assert with_images.is_valid(form | ({"reference_images": [""] * count} if count else {})) == accepted, case
        if count == 0:
            assert without_images.is_valid(form) == accepted, case


def test_405_names_every_method_the_address_takes(client: TestClient) -> None:
    for method, path, allowed in [("PUT", "/api/tasks", "GET, POST"),
                                  ("PATCH", "/api/tasks/0123456789abcdef0123456789abcdef", "DELETE, GET"),
                                  ("GET", "/api/tasks/0123456789abcdef0123456789abcdef/cancel", "POST"),
                                  ("OPTIONS", "/healthz", "GET")]:
        answer = client.request(method, path)
        assert answer.status_code == 405, (method, path)
        assert answer.headers["allow"] == allowed
        assert answer.headers["content-type"] == PROBLEM_JSON and allowed in answer.json()["detail"]


def test_unknown_methods_are_refused_not_failed(client: TestClient) -> None:
    for method in ("PROPFIND", "FOO", "TRACE", "CONNECT", "QUERY"):
        for path in ("/api/tasks", "/api/tasks/0123456789abcdef0123456789abcdef", "/files/x/y", "/", "/nowhere"):
            answer = client.request(method, path)
            assert answer.status_code in (404, 405), (method, path, answer.status_code)
            assert answer.headers["content-type"] == PROBLEM_JSON


def test_the_form_refuses_fields_it_does_not_have(client: TestClient) -> None:
    extra = client.post("/api/tasks", data={"type": "CREATE", "prompt": "a kite", "seed": "7"})
    assert extra.status_code == 422 and "'seed'" in extra.json()["detail"]
    twice = client.post("/api/tasks", files=[("type", (None, "CREATE")), ("type", (None, "WHITE_BACKGROUND")),
                                             ("prompt", (None, "a kite"))])
    assert twice.status_code == 422 and twice.json()["field"] == "type"
    lowercase = client.post("/api/tasks", data={"type": "create", "prompt": "a kite"})
    assert lowercase.status_code == 422 and lowercase.json()["field"] == "type"
    assert client.get("/api/tasks").json()["items"] == []


def test_a_used_idempotency_key_does_not_excuse_a_wrong_request(client: TestClient) -> None:
    key = {"Idempotency-Key": "same-key"}
    first = submit(client, headers=key)
    assert first.status_code == 201
    assert submit(client, headers=key).json()["id"] == first.json()["id"]
    wrong = submit(client, "WHITE_BACKGROUND", images=[], headers=key)
    assert wrong.status_code == 422 and wrong.json()["field"] == "reference_images"


def test_a_used_idempotency_key_with_another_request_is_422_and_makes_nothing(client: TestClient) -> None:
    key = {"Idempotency-Key": "kite-1"}
    first = submit(client, prompt="a red kite", headers=key)
    assert first.status_code == 201
    for other in (submit(client, prompt="a blue kite", headers=key),
                  submit(client, "WHITE_BACKGROUND", prompt="a red kite", headers=key)):
        assert other.status_code == 422 and other.headers["content-type"] == PROBLEM_JSON
        assert other.json()["code"] == "idempotency_key_reused" and "new key" in other.json()["detail"]
    assert [task["id"] for task in client.get("/api/tasks").json()["items"]] == [first.json()["id"]]


@pytest.mark.parametrize("limit", ["+5", " 5", "5_0", "٥", "5.0", "-1"])
def test_the_list_limit_is_a_plain_whole_number(client: TestClient, limit: str) -> None:
    answer = client.get("/api/tasks", params={"limit": limit})
    assert answer.status_code == 422 and answer.json()["field"] == "limit"


def test_readiness_names_what_did_not_answer(client: TestClient, document: dict[str, Any]) -> None:
    studio = client.app.state.studio  # type: ignore[attr-defined]
    studio.storage.ready = lambda: False
    answer = client.get("/readyz")
    assert answer.status_code == 503 and answer.headers["retry-after"]
    assert answer.json()["failed"] == ["image storage"] and "image storage" in answer.json()["detail"]
    schema = document["paths"]["/readyz"]["get"]["responses"]["503"]["content"][PROBLEM_JSON]["schema"]
    assert _validator(document, schema).is_valid(answer.json())


def test_a_reference_image_is_served_as_the_document_says(client: TestClient, document: dict[str, Any]) -> None:
    task = submit(client, "WHITE_BACKGROUND", images=[png_bytes()]).json()
    image = client.get(task["reference_images"][0]["url"])
    declared = document["paths"]["/files/{task_id}/{name}"]["get"]["responses"]["200"]["content"]
    assert image.status_code == 200 and image.headers["content-type"] in declared


@pytest.mark.parametrize("text", ["0123456789abcdef0123456789abcdef", "0123456789ABCDEF0123456789abcdef",
                                  "0123456789abcdef0123456789abcde", "0123456789abcdef0123456789abcdef\n", "",
                                  "g123456789abcdef0123456789abcdef"])
def test_the_published_task_id_pattern_is_what_the_server_reads_as_an_id(text: str) -> None:
    assert bool(re.fullmatch(TASK_ID_PATTERN.strip("^$"), text)) == is_task_id(text)


@pytest.mark.parametrize("text", ["0-" + "0" * 32, "1767225600000-" + "9f" * 16, "9" * 18 + "-" + "a" * 32,
                                  "9" * 19 + "-" + "a" * 32, "12-" + "A" * 32, "12-" + "a" * 31, "-12-" + "a" * 32,
                                  "12-" + "a" * 32 + "\n", "", "12:" + "a" * 32])
def test_the_published_cursor_pattern_is_exactly_what_the_server_pages_after(document: dict[str, Any],
                                                                             text: str) -> None:
    (cursor,) = [parameter for parameter in document["paths"]["/api/tasks"]["get"]["parameters"]
                 if parameter["name"] == "cursor"]
    published = jsonschema_rs.validator_for(cursor["schema"]).is_valid(text)
    try:
        decode_cursor(text)
        accepted = True
    except InvalidInput:
        accepted = False
    assert published == accepted


def test_redoclys_recommended_lint_finds_nothing(document: dict[str, Any], tmp_path: Path) -> None:
    """Linters API teams run in CI (Redocly's recommended rules) accept the document: 0 errors, 0 warnings."""
    if not REDOCLY.exists():
        reason = f"Redocly CLI is not installed in {REDOCLY.parents[3].name}/ (make redocly needs npm)"
        if os.environ.get("GENKEEP_REQUIRE_NODE") == "1":
            pytest.fail(reason + " and GENKEEP_REQUIRE_NODE=1")
        pytest.skip(reason)
    path = tmp_path / "openapi.json"
    path.write_text(json.dumps(document))
    # Run where no redocly.yaml is, so the recommended rules apply; no usage report or update check leaves.
    env = os.environ | {"REDOCLY_TELEMETRY": "off", "REDOCLY_SUPPRESS_UPDATE_NOTICE": "true"}
    done = subprocess.run([str(REDOCLY), "lint", "--format=json", str(path)], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=120)
    report = json.loads(done.stdout)
    problems = [f"{problem['ruleId']}: {problem['message']}" for problem in report["problems"]]
    assert report["totals"]["errors"] == report["totals"]["warnings"] == 0, problems
