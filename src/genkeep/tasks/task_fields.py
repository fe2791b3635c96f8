"""The task's JSON, declared once: every key the HTTP contract shows of a task, in order, with the columns it comes
from, how it is shown, and what the OpenAPI document says of it.

Three things are made from `TASK_KEYS`, so that a new key is one line here (and its column in the schema, model and
a migration, which the JSON does not see):
- the database's JSON, which the hot reads (the status poll and the list) answer with: `task_view_sql` writes the
  `task_view` columns of queries.sql for each dialect when the statements load, from the `shown_` fragments there;
- view.task_json, the same JSON built in Python from a Task (the reference the contract suite checks the
  database's JSON against, for tasks in every state, on SQLite and PostgreSQL);
- the contract's Task schema (web/contract.py), whose OpenAPI document and examples are checked by tests.

A key's schema is a pydantic Field with its description and constraints; its type is the `annotation`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.config import JsonDict
from pydantic.fields import FieldInfo

from genkeep.previews import REFERENCE_THUMBNAIL_SIDES, THUMBNAIL_SIDES, thumbnail_name
from genkeep.tasks.model import ResultNote, Task, TaskStatus, TaskType, rfc3339
from genkeep.tasks.new_task import TASK_ID_PATTERN

# Where the owner's browser fetches a task's images: FILES_PATH + task id + "/" + file name. task_view_sql puts
# this prefix into the database's JSON.
FILES_PATH = "/files/"
URI_REFERENCE: JsonDict = {"format": "uri-reference"}


def file_url(task_id: str, name: str) -> str:
    """Where the owner's browser fetches a task's image."""
    return f"{FILES_PATH}{task_id}/{name}"


def thumbnails_json(task_id: str, name: str, sides: tuple[int, ...]) -> list[dict[str, Any]]:
    """Where the owner's browser fetches a picture's thumbnails, smallest first. Always listed: a thumbnail missing
    from the storage (a task older than thumbnails) is made by the file route on its first request."""
    return [{"url": file_url(task_id, thumbnail_name(name, side)), "max_side": side} for side in sides]


class Fragments:
    """The `shown_` fragments of queries.sql for one dialect, filled in by name."""

    def __init__(self, statements: Mapping[str, str]) -> None:
        self.statements = statements

    def __call__(self, fragment: str, /, **values: str) -> str:
        text = self.statements["shown_" + fragment]
        for placeholder, value in values.items():
            text = text.replace("{" + placeholder + "}", value)
        return text

    def object(self, keys: Iterable[Key]) -> str:
        return self("object", keys=", ".join(f"'{key.name}', {key.shown.sql(self)}" for key in keys))

    def thumbnails(self, url: str, sides: tuple[int, ...]) -> str:
        return self("thumbnails", thumbnails=", ".join(
            self("thumbnail", url=url, suffix=thumbnail_name("", side), side=str(side)) for side in sides))


class Shown(Protocol):
    """How one key's value is made from the task's row: in SQL, and in Python from the Task (or, for a key of an
    entry of a list, from the entry)."""

    def sql(self, fill: Fragments) -> str: ...

    def value(self, task: Task, entry: Any) -> Any: ...


# ---- how a key of the task is shown, from the task's row ---------------------------------------------------------

@dataclass(frozen=True)
class Column:
    """The column's value as it is."""

    column: str

    def sql(self, fill: Fragments) -> str:
        return self.column

    def value(self, task: Task, entry: Any) -> Any:
        value = getattr(task, self.column)
        return value.value if isinstance(value, enum.Enum) else value


@dataclass(frozen=True)
class Time:
    """A time column (integer milliseconds) as RFC 3339 in UTC, or null."""

    column: str

    def sql(self, fill: Fragments) -> str:
        return fill("time", column=self.column)

    def value(self, task: Task, entry: Any) -> Any:
        return rfc3339(getattr(task, self.column))


@dataclass(frozen=True)
class JsonList:
    """A column of JSON text holding a list; NULL is an empty list."""

    column: str

    def sql(self, fill: Fragments) -> str:
        return fill("list", column=self.column)

    def value(self, task: Task, entry: Any) -> Any:
        return [item.value if isinstance(item, enum.Enum) else item for item in getattr(task, self.column)]


@dataclass(frozen=True)
class FileUrl:
    """The URL of the file a name column names, or null while it names none (or, `while_unfinished`, once the task
    is finished)."""

    column: str
    while_unfinished: bool = False

    def sql(self, fill: Fragments) -> str:
        return fill("if_named_while_unfinished" if self.while_unfinished else "if_named", column=self.column,
                    value=fill("file", name=self.column))

    def value(self, task: Task, entry: Any) -> Any:
        name = getattr(task, self.column)
        if not name or (self.while_unfinished and task.is_final):
            return None
        return file_url(task.id, name)


