"""Metrics with several processes: an API-only `genkeep serve` and a `genkeep worker` on one database, each its own
scrape target (per-process registries, added up by Prometheus), and the worker's logs as JSON lines."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from genkeep.config import Settings
from tests.conftest import SCRIPTED_ENGINE
from tests.support.processes import free_port, genkeep_env, serving, start, stop
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow


def finished(text: str) -> float:
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == "genkeep_tasks_finished_total" and sample.labels["outcome"] == "completed")


def test_an_api_process_and_a_worker_process_each_count_their_own_part(settings: Settings, tmp_path: Path) -> None:
    metrics_port = free_port()
    common = {"GENKEEP_ENGINE": SCRIPTED_ENGINE, "GENKEEP_WORKER_POLL_INTERVAL": "0.2", "GENKEEP_LOG_FORMAT": "json"}
    api_env = genkeep_env(settings.data_dir, settings.resolved_database_url, GENKEEP_WORKERS="0", **common)
    worker_env = genkeep_env(settings.data_dir, settings.resolved_database_url, GENKEEP_WORKERS="2",
                             GENKEEP_METRICS_ADDRESS=f"127.0.0.1:{metrics_port}", **common)
    worker_log = tmp_path / "worker.log"
    with serving(api_env, tmp_path / "serve.log") as (_server, base):
        worker = start(["worker"], worker_env, worker_log)
        try:
            with httpx.Client(base_url=base, timeout=10) as browser:
                ids = [browser.post("/api/tasks", data={"type": "CREATE", "prompt": f"kite {n}"}).json()["id"]
                       for n in range(3)]

                def all_done() -> bool:
                    return all(browser.get(f"/api/tasks/{task_id}").json()["status"] == "completed"
                               for task_id in ids)

                wait_for(all_done, timeout=60, interval=0.2, message="the worker process to complete 3 tasks")
                api_metrics = browser.get("/metrics").text
            worker_url = f"http://127.0.0.1:{metrics_port}/metrics"
            worker_metrics = wait_for(lambda: _get(worker_url), timeout=30, message="the worker's /metrics")
        finally:
            stop(worker)
    # Accepted where the API ran, finished where the worker ran: summed across targets, each task once.
    assert 'genkeep_tasks_accepted_total{type="CREATE"} 3.0' in api_metrics
    assert finished(api_metrics) == 0
    assert finished(worker_metrics) == 3
    assert 'genkeep_task_run_seconds_count{engine="scripted",type="CREATE"} 3.0' in worker_metrics
    assert 'genkeep_engine_info{engine="scripted",type="CREATE"} 1.0' in worker_metrics
    # The database's count of unfinished tasks is the API's to give (the same from every process).
    assert 'genkeep_tasks_unfinished{state="waiting",status="processing",type="CREATE"} 0.0' in api_metrics
    assert "genkeep_tasks_unfinished" not in worker_metrics

    lines = [line for line in worker_log.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is JSON, start-up lines included
    completed = {record["task_id"] for record in records if record.get("transition") == "completed"}
    assert completed == set(ids)
    assert any("running 2 at a time" in record["message"] for record in records)


def _get(url: str) -> str | None:
    try:
        answer = httpx.get(url, timeout=2)
    except httpx.HTTPError:
        return None
    return answer.text if answer.status_code == 200 else None
