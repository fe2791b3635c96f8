"""Prometheus metrics of one genkeep process, with the official client.

One registry per process (per Studio, so tests and embedded apps never share counters): no multiprocess mode.
Each genkeep process is a scrape target of its own (`genkeep serve` at /metrics, `genkeep worker` at
GENKEEP_METRICS_ADDRESS), and Prometheus adds them up with sum(): processes run on many machines anyway, so no
shared directory could hold them all; a process killed with -9 leaves no stale files behind; and a restarted
process's counters start again from 0, which rate() and increase() expect.

Task metrics come from the task manager's transitions (one observer, fed in one place). Unfinished tasks are
counted in the database at scrape time, by the web app's /metrics only: the number is the same seen from every
process (take max(), not sum(), across API processes). No label carries an owner, a task id or a raw path.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from genkeep import __version__
from genkeep.errors import Unavailable
from genkeep.tasks.backends.base import UnfinishedCount
from genkeep.tasks.model import TaskType
from genkeep.tasks.transitions import Actor, Step, Transition

log = logging.getLogger(__name__)

# Waiting for a worker: from immediate (idle workers are woken) to the 5-minute timeout.
QUEUE_WAIT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
# One run: from an offline white background (well under a second) to a slow hosted model.
RUN_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300)
# HTTP: the polls answer in about a millisecond; uploads with images take longer.
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# The engine label of a task no worker started (canceled or timed out while waiting).
NOT_STARTED = "none"
STATES = ("waiting", "running")

# Each counter's `_created` timestamp series would double what a scrape carries, for nothing alerts use.
disable_created_metrics()


class TaskMetrics:
    """Counters and histograms of tasks, fed by the task manager's transitions (an Observer)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.accepted = Counter("genkeep_tasks_accepted", "Tasks accepted, by type.", ["type"], registry=registry)
        self.finished = Counter(
            "genkeep_tasks_finished",
            "Tasks finished, by type, engine, outcome (completed or failed) and error code (empty when completed).",
            ["type", "engine", "outcome", "code"], registry=registry)
        self.queue_wait = Histogram(
            "genkeep_task_queue_wait_seconds",
            "Seconds from acceptance until a worker started the task's first attempt, by type and engine.",
            ["type", "engine"], buckets=QUEUE_WAIT_BUCKETS, registry=registry)
        self.run_time = Histogram(
            "genkeep_task_run_seconds",
            "Seconds from a worker's claim to the outcome it recorded (completed or failed), by type and engine.",
            ["type", "engine"], buckets=RUN_BUCKETS, registry=registry)
        self.takeovers = Counter(
            "genkeep_task_takeovers",
            "Tasks started again after an attempt that ended without an outcome (its worker died, or stopped "
            "mid-run), by type and engine.", ["type", "engine"], registry=registry)
        self.timeouts = Counter(
            "genkeep_task_timeouts",
            "Tasks failed with error code timeout (processing past GENKEEP_TASK_TIMEOUT), by type and engine.",
            ["type", "engine"], registry=registry)
        self.handed_back = Counter(
            "genkeep_tasks_handed_back",
            "Attempts a worker gave back unfinished (shutdown, or a fault before the engine started), by type and "
            "engine.", ["type", "engine"], registry=registry)
        self.faults = Counter(
            "genkeep_task_faults_retried",
            "Database or image-storage faults met while recording a task's outcome, each retried, by fault code.",
            ["fault"], registry=registry)

    def __call__(self, transition: Transition) -> None:
        kind = transition.type.value
        engine = transition.engine or NOT_STARTED
        step = transition.step
        if step is Step.ACCEPTED:
            self.accepted.labels(kind).inc()
        elif step is Step.STARTED:
            if transition.duration is not None:
                self.queue_wait.labels(kind, engine).observe(transition.duration)
            if transition.takeover:
                self.takeovers.labels(kind, engine).inc()
        elif transition.finished:
            self.finished.labels(kind, engine, step.value, transition.code or "").inc()
            if transition.by is Actor.WORKER and transition.duration is not None:
                self.run_time.labels(kind, engine).observe(transition.duration)
            if transition.code == "timeout":
                self.timeouts.labels(kind, engine).inc()
        elif step is Step.HANDED_BACK:
            self.handed_back.labels(kind, engine).inc()
        elif step is Step.FAULT:
            self.faults.labels(transition.code or "unavailable").inc()


class UnfinishedTasks(Collector):
    """Unfinished tasks by type, status and state (waiting for a worker, or running), counted at scrape time."""

    def __init__(self, count: Callable[[], list[UnfinishedCount]]) -> None:
        # Asked at each scrape (the studio's task manager counts).
        self.count = count

    def describe(self) -> Iterable[Metric]:
        # Nothing to read at registration: the database is counted only when scraped.
        return []

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("genkeep_database_up", "1 when the task database answered this scrape's count.")
        try:
            counts = self.count()
        except Exception as error:
            # The rest of the scrape is still worth having; the gauge below says the count is missing.
            if not isinstance(error, Unavailable):
                log.exception("counting unfinished tasks failed")
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        unfinished = GaugeMetricFamily(
            "genkeep_tasks_unfinished",
            "Unfinished tasks in the database, by type, status and state (waiting for a worker, or running).",
            labels=["type", "status", "state"])
        values = {(kind.value, "processing", state): 0 for kind in TaskType for state in STATES}
        for count in counts:
            key = (count.type, count.status, STATES[count.running])
            values[key] = values.get(key, 0) + count.count
        for labels, value in sorted(values.items()):
            unfinished.add_metric(list(labels), value)
        yield unfinished


class Metrics:
    """One process's registry: task metrics, HTTP request durations, the engines it names, process figures."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.tasks = TaskMetrics(self.registry)
        self.http = Histogram(
            "genkeep_http_request_duration_seconds",
            "Seconds to answer an HTTP request, by method, route template and status code.",
            ["method", "route", "status"], buckets=HTTP_BUCKETS, registry=self.registry)
        self.engines = Gauge("genkeep_engine_info", "1 for the engine this process names for each type.",
                             ["type", "engine"], registry=self.registry)
        Gauge("genkeep_info", "1, with genkeep's version.", ["version"], registry=self.registry) \
            .labels(__version__).set(1)
        ProcessCollector(registry=self.registry)
        self._database: UnfinishedTasks | None = None

    def name_engines(self, engines: dict[TaskType, str]) -> None:
        for kind, engine in engines.items():
            self.engines.labels(kind.value, engine).set(1)

    def count_unfinished(self, count: Callable[[], list[UnfinishedCount]]) -> None:
        """Count unfinished tasks in the database at each scrape (once per process)."""
        if self._database is None:
            self._database = UnfinishedTasks(count)
            self.registry.register(self._database)

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format."""
        return generate_latest(self.registry)