@dataclass(frozen=True)
class Thumbnails:
    """The thumbnails of the picture a name column names, one per side, or null while it names none."""

    column: str
    sides: tuple[int, ...]

    def sql(self, fill: Fragments) -> str:
        return fill("if_named", column=self.column, value=fill.thumbnails(fill("file", name=self.column), self.sides))

    def value(self, task: Task, entry: Any) -> Any:
        name = getattr(task, self.column)
        return thumbnails_json(task.id, name, self.sides) if name else None


@dataclass(frozen=True)
class Error:
    """Why the task failed, {code, message}, from its two columns; null while it has not. (In Python from the
    model's `error`, which holds the two columns, None unless failed.)"""

    code: str
    message: str

    def sql(self, fill: Fragments) -> str:
        return fill("error", code=self.code, message=self.message)

    def value(self, task: Task, entry: Any) -> Any:
        return {"code": task.error.code, "message": task.error.message} if task.error else None


@dataclass(frozen=True)
class Entries:
    """A column of JSON text holding a list of objects (the model keeps it as a tuple of dataclasses whose fields
    are the stored keys), each entry shown as an object of `keys`."""

    column: str
    keys: tuple[Key, ...]

    def sql(self, fill: Fragments) -> str:
        return fill("entries", column=self.column, entry=fill.object(self.keys))

    def value(self, task: Task, entry: Any) -> Any:
        return [{key.name: key.shown.value(task, each) for key in self.keys} for each in getattr(task, self.column)]


# ---- how a key of an entry is shown, from one entry of an Entries column ------------------------------------------

@dataclass(frozen=True)
class EntryValue:
    """The entry's value under `key` as stored (null where an older entry lacks it)."""

    key: str

    def sql(self, fill: Fragments) -> str:
        return fill("entry_value", key=self.key)

    def value(self, task: Task, entry: Any) -> Any:
        value = getattr(entry, self.key)
        return value.value if isinstance(value, enum.Enum) else value


@dataclass(frozen=True)
class EntryFileUrl:
    """The URL of the task's file the entry's `key` names."""

    key: str

    def sql(self, fill: Fragments) -> str:
        return fill("file", name=fill("entry_text", key=self.key))

    def value(self, task: Task, entry: Any) -> Any:
        return file_url(task.id, getattr(entry, self.key))


@dataclass(frozen=True)
class EntryThumbnails:
    """The thumbnails of the picture the entry's `key` names, one per side."""

    key: str
    sides: tuple[int, ...]

    def sql(self, fill: Fragments) -> str:
        return fill.thumbnails(fill("file", name=fill("entry_text", key=self.key)), self.sides)

    def value(self, task: Task, entry: Any) -> Any:
        return thumbnails_json(task.id, getattr(entry, self.key), self.sides)


@dataclass(frozen=True)
class Key:
    """One key of the task's JSON (or of an entry's): its name, how it is shown, and its schema."""

    name: str
    shown: Shown
    annotation: Any
    field: FieldInfo

    def __post_init__(self) -> None:
        # Written into the SQL as a quoted literal.
        if not self.name.isidentifier():
            raise ValueError(f"a key of the task's JSON is a plain name, not {self.name!r}")


def model(name: str, description: str, keys: Sequence[Key], config: ConfigDict | None = None) -> Any:
    """The pydantic model of an object of these keys, for the OpenAPI document. (Typed Any: mypy takes a model made
    at run time for a variable, not a type.)"""
    fields: dict[str, Any] = {key.name: (key.annotation, key.field) for key in keys}
    return create_model(name, __doc__=description, __config__=config, __module__=__name__, **fields)


# ---- the declaration -----------------------------------------------------------------------------------------------

TaskId = Annotated[str, Field(pattern=TASK_ID_PATTERN, description="The task's id: 32 hex digits, unguessable.",
                              examples=["9f0c2d6e4b1a4c7e8d3f5a6b7c8d9e0f"])]


class Thumbnail(BaseModel):
    """A small WebP rendition of a picture, for cards and lists (the picture's own URL keeps the original bytes)."""

    url: str = Field(description="Where the owner fetches the thumbnail (made on the first request if the task is "
                                 "older than thumbnails).", json_schema_extra=URI_REFERENCE)
    max_side: int = Field(ge=1, description="Its longer side in pixels, at most: a `w` descriptor for `srcset` "
                                            "(a picture smaller than this is never enlarged).",
                          examples=list(THUMBNAIL_SIDES))


ThumbnailList = Annotated[list[Thumbnail], Field(description="The picture's thumbnails, smallest first.")]


class TaskError(BaseModel):
    """Why a task failed."""

    code: str = Field(description="A short stable word: timeout, canceled, invalid_input, engine_error, "
                                  "provider_error, provider_unavailable, interrupted, storage_unavailable, …",
                      examples=["canceled"])
    message: str = Field(description="A sentence a person can act on.",
                         examples=["You canceled this generation."])


