"""The OpenAPI document: FastAPI's, from the routes' declarations, finished with what every answer shares.

Routes declare their answers with `answers(...)` and `answer(...)` (problem+json bodies, Retry-After where it is
sent, an example each) and the models of web/contract.py. Finishing the document then adds what no single route says:
- the contract's components that routes reference by hand (the new-task form, Problem, the enums);
- the answers of the middleware in front of every route (400 several owner cookies, 403 another origin or an
  unproven login proxy), so no status a route can answer is left undeclared;
- every 4xx and 5xx body as application/problem+json, FastAPI's own validation answer included (its handler in
  problems.py answers a Problem, not FastAPI's default shape);
- query parameters that are absent rather than null;
- the owner as a security scheme (the cookie, or the login proxy's header) that no operation requires: a client
  without it is a new owner, not refused, but clients and generators learn to keep it; and the server (this one).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import models_json_schema
from starlette.routing import BaseRoute

from genkeep.config import Settings
from genkeep.tasks.model import TaskStatus, TaskType
from genkeep.web import contract
from genkeep.web.owner import COOKIE_NAME, SECURE_COOKIE_NAME
from genkeep.web.problems import every_route, problem_body

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
UNSAFE_METHODS = frozenset({"post", "put", "patch", "delete"})
# genkeep is not published under an open licence; the document says so rather than leave clients to guess.
LICENSE = {"name": "Proprietary", "identifier": "LicenseRef-Proprietary"}

DESCRIPTION = """\
An AI image-generation studio whose generation tasks are never lost: start a generation, then poll it (or list the
unfinished ones) until it is completed or failed, from any page, after any restart.

**Who owns a task.** Every task belongs to one owner, and for anyone else it does not exist (404). By default the
owner is the browser: the first answer sets a signed, HttpOnly, SameSite=Lax cookie `genkeep_owner`
(`__Host-genkeep_owner` over https) that lasts a year; send it back to see your tasks. A deployment behind its own
login names a trusted header that carries the user id instead. Clients other than browsers (no `Origin`, no
`Sec-Fetch-Site`) are served as they come; a browser's unsafe request (POST, DELETE) must be same-origin.

**Errors.** Every 4xx and 5xx body is `application/problem+json` (the Problem schema): `code` is a short stable
word to branch on, `detail` says what to change and `field` names the form field or query parameter concerned.
429 and 503 carry `Retry-After`. Bad input never leaves anything behind.

**Images.** `reference_images[].url`, `image_url` and `preview_url` are addresses on this server
(GET /files/{task_id}/{name}), readable by the task's owner only.
"""

# Why each status is answered, unless a route says more precisely.
REASONS: dict[int, str] = {
    400: "Several different owner cookies (or, behind a login proxy, a repeated or unreadable user header): "
         "genkeep will not guess whose studio is meant.",
    401: "Behind a login proxy (GENKEEP_OWNER_HEADER): the request names no user.",
    403: "Behind a login proxy: a user header that did not come through it.",
    404: "No such task for this owner: someone else's tasks do not exist for you.",
    409: "The task is in the wrong state for this.",
    413: "A file, or the whole request, is too large.",
    415: "A file is not a PNG, JPEG or WebP image.",
    422: "A missing or wrong field or parameter.",
    429: "Too many unfinished tasks for this owner, or for the whole studio, or too many new generations from this "
         "address in a minute; try again after Retry-After seconds.",
    503: "The database or the image storage cannot be reached right now, or (new generations) the studio is busy "
         "reading other uploads; nothing was changed. Try again after Retry-After seconds.",
}
CROSS_ORIGIN = ("A browser request another site or origin made (refused, nothing changed), or behind a login "
                "proxy a user header that did not come through it.")
EXAMPLE_PROBLEMS: dict[int, tuple[str, str, str | None]] = {
    400: ("several_owner_cookies", "This browser sent 2 different genkeep_owner cookies (another site under the "
          "same domain may have set one), so genkeep cannot tell which studio is yours and did nothing. Remove the "
          "genkeep_owner cookies of the other sites of this domain, then reload.", None),
    401: ("unauthenticated", "Sign in first: this studio needs your login to know your tasks.", None),
    403: ("cross_origin", "This request came from another web site or page, so genkeep did not act on it; use the "
          "studio's own pages to start, cancel, retry or delete generations.", None),
    404: ("not_found", "There is no task '9f0c2d6e4b1a4c7e8d3f5a6b7c8d9e0f'; check the id, or it was deleted.", None),
    409: ("wrong_state", "The task already completed; only unfinished tasks can be canceled.", None),
    413: ("too_large", "The product photo is larger than 15 MB; upload a smaller file.", "reference_images"),
    415: ("unsupported_image", "The product photo is a GIF file; only PNG, JPEG and WebP images are accepted.",
          "reference_images"),
    422: ("invalid_input", "CLOTHING_CHANGE takes exactly 2 images: the person first, then the garment; you sent "
          "1.", "reference_images"),
    429: ("too_many_unfinished", "You already have 10 generations in progress; wait for one to finish or cancel "
          "one.", None),
    503: ("database_unavailable", "The task database is not answering right now; nothing was changed. Try again "
          "in a few seconds.", None),
}
UNTRUSTED_PROXY = ("untrusted_proxy", "This request names a user but did not come through the studio's login proxy; "
                   "sign in through it.", None)
RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before trying again.", "required": True,
                               "schema": {"type": "integer", "minimum": 0}}}


def answer(status: int, when: str | None = None, *, example: tuple[str, str, str | None] | dict[str, Any] | None = None,
           schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """One problem+json answer: when it is given, its schema, an example (code, detail, field) and Retry-After
    where it is sent."""
    if example is None:
        example = EXAMPLE_PROBLEMS.get(status, ("error", "Something about this request is wrong.", None))
    declared: dict[str, Any] = {
        "description": when or REASONS.get(status, "A problem with this request."),
        "content": {PROBLEM_MEDIA_TYPE: {
            "schema": schema or PROBLEM_REF,
            "example": example if isinstance(example, dict) else problem_body(status, *example)}},
    }
    if status in (429, 503):
        declared["headers"] = RETRY_AFTER
    return declared


def answers(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The problem answers a route gives for the usual reasons (say more with `answer` where a route knows more)."""
    return {status: answer(status) for status in statuses}


