"""A client generated from /openapi.json alone works: openapi-python-client builds it, and it starts a
generation on the built-in local engine, polls it to the end and downloads the image, as a script would."""

from __future__ import annotations

import importlib
import io
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from PIL import Image, ImageDraw

from tests.support.processes import genkeep_env, serving
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow

PACKAGE = "genkeep_client"
# What the generator is told beyond the document: the package's name, no formatter run over the output, and that
# the image and archive answers (image/png, image/jpeg, image/webp, application/zip) are bytes.
CONFIG = f"""\
project_name_override: genkeep-client
package_name_override: {PACKAGE}
post_hooks: []
content_type_overrides:
  image/png: application/octet-stream
  image/jpeg: application/octet-stream
  image/webp: application/octet-stream
  application/zip: application/octet-stream
"""


def _product_photo() -> bytes:
    """A product the local engine can cut out: a blue box on a light backdrop."""
    image = Image.new("RGB", (320, 400), (238, 236, 232))
    ImageDraw.Draw(image).rounded_rectangle((80, 100, 240, 320), radius=16, fill=(40, 90, 200))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


@pytest.fixture
def studio_url(tmp_path: Path) -> Iterator[str]:
    """`genkeep serve` on SQLite with the local engine, as `make run` starts it."""
    env = genkeep_env(tmp_path / "data", f"sqlite:///{tmp_path / 'genkeep.db'}", GENKEEP_ENGINE="local",
                      GENKEEP_WORKERS="1")
    with serving(env, tmp_path / "serve.log") as (_process, base):
        yield base


def _generate(document: str, tmp_path: Path) -> ModuleType:
    (tmp_path / "openapi.json").write_text(document)
    (tmp_path / "client.yml").write_text(CONFIG)
    generated = subprocess.run(
        [sys.executable, "-m", "openapi_python_client", "generate", "--path", str(tmp_path / "openapi.json"),
         "--config", str(tmp_path / "client.yml"), "--output-path", str(tmp_path / "client")],
        capture_output=True, text=True, timeout=120)
    assert generated.returncode == 0, generated.stdout + generated.stderr
    # Every operation and answer made it into the client: the generator skips what it cannot read, with a warning.
    assert "WARNING" not in generated.stdout + generated.stderr, generated.stdout + generated.stderr
    sys.path.insert(0, str(tmp_path / "client"))
    try:
        return importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(tmp_path / "client"))


@pytest.fixture
def generated(studio_url: str, tmp_path: Path) -> Iterator[Any]:
    package = _generate(httpx.get(f"{studio_url}/openapi.json").text, tmp_path)
    yield package
    for name in [name for name in sys.modules if name == PACKAGE or name.startswith(PACKAGE + ".")]:
        del sys.modules[name]


def test_a_generated_client_starts_polls_and_downloads_a_generation(studio_url: str, generated: Any) -> None:
    def operation(tag: str, operation_id: str) -> Any:
        return importlib.import_module(f"{PACKAGE}.api.{tag}.{operation_id}")

    create_task, get_task, list_tasks = (operation("tasks", name) for name in ("create_task", "get_task",
                                                                                "list_tasks"))
    task_file = operation("files", "task_file")
    models = importlib.import_module(f"{PACKAGE}.models")
    types = importlib.import_module(f"{PACKAGE}.types")
    client = generated.Client(base_url=studio_url, raise_on_unexpected_status=True)

    photo = types.File(payload=io.BytesIO(_product_photo()), file_name="bottle.png", mime_type="image/png")
    form = models.TaskForm(type_=models.TaskType.WHITE_BACKGROUND, prompt="soft shadow",
                           reference_images=[photo])
    created = create_task.sync_detailed(client=client, body=form, idempotency_key="bottle-1")
    assert created.status_code == 201
    task = created.parsed
    assert isinstance(task, models.Task) and task.status == models.TaskStatus.PROCESSING
    assert (task.reference_images[0].width, task.reference_images[0].height) == (320, 400)

    # The same key again: the same task, nothing new.
    again = create_task.sync_detailed(client=client, body=form, idempotency_key="bottle-1")
    assert again.status_code == 200 and again.parsed.id == task.id

    def finished() -> Any:
        polled = get_task.sync(task.id, client=client)
        return polled if polled.status in (models.TaskStatus.COMPLETED, models.TaskStatus.FAILED) else None

    done = wait_for(finished, timeout=120, interval=0.5, message="the local engine to finish the task")
    assert done.status == models.TaskStatus.COMPLETED, done.error
    assert done.finished_at is not None and done.finished_at >= done.created_at

    name = done.image_url.rsplit("/", 1)[1]
    image = task_file.sync(done.id, name, client=client)
    with Image.open(image.payload) as picture:
        assert picture.size[0] > 0 and picture.format in ("PNG", "JPEG", "WEBP")

    # A form without images goes as a plain form; errors are typed Problems.
    words = models.TaskFormWithoutImages(type_=models.TaskFormWithoutImagesType.CREATE, prompt="a red kite")
    assert create_task.sync(client=client, body=words).type_ == models.TaskType.CREATE
    missing = get_task.sync("0" * 32, client=client)
    assert isinstance(missing, models.Problem) and missing.code == "not_found" and missing.status == 404
    page = list_tasks.sync(client=client, type_=models.TaskType.WHITE_BACKGROUND, limit=10)
    assert [listed.id for listed in page.items] == [task.id]
