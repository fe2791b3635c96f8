"""What operators see: /metrics after real tasks, machine-readable transition logs, /readyz, and /api/engines."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from genkeep.config import Settings
from genkeep.errors import DatabaseUnavailable
from genkeep.logs import TRANSITIONS_LOGGER, JsonLines
from genkeep.metrics import QUEUE_WAIT_BUCKETS, RUN_BUCKETS
from genkeep.studio import Studio
from genkeep.tasks.backends import open_backend
from genkeep.tasks.backends.memory import MemoryBackend
from genkeep.tasks.model import TaskType
from genkeep.web.app import create_app
from tests.support.api import submit, wait_final
from tests.support.processes import free_port
from tests.support.tasks import accept, age, row
from tests.support.waiting import wait_for

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(client: TestClient) -> tuple[str, Samples]:
    answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=")
    samples = {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
               for family in text_string_to_metric_families(answer.text) for sample in family.samples}
    return answer.text, samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def studio_of(client: TestClient) -> Studio:
    studio: Studio = client.app.state.studio  # type: ignore[attr-defined]
    return studio


def test_metrics_count_tasks_by_type_engine_and_outcome_without_owner_data(client: TestClient) -> None:
    kite = submit(client, "CREATE", prompt="a kite").json()
    boat = submit(client, "CREATE", prompt="a boat").json()
    broken = submit(client, "CREATE", prompt="fail on purpose").json()
    photo = submit(client, "WHITE_BACKGROUND", prompt=None).json()
    for task in (kite, boat, broken, photo):
        wait_final(client, task["id"])
    client.get(f"/api/tasks/{kite['id']}")
    client.get("/api/tasks/not-a-task-id")
    client.get("/no/such/page")

    text, samples = scrape(client)
    assert value(samples, "genkeep_tasks_accepted_total", type="CREATE") == 3
    assert value(samples, "genkeep_tasks_accepted_total", type="WHITE_BACKGROUND") == 1
    finished = "genkeep_tasks_finished_total"
    assert value(samples, finished, type="CREATE", engine="scripted", outcome="completed", code="") == 2
    assert value(samples, finished, type="CREATE", engine="scripted", outcome="failed", code="engine_error") == 1
    assert value(samples, finished, type="WHITE_BACKGROUND", engine="scripted", outcome="completed", code="") == 1

    # Histograms: every bucket, cumulative, ending with all of them.
    for name, buckets in (("genkeep_task_run_seconds", RUN_BUCKETS),
                          ("genkeep_task_queue_wait_seconds", QUEUE_WAIT_BUCKETS)):
        counts = [value(samples, f"{name}_bucket", type="CREATE", engine="scripted", le=f"{bound:g}" if bound < 1
                        else f"{float(bound)}") for bound in buckets]
        present = [count for count in counts if count is not None]
        assert len(present) == len(buckets), f"{name}: a bucket is missing"
        assert present == sorted(present)
        assert value(samples, f"{name}_bucket", type="CREATE", engine="scripted", le="+Inf") == 3
        assert value(samples, f"{name}_count", type="CREATE", engine="scripted") == 3

    # HTTP durations by route template, never by raw path.
    http = "genkeep_http_request_duration_seconds_count"
    assert value(samples, http, method="POST", route="/api/tasks", status="201") == 4
    assert (value(samples, http, method="GET", route="/api/tasks/{task_id}", status="200") or 0) >= 1
    assert value(samples, http, method="GET", route="/api/tasks/{task_id}", status="404") == 1
    assert value(samples, http, method="GET", route="unmatched", status="404") == 1
    assert "no/such/page" not in text

    # Counts only: no owner, no task id, no prompt.
    owner = studio_of(client).backend.get(kite["id"])
    assert owner is not None
    for secret in (owner.owner_id, kite["id"], "a kite", "a boat"):
        assert secret not in text


def test_unfinished_tasks_are_counted_in_the_database_by_type_and_state(client: TestClient) -> None:
    slow = submit(client, "CREATE", prompt="slow:30 a long one").json()
    studio = studio_of(client)
    wait_for(lambda: (task := row(studio, slow["id"])) is not None and task.attempts == 1,
             message="a worker to start the slow task")
    _, samples = scrape(client)
    unfinished = "genkeep_tasks_unfinished"
    assert value(samples, unfinished, type="CREATE", status="processing", state="running") == 1
    assert value(samples, unfinished, type="CREATE", status="processing", state="waiting") == 0
    assert value(samples, unfinished, type="CLOTHING_CHANGE", status="processing", state="waiting") == 0
    assert value(samples, "genkeep_database_up") == 1

    client.post(f"/api/tasks/{slow['id']}/cancel")
    _, samples = scrape(client)
    assert value(samples, unfinished, type="CREATE", status="processing", state="running") == 0
    assert value(samples, "genkeep_tasks_finished_total", type="CREATE", engine="scripted", outcome="failed",
                 code="canceled") == 1


def test_timeouts_and_takeovers_are_counted(settings: Settings) -> None:
    studio = Studio.open(settings.with_overrides(lease_seconds=0.5))
    try:
        waited_too_long = accept(studio, "a kite")
        age(studio, waited_too_long.id, minutes=10)
        studio.manager.sweep()
        taken = accept(studio, "a boat")
        engines = {TaskType.CREATE: "scripted"}
        assert [task.id for task in studio.manager.claim("first-worker", engines)] == [taken.id]
        # The first worker says nothing more: once its lease runs out another worker takes the task over.
        wait_for(lambda: studio.manager.claim("second-worker", engines), timeout=10,
                 message="the lease to run out and the task to be taken over")
        samples = {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
                   for family in text_string_to_metric_families(studio.metrics.exposition().decode())
                   for sample in family.samples}
    finally:
        studio.close()
    assert value(samples, "genkeep_task_timeouts_total", type="CREATE", engine="none") == 1
    assert value(samples, "genkeep_tasks_finished_total", type="CREATE", engine="none", outcome="failed",
                 code="timeout") == 1
    assert value(samples, "genkeep_task_takeovers_total", type="CREATE", engine="scripted") == 1
    # A takeover's wait is not known (the row forgets when its first attempt ended): only first starts count.
    assert value(samples, "genkeep_task_queue_wait_seconds_count", type="CREATE", engine="scripted") == 1


def test_a_fault_while_recording_an_outcome_is_counted(tmp_path: Path) -> None:
    studio = Studio.open(Settings(data_dir=tmp_path / "data", database_url="memory:", workers=1,
                                  secret_key="test-secret-key-" + "x" * 24))
    try:
        accept(studio, "a kite")
        [task] = studio.manager.claim("worker", {TaskType.CREATE: "scripted"})
        backend = studio.backend
        assert isinstance(backend, MemoryBackend)
        backend.down = True
        with pytest.raises(DatabaseUnavailable):
            studio.manager.complete(task, "worker", b"\x89PNG a result", "image/png")
        backend.down = False
        assert studio.manager.complete(task, "worker", b"\x89PNG a result", "image/png")
        text = studio.metrics.exposition().decode()
    finally:
        studio.close()
    assert 'genkeep_task_faults_retried_total{fault="database_unavailable"} 1.0' in text
    assert 'genkeep_tasks_finished_total{code="",engine="scripted",outcome="completed",type="CREATE"} 1.0' in text


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """The transition log as GENKEEP_LOG_FORMAT=json writes it."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonLines())
    logger = logging.getLogger(TRANSITIONS_LOGGER)
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.INFO)
    yield out
    logger.removeHandler(handler)
    logger.setLevel(previous)


