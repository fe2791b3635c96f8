"""Many machines: `genkeep serve` processes with their own data folders, one PostgreSQL and one bucket.

One process is API-only (GENKEEP_WORKERS=0); the others run workers. Nothing is shared but the database and the
bucket, as between machines. Everything is judged from outside: HTTP answers and the bucket's own listing.
"""

from __future__ import annotations

import io
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.conftest import SCRIPTED_ENGINE, empty_postgres
from tests.support import s3
from tests.support.images import png_bytes
from tests.support.processes import genkeep_env, serving, stop
from tests.support.tcp_proxy import tcp_proxy
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

# A result large enough that a worker sending it is still sending when killed, whatever the kernel buffers.
BIG_MB = 24


@pytest.fixture
def shared_database(postgres_url: str, tmp_path: Path) -> str:
    return empty_postgres(postgres_url, tmp_path)


def machine(name: str, tmp_path: Path, database_url: str, s3_url: str, s3_endpoint: str,
            **extra: str) -> dict[str, str]:
    """One machine's environment: its own data folder; the shared database and bucket."""
    return genkeep_env(tmp_path / name, database_url, GENKEEP_STORAGE_URL=s3_url, GENKEEP_ENGINE=SCRIPTED_ENGINE,
                       GENKEEP_WORKER_POLL_INTERVAL="0.2", **{**s3.aws_env(s3_endpoint), **extra})


def bucket_keys(s3_url: str, s3_endpoint: str, task_id: str) -> list[str]:
    bucket = s3_url.removeprefix("s3://").partition("/")[0]
    return [key for key in s3.keys(s3_endpoint, bucket) if task_id in key]


def wait_completed(browser: httpx.Client, task_id: str, timeout: float = 60) -> dict[str, Any]:
    def completed() -> dict[str, Any] | None:
        task: dict[str, Any] = browser.get(f"/api/tasks/{task_id}").json()
        assert task["status"] != "failed", task
        return task if task["status"] == "completed" else None

    return wait_for(completed, timeout=timeout, interval=0.2, message=f"task {task_id} to complete")


def images_in(data_dir: Path) -> list[Path]:
    return [path for path in (data_dir / "images").rglob("*") if path.is_file()]


def test_a_task_accepted_by_the_api_only_process_is_run_by_the_other_and_served_by_both(
        shared_database: str, s3_url: str, s3_endpoint: str, tmp_path: Path) -> None:
    runs = tmp_path / "runs.log"
    api_env = machine("api", tmp_path, shared_database, s3_url, s3_endpoint, GENKEEP_WORKERS="0")
    worker_env = machine("worker", tmp_path, shared_database, s3_url, s3_endpoint, GENKEEP_WORKERS="2",
                         GENKEEP_TEST_RUN_LOG=str(runs))
    photo = png_bytes(200, 150, (180, 40, 40))
    with serving(api_env, tmp_path / "api.log") as (_, api), \
            serving(worker_env, tmp_path / "worker.log") as (_, other), \
            httpx.Client(base_url=api, timeout=30) as browser:
        created = browser.post("/api/tasks", data={"type": "WHITE_BACKGROUND", "prompt": "a mug"},
                               files=[("reference_images", ("mug.png", photo, "image/png"))])
        assert created.status_code == 201, created.text
        task = wait_completed(browser, created.json()["id"])
        assert runs.read_text().split() == [task["id"]], "run once, by the other process's workers"

        urls = [task["image_url"], task["reference_images"][0]["url"]]
        served = {}
        for base in (api, other):
            with httpx.Client(base_url=base, cookies=browser.cookies, timeout=30) as owner:
                answers = [owner.get(url) for url in urls]
                assert [answer.status_code for answer in answers] == [200, 200]
                served[base] = [answer.content for answer in answers]
            with httpx.Client(base_url=base, timeout=30) as stranger:
                assert [stranger.get(url).status_code for url in urls] == [404, 404]
        assert served[api] == served[other]
        result, reference = served[api]
        assert Image.open(io.BytesIO(result)).size == (64, 64)
        assert Image.open(io.BytesIO(reference)).size == (200, 150)
    assert images_in(tmp_path / "api") == [] and images_in(tmp_path / "worker") == []
    names = sorted(key.rsplit("/", 1)[1] for key in bucket_keys(s3_url, s3_endpoint, task["id"]))
    result_name = task["image_url"].rsplit("/", 1)[1]
    assert names == sorted(["reference-1.png", "reference-1.png.320.webp", result_name, f"{result_name}.320.webp",
                            f"{result_name}.640.webp"]), "each picture and its thumbnails, nothing else"


def test_a_worker_killed_mid_upload_leaves_no_half_image(shared_database: str, s3_url: str, s3_endpoint: str,
                                                         tmp_path: Path) -> None:
    port = int(s3_endpoint.rsplit(":", 1)[1])
    api_env = machine("api", tmp_path, shared_database, s3_url, s3_endpoint, GENKEEP_WORKERS="0")
    takeover = {"GENKEEP_WORKERS": "1", "GENKEEP_LEASE_SECONDS": "1.5"}
    with tcp_proxy("127.0.0.1", port, small_buffers=True) as proxy, \
            serving(api_env, tmp_path / "api.log") as (_, api), \
            httpx.Client(base_url=api, timeout=30) as browser:
        # The first worker machine reaches the bucket through a proxy that stops forwarding mid-upload.
        first_env = machine("first", tmp_path, shared_database, s3_url, f"http://127.0.0.1:{proxy.port}",
                            **takeover)
        with serving(first_env, tmp_path / "first.log") as (first, _):
            proxy.hold_after(2 * 1024 * 1024)
            created = browser.post("/api/tasks", data={"type": "CREATE", "prompt": f"big:{BIG_MB} a poster"})
            assert created.status_code == 201, created.text
            task_id = created.json()["id"]
            wait_for(proxy.held_mid_upload.is_set, timeout=60, message="the first worker to be mid-upload")
            stop(first, signal.SIGKILL)
        proxy.release()
        wait_for(lambda: proxy.open_connections == 0, message="the cut upload's connection to close")
        assert bucket_keys(s3_url, s3_endpoint, task_id) == [], "the cut upload left no object, whole or half"
        assert browser.get(f"/api/tasks/{task_id}").json()["status"] == "processing"

        # Another machine takes the task over once the first one's lease runs out, and publishes it whole.
        second_env = machine("second", tmp_path, shared_database, s3_url, s3_endpoint, **takeover)
        with serving(second_env, tmp_path / "second.log") as (_, second):
            task = wait_completed(browser, task_id)
            for base in (api, second):
                with httpx.Client(base_url=base, cookies=browser.cookies, timeout=60) as owner:
                    image = owner.get(task["image_url"])
                assert image.status_code == 200 and s3.is_whole_image(image.content)
                assert len(image.content) > BIG_MB * 1024 * 1024 * 0.95
    keys = {key.rsplit("/", 1)[1]: key for key in bucket_keys(s3_url, s3_endpoint, task_id)}
    result_name = task["image_url"].rsplit("/", 1)[1]
    assert sorted(keys) == [result_name, f"{result_name}.320.webp", f"{result_name}.640.webp"], \
        "the result the second machine published, with its thumbnails, and nothing of the cut upload"
    bucket = s3_url.removeprefix("s3://").partition("/")[0]
    assert s3.object_bytes(s3_endpoint, bucket, keys[result_name]) == image.content
