"""`genkeep worker --burst`: a task it runs shows its progress and previews while it runs, as under a started
worker, then its result."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from genkeep.config import Settings
from genkeep.studio import Studio
from genkeep.tasks.model import Task, TaskStatus
from tests.support.processes import genkeep_env, start
from tests.support.tasks import accept, row
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow

# Long enough that the draft preview is on show for a while: the local engine spends it after the draft.
LOCAL_DELAY_S = 5


@pytest.fixture
def studio(tmp_path: Path) -> Iterator[Studio]:
    """The studio's side of the database the burst works on: a page polling its tasks."""
    env = genkeep_env(tmp_path / "data", f"sqlite:///{tmp_path / 'genkeep.db'}")
    opened = Studio.open(Settings(data_dir=tmp_path / "data", database_url=env["GENKEEP_DATABASE_URL"],
                                  secret_key=env["GENKEEP_SECRET_KEY"], engine="none"))
    yield opened
    opened.close()


def test_a_burst_run_shows_progress_and_a_preview_while_it_runs(studio: Studio, tmp_path: Path) -> None:
    task = accept(studio, "a red kite over the sea")
    env = genkeep_env(studio.settings.data_dir, studio.settings.database_url, GENKEEP_ENGINE="local",
                      GENKEEP_LOCAL_DELAY=str(LOCAL_DELAY_S))
    log_path = tmp_path / "burst.log"
    burst = start(["worker", "--burst"], env, log_path)
    try:
        def running_with_preview() -> Task | None:
            current = row(studio, task.id)
            assert current is not None
            if current.is_final:
                raise AssertionError(f"the task became {current.status} and never showed a preview: "
                                     f"{log_path.read_text()[-2000:]}")
            return current if current.preview_name is not None else None

        running = wait_for(running_with_preview, timeout=60, message="a preview while the burst runs the task")
        assert running.status is TaskStatus.PROCESSING
        assert running.progress is not None and 0.0 < running.progress < 1.0
        preview = studio.storage.read(task.id, running.preview_name or "")
        assert isinstance(preview, Path)
        with Image.open(preview) as picture:
            assert picture.width > 0 and picture.height > 0

        wait_for(lambda: burst.poll() is not None, timeout=60, message="the burst to run its task and exit")
    finally:
        if burst.poll() is None:
            burst.kill()
        burst.wait()
    assert burst.returncode == 0, log_path.read_text()[-2000:]
    final = row(studio, task.id)
    assert final is not None and final.status is TaskStatus.COMPLETED and final.result_name is not None
    assert final.preview_name is None and studio.storage.read(task.id, running.preview_name or "") is None
