"""The web application: API, pages and images, with workers and the sweeper in the same process by default."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.middleware.gzip import GZipMiddleware

from genkeep import __version__, logs
from genkeep.config import Settings, check_owner_header, keep_files_private
from genkeep.engines import check_engines, load_engines
from genkeep.studio import Studio
from genkeep.web import docs_page, openapi, operations, problems, task_routes
from genkeep.web.client_rate import ClientRate
from genkeep.web.hosts import HostGuard
from genkeep.web.owner import OwnerMiddleware
from genkeep.web.same_origin import SameOriginGuard
from genkeep.web.security_headers import SecurityHeaders
from genkeep.web.size_cap import RequestSizeCap
from genkeep.workers.heap import unmap_large_blocks_when_freed

log = logging.getLogger(__name__)


def create_process_app() -> FastAPI:
    """The app of each of `genkeep serve --processes N`: a process started afresh, so it sets up its own logging
    (JSON lines too) before anything logs."""
    settings = Settings.from_env()
    logs.configure(settings.log_format)
    return create_app(settings)


def create_app(settings: Settings | None = None, *, run_workers: bool = True) -> FastAPI:
    """The genkeep app. The database is migrated and swept (R3.2) before the first request is served."""
    keep_files_private()
    unmap_large_blocks_when_freed()
    settings = settings or Settings.from_env()
    check_owner_header(settings)
    # A misconfigured engine stops the start here, with a sentence naming its variable, not in the lifespan.
    runs_workers = run_workers and settings.workers > 0
    engines = load_engines(settings) if runs_workers else None
    if engines is None:
        check_engines(settings)
    studio = Studio.open(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await studio.manager.open_async()
        if engines is not None:
            studio.start_workers(engines=engines)
        studio.start_sweeper()
        # Everything built so far (the app, its routes and schemas, the engines, the settings) lives as long as the
        # process: moved out of the collector's sight, a full collection no longer walks it on the event loop. At
        # a fixed rate on PostgreSQL (bench/openloop.mjs, 2,600/s) recovery's p99 went from 63-72 ms to 10-11 ms,
        # its worst from 79-90 ms to 15-16 ms; those stalls were the collector's.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await studio.manager.close_async()
            studio.close()

    app = FastAPI(
        title="genkeep",
        version=__version__,
        description=openapi.DESCRIPTION,
        license_info=openapi.LICENSE,
        lifespan=lifespan,
        # /docs is served by docs_page from installed files, not from a CDN; /redoc, a second viewer, is off.
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    app.state.studio = studio
    problems.install(app)
    app.include_router(task_routes.router)
    docs_page.install(app)
    openapi.install(app, settings)
    try:
        from genkeep.web import pages
    except ImportError:  # the pages are optional for an API-only deployment
        log.warning("pages unavailable; serving the API only")
    else:
        app.include_router(pages.router)
        pages.mount_static(app)
    # The last one added runs first: headers on every answer, then the host check, the origin check, the client's
    # rate, the owner, then the size cap, which also bounds requests without Content-Length (chunked) that would be
    # spooled whole to disk.
    app.add_middleware(RequestSizeCap, max_bytes=settings.max_upload_bytes * 4 + 1024 * 1024)
    app.add_middleware(OwnerMiddleware, secret=studio.secret_key, owner_header=settings.owner_header,
                       secure=settings.served_over_https, proxy_secret=settings.owner_header_secret,
                       trusted_proxies=settings.trusted_proxies)
    app.add_middleware(ClientRate, per_minute=settings.client_rate, trusted_proxies=settings.trusted_proxies)
    app.add_middleware(SameOriginGuard, public_base_url=settings.public_base_url)
    app.add_middleware(HostGuard, public_base_url=settings.public_base_url, allowed_hosts=settings.allowed_hosts)
    # Pages, scripts and JSON (pictures are compressed already, and excluded by type): a history page's list of 12
    # tasks goes out in ~2.5 KB instead of 11 KB, the page in ~3.5 instead of 14 (bench/page_weight.py). Below one
    # packet (a status poll) nothing would be saved, so nothing is done.
    app.add_middleware(GZipMiddleware, minimum_size=1400, compresslevel=6)
    app.add_middleware(SecurityHeaders, docs_path=docs_page.DOCS_PATH)
    # Last, so that its request timing is outermost and covers every middleware above.
    operations.install(app, studio)
    return app
