"""The HTTP contract as typed models: what the API takes and what it answers.

The OpenAPI document (/openapi.json, and from it /docs, docs/api.md and generated clients) is built from these
models and from the domain's own rules (image counts per type, the prompt's characters), never written a second
time. Two routes parse by hand for speed and one before its body is read (see task_routes.py); the tests hold them to
these models: every answer of a live server is checked against them by schemathesis, and task_json against Task.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from genkeep.config import Settings
from genkeep.reference_images import ACCEPTED_FORMATS
from genkeep.tasks import model as domain
from genkeep.tasks.manager import CURSOR_PATTERN, PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX
from genkeep.tasks.model import IMAGE_COUNTS, TaskStatus, TaskType
from genkeep.tasks.new_task import (
    BATCH_PATTERN,
    NOT_BLANK_PATTERN,
    PROMPT_PATTERN,
    PROMPT_REQUIRED,
    TASK_ID_PATTERN,
    WANTED_IMAGES,
)
from genkeep.tasks.task_fields import TASK_KEYS, model
from genkeep.tasks.task_fields import TaskId as TaskId  # published as the path parameter (task_routes.py)
from genkeep.tasks.view import task_json

REF_TEMPLATE = "#/components/schemas/{model}"
IDEMPOTENCY_KEY_MAX_CHARS = 255
IMAGE_MEDIA_TYPES = tuple(media_type for media_type, _ in ACCEPTED_FORMATS.values())
# The most tasks one download (GET /api/results.zip) may name by id: a history page's selection is far fewer.
DOWNLOAD_IDS_MAX = 200
# Fields (and, separately, files) Starlette's parser reads before it gives up on a form: far beyond ours.
MAX_FORM_FIELDS = 16


def _millis(moment: str) -> int:
    return (datetime.fromisoformat(moment) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


# The task the examples show, shown as every task is (view.task_json), so that they have every key of the JSON.
EXAMPLE_TASK = domain.Task(
    id="9f0c2d6e4b1a4c7e8d3f5a6b7c8d9e0f", owner_id="example", type=TaskType.WHITE_BACKGROUND,
    status=TaskStatus.PROCESSING, prompt="soft shadow under the bottle",
    reference_images=(domain.ReferenceImage("reference-1.jpg", 1024, 768, "image/jpeg", "bottle-01.jpg"),),
    progress=0.4, preview_name="preview-3.webp", engine="local", attempts=1,
    created_at=_millis("2025-05-04T08:15:30.120Z"), processing_since=_millis("2025-05-04T08:15:30.120Z"),
    updated_at=_millis("2025-05-04T08:15:33.871Z"),
)
TASK_EXAMPLE = task_json(EXAMPLE_TASK)
COMPLETED_EXAMPLE = task_json(replace(
    EXAMPLE_TASK, status=TaskStatus.COMPLETED, progress=1.0, preview_name=None, result_name="result.png",
    updated_at=_millis("2025-05-04T08:15:41.502Z"), finished_at=_millis("2025-05-04T08:15:41.502Z")))
CANCELED_EXAMPLE = task_json(replace(
    EXAMPLE_TASK, status=TaskStatus.FAILED, error=domain.TaskError("canceled", "You canceled this generation."),
    updated_at=_millis("2025-05-04T08:15:35.010Z"), finished_at=_millis("2025-05-04T08:15:35.010Z")))

# Its keys, their types and descriptions are declared once, in task_fields.
Task: Any = model("Task", "A generation task as the API shows it. Completed and failed are final: nothing changes "
                          "them again.", TASK_KEYS,
                  ConfigDict(json_schema_extra={"examples": [TASK_EXAMPLE, COMPLETED_EXAMPLE]}))


class TaskPage(BaseModel):
    """One page of the owner's tasks, newest first."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"items": [TASK_EXAMPLE], "next_cursor": None}]})

    items: list[Task] = Field(description="The tasks, newest first.")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class Problem(BaseModel):
    """Every 4xx and 5xx answer (application/problem+json)."""

    type: str = Field(description="`about:blank#` and the code.", examples=["about:blank#not_found"])
    title: str = Field(description="The kind of problem, for people.", examples=["Not found"])
    status: int = Field(ge=400, le=599, description="The HTTP status, repeated.")
    detail: str = Field(description="What happened and what to change.")
    code: str = Field(description="A short stable word to branch on: not_found, wrong_state, invalid_input, "
                                  "unsupported_image, too_large, too_many_unfinished, database_unavailable, "
                                  "storage_unavailable, cross_origin, several_owner_cookies, …")
    field: str | None = Field(description="The form field or query parameter the problem concerns (type, prompt, "
                                          "reference_images, status, limit, cursor, …), so a page can show it "
                                          "there; null when none.", examples=["reference_images"])


