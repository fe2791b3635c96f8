"""The JSON API: validate input, call the task service, shape JSON. No SQL and no image work here."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from genkeep.reference_images import CleanImage, clean_image, read_capped
from genkeep.storage import CONTENT_TYPES
from genkeep.studio import Studio, file_url
from genkeep.tasks.errors import InvalidInput, TaskNotFound, TooLarge
from genkeep.tasks.model import IMAGE_COUNTS, Task, TaskStatus, TaskType, rfc3339
from genkeep.tasks.service import Accepted, check_request, image_label, parse_type
from genkeep.web.owner import CurrentOwner, owner_of

router = APIRouter()
# Multipart fields a task request may have; anything far beyond is not a browser form of ours.
MAX_FORM_PARTS = 16


async def studio_dependency(request: Request) -> Studio:
    return get_studio(request)


def get_studio(request: Request) -> Studio:
    studio: Studio = request.app.state.studio
    return studio


StudioDep = Annotated[Studio, Depends(studio_dependency)]


def task_json(task: Task) -> dict[str, Any]:
    """The task as API.md describes it."""
    return {
        "id": task.id,
        "type": task.type.value,
        "status": task.status.value,
        "prompt": task.prompt,
        "reference_images": [
            {"url": file_url(task.id, image.name), "width": image.width, "height": image.height}
            for image in task.reference_images
        ],
        "image_url": file_url(task.id, task.result_name) if task.result_name else None,
        "error": {"code": task.error.code, "message": task.error.message} if task.error else None,
        "progress": task.progress,
        "engine": task.engine,
        "created_at": rfc3339(task.created_at),
        "updated_at": rfc3339(task.updated_at),
        "finished_at": rfc3339(task.finished_at),
    }


# Each Task object's JSON, encoded once: the store hands out the same object for an unchanged row.
_ENCODED: dict[Task, bytes] = {}
ENCODED_CACHE_SIZE = 20_000


def task_bytes(task: Task) -> bytes:
    encoded = _ENCODED.get(task)
    if encoded is None:
        if len(_ENCODED) >= ENCODED_CACHE_SIZE:
            _ENCODED.clear()
        encoded = _ENCODED[task] = json.dumps(task_json(task), ensure_ascii=False,
                                              separators=(",", ":")).encode()
    return encoded


def json_bytes(body: bytes, status_code: int = 200) -> Response:
    return Response(body, status_code=status_code, media_type="application/json")


@router.post("/api/tasks", status_code=201, summary="Start a generation")
async def create_task(request: Request, owner: CurrentOwner, studio: StudioDep) -> JSONResponse:
    settings = studio.settings
    # Refuse an oversized request before reading it: at most 4 images at the per-file cap, plus the prompt.
    declared = request.headers.get("content-length")
    request_cap = settings.max_upload_bytes * 4 + 1024 * 1024
    if declared and declared.isdigit() and int(declared) > request_cap:
        raise TooLarge(f"The request is larger than {request_cap // (1024 * 1024)} MB; upload smaller images.",
                       field="reference_images")
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        raise InvalidInput("Send the task as multipart/form-data with fields type, prompt and reference_images.")
    try:
        form = await request.form(max_files=MAX_FORM_PARTS, max_fields=MAX_FORM_PARTS)
    except StarletteHTTPException as error:
        # Starlette's multipart limits (too many parts, a malformed body) answer 400; the contract says 422.
        raise InvalidInput(f"The form could not be read ({error.detail}); send type, prompt and at most "
                           "4 reference_images files.") from None
    try:
        task_type = parse_type(_text(form.get("type")))
        prompt = _text(form.get("prompt"))
        uploads = [part for part in form.getlist("reference_images") if isinstance(part, UploadFile)]
        strays = [part for part in form.getlist("reference_images") if not isinstance(part, UploadFile)]
        if strays:
            raise InvalidInput("reference_images must be files, not text fields.", field="reference_images")
        key = request.headers.get("idempotency-key") or None
        if key is not None and len(key) > 255:
            raise InvalidInput("The Idempotency-Key header must be at most 255 characters.")
        accepted = await run_in_threadpool(_accept, studio, owner, task_type, prompt, uploads, key)
    finally:
        await form.close()
    return JSONResponse(task_json(accepted.task), status_code=201 if accepted.created else 200)


def _text(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput("type and prompt must be text fields, not files.")
    return value


def _accept(studio: Studio, owner: str, task_type: TaskType, prompt: str | None, uploads: list[UploadFile],
            key: str | None) -> Accepted:
    settings = studio.settings
    if key is not None and (existing := studio.service.existing_for_key(owner, key)) is not None:
        return existing
    # Counts and prompt first: nothing is decoded for a request that is wrong anyway.
    check_request(task_type, prompt, len(uploads), settings)
    images: list[CleanImage] = []
    for index, upload in enumerate(uploads[: IMAGE_COUNTS[task_type][1]]):
        label = image_label(task_type, index)
        data = read_capped(upload.file, settings.max_upload_bytes, label)
        images.append(clean_image(data, label, max_pixels=settings.max_image_pixels,
                                  min_side=settings.min_image_side))
    return studio.service.accept(owner, task_type, prompt, images, key)


def _statuses(raw: list[str]) -> list[TaskStatus]:
    statuses = []
    for value in raw:
        try:
            statuses.append(TaskStatus(value.strip().lower()))
        except ValueError:
            raise InvalidInput(f"Unknown status {value!r}; use pending, processing, completed or failed.",
                               field="status") from None
    return statuses


# The three hot routes (history, recovery, status poll) are async and read on the event loop: their reads are
# single indexed statements on a direct driver connection, cheaper than a hop to the thread pool.
LIST_PARAMETERS = [
    {"name": "type", "in": "query", "required": False, "schema": {"type": "string",
                                                                   "enum": [t.value for t in TaskType]}},
    {"name": "status", "in": "query", "required": False, "explode": True,
     "schema": {"type": "array", "items": {"type": "string", "enum": [s.value for s in TaskStatus]}}},
    {"name": "limit", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1,
                                                                    "maximum": 100, "default": 50}},
    {"name": "cursor", "in": "query", "required": False, "schema": {"type": "string"}},
]


# Query parameters are read by hand (and documented through openapi_extra): FastAPI's per-request parameter
# validation costs more than the recovery query itself.
@router.get("/api/tasks", summary="The owner's tasks, newest first",
            openapi_extra={"parameters": LIST_PARAMETERS})
async def list_tasks(request: Request) -> Response:
    query = request.query_params
    raw_type = query.get("type")
    raw_limit = query.get("limit", "50")
    try:
        limit = int(raw_limit)
    except ValueError:
        raise InvalidInput(f"limit must be a whole number between 1 and 100, not {raw_limit!r}.",
                           field="limit") from None
    page = get_studio(request).service.list_tasks(
        owner_of(request),
        task_type=parse_type(raw_type) if raw_type else None,
        statuses=_statuses(query.getlist("status")),
        limit=limit,
        cursor=query.get("cursor") or None,
    )
    items = b",".join(task_bytes(task) for task in page.items)
    return json_bytes(b'{"items":[' + items + b'],"next_cursor":' + json.dumps(page.next_cursor).encode() + b"}")


# The status poll, the most frequent request of all: the path parameter is read by hand too.
@router.get("/api/tasks/{task_id}", summary="One task", openapi_extra={"parameters": [
    {"name": "task_id", "in": "path", "required": True, "schema": {"type": "string"}}]})
async def get_task(request: Request) -> Response:
    task_id: str = request.path_params["task_id"]
    return json_bytes(task_bytes(get_studio(request).service.get(owner_of(request), task_id)))


@router.post("/api/tasks/{task_id}/cancel", summary="Stop a task that is not finished")
def cancel_task(task_id: str, owner: CurrentOwner, studio: StudioDep) -> JSONResponse:
    return JSONResponse(task_json(studio.service.cancel(owner, task_id)))


@router.post("/api/tasks/{task_id}/retry", status_code=201, summary="A new task like a failed one")
def retry_task(task_id: str, owner: CurrentOwner, studio: StudioDep) -> JSONResponse:
    task = studio.service.retry(owner, task_id)
    if studio.pool is not None:
        studio.pool.wake()
    return JSONResponse(task_json(task), status_code=201)


@router.delete("/api/tasks/{task_id}", status_code=204, summary="Remove a finished task and its files")
def delete_task(task_id: str, owner: CurrentOwner, studio: StudioDep) -> Response:
    studio.service.delete(owner, task_id)
    return Response(status_code=204)


@router.get("/files/{task_id}/{name}", summary="A task's image bytes", include_in_schema=True)
def task_file(task_id: str, name: str, request: Request, studio: StudioDep,
              expires: int | None = None, sig: str | None = None) -> FileResponse:
    not_found = TaskNotFound("There is no such image; check the address.")
    signed = expires is not None and sig is not None
    if expires is not None and sig is not None:
        # A provider fetching a reference image through a short-lived signed URL.
        if not studio.storage.check_signature(task_id, name, expires, sig):
            raise not_found
        task = studio.store.get(task_id)
    else:
        owner = request.scope.get("state", {}).get("owner_id")
        task = studio.store.get(task_id, owner) if owner else None
    if task is None:
        raise not_found
    names = {image.name: image.content_type for image in task.reference_images}
    # A signed link lets a provider fetch what it must work from, never the owner's results.
    if task.result_name and not signed:
        names[task.result_name] = ""
    if name not in names:
        raise not_found
    path = studio.storage.path(task_id, name)
    if path is None:
        raise not_found
    media_type = names[name] or _media_type(name)
    headers = {"Cache-Control": "private, max-age=31536000, immutable"}
    return FileResponse(path, media_type=media_type, headers=headers, stat_result=None)


def _media_type(name: str) -> str:
    for extension, media_type in CONTENT_TYPES.items():
        if name.endswith(extension):
            return media_type
    return "application/octet-stream"


@router.get("/healthz", summary="Liveness and the database reachable")
def healthz(studio: StudioDep) -> JSONResponse:
    studio.store.count_unfinished("")
    return JSONResponse({"status": "ok"})


@router.get("/api/ping", include_in_schema=False)
async def ping() -> JSONResponse:
    """The server's own ceiling: a route that touches no database (benchmarks compare against it)."""
    return JSONResponse({"pong": True, "t": time.time()})
