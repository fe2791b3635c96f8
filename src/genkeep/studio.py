"""The studio: one genkeep process's task service, image storage, engine, workers and sweeper, wired together."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from genkeep.config import Settings, load_secret_key
from genkeep.engines import load_engine
from genkeep.storage import ImageStorage
from genkeep.tasks import database
from genkeep.tasks.service import TaskService
from genkeep.tasks.store import TaskStore
from genkeep.tasks.sweeper import Sweeper
from genkeep.worker import WorkerPool

log = logging.getLogger(__name__)


def file_url(task_id: str, name: str) -> str:
    """Where the owner's browser fetches a task's image."""
    return f"/files/{task_id}/{name}"


@dataclass
class Studio:
    settings: Settings
    secret_key: str
    store: TaskStore
    storage: ImageStorage
    service: TaskService
    pool: WorkerPool | None = None
    sweeper: Sweeper | None = None

    @classmethod
    def open(cls, settings: Settings, *, migrate: bool = True) -> Studio:
        """Connect, migrate, and sweep once before anything is served (R3.2)."""
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        url = settings.resolved_database_url
        if migrate:
            database.upgrade(url, settings.data_dir)
        secret = load_secret_key(settings)
        store = TaskStore(database.connect(url, pool_size=max(8, settings.workers + 4)))
        storage = ImageStorage(settings.images_dir, secret)
        service = TaskService(store, storage, settings)
        service.sweep()
        service.recover_incoming()
        return cls(settings, secret, store, storage, service)

    def signed_url(self, task_id: str, name: str) -> str:
        """A short-lived URL a provider can fetch a reference image from (needs GENKEEP_PUBLIC_BASE_URL)."""
        query = self.storage.signed_query(task_id, name)
        return f"{self.settings.public_base_url}{file_url(task_id, name)}?{query}"

    def start_workers(self, concurrency: int | None = None) -> WorkerPool:
        engine = load_engine(self.settings)
        signer = self.signed_url if self.settings.public_base_url else None
        self.pool = WorkerPool(self.store, self.storage, engine, self.settings, concurrency, signed_url=signer)
        self.service.on_accepted.append(self.pool.wake)
        self.pool.start()
        return self.pool

    def start_sweeper(self) -> None:
        self.sweeper = Sweeper(self.service, self.settings.sweep_interval)
        self.sweeper.start()

    def close(self) -> None:
        if self.sweeper is not None:
            self.sweeper.stop()
        if self.pool is not None:
            self.pool.stop()
            self.service.on_accepted.remove(self.pool.wake)
        self.store.close()
