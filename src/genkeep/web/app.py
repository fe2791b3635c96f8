"""The web application: API, pages and images, with workers and the sweeper in the same process by default."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from genkeep import __version__
from genkeep.config import Settings
from genkeep.studio import Studio
from genkeep.web import api, problems
from genkeep.web.owner import OwnerMiddleware
from genkeep.web.size_cap import RequestSizeCap
from genkeep.web.task_json import TaskJsonCache

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, *, run_workers: bool = True) -> FastAPI:
    """The genkeep app. The database is migrated and swept (R3.2) before the first request is served."""
    settings = settings or Settings.from_env()
    studio = Studio.open(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await studio.backend.open_async()
        if run_workers and settings.workers > 0:
            studio.start_workers()
        studio.start_sweeper()
        try:
            yield
        finally:
            await studio.backend.close_async()
            studio.close()

    app = FastAPI(
        title="genkeep",
        version=__version__,
        description="An AI image-generation studio whose generation tasks are never lost.",
        lifespan=lifespan,
    )
    app.state.studio = studio
    app.state.task_json = TaskJsonCache()
    problems.install(app)
    app.include_router(api.router)
    try:
        from genkeep.web import pages
    except ImportError:  # the pages are optional for an API-only deployment
        log.warning("pages unavailable; serving the API only")
    else:
        app.include_router(pages.router)
        pages.mount_static(app)
    secure = settings.public_base_url.startswith("https://")
    # Also bounds requests without Content-Length (chunked), which would otherwise be spooled whole to disk.
    app.add_middleware(RequestSizeCap, max_bytes=settings.max_upload_bytes * 4 + 1024 * 1024)
    app.add_middleware(OwnerMiddleware, secret=studio.secret_key, owner_header=settings.owner_header,
                       secure=secure)
    return app
