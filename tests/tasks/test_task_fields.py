"""The task's JSON is declared once (tasks/task_fields.py): the database's JSON on SQLite and PostgreSQL, task_json
and the contract's Task follow the declaration, key for key and in its order, and a key added to it shows in all
three."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import jsonschema_rs
from pydantic import Field
from sqlalchemy import text

from genkeep.tasks import database
from genkeep.tasks.backends.base import load_statements
from genkeep.tasks.model import ReferenceImage, Task, TaskStatus, TaskType
from genkeep.tasks.task_fields import (
    REFERENCE_IMAGE_KEYS,
    TASK_KEYS,
    Column,
    Entries,
    EntryValue,
    Key,
    json_of,
    model,
)
from genkeep.tasks.view import task_json
from genkeep.web import contract
from tests.support.database import connect as connect_database

T0 = 1_700_000_000_000


def test_the_database_the_python_json_and_the_schema_show_the_declared_keys_in_order() -> None:
    names = [key.name for key in TASK_KEYS]
    for dialect in ("sqlite", "postgresql"):
        view = load_statements(dialect)["view_owned"]
        places = [view.index(f"'{name}', ") for name in names]
        assert places == sorted(places), dialect
    task = Task(id="0" * 32, owner_id="o", type=TaskType.CREATE, status=TaskStatus.PENDING, prompt=None,
                reference_images=(), created_at=T0, updated_at=T0)
    assert list(task_json(task)) == names
    schema = contract.Task.model_json_schema()
    assert list(schema["properties"]) == schema["required"] == names
    image = schema["$defs"]["ReferenceImage"]
    assert list(image["properties"]) == image["required"] == [key.name for key in REFERENCE_IMAGE_KEYS]


# What adding a key takes: a line in the declaration (the column and the model's field aside), as `batch` and the
# images' `filename` were added. Here two the JSON does not show: the task's idempotency key, after its batch, and
# each reference image's content type.
KEY = Key("idempotency_key", Column("idempotency_key"), str | None, Field(description="The key it was sent with."))
CONTENT_TYPE = Key("content_type", EntryValue("content_type"), str | None, Field(description="Its media type."))
IMAGE_KEYS = (*REFERENCE_IMAGE_KEYS, CONTENT_TYPE)


def _with_added_keys() -> tuple[Key, ...]:
    keys: list[Key] = []
    for key in TASK_KEYS:
        if key.name == "reference_images":
            images: Any = model("ReferenceImage", "An uploaded image.", IMAGE_KEYS)
            key = dataclasses.replace(key, shown=Entries("reference_images", IMAGE_KEYS), annotation=list[images])
        keys.append(key)
        if key.name == "batch":
            keys.append(KEY)
    return tuple(keys)


def _tasks() -> list[Task]:
    images = (ReferenceImage("reference-1.jpg", 1024, 768, "image/jpeg", filename='bottle "瓶".jpg'),
              ReferenceImage("reference-2.png", 640, 480, "image/png"))
    return [
        Task(id="a" * 32, owner_id="o", type=TaskType.CLOTHING_CHANGE, status=TaskStatus.COMPLETED, prompt="linen",
             reference_images=images, created_at=T0, processing_since=T0 + 1, updated_at=T0 + 9, finished_at=T0 + 9,
             result_name="result.png", progress=1.0, engine="local", attempts=1, batch="spring 春",
             idempotency_key="catalog 目录 1"),
        Task(id="b" * 32, owner_id="o", type=TaskType.CREATE, status=TaskStatus.PROCESSING, prompt=None,
             reference_images=(), created_at=T0 + 1, updated_at=T0 + 2, preview_name="preview-1.webp"),
    ]


def _row(task: Task) -> dict[str, Any]:
    """The task's row, its reference images stored as the entries of the column are (one as an older entry,
    without a filename)."""
    entries = [{key: value for key, value in dataclasses.asdict(image).items() if value is not None}
               for image in task.reference_images]
    return task.insert_params() | {
        "reference_images": json.dumps(entries), "result_name": task.result_name, "progress": task.progress,
        "engine": task.engine, "attempts": task.attempts, "finished_at": task.finished_at,
        "preview_name": task.preview_name, "processing_since": task.processing_since}


def test_a_key_added_to_the_declaration_shows_in_the_database_the_python_json_and_the_schema(
        database_url: str, tmp_path: Path) -> None:
    database.upgrade(database_url, tmp_path)
    dialect = "sqlite" if database_url.startswith("sqlite") else "postgresql"
    keys = _with_added_keys()
    task_schema = model("Task", "A task.", keys).model_json_schema()
    assert task_schema["properties"]["idempotency_key"]["anyOf"] == [{"type": "string"}, {"type": "null"}]
    assert "content_type" in task_schema["$defs"]["ReferenceImage"]["required"]
    fits = jsonschema_rs.validator_for(task_schema)
    engine = connect_database(database_url)
    # In one transaction, rolled back: the session's PostgreSQL database keeps no rows of this test.
    with engine.connect() as conn:
        transaction = conn.begin()
        for task in _tasks():
            row = _row(task)
            conn.execute(text(f"INSERT INTO tasks ({', '.join(row)}) VALUES ({', '.join(':' + c for c in row)})"),
                         row)
        statement = text(load_statements(dialect, keys)["view_owned"])
        shown = {task.id: conn.execute(statement, {"id": task.id, "owner_id": "o"}).one()[-1] for task in _tasks()}
        transaction.rollback()
    engine.dispose()
    for task in _tasks():
        expected = json_of(task, keys)
        from_database = json.loads(shown[task.id])
        assert from_database == expected
        assert list(from_database) == list(expected) == [key.name for key in keys]
        fits.validate(from_database)
    completed, processing = (json.loads(shown[task.id]) for task in _tasks())
    assert completed["idempotency_key"] == "catalog 目录 1" and processing["idempotency_key"] is None
    assert completed["batch"] == "spring 春" and processing["batch"] is None
    assert [image["content_type"] for image in completed["reference_images"]] == ["image/jpeg", "image/png"]
    assert [image["filename"] for image in completed["reference_images"]] == ['bottle "瓶".jpg', None]