class NotReady(Problem):
    """/readyz's 503: what did not answer."""

    failed: list[Literal["database", "image storage"]] = Field(description="What did not answer.")


class Health(BaseModel):
    """The process serves (and, for /readyz, its database and image storage answer)."""

    status: Literal["ok"]


class TaskForm(BaseModel):
    """A new generation, sent as multipart/form-data: what each type needs is in the schema's `allOf` rules."""

    # Other fields are refused rather than ignored: a misspelt field name is a mistake worth hearing about.
    model_config = ConfigDict(extra="forbid")

    type: TaskType = Field(description="What to make: a new image from words (CREATE), a product photo on pure "
                                       "white (WHITE_BACKGROUND), a person dressed in a garment (CLOTHING_CHANGE).")
    prompt: str | None = Field(None, pattern=PROMPT_PATTERN, examples=["a red kite over a green hill"], description=(
        "Required for " + " and ".join(sorted(PROMPT_REQUIRED)) + " (not blank), optional otherwise. Plain "
        "text: line breaks and tabs are fine, other control characters are refused."))
    reference_images: list[bytes] = Field(default_factory=list, description=(
        "Image files (PNG, JPEG or WebP), in order; repeat the part for several. Each part's file name is kept "
        "(without folders) as the image's `filename`. "
        + "; ".join(f"{task_type.value}: {WANTED_IMAGES[task_type]}" for task_type in TaskType) + "."))
    batch: str | None = Field(None, pattern=BATCH_PATTERN, examples=["spring-catalog-2f9c"], description=(
        "Your own id for tasks made together (one per photo of a catalog dropped at once): the tasks carry it, "
        "`GET /api/tasks?batch=` lists them and `GET /api/results.zip?batch=` downloads their results. Photos "
        "beyond what you may have processing at once wait in line, in order (status pending)."))


# The form's fields, from the model: anything else is refused.
FORM_FIELDS = frozenset(TaskForm.model_fields)


class TaskListQuery(BaseModel):
    """GET /api/tasks's query parameters."""

    type: TaskType | None = Field(None, description="Only tasks of this type.", examples=["WHITE_BACKGROUND"])
    status: list[TaskStatus] = Field(default_factory=list, examples=[["pending", "processing"]], description=(
        "Only tasks in these statuses; repeat the parameter for several (status=pending&status=processing)."))
    batch: str | None = Field(None, pattern=BATCH_PATTERN, examples=["spring-catalog-2f9c"],
                              description="Only the tasks made with this `batch`.")
    limit: int = Field(PAGE_SIZE_DEFAULT, ge=1, le=PAGE_SIZE_MAX, description="How many tasks per page.",
                       examples=[20])
    cursor: str | None = Field(None, pattern=CURSOR_PATTERN,
                               examples=["1767225600000-9f0c2d6e4b1a4c7e8d3f5a6b7c8d9e0f"],
                               description="The previous page's `next_cursor`: the page after its last task "
                                           "(`<created_at in epoch milliseconds>-<task id>`).")


class DownloadQuery(BaseModel):
    """GET /api/results.zip's query parameters: a batch, or task ids."""

    batch: str | None = Field(None, pattern=BATCH_PATTERN, examples=["spring-catalog-2f9c"],
                              description="The results of this batch's completed tasks.")
    id: list[Annotated[str, Field(pattern=TASK_ID_PATTERN)]] = Field(
        default_factory=list, max_length=DOWNLOAD_IDS_MAX, examples=[["9f0c2d6e4b1a4c7e8d3f5a6b7c8d9e0f"]],
        description=f"And the results of these tasks (repeat the parameter, up to {DOWNLOAD_IDS_MAX}).")


