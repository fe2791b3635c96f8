"""genkeep serve | worker | db upgrade | sweep | settings."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from types import FrameType

from genkeep import logs
from genkeep.config import DECODE_PIXELS_MIN, Settings, SettingsError, metrics_address, readme_table


def _say(settings: Settings, message: str) -> None:
    """A start-up or summary line: printed for people, or a log record when every line must be JSON."""
    if settings.log_format == "json":
        logging.getLogger("genkeep.cli").info(message)
    else:
        print(message, flush=True)


def _serve(settings: Settings, host: str, port: int, processes: int) -> None:
    import uvicorn

    from genkeep.web.app import create_app

    _say(settings, f"genkeep is serving http://{host}:{port} (engine: {settings.engine}, "
                   f"workers: {settings.workers}, processes: {processes})")
    # With GENKEEP_TRUSTED_PROXIES the owner check needs the real peer address, not X-Forwarded-For's.
    # JSON logs: uvicorn's own loggers write through genkeep's handler instead of configuring their own.
    options = {"host": host, "port": port, "log_level": "warning", "timeout_graceful_shutdown": 5,
               "proxy_headers": not settings.trusted_proxies,
               "log_config": None if settings.log_format == "json" else uvicorn.config.LOGGING_CONFIG}
    if processes > 1:
        # Several processes share the port (so every core serves); each builds its app from the environment,
        # migrated once before they start.
        from genkeep.tasks import database

        database.upgrade(settings.resolved_database_url, settings.data_dir)
        # The pixel budget is the server's, shared among its processes: N of them must not take N times the memory.
        os.environ["GENKEEP_DECODE_PIXELS"] = str(max(DECODE_PIXELS_MIN, settings.decode_pixels // processes))
        uvicorn.run("genkeep.web.app:create_process_app", factory=True, workers=processes, **options)  # type: ignore[arg-type]
        return
    uvicorn.run(create_app(settings), **options)  # type: ignore[arg-type]


def _worker(settings: Settings, burst: bool) -> None:
    from genkeep.studio import Studio
    from genkeep.workers.heap import unmap_large_blocks_when_freed

    unmap_large_blocks_when_freed()
    studio = Studio.open(settings)
    concurrency = settings.workers or 1
    if burst:
        # The same pool as the long-running worker (engines per type, signed image URLs), run until idle.
        count = studio.workers(1).run_burst()
        _say(settings, f"ran {count} tasks")
        studio.close()
        return
    done = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    studio.start_workers(concurrency)
    studio.start_sweeper()
    metrics_server = None
    if settings.metrics_address:
        from prometheus_client import start_http_server

        host, port = metrics_address(settings.metrics_address)
        metrics_server, _thread = start_http_server(port, addr=host, registry=studio.metrics.registry)
        _say(settings, f"genkeep worker metrics: http://{host}:{port}/metrics")
    _say(settings, f"genkeep worker {studio.pool.worker_id if studio.pool else ''} running {concurrency} at a time")
    done.wait()
    studio.close()
    if metrics_server is not None:
        metrics_server.shutdown()


def _db_upgrade(settings: Settings) -> None:
    from genkeep.tasks import database

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    database.upgrade(settings.resolved_database_url, settings.data_dir)
    _say(settings, "database is up to date")


def _sweep(settings: Settings) -> None:
    from genkeep.studio import Studio

    studio = Studio.open(settings)
    # Studio.open already swept once; say what is left.
    swept = studio.manager.sweep()
    _say(settings, f"swept {len(swept)} tasks")
    studio.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="genkeep", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve pages, API and images, and run workers")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--processes", type=int, default=1,
                       help="processes serving the same port (default 1; the number of cores uses every core)")
    worker = commands.add_parser("worker", help="run workers alone")
    worker.add_argument("--burst", action="store_true", help="run every waiting task, then exit")
    db = commands.add_parser("db", help="database commands")
    db.add_argument("action", choices=["upgrade"])
    commands.add_parser("sweep", help="fail tasks past the timeout, once")
    commands.add_parser("settings", help="print the settings table (the README's, from the settings' declarations)")
    args = parser.parse_args(argv)
    if args.command == "settings":
        print(readme_table(), end="")
        return 0
    try:
        settings = Settings.from_env()
        logs.configure(settings.log_format)
        if args.command == "serve":
            _serve(settings, args.host, args.port, max(1, args.processes))
        elif args.command == "worker":
            _worker(settings, args.burst)
        elif args.command == "db":
            _db_upgrade(settings)
        elif args.command == "sweep":
            _sweep(settings)
    except SettingsError as error:
        print(f"genkeep: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
