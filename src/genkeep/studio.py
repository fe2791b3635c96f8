"""The studio: one genkeep process's task manager, database backend, image storage, workers and sweeper."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from genkeep.config import DEFAULT_DECODE_PIXELS, Settings, load_secret_key
from genkeep.engines import load_engines
from genkeep.engines.base import Engine
from genkeep.errors import StorageUnavailable
from genkeep.logs import TransitionLog
from genkeep.metrics import Metrics
from genkeep.reference_images import PixelBudget
from genkeep.storage import ImageStorage, open_storage
from genkeep.tasks import database
from genkeep.tasks.backends import TaskBackend, open_backend
from genkeep.tasks.manager import TaskManager
from genkeep.tasks.model import TaskType
from genkeep.tasks.sweeper import Sweeper
from genkeep.tasks.task_fields import file_url
from genkeep.workers.pool import WorkerPool

log = logging.getLogger(__name__)


@dataclass
class Studio:
    settings: Settings
    secret_key: str
    backend: TaskBackend
    storage: ImageStorage
    manager: TaskManager
    pool: WorkerPool | None = None
    sweeper: Sweeper | None = None
    metrics: Metrics = field(default_factory=Metrics)
    # Pixels of uploads being decoded at once in this process (see reference_images).
    decodes: PixelBudget = field(default_factory=lambda: PixelBudget(DEFAULT_DECODE_PIXELS))

    @classmethod
    def open(cls, settings: Settings, *, migrate: bool = True) -> Studio:
        """Connect, migrate, and sweep once before anything is served (R3.2)."""
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        url = settings.resolved_database_url
        if migrate and not url.startswith("memory:"):
            database.upgrade(url, settings.data_dir)
        secret = load_secret_key(settings)
        backend = open_backend(url, pool_size=max(4, settings.workers + 4))
        storage = open_storage(settings, secret)
        manager = TaskManager(backend, storage, settings)
        # Watching from before the first sweep: what it fails is counted and logged too.
        metrics = Metrics()
        manager.transitions.subscribe(metrics.tasks)
        manager.transitions.subscribe(TransitionLog(secret))
        manager.sweep()
        try:
            manager.recover_incoming()
        except StorageUnavailable as fault:
            # Serve anyway (/readyz says the storage is away); the next start finishes the recovery.
            log.warning("could not look for staged images left by a crash (%s)", fault.reason)
        # Images of tasks deleted while the storage failed (the storage's own faults are kept for the sweeper).
        manager.finish_removals()
        return cls(settings, secret, backend, storage, manager, metrics=metrics,
                   decodes=PixelBudget(settings.decode_pixels))

    def signed_url(self, task_id: str, name: str) -> str:
        """A short-lived URL a provider can fetch a reference image from: genkeep's own where it has a public
        address (GENKEEP_PUBLIC_BASE_URL), else the bucket's presigned URL where images live in one."""
        if not self.settings.public_base_url:
            presigned = self.storage.presigned_url(task_id, name)
            if presigned is not None:
                return presigned
        query = self.storage.signed_query(task_id, name, now=self.manager.clock_now() / 1000)
        return f"{self.settings.public_base_url}{file_url(task_id, name)}?{query}"

    def workers(self, concurrency: int | None = None, engines: dict[TaskType, Engine] | None = None) -> WorkerPool:
        """A worker pool with this process's engines (made now unless given), not started (`start()`, or
        `run_burst()`)."""
        signer = self.signed_url if self.settings.public_base_url or self.storage.presigns else None
        engines = load_engines(self.settings) if engines is None else engines
        self.metrics.name_engines({task_type: engine.name for task_type, engine in engines.items()})
        return WorkerPool(self.manager, engines, self.settings, concurrency, signed_url=signer)

    def start_workers(self, concurrency: int | None = None,
                      engines: dict[TaskType, Engine] | None = None) -> WorkerPool:
        self.pool = self.workers(concurrency, engines)
        self.pool.start()
        return self.pool

    def start_sweeper(self) -> None:
        self.sweeper = Sweeper(self.manager, self.settings.sweep_interval)
        self.sweeper.start()

    def close(self) -> None:
        if self.sweeper is not None:
            self.sweeper.stop()
        if self.pool is not None:
            self.pool.stop()
        self.backend.close()