# The keys of each entry of `reference_images`, read from the entries of the column of the same name.
REFERENCE_IMAGE_KEYS = (
    Key("url", EntryFileUrl("name"), str,
        Field(description="Where the owner fetches the image.", json_schema_extra=URI_REFERENCE)),
    Key("width", EntryValue("width"), int, Field(ge=1, description="Width in pixels.")),
    Key("height", EntryValue("height"), int, Field(ge=1, description="Height in pixels.")),
    Key("thumbnails", EntryThumbnails("name", REFERENCE_THUMBNAIL_SIDES), ThumbnailList, Field()),
    Key("filename", EntryValue("filename"), str | None,
        Field(description="The name the uploaded file had (without folders); null for images uploaded before names "
                          "were kept.", examples=["bottle-01.jpg"])),
)
ReferenceImage: Any = model("ReferenceImage", "One uploaded reference image as stored (re-encoded, without metadata).",
                            REFERENCE_IMAGE_KEYS)

TASK_KEYS = (
    Key("id", Column("id"), TaskId, Field()),
    Key("type", Column("type"), TaskType, Field(description="What the generation makes.")),
    Key("status", Column("status"), TaskStatus,
        Field(description="A new task is processing from the moment it is accepted.")),
    Key("prompt", Column("prompt"), str | None,
        Field(description="The user's words, trimmed; null when none were given.")),
    Key("reference_images", Entries("reference_images", REFERENCE_IMAGE_KEYS), list[ReferenceImage],
        Field(description="The uploaded images, in upload order.")),
    Key("image_url", FileUrl("result_name"), str | None,
        Field(description="The result image, once completed: the original bytes.", json_schema_extra=URI_REFERENCE)),
    Key("image_thumbnails", Thumbnails("result_name", THUMBNAIL_SIDES), ThumbnailList | None,
        Field(description="The result's thumbnails, smallest first, once completed.")),
    Key("error", Error("error_code", "error_message"), TaskError | None,
        Field(description="Why it failed, once failed.")),
    Key("progress", Column("progress"), float | None,
        Field(ge=0, le=1, description="0 to 1, where the engine reports it.")),
    Key("preview_url", FileUrl("preview_name", while_unfinished=True), str | None,
        Field(description="The latest intermediate picture while unfinished, where the engine makes one.",
              json_schema_extra=URI_REFERENCE)),
    Key("engine", Column("engine"), str | None,
        Field(description="Which engine runs or ran it; null until one picks it up.")),
    Key("attempts", Column("attempts"), int,
        Field(ge=0, description="How many times a worker has started it: 0 while it waits for a free worker, more "
                                "than 1 once a worker took it over after an interruption (a restart, a lost "
                                "worker).")),
    Key("notes", JsonList("notes"), list[ResultNote],
        Field(description="What the engine said about the result besides the picture, for the page to tell the "
                          "seller: `cut_by_frame`, the product runs off the photo's edge, so part of it may be "
                          "missing. Empty for most tasks; new values may be added.")),
    Key("batch", Column("batch"), str | None,
        Field(description="The `batch` it was sent with (a catalog's photos share one); null for a task sent alone.",
              examples=["spring-catalog-2f9c"])),
    Key("processing_since", Time("processing_since"), datetime | None,
        Field(description="RFC 3339, UTC: when it began processing (its timeout counts from here); null while it "
                          "waits in line (pending).")),
    Key("created_at", Time("created_at"), datetime, Field(description="RFC 3339, UTC.")),
    Key("updated_at", Time("updated_at"), datetime, Field(description="RFC 3339, UTC.")),
    Key("finished_at", Time("finished_at"), datetime | None,
        Field(description="RFC 3339, UTC; set when completed or failed.")),
)

# PostgreSQL's json_build_object takes at most 100 arguments, a name and a value per key.
MOST_KEYS = 50


def task_view_sql(statements: Mapping[str, str], keys: Sequence[Key] = TASK_KEYS) -> str:
    """The `task_view` fragment of one dialect's statements, its {task} filled in from the keys by the dialect's
    `shown_` fragments."""
    if len(keys) > MOST_KEYS:
        raise ValueError(f"the task's JSON has {len(keys)} keys; one json_build_object takes {MOST_KEYS}")
    fill = Fragments(statements)
    return statements["task_view"].replace("{task}", fill.object(keys)).replace("{files}", FILES_PATH)


def json_of(task: Any, keys: Sequence[Key] = TASK_KEYS) -> dict[str, Any]:
    """The task's JSON made in Python (view.task_json), key by key."""
    return {key.name: key.shown.value(task, None) for key in keys}
