"""Real `genkeep worker` processes on a submit-then-poll provider: one is killed mid-job, another takes the task
over, resumes the provider job by its saved id, and the provider never sees a second submission."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from genkeep.config import Settings
from genkeep.reference_images import clean_image
from genkeep.studio import Studio
from genkeep.tasks.model import Task, TaskType
from genkeep.tasks.new_task import NewTask
from tests.engines.providers.fake_comfyui import FakeComfyUI
from tests.engines.providers.fake_dashscope import API_KEY, FakeDashScope
from tests.engines.providers.fakes import png, serving
from tests.support.processes import genkeep_env, start, stop
from tests.support.tasks import row
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow

PUBLIC_BASE_URL = "https://studio.example"


@pytest.fixture
def studio(tmp_path: Path) -> Iterator[Studio]:
    settings = Settings(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 'genkeep.db'}",
                        secret_key="test-secret-key-" + "x" * 16, public_base_url=PUBLIC_BASE_URL)
    opened = Studio.open(settings)
    yield opened
    opened.close()


def accept_clothing_change(studio: Studio) -> Task:
    settings = studio.settings
    images = [clean_image(png(color, (96, 128)), label, max_pixels=settings.max_image_pixels,
                          min_side=settings.min_image_side)
              for color, label in (((200, 30, 30), "person"), ((30, 30, 200), "garment"))]
    return studio.manager.accept("owner-takeover", NewTask(TaskType.CLOTHING_CHANGE, None, 2), images).task


def kill_mid_job_and_take_over(studio: Studio, tmp_path: Path, provider_env: dict[str, str],
                               submitted: Callable[[], int], polled: Callable[[], int],
                               release: Callable[[], None]) -> Task:
    """Run the task on a worker, SIGKILL it mid-job, start another; return the finished task."""
    task = accept_clothing_change(studio)
    env = genkeep_env(studio.settings.data_dir, studio.settings.resolved_database_url,
                      GENKEEP_WORKERS="1", GENKEEP_LEASE_SECONDS="1", GENKEEP_WORKER_POLL_INTERVAL="0.2",
                      GENKEEP_PUBLIC_BASE_URL=PUBLIC_BASE_URL, **provider_env)
    first = start(["worker"], env, tmp_path / "first.log")
    second = None
    try:
        def saved_and_polled() -> bool:
            current = row(studio, task.id)
            return current is not None and current.provider_job_id is not None and polled() > 0

        wait_for(saved_and_polled, timeout=30, message="the first worker to save the provider job and poll it")
        stop(first, signal.SIGKILL)
        polls_before = polled()
        second = start(["worker"], env, tmp_path / "second.log")
        wait_for(lambda: polled() > polls_before, timeout=30, message="the second worker to poll the same job")
        release()

        def finished() -> Task | None:
            current = row(studio, task.id)
            return current if current is not None and current.is_final else None

        final = wait_for(finished, timeout=30, message="the task to finish after the takeover")
    finally:
        stop(first, signal.SIGKILL)
        if second is not None:
            stop(second)
    assert final.status == "completed", (final.error, (tmp_path / "second.log").read_text()[-2000:])
    assert final.attempts == 2
    assert submitted() == 1, "the provider saw a second submission"
    return final


def test_dashscope_job_survives_a_killed_worker(studio: Studio, tmp_path: Path) -> None:
    with serving(FakeDashScope()) as fake:
        fake.hold = True

        def release() -> None:
            fake.hold = False

        final = kill_mid_job_and_take_over(
            studio, tmp_path,
            {"GENKEEP_ENGINE": "dashscope", "GENKEEP_DASHSCOPE_API_KEY": API_KEY,
             "GENKEEP_DASHSCOPE_BASE_URL": f"{fake.base_url}/api/v1"},
            submitted=lambda: len(fake.submissions), polled=lambda: len(fake.seen("GET", "/api/v1/tasks/")),
            release=release)

        task, = fake.submissions
    assert final.engine == "dashscope" and final.provider_job_id == task.id
    # DashScope fetched the images from genkeep's signed URLs, person first.
    person, garment = task.input["person_image_url"], task.input["top_garment_url"]
    assert person.startswith(f"{PUBLIC_BASE_URL}/files/{final.id}/reference-1")
    assert garment.startswith(f"{PUBLIC_BASE_URL}/files/{final.id}/reference-2")


def test_comfyui_job_survives_a_killed_worker(studio: Studio, tmp_path: Path) -> None:
    with serving(FakeComfyUI()) as fake:
        fake.hold = True

        def release() -> None:
            fake.hold = False

        final = kill_mid_job_and_take_over(
            studio, tmp_path, {"GENKEEP_ENGINE": "comfyui", "GENKEEP_COMFYUI_URL": fake.base_url},
            submitted=lambda: len(fake.seen("POST", "/prompt")), polled=lambda: len(fake.seen("GET", "/history/")),
            release=release)

    assert final.engine == "comfyui" and final.provider_job_id == fake.submitted[0].prompt_id
    assert len(fake.uploads) == 2