def test_each_task_transition_is_one_json_line_with_its_fields(client: TestClient, json_lines: io.StringIO) -> None:
    done = wait_final(client, submit(client, "CREATE", prompt="a kite").json()["id"])
    broken = wait_final(client, submit(client, "CREATE", prompt="fail on purpose").json()["id"])
    lines = [json.loads(line) for line in json_lines.getvalue().splitlines()]
    assert lines, "no transition was logged"
    of_done = [line for line in lines if line["task_id"] == done["id"]]
    assert [line["transition"] for line in of_done] == ["accepted", "started", "completed"]
    completed = of_done[-1]
    assert completed["event"] == "task_transition" and completed["logger"] == TRANSITIONS_LOGGER
    assert completed["type"] == "CREATE" and completed["engine"] == "scripted" and completed["attempt"] == 1
    assert completed["outcome"] == "completed" and completed["code"] is None and completed["by"] == "worker"
    assert isinstance(completed["duration_s"], float) and completed["duration_s"] >= 0
    assert completed["age_s"] >= completed["duration_s"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", completed["time"])
    assert of_done[0]["engine"] is None and of_done[0]["by"] == "owner"
    failed = [line for line in lines if line["task_id"] == broken["id"]][-1]
    assert failed["outcome"] == "failed" and failed["code"] == "engine_error"
    # Owners are hashed: the same owner gives the same hash, and the id itself appears nowhere.
    owner_id = row(studio_of(client), done["id"]).owner_id  # type: ignore[union-attr]
    assert {line["owner"] for line in lines} == {completed["owner"]}
    assert re.fullmatch(r"[0-9a-f]{16}", completed["owner"])
    assert owner_id not in json_lines.getvalue()


@pytest.mark.postgres
def test_readyz_answers_503_naming_the_database_when_it_is_unreachable(postgres_url: str, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", database_url=postgres_url, workers=0,
                        secret_key="test-secret-key-" + "x" * 16)
    with TestClient(create_app(settings)) as client:
        assert client.get("/readyz").json() == {"status": "ok"}
        manager = studio_of(client).manager
        reachable = manager.backend
        # The same studio's manager, now pointed at a port where no database listens.
        manager.backend = open_backend(f"postgresql://postgres@127.0.0.1:{free_port()}/genkeep", pool_size=1)
        try:
            answer = client.get("/readyz")
            _, samples = scrape(client)
        finally:
            manager.backend.close()
            manager.backend = reachable
        assert client.get("/readyz").status_code == 200
    assert answer.status_code == 503
    assert answer.headers["retry-after"]
    assert answer.json()["failed"] == ["database"]
    assert "the database did not answer" in answer.json()["detail"]
    assert value(samples, "genkeep_database_up") == 0


def test_api_engines_says_what_each_type_runs_on(settings: Settings) -> None:
    local = settings.with_overrides(engine="local", workers=0)
    with TestClient(create_app(local)) as client:
        answer = client.get("/api/engines")
    assert answer.status_code == 200
    items = {item["type"]: item for item in answer.json()["items"]}
    assert list(items) == ["CREATE", "WHITE_BACKGROUND", "CLOTHING_CHANGE"]
    create, white, clothes = items["CREATE"], items["WHITE_BACKGROUND"], items["CLOTHING_CHANGE"]
    assert (create["engine"], create["kind"], create["generative"]) == ("local", "offline_stand_in", False)
    assert "not an AI model" in create["description"]["en"] and "不是 AI 模型" in create["description"]["zh-CN"]
    assert "Connecting a real model" in create["connect_a_model"]["en"]
    assert "Connecting a real model" in create["connect_a_model"]["zh-CN"]
    assert white["kind"] == "offline_cutout" and white["connect_a_model"] is None
    assert clothes["kind"] == "offline_approximation" and "not an AI try-on model" in clothes["description"]["en"]
    assert answer.json()["guide"] == "README.md#connecting-a-real-model"


def test_api_engines_names_a_hosted_model_per_type(settings: Settings) -> None:
    hosted = settings.with_overrides(engine="local", engine_create="openai", engine_clothing_change="dashscope",
                                     workers=0, openai_model="gpt-image-1.5")
    with TestClient(create_app(hosted)) as client:
        items = {item["type"]: item for item in client.get("/api/engines").json()["items"]}
        page = client.get("/create", headers={"Accept-Language": "zh-CN"}).text
    assert (items["CREATE"]["kind"], items["CREATE"]["model"]) == ("hosted_model", "gpt-image-1.5")
    assert items["CREATE"]["description"]["en"] == "Made by the hosted image model gpt-image-1.5 (OpenAI Images API)."
    assert items["CREATE"]["connect_a_model"] is None
    assert (items["CLOTHING_CHANGE"]["engine"], items["CLOTHING_CHANGE"]["model"]) == ("dashscope", "aitryon")
    assert items["WHITE_BACKGROUND"]["engine"] == "local"
    assert "由托管图像模型 gpt-image-1.5（OpenAI Images API）生成。" in page
