"""Every 4xx and 5xx answer is application/problem+json with a detail that says what to change."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute

from genkeep.errors import (
    InvalidInput,
    TaskManagerError,
    TaskNotFound,
    TooLarge,
    TooManyUnfinished,
    Unavailable,
    UnsupportedImage,
    WrongState,
)
from genkeep.web.problem_text import detail_zh, localized_detail, wants_chinese

log = logging.getLogger(__name__)

TITLES = {
    400: "Bad request",
    401: "Who are you?",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    409: "Wrong state",
    413: "Too large",
    415: "Unsupported image",
    422: "Invalid input",
    429: "Too many requests",
    500: "Internal error",
    503: "Unavailable",
}


class RequestRefused(Exception):
    """A request genkeep will not serve, for a reason that is not about a task (who is asking, from where)."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail


def problem_body(status: int, code: str, detail: str, field: str | None = None) -> dict[str, Any]:
    """The Problem of web/contract.py."""
    return {
        "type": f"about:blank#{code}",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "code": code,
        "field": field,
    }


def problem(status: int, code: str, detail: str, field: str | None = None,
            headers: Mapping[str, str] | None = None, **members: Any) -> JSONResponse:
    """A problem+json answer; `members` are extension members a kind of problem adds (NotReady's `failed`)."""
    return JSONResponse(problem_body(status, code, detail, field) | members, status_code=status,
                        media_type="application/problem+json", headers=headers)


def internal_error(accept_language: str | None = None) -> JSONResponse:
    """The 500, in Chinese for a client that asks for it."""
    return problem(500, "internal", _in_language(accept_language, "internal",
                                                 "Something went wrong on the server; try again in a moment."))


def _asked(request: Request) -> str | None:
    return request.headers.get("accept-language")


def _in_language(accept_language: str | None, code: str, detail: str) -> str:
    """A problem raised without a named sentence: its code's general sentence for a client that asks for Chinese."""
    return detail_zh(code) if wants_chinese(accept_language) else detail


def every_route(routes: Sequence[BaseRoute]) -> Iterator[Any]:
    """Each route of the app, those of included routers too (FastAPI 0.16x keeps them inside the router)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # an older FastAPI: included routes are copied into the app's list
        yield from routes
        return
    yield from iter_route_contexts(routes)


def allowed_methods(request: Request, error: StarletteHTTPException) -> list[str]:
    """Every method some route takes at this address. Starlette names only the first route's (GET and POST on
    /api/tasks are two routes), and RFC 9110 wants them all."""
    allowed = {method.strip() for method in (error.headers or {}).get("Allow", "").split(",") if method.strip()}
    path = request.scope["path"]
    for route in every_route(request.app.routes):
        methods = getattr(route, "methods", None)
        path_regex = getattr(route, "path_regex", None)
        if methods and path_regex is not None and path_regex.match(path):
            allowed |= methods
    return sorted(allowed)


def status_for(error: TaskManagerError) -> int:
    # Most specific first: TooLarge and UnsupportedImage are kinds of InvalidInput.
    for kind, status in ((TooLarge, 413), (UnsupportedImage, 415), (InvalidInput, 422), (TaskNotFound, 404),
                         (WrongState, 409), (TooManyUnfinished, 429), (Unavailable, 503)):
        if isinstance(error, kind):
            return status
    return 400


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into a problem."""

    @app.exception_handler(TaskManagerError)
    async def service_error(request: Request, error: TaskManagerError) -> JSONResponse:
        headers = None
        if isinstance(error, (TooManyUnfinished, Unavailable)):
            headers = {"Retry-After": str(error.retry_after)}
        if isinstance(error, Unavailable):
            log.warning("answered 503: %s", getattr(error, "reason", error.code))
        detail = localized_detail(error, request.headers.get("accept-language"))
        return problem(status_for(error), error.code, detail, error.field, headers)

    @app.exception_handler(RequestRefused)
    async def refused(request: Request, error: RequestRefused) -> JSONResponse:
        return problem(error.status, error.code, _in_language(_asked(request), error.code, error.detail))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0] if error.errors() else {}
        location = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path")]
        field = location[0] if location else None
        message = first.get("msg", "invalid value")
        detail = f"{field}: {message}; correct it and send again." if field else f"{message}."
        return problem(422, "invalid_input", _in_language(_asked(request), "invalid_input", detail), field)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        if error.status_code == 404:
            return problem(404, "not_found",
                           _in_language(_asked(request), "not_found", "Nothing is here; check the address."))
        if error.status_code == 405:
            allowed = ", ".join(allowed_methods(request, error))
            return problem(405, "method_not_allowed", f"This address takes {allowed} only.",
                           headers={"Allow": allowed})
        return problem(error.status_code, "error", str(error.detail), headers=error.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unexpected error", exc_info=error)
        return internal_error(request.headers.get("accept-language"))
