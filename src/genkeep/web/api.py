"""The JSON API: validate input, call the task manager, shape JSON. No SQL and no image work here."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from genkeep.reference_images import CleanImage, clean_image, read_capped
from genkeep.storage import content_type_of
from genkeep.studio import Studio
from genkeep.tasks.errors import InvalidInput, TaskNotFound, TooLarge, Unavailable
from genkeep.tasks.manager import Accepted
from genkeep.tasks.model import TaskStatus, TaskType
from genkeep.tasks.new_task import NewTask, image_label, parse_type
from genkeep.web.owner import CurrentOwner, owner_of
from genkeep.web.task_json import TaskJsonCache, task_json

router = APIRouter()
# Multipart fields a task request may have; anything far beyond is not a browser form of ours.
MAX_FORM_PARTS = 16


async def studio_dependency(request: Request) -> Studio:
    return get_studio(request)


def get_studio(request: Request) -> Studio:
    studio: Studio = request.app.state.studio
    return studio


def json_cache(request: Request) -> TaskJsonCache:
    cache: TaskJsonCache = request.app.state.task_json
    return cache


StudioDep = Annotated[Studio, Depends(studio_dependency)]


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
    # The caps before the body is read or any image decoded: a full studio costs nothing to refuse.
    await studio.manager.check_room(owner)
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
        raw_type = _text(form.get("type"))
        prompt = _text(form.get("prompt"))
        uploads = [part for part in form.getlist("reference_images") if isinstance(part, UploadFile)]
        strays = [part for part in form.getlist("reference_images") if not isinstance(part, UploadFile)]
        if strays:
            raise InvalidInput("reference_images must be files, not text fields.", field="reference_images")
        key = request.headers.get("idempotency-key") or None
        if key is not None and len(key) > 255:
            raise InvalidInput("The Idempotency-Key header must be at most 255 characters.")
        accepted = await run_in_threadpool(_accept, studio, owner, raw_type, prompt, uploads, key)
    finally:
        await form.close()
    return JSONResponse(task_json(accepted.task), status_code=201 if accepted.created else 200)


def _text(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput("type and prompt must be text fields, not files.")
    return value


def _accept(studio: Studio, owner: str, raw_type: str | None, prompt: str | None, uploads: list[UploadFile],
            key: str | None) -> Accepted:
    settings = studio.settings
    if key is not None and (existing := studio.manager.existing_for_key(owner, key)) is not None:
        return existing
    # Type, prompt and counts first: nothing is decoded for a request that is wrong anyway.
    new = NewTask.build(raw_type, prompt, len(uploads), max_prompt_chars=settings.max_prompt_chars)
    images: list[CleanImage] = []
    for index, upload in enumerate(uploads):
        label = image_label(new.type, index)
        data = read_capped(upload.file, settings.max_upload_bytes, label)
        images.append(clean_image(data, label, max_pixels=settings.max_image_pixels,
                                  min_side=settings.min_image_side))
    return studio.manager.accept(owner, new, images, key)


def _statuses(raw: list[str]) -> list[TaskStatus]:
    statuses = []
    for value in raw:
        try:
            statuses.append(TaskStatus(value.strip().lower()))
        except ValueError:
            raise InvalidInput(f"Unknown status {value!r}; use pending, processing, completed or failed.",
                               field="status") from None
    return statuses


# The three hot routes (history, recovery, status poll) are async: their reads are awaited through the backend
# (an asyncio pool on PostgreSQL), never blocking the loop, and give up within seconds when the database is away.
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
    page = await get_studio(request).manager.list_tasks(
        owner_of(request),
        task_type=parse_type(raw_type) if raw_type else None,
        statuses=_statuses(query.getlist("status")),
        limit=limit,
        cursor=query.get("cursor") or None,
    )
    cache = json_cache(request)
    items = b",".join(cache.encode(task) for task in page.items)
    return json_bytes(b'{"items":[' + items + b'],"next_cursor":' + json.dumps(page.next_cursor).encode() + b"}")


# The status poll, the most frequent request of all: the path parameter is read by hand too.
@router.get("/api/tasks/{task_id}", summary="One task", openapi_extra={"parameters": [
    {"name": "task_id", "in": "path", "required": True, "schema": {"type": "string"}}]})
async def get_task(request: Request) -> Response:
    task_id: str = request.path_params["task_id"]
    task = await get_studio(request).manager.get(owner_of(request), task_id)
    return json_bytes(json_cache(request).encode(task))


@router.post("/api/tasks/{task_id}/cancel", summary="Stop a task that is not finished")
def cancel_task(task_id: str, owner: CurrentOwner, studio: StudioDep) -> JSONResponse:
    return JSONResponse(task_json(studio.manager.cancel(owner, task_id)))


@router.post("/api/tasks/{task_id}/retry", status_code=201, summary="A new task like a failed one")
def retry_task(task_id: str, owner: CurrentOwner, studio: StudioDep) -> JSONResponse:
    task = studio.manager.retry(owner, task_id)
    return JSONResponse(task_json(task), status_code=201)


@router.delete("/api/tasks/{task_id}", status_code=204, summary="Remove a finished task and its files")
def delete_task(task_id: str, owner: CurrentOwner, studio: StudioDep) -> Response:
    studio.manager.delete(owner, task_id)
    return Response(status_code=204)


@router.get("/files/{task_id}/{name}", summary="A task's image bytes", include_in_schema=True)
def task_file(task_id: str, name: str, request: Request, studio: StudioDep,
              expires: int | None = None, sig: str | None = None) -> Response:
    not_found = TaskNotFound("There is no such image; check the address.")
    signed = expires is not None and sig is not None
    if expires is not None and sig is not None:
        # A provider fetching a reference image through a short-lived signed URL.
        if not studio.storage.check_signature(task_id, name, expires, sig):
            raise not_found
        task = studio.manager.find(task_id)
    else:
        owner = request.scope.get("state", {}).get("owner_id")
        task = studio.manager.find(task_id, owner) if owner else None
    if task is None:
        raise not_found
    names = {image.name: image.content_type for image in task.reference_images}
    # A signed link lets a provider fetch what it must work from, never the owner's results.
    if task.result_name and not signed:
        names[task.result_name] = ""
    if task.preview_name and not task.is_final:
        names[task.preview_name] = "image/webp"
    if name not in names:
        raise not_found
    found = studio.storage.read(task_id, name)
    if found is None:
        raise not_found
    media_type = names[name] or content_type_of(name)
    headers = {"Cache-Control": "private, max-age=31536000, immutable"}
    if isinstance(found, Path):
        return FileResponse(found, media_type=media_type, headers=headers, stat_result=None)
    # From a bucket: streamed through genkeep, so the browser sees one origin (the pages' CSP allows images from
    # 'self' only), the owner check above stays the only way in, and the URL it caches never changes.
    headers["Content-Length"] = str(found.size)
    return StreamingResponse(found.chunks, media_type=media_type, headers=headers)


@router.get("/healthz", summary="Liveness: the process serves (touches no database)")
async def healthz() -> JSONResponse:
    return JSONResponse({"status": "ok"})


@router.get("/readyz", summary="Readiness: the database and the image storage answer")
async def readyz(studio: StudioDep) -> JSONResponse:
    failed = []
    try:
        await studio.backend.aping()
    except Unavailable:
        failed.append("database")
    if not await run_in_threadpool(studio.storage.ready):
        failed.append("image storage")
    if failed:
        return JSONResponse({"status": "unavailable", "failed": failed,
                             "detail": f"Not ready: the {' and the '.join(failed)} did not answer."},
                            status_code=503, headers={"Retry-After": "5"})
    return JSONResponse({"status": "ok"})


@router.get("/api/ping", include_in_schema=False)
async def ping() -> JSONResponse:
    """The server's own ceiling: a route that touches no database (benchmarks compare against it)."""
    return JSONResponse({"pong": True, "t": time.time()})