def absent_not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A form field or query parameter is left out rather than sent as null: drop the null alternative."""
    variants = schema.pop("anyOf", None)
    if variants is not None:
        (kept,) = [variant for variant in variants if variant != {"type": "null"}]
        schema = kept | schema
    if schema.get("default", "") is None:
        del schema["default"]
    return schema


def _per_type_rules() -> list[dict[str, Any]]:
    """The domain's rules for each type (image counts, a required prompt) as JSON Schema conditions."""
    rules = []
    for task_type, (fewest, most) in IMAGE_COUNTS.items():
        # Open in words as it is by default: linters that check examples (Redocly's) take a subschema that says
        # nothing as closed, and would refuse every form's other fields. The form itself is closed.
        then: dict[str, Any] = {"properties": {"reference_images": {"minItems": fewest, "maxItems": most}},
                                "additionalProperties": True}
        required = ["reference_images"] if fewest else []
        if task_type in PROMPT_REQUIRED:
            required.append("prompt")
            then["properties"]["prompt"] = {"pattern": NOT_BLANK_PATTERN, "description": "not blank"}
        if required:
            then["required"] = required
        rules.append({"if": {"properties": {"type": {"const": task_type.value}}, "required": ["type"]},
                      "then": then})
    return rules


def task_form_schema(settings: Settings, *, with_images: bool = True) -> dict[str, Any]:
    """The new-task form with this studio's limits: as multipart/form-data, or without images as a plain
    (urlencoded) form, which only the types that need no image can use."""
    schema = TaskForm.model_json_schema(ref_template=REF_TEMPLATE)
    schema.pop("$defs", None)
    properties = schema["properties"]
    for name, field in list(properties.items()):
        properties[name] = absent_not_null(field)
    properties["prompt"]["maxLength"] = settings.max_prompt_chars
    images = properties["reference_images"]
    images["maxItems"] = max(most for _, most in IMAGE_COUNTS.values())
    images["description"] += (
        f" Each file at most {settings.max_upload_bytes} bytes, at least {settings.min_image_side} pixels on its "
        f"shorter side and at most {settings.max_image_pixels} pixels in all.")
    schema["allOf"] = _per_type_rules()
    if not with_images:
        imageless = [task_type.value for task_type, (fewest, _) in IMAGE_COUNTS.items() if fewest == 0]
        schema["title"] = "TaskFormWithoutImages"
        schema["description"] = "A new generation that needs no image, sent as a plain (urlencoded) form."
        properties["type"] = {"type": "string", "enum": imageless, "description": properties["type"]["description"]}
        # A plain form cannot carry files.
        del properties["reference_images"]
        schema["allOf"] = [rule for rule in schema["allOf"] if rule["if"]["properties"]["type"]["const"] in imageless]
        for rule in schema["allOf"]:
            rule["then"]["properties"].pop("reference_images", None)
    return schema


def query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """OpenAPI query parameters from a model's fields (for routes that read their query by hand)."""
    schema = model.model_json_schema(ref_template=REF_TEMPLATE)
    required = set(schema.get("required", ()))
    parameters = []
    for name, field in schema["properties"].items():
        field = absent_not_null(dict(field))
        field.pop("title", None)
        examples = field.pop("examples", None)
        parameter: dict[str, Any] = {"name": name, "in": "query", "required": name in required,
                                     "description": field.pop("description", ""), "schema": field}
        if examples:
            parameter["example"] = examples[0]
        if field.get("type") == "array":
            parameter |= {"style": "form", "explode": True}
        parameters.append(parameter)
    return parameters


def path_parameter(name: str, annotation: Any) -> dict[str, Any]:
    """An OpenAPI path parameter from an annotated type (for routes that read their path by hand)."""
    field = TypeAdapter(annotation).json_schema(ref_template=REF_TEMPLATE)
    description = field.pop("description", "")
    examples = field.pop("examples", None)
    parameter = {"name": name, "in": "path", "required": True, "description": description, "schema": field}
    if examples:
        parameter["example"] = examples[0]
    return parameter