def install(app: FastAPI, settings: Settings) -> None:
    """Serve the finished document at /openapi.json (and to /docs); rebuilt when FastAPI's own is."""
    finished: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        generated = FastAPI.openapi(app)
        if finished.get("from") is not generated:
            finished["from"] = generated
            finished["document"] = finish(copy.deepcopy(generated), settings, app.routes)
        document: dict[str, Any] = finished["document"]
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def contract_components(settings: Settings) -> dict[str, Any]:
    """Schemas the routes reference by name without FastAPI seeing the model (hand-read forms and queries)."""
    _, schemas = models_json_schema([(contract.Problem, "serialization"), (contract.NotReady, "serialization")],
                                    ref_template=contract.REF_TEMPLATE)
    components: dict[str, Any] = dict(schemas.get("$defs", {}))
    for enum in (TaskType, TaskStatus):
        components[enum.__name__] = TypeAdapter(enum).json_schema(ref_template=contract.REF_TEMPLATE)
    components["TaskForm"] = contract.task_form_schema(settings)
    components["TaskFormWithoutImages"] = contract.task_form_schema(settings, with_images=False)
    return components


def finish(document: dict[str, Any], settings: Settings, routes: Sequence[BaseRoute]) -> dict[str, Any]:
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in contract_components(settings).items():
        schemas.setdefault(name, schema)
    _restore_examples(document, routes)
    for operations in document.get("paths", {}).values():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            for status, declared in list(responses.items()):
                if status.isdigit() and int(status) >= 400:
                    responses[status] = _as_problem(int(status), declared)
            responses.setdefault("400", answer(400))
            if method in UNSAFE_METHODS:
                responses.setdefault("403", answer(403, CROSS_ORIGIN))
            else:
                responses.setdefault("403", answer(403, example=UNTRUSTED_PROXY))
            operation["responses"] = dict(sorted(responses.items()))
            for parameter in operation.get("parameters", ()):
                if parameter.get("in") == "query":
                    parameter["schema"] = contract.absent_not_null(parameter["schema"])
    # FastAPI's validation answer is never sent: problems.py answers a Problem instead.
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    document["components"]["schemas"] = dict(sorted(schemas.items()))
    document["components"]["securitySchemes"] = {"owner": owner_scheme(settings)}
    # Optional: the empty requirement first, since no request is refused for lacking an owner.
    document["security"] = [{}, {"owner": []}]
    # Relative: the document describes the studio that serves it, whatever its address.
    document.setdefault("servers", [{"url": "/", "description": "The studio that serves this document."}])
    return document


def owner_scheme(settings: Settings) -> dict[str, Any]:
    """How a request names its owner: the login proxy's header where one is configured, else the owner cookie."""
    if settings.owner_header:
        return {"type": "apiKey", "in": "header", "name": settings.owner_header,
                "description": "The user id your login proxy sets (with its proof, see the description above)."}
    name = SECURE_COOKIE_NAME if settings.served_over_https else COOKIE_NAME
    return {"type": "apiKey", "in": "cookie", "name": name,
            "description": "The owner cookie the server sets on the first answer; send it back to see your tasks."}


def _restore_examples(document: dict[str, Any], routes: Sequence[BaseRoute]) -> None:
    """FastAPI drops every null from the document, the examples' nulls too: put the declared examples back."""
    for route in every_route(routes):
        if not isinstance(getattr(route, "original_route", route), APIRoute) or not route.include_in_schema:
            continue
        for method in route.methods:
            operation = document["paths"][route.path_format][method.lower()]
            for status, declared in route.responses.items():
                for media_type, body in declared.get("content", {}).items():
                    documented = operation["responses"][str(status)]["content"][media_type]
                    for key in ("example", "examples"):
                        if key in body:
                            documented[key] = copy.deepcopy(body[key])
    schemas = document["components"]["schemas"]
    for name, schema in schemas.items():
        model = getattr(contract, name, None)
        if isinstance(model, type) and issubclass(model, BaseModel) and "examples" in schema:
            # As written (the generated schema has their keys sorted).
            extra = model.model_config.get("json_schema_extra")
            schema["examples"] = copy.deepcopy(extra["examples"] if isinstance(extra, dict) else schema["examples"])


def _as_problem(status: int, declared: dict[str, Any]) -> dict[str, Any]:
    content = declared.setdefault("content", {})
    if PROBLEM_MEDIA_TYPE in content:
        return declared
    body = content.pop("application/json", None)
    if body is None:
        # Declared without a body: the body is a Problem all the same.
        content.update(answer(status, declared.get("description"))["content"])
    elif "HTTPValidationError" in str(body):
        # FastAPI's own validation answer, which problems.py replaces with a Problem.
        return answer(status)
    else:
        content[PROBLEM_MEDIA_TYPE] = body
    return declared
