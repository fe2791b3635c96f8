"""The JSON API: validate input, call the task manager, shape JSON. No SQL and no image work here."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from genkeep.downloads import results_zip
from genkeep.errors import InvalidInput, TaskNotFound, TooLarge, Unavailable
from genkeep.reference_images import CleanImage, clean_image, read_capped
from genkeep.storage import content_type_of
from genkeep.studio import Studio
from genkeep.tasks.manager import PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX, Accepted
from genkeep.tasks.model import TaskStatus
from genkeep.tasks.new_task import NewTask, image_label, parse_batch, parse_type
from genkeep.tasks.view import task_json
from genkeep.web import contract
from genkeep.web.openapi import answer, answers
from genkeep.web.owner import CurrentOwner, owner_of
from genkeep.web.problems import problem, problem_body

# Operation ids are the functions' names (create_task, get_task, …): what a generated client calls.
router = APIRouter(generate_unique_id_function=lambda route: route.name)

# Task ids are read from the path by hand (the manager answers 404 for anything that is not one), so the
# parameter is published from the contract's TaskId rather than by FastAPI.
TASK_ID_PARAMETERS = {"parameters": [contract.path_parameter("task_id", contract.TaskId)]}


def _link(operation_id: str, **parameters: str) -> dict[str, Any]:
    return {"operationId": operation_id, "parameters": parameters}


# What a client can do next with the task an answer holds (OpenAPI links: generated clients and schemathesis's
# stateful tests follow them).
TASK_LINKS = {
    "GetTask": _link("get_task", task_id="$response.body#/id"),
    "CancelTask": _link("cancel_task", task_id="$response.body#/id"),
    "RetryTask": _link("retry_task", task_id="$response.body#/id"),
    "DeleteTask": _link("delete_task", task_id="$response.body#/id"),
}


async def studio_dependency(request: Request) -> Studio:
    return get_studio(request)


def get_studio(request: Request) -> Studio:
    studio: Studio = request.app.state.studio
    return studio


StudioDep = Annotated[Studio, Depends(studio_dependency)]


def json_bytes(body: bytes, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(body, status_code=status_code, media_type="application/json", headers=headers)


# On the answers pages poll: the time now by the clock tasks are stamped with (the database server's on PostgreSQL,
# as this process estimates it), in milliseconds since the epoch. Pages count a running task's elapsed time from it,
# not from the browser's clock. Not the Date header: that is this machine's clock, and to the second only.
SERVER_CLOCK_HEADER = "Genkeep-Clock"
SERVER_CLOCK_DOC = {SERVER_CLOCK_HEADER: {
    "description": "The server's time now (the clock `created_at` is stamped by), in milliseconds since the epoch: "
                   "count elapsed time from it rather than from the client's clock, which may be off.",
    "schema": {"type": "integer", "example": 1767225600000}}}


def server_clock(studio: Studio) -> dict[str, str]:
    return {SERVER_CLOCK_HEADER: str(studio.manager.clock_now())}


def task_id_of(request: Request) -> str:
    task_id: str = request.path_params["task_id"]
    return task_id


def _task_answer(description: str, example: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"example": example}},
            "links": TASK_LINKS}


# The form is read by hand so that the caps are checked before the body is read (see create_task); the request
# body is published from the contract's TaskForm instead of FastAPI's Form/File parameters.
CREATE_TASK_DOCUMENT = {
    "parameters": [{
        "name": "Idempotency-Key", "in": "header", "required": False,
        "description": "Any unique string (a UUID): the same key again from the same owner answers 200 and the "
                       "task it made, and makes nothing new. Send one to retry a submission safely. The same key "
                       "with another type, prompt or number of images answers 422 (idempotency_key_reused).",
        "schema": {"type": "string", "maxLength": contract.IDEMPOTENCY_KEY_MAX_CHARS},
        "example": "5b0f7c1e-2d4a-4c8e-9f1a-0b2c3d4e5f60",
    }],
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {"$ref": "#/components/schemas/TaskForm"},
                "encoding": {"reference_images": {"contentType": ", ".join(contract.IMAGE_MEDIA_TYPES)}},
                "example": {"type": "WHITE_BACKGROUND", "prompt": "soft shadow under the bottle",
                            "reference_images": ["(the product photo's bytes)"]},
            },
            "application/x-www-form-urlencoded": {
                "schema": {"$ref": "#/components/schemas/TaskFormWithoutImages"},
                "example": {"type": "CREATE", "prompt": "a red kite over a green hill"},
            },
        },
    },
}


@router.post(
    "/api/tasks", status_code=201, summary="Start a generation", tags=["tasks"], response_model=contract.Task,
    description="Accepts the task (it is processing from this moment) with its reference images, checked and "
                "stored without metadata. Caps are checked before the body is read.",
    responses={
        201: _task_answer("Accepted: the new task, processing.", contract.TASK_EXAMPLE),
        200: {"model": contract.Task, **_task_answer("The task this Idempotency-Key already made (nothing new).",
                                                    contract.TASK_EXAMPLE)},
        **answers(401, 413, 415, 429, 503),
        422: answer(422, "A missing, unknown or wrong field, a wrong number of images for the type, or an image too "
                         "small, too large in pixels or undecodable; or the body is not a form; or the "
                         "Idempotency-Key was used for a different generation."),
    },
    openapi_extra=CREATE_TASK_DOCUMENT,
)
async def create_task(request: Request, owner: CurrentOwner, studio: StudioDep) -> JSONResponse:
    settings = studio.settings
    # Refuse an oversized request before reading it: at most 4 images at the per-file cap, plus the prompt.
    declared = request.headers.get("content-length")
    request_cap = settings.max_upload_bytes * 4 + 1024 * 1024
    if declared and declared.isdigit() and int(declared) > request_cap:
        raise TooLarge(f"The request is larger than {request_cap // (1024 * 1024)} MB; upload smaller images.",
                       field="reference_images", sentence="request_too_large",
                       values={"megabytes": request_cap // (1024 * 1024)})
    # The caps before the body is read or any image decoded: a full studio costs nothing to refuse.
    await studio.manager.check_room(owner)
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        raise InvalidInput("Send the task as multipart/form-data with fields type, prompt and reference_images.")
    try:
        form = await request.form(max_files=contract.MAX_FORM_FIELDS, max_fields=contract.MAX_FORM_FIELDS)
    except StarletteHTTPException as error:
        # Starlette's multipart limits (too many parts, a malformed body) answer 400; the contract says 422.
        raise InvalidInput(f"The form could not be read ({error.detail}); send type, prompt and at most "
                           "4 reference_images files.") from None
    try:
        _only_known_fields(form)
        raw_type = _text(form.get("type"))
        prompt = _text(form.get("prompt"))
        batch = _text(form.get("batch"))
        uploads = [part for part in form.getlist("reference_images") if isinstance(part, UploadFile)]
        strays = [part for part in form.getlist("reference_images") if not isinstance(part, UploadFile)]
        if strays:
            raise InvalidInput("reference_images must be files, not text fields.", field="reference_images")
        key = request.headers.get("idempotency-key") or None
        if key is not None and len(key) > contract.IDEMPOTENCY_KEY_MAX_CHARS:
            raise InvalidInput(f"The Idempotency-Key header must be at most {contract.IDEMPOTENCY_KEY_MAX_CHARS} "
                               "characters.")
        accepted = await run_in_threadpool(_accept, studio, owner, raw_type, prompt, uploads, key, batch)
    finally:
        await form.close()
    return JSONResponse(task_json(accepted.task), status_code=201 if accepted.created else 200)


def _only_known_fields(form: FormData) -> None:
    unknown = sorted(set(form.keys()) - contract.FORM_FIELDS)
    if unknown:
        named = ", ".join(repr(name[:40]) for name in unknown[:3])
        raise InvalidInput(f"The form has fields genkeep does not know ({named}); send only type, prompt and "
                           "reference_images.")
    for name in ("type", "prompt", "batch"):
        if len(form.getlist(name)) > 1:
            raise InvalidInput(f"Send {name} once.", field=name)


def _text(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput("type, prompt and batch must be text fields, not files.")
    return value


def _accept(studio: Studio, owner: str, raw_type: str | None, prompt: str | None, uploads: list[UploadFile],
            key: str | None, batch: str | None) -> Accepted:
    settings = studio.settings
    # Type, prompt and counts first: nothing is decoded for a request that is wrong anyway, and a wrong request
    # is refused even with a key already used.
    new = NewTask.build(raw_type, prompt, len(uploads), max_prompt_chars=settings.max_prompt_chars,
                        filenames=[upload.filename for upload in uploads], batch=batch)
    if key is not None and (existing := studio.manager.existing_for_key(owner, key, new)) is not None:
        return existing
    images: list[CleanImage] = []
    for index, upload in enumerate(uploads):
        label = image_label(new.type, index)
        data = read_capped(upload.file, settings.max_upload_bytes, label)
        images.append(clean_image(data, label, max_pixels=settings.max_image_pixels,
                                  min_side=settings.min_image_side, budget=studio.decodes))
    return studio.manager.accept(owner, new, images, key)


def _statuses(raw: list[str]) -> list[TaskStatus]:
    statuses = []
    for value in raw:
        try:
            statuses.append(TaskStatus(value))
        except ValueError:
            raise InvalidInput(f"Unknown status {value!r}; use pending, processing, completed or failed.",
                               field="status") from None
    return statuses


# The three hot routes (history, recovery, status poll) are async: their reads are awaited through the backend
# (an asyncio pool on PostgreSQL), never blocking the loop, and give up within seconds when the database is away.
# Their parameters are read by hand and their answers are the tasks' JSON as the database built it (TaskView):
# FastAPI's parameter validation and response serialisation cost more than the query itself. The document still
# publishes the exact parameters and answers, from the contract's TaskListQuery, TaskId, Task and TaskPage.
@router.get(
    "/api/tasks", summary="The owner's tasks, newest first", tags=["tasks"], response_model=contract.TaskPage,
    description="Pages follow `next_cursor`. The recovery client lists a type's unfinished tasks in one request: "
                "`?type=WHITE_BACKGROUND&status=pending&status=processing`.",
    responses={200: {"description": "A page of tasks.", "headers": SERVER_CLOCK_DOC,
                     "content": {"application/json": {"example": {
                         "items": [contract.TASK_EXAMPLE], "next_cursor": None}}}},
        **answers(401, 503),
        422: answer(422, "A parameter is not one of its values (or out of range), or the cursor is not of the "
                         "form genkeep gives out.",
                    example=("invalid_input", "Unknown status 'done'; use pending, processing, completed or failed.",
                             "status"))},
    openapi_extra={"parameters": contract.query_parameters(contract.TaskListQuery)},
)
async def list_tasks(request: Request) -> Response:
    query = request.query_params
    raw_type = query.get("type")
    raw_limit = query.get("limit")
    limit = PAGE_SIZE_DEFAULT
    if raw_limit is not None:
        # Digits only, as the schema's integer: no sign, spaces or underscores that int() would let through, and
        # not so many that int() refuses them (over 4,300).
        if not (raw_limit.isascii() and raw_limit.isdigit()) or len(raw_limit) > len(str(PAGE_SIZE_MAX)):
            raise InvalidInput(f"limit must be a whole number between 1 and {PAGE_SIZE_MAX}, not "
                               f"{raw_limit[:40]!r}.", field="limit")
        limit = int(raw_limit)
    studio = get_studio(request)
    page = await studio.manager.list_tasks(
        owner_of(request),
        task_type=parse_type(raw_type) if raw_type is not None else None,
        statuses=_statuses(query.getlist("status")),
        batch=parse_batch(query.get("batch")),
        limit=limit,
        cursor=query.get("cursor"),
    )
    items = ",".join([task.json for task in page.items])
    return json_bytes(f'{{"items":[{items}],"next_cursor":{json.dumps(page.next_cursor)}}}'.encode(),
                      headers=server_clock(studio))


# The status poll, the most frequent request of all.
@router.get(
    "/api/tasks/{task_id}", summary="One task", tags=["tasks"], response_model=contract.Task,
    description="Poll it every couple of seconds until `status` is completed or failed.",
    responses={200: {"description": "The task.", "headers": SERVER_CLOCK_DOC,
                     "content": {"application/json": {"examples": {
                         "processing": {"value": contract.TASK_EXAMPLE},
                         "completed": {"value": contract.COMPLETED_EXAMPLE}}}}},
        **answers(401, 404, 503)},
    openapi_extra=TASK_ID_PARAMETERS,
)
async def get_task(request: Request) -> Response:
    studio = get_studio(request)
    task = await studio.manager.get(owner_of(request), task_id_of(request))
    return json_bytes(task.json.encode(), headers=server_clock(studio))


@router.post(
    "/api/tasks/{task_id}/cancel", summary="Stop a task that is not finished", tags=["tasks"],
    response_model=contract.Task,
    responses={200: _task_answer("The task, now failed with error.code canceled.", contract.CANCELED_EXAMPLE),
               **answers(401, 404, 503),
               409: answer(409, "The task already finished.", example=(
                   "wrong_state", "The task already completed; only unfinished tasks can be canceled.", None))},
    openapi_extra=TASK_ID_PARAMETERS,
)
def cancel_task(request: Request, owner: CurrentOwner, studio: StudioDep) -> JSONResponse:
    return JSONResponse(task_json(studio.manager.cancel(owner, task_id_of(request))))


@router.post(
    "/api/tasks/{task_id}/retry", status_code=201, summary="A new task like a failed one", tags=["tasks"],
    response_model=contract.Task,
    description="A new task with the same type, prompt and reference images as a failed one.",
    responses={201: _task_answer("The new task, processing.", contract.TASK_EXAMPLE),
               **answers(401, 404, 429, 503),
               409: answer(409, "The task did not fail (or its reference images are gone).", example=(
                   "wrong_state", "The task completed; only failed tasks can be retried.", None))},
    openapi_extra=TASK_ID_PARAMETERS,
)
def retry_task(request: Request, owner: CurrentOwner, studio: StudioDep) -> JSONResponse:
    task = studio.manager.retry(owner, task_id_of(request))
    return JSONResponse(task_json(task), status_code=201)


@router.delete(
    "/api/tasks/{task_id}", status_code=204, summary="Remove a finished task and its files", tags=["tasks"],
    responses={204: {"description": "Removed, with its images."},
               **answers(401, 404, 503),
               409: answer(409, "The task is not finished; cancel it first.", example=(
                   "wrong_state", "The task is still in progress; cancel it first, then delete it.", None))},
    openapi_extra=TASK_ID_PARAMETERS,
)
def delete_task(request: Request, owner: CurrentOwner, studio: StudioDep) -> Response:
    studio.manager.delete(owner, task_id_of(request))
    return Response(status_code=204)


IMAGE_BYTES = {"schema": {"type": "string", "format": "binary"}}


# Every stored file is written once under its name and never rewritten (a result's name is new for every attempt,
# a preview's for every preview, a reference image's is its task's, unguessable and never reused; a thumbnail is
# the same bytes from the same original whenever it is made), so the name is the version: a strong ETag derived
# from it answers a revalidation with 304 without reading the storage at all.
IMMUTABLE = "private, max-age=31536000, immutable"


def file_etag(task_id: str, name: str) -> str:
    return '"' + hashlib.blake2b(f"{task_id}/{name}".encode(), digest_size=12).hexdigest() + '"'


def _matches(if_none_match: str | None, etag: str) -> bool:
    """Whether the browser already holds this version (If-None-Match compares weakly: a W/ prefix is ignored)."""
    if not if_none_match:
        return False
    return any(tag.strip().removeprefix("W/") in (etag, "*") for tag in if_none_match.split(","))


@router.get(
    "/files/{task_id}/{name}", summary="A task's image bytes", tags=["files"], response_class=FileResponse,
    description="The addresses in a task's `reference_images[].url`, `image_url` and `preview_url` (the original "
                "bytes), and in `reference_images[].thumbnails` and `image_thumbnails` (small WebP renditions, made "
                "on the first request for a task older than thumbnails): the owner's alone. Every file is "
                "immutable: cached for a year, with a strong ETag (If-None-Match answers 304). `expires` and `sig` "
                "make a short-lived signed link (for providers) to a reference image.",
    responses={200: {"description": "The image, with its Content-Type.",
                     "content": {media_type: IMAGE_BYTES for media_type in contract.IMAGE_MEDIA_TYPES}},
               304: {"description": "The browser's copy (If-None-Match) is this file."},
               **answers(503),
               404: answer(404, "No such image for this owner (or the signed link expired).",
                           example=("not_found", "There is no such image; check the address.", None)),
               422: answer(422, "expires is not a whole number.", example=(
                   "invalid_input", "expires: Input should be a valid integer, unable to parse string as an "
                                    "integer; correct it and send again.", "expires"))},
)
def task_file(task_id: str, name: str, request: Request, studio: StudioDep,
              expires: int | None = None, sig: str | None = None) -> Response:
    # A plain function: FastAPI runs it in a worker thread, so reading the storage (and making a missing thumbnail)
    # never waits on the event loop.
    not_found = TaskNotFound("There is no such image; check the address.")
    signed = expires is not None and sig is not None
    if expires is not None and sig is not None:
        # A provider fetching a reference image through a short-lived signed URL.
        if not studio.storage.check_signature(task_id, name, expires, sig, now=studio.manager.clock_now() / 1000):
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
    original = None if name in names else studio.manager.thumbnail_source(task, name, signed=signed)
    if original is not None:
        names[name] = "image/webp"
    if name not in names:
        raise not_found
    headers = {"Cache-Control": IMMUTABLE, "ETag": file_etag(task_id, name)}
    if _matches(request.headers.get("if-none-match"), headers["ETag"]):
        return Response(status_code=304, headers=headers)
    found = studio.storage.read(task_id, name)
    if found is None and original is not None:
        if studio.manager.make_thumbnails(task, original):
            found = studio.storage.read(task_id, name)
        else:
            # A picture Pillow cannot shrink is shown whole rather than not at all; not cached as the thumbnail.
            name, headers = original, {"Cache-Control": "private, no-cache"}
            found = studio.storage.read(task_id, name)
            names[name] = names[name] or content_type_of(name)
    if found is None:
        raise not_found
    media_type = names[name] or content_type_of(name)
    if isinstance(found, Path):
        return FileResponse(found, media_type=media_type, headers=headers, stat_result=None)
    # From a bucket: streamed through genkeep, so the browser sees one origin (the pages' CSP allows images from
    # 'self' only), the owner check above stays the only way in, and the URL it caches never changes.
    headers["Content-Length"] = str(found.size)
    return StreamingResponse(found.chunks, media_type=media_type, headers=headers)


@router.get(
    "/api/results.zip", summary="Download many results as one ZIP", tags=["tasks"], response_class=Response,
    description="The result images of a batch's completed tasks (`batch`) and of the tasks named by `id` (repeat "
                "it, up to 200), as one ZIP archive, streamed as it is made. Each entry is named after the "
                "photo's original file (`shoe-01.jpg` gives `shoe-01.png`; a task made from words alone is named "
                "after when it was made), a second of the same name gets \" (2)\". Tasks not completed (or not "
                "yours) are left out.",
    responses={200: {"description": "The archive.", "headers": {"Content-Disposition": {
                         "description": "attachment, with a file name.", "schema": {"type": "string"}}},
                     "content": {"application/zip": IMAGE_BYTES}},
               **answers(401, 503),
               404: answer(404, "None of them has a result yet (or neither a batch nor an id was named).",
                           example=("not_found", "Nothing to download yet: none of these tasks has completed.",
                                    None)),
               422: answer(422, "A batch id that is not one, or more than 200 ids.", example=(
                   "invalid_input", "Download at most 200 tasks at once; you named 250.", "id"))},
    openapi_extra={"parameters": contract.query_parameters(contract.DownloadQuery)},
)
def download_results(request: Request, owner: CurrentOwner, studio: StudioDep) -> Response:
    # A plain function: the database read runs in a worker thread, and the archive (storage reads) streams from
    # a sync iterator, which Starlette also runs off the event loop.
    batch = parse_batch(request.query_params.get("batch"))
    task_ids = request.query_params.getlist("id")
    if len(task_ids) > contract.DOWNLOAD_IDS_MAX:
        raise InvalidInput(f"Download at most {contract.DOWNLOAD_IDS_MAX} tasks at once; you named "
                           f"{len(task_ids)}.", field="id")
    results = studio.manager.results(owner, batch=batch, task_ids=task_ids)
    if not results:
        raise TaskNotFound("Nothing to download yet: none of these tasks has completed (name them with "
                           "batch=<your batch id> or id=<task id>).", sentence="nothing_to_download")
    name = f"genkeep-{batch}.zip" if batch is not None else "genkeep-results.zip"
    return StreamingResponse(results_zip(studio.storage, results), media_type="application/zip",
                             headers={"Content-Disposition": f'attachment; filename="{name}"',
                                      "Cache-Control": "private, no-store"})


HEALTHY: dict[int | str, dict[str, Any]] = {
    200: {"description": "Serving.", "content": {"application/json": {"example": {"status": "ok"}}}}}


@router.get("/healthz", summary="Liveness: the process serves (touches no database)", tags=["health"],
            response_model=contract.Health, responses=HEALTHY)
async def healthz() -> JSONResponse:
    return JSONResponse({"status": "ok"})


@router.get(
    "/readyz", summary="Readiness: the database and the image storage answer", tags=["health"],
    response_model=contract.Health,
    responses={**HEALTHY, 503: answer(
        503, "The database or the image storage (named in `failed`) did not answer.",
        schema={"$ref": "#/components/schemas/NotReady"},
        example=problem_body(503, "not_ready", "Not ready: the database did not answer.") | {"failed": ["database"]},
    )},
)
async def readyz(studio: StudioDep) -> JSONResponse:
    failed = []
    try:
        await studio.manager.ping()
    except Unavailable:
        failed.append("database")
    if not await run_in_threadpool(studio.storage.ready):
        failed.append("image storage")
    if failed:
        return problem(503, "not_ready", f"Not ready: the {' and the '.join(failed)} did not answer.",
                       headers={"Retry-After": "5"}, failed=failed)
    return JSONResponse({"status": "ok"})


@router.get("/api/ping", include_in_schema=False)
async def ping() -> JSONResponse:
    """The server's own ceiling: a route that touches no database (benchmarks compare against it)."""
    return JSONResponse({"pong": True, "t": time.time()})
