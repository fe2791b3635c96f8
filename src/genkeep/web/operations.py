"""What operators and front ends ask of a running studio beside tasks: GET /metrics (Prometheus), GET /api/engines
(which engine serves each type, said honestly), and the request timing behind the HTTP metrics."""

from __future__ import annotations

import hmac
import time

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from prometheus_client import CONTENT_TYPE_LATEST, Histogram
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from genkeep.engines.notes import GUIDE, EngineNote, engine_notes
from genkeep.studio import Studio
from genkeep.web.openapi import answer
from genkeep.web.problems import problem

router = APIRouter()
# The route label of a request no route matched (a 404): raw paths would make one series per URL anyone tries.
UNMATCHED = "unmatched"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
METRICS_TOKEN_MISSING = ("These metrics need the token: send Authorization: Bearer <GENKEEP_METRICS_TOKEN> (set it in "
                         "Prometheus's scrape config as its bearer token).")


class EngineOut(BaseModel):
    type: str = Field(description="The task type.")
    engine: str = Field(description="The engine as configured: local, openai, dashscope, comfyui, module:factory, "
                                    "or none (workers elsewhere run this type).")
    kind: str = Field(description="offline_stand_in (not an AI model), offline_cutout, offline_approximation, "
                                  "hosted_model, self_hosted, custom or elsewhere.")
    model: str | None = Field(description="The model the engine uses, when genkeep knows it.")
    generative: bool | None = Field(description="A generative image model (true), an offline engine (false), or "
                                                "unknown (null).")
    reads_prompt: bool = Field(description="Whether the prompt changes the result. False for the offline cut-out "
                                           "and try-on approximation, which work from the photos alone.")
    stand_in: bool = Field(description="Whether its results are stand-ins (they show the studio works, not what "
                                       "was asked for); pages mark them \"sample, not an AI result\".")
    description: dict[str, str] = Field(description="What runs this type, in a sentence, by language (en, zh-CN).")
    connect_a_model: dict[str, str] | None = Field(
        description="For a stand-in or an approximation: how to get real AI images instead, by language.")


class EnginesOut(BaseModel):
    items: list[EngineOut]
    guide: str = Field(description="Where the README explains how to connect a real model.")


def _engine_out(note: EngineNote) -> EngineOut:
    return EngineOut(type=note.type.value, engine=note.engine, kind=note.kind, model=note.model,
                     generative=note.generative, reads_prompt=note.reads_prompt,
                     stand_in=note.stand_in, description=note.text, connect_a_model=note.connect_a_model)


ENGINES_EXAMPLE = {"items": [{
    "type": "WHITE_BACKGROUND", "engine": "local", "kind": "offline_cutout", "model": "u2netp", "generative": False,
    "reads_prompt": False, "stand_in": False,
    "description": {"en": "Made offline on this server: a small cut-out model (u2netp) finds the product and puts "
                          "it on pure white; the product itself is not redrawn.",
                    "zh-CN": "在本服务器离线完成：小型抠图模型（u2netp）找出商品并放到纯白背景上；商品本身不会重画。"},
    "connect_a_model": None}], "guide": GUIDE}
METRICS_EXAMPLE = ('# TYPE genkeep_tasks_accepted_total counter\n'
                   'genkeep_tasks_accepted_total{type="CREATE"} 2.0\n')


@router.get("/api/engines", summary="Which engine runs each type, and what it is", response_model=EnginesOut,
            tags=["engines"],
            responses={200: {"description": "Each type's engine, described in English and Chinese.",
                             "content": {"application/json": {"example": ENGINES_EXAMPLE}}}})
async def engines(request: Request) -> EnginesOut:
    notes: dict[object, EngineNote] = request.app.state.engine_notes
    return EnginesOut(items=[_engine_out(note) for note in notes.values()], guide=GUIDE)


@router.get("/metrics", summary="Prometheus metrics of this process (counts only, no owner data)",
            response_class=Response, tags=["health"],
            description="With GENKEEP_METRICS_TOKEN set, only for `Authorization: Bearer <the token>`.",
            responses={200: {"description": "The Prometheus text format.",
                             "content": {"text/plain": {"schema": {"type": "string"}, "example": METRICS_EXAMPLE}}},
                       401: answer(401, "GENKEEP_METRICS_TOKEN is set and the request did not carry it.",
                                   example=("unauthenticated", METRICS_TOKEN_MISSING, None))})
async def metrics(request: Request) -> Response:
    studio: Studio = request.app.state.studio
    token = studio.settings.metrics_token
    sent = request.headers.get("authorization", "").encode("utf-8", "surrogateescape")
    if token and not hmac.compare_digest(sent, f"Bearer {token}".encode()):
        return problem(401, "unauthenticated", METRICS_TOKEN_MISSING, headers={"WWW-Authenticate": "Bearer"})
    # Counting unfinished tasks reads the database: off the event loop.
    body = await run_in_threadpool(studio.metrics.exposition)
    return Response(body, media_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})


class RequestDurations:
    """Times every HTTP request, labelled with its route's template (`/api/tasks/{task_id}`), never its raw path.

    A pure ASGI middleware: it costs the hot polls a clock read and one histogram observation."""

    def __init__(self, app: ASGIApp, *, histogram: Histogram) -> None:
        self.app = app
        self.histogram = histogram

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_timed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_timed)
        finally:
            method = scope["method"] if scope["method"] in METHODS else "OTHER"
            self.histogram.labels(method, route_template(scope), str(status)).observe(time.perf_counter() - started)


def route_template(scope: Scope) -> str:
    """The template of the route that served the request; a mount (the static files) by its path."""
    route = scope.get("route")
    template = getattr(route, "path", None)
    if isinstance(template, str):
        return template
    root = scope.get("app_root_path") or scope.get("root_path")
    if isinstance(root, str) and root:
        return root + "/{path}"
    return UNMATCHED


def install(app: FastAPI, studio: Studio) -> None:
    """The routes, the engine notes they serve, and the request timing (outermost: it times every middleware)."""
    app.state.engine_notes = engine_notes(studio.settings)
    studio.metrics.count_unfinished(lambda: studio.manager.unfinished_counts())
    app.include_router(router)
    app.add_middleware(RequestDurations, histogram=studio.metrics.http)
