"""The ComfyUI engine against a fake ComfyUI server, with the bundled workflows and with custom ones."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from genkeep.config import Settings, SettingsError
from genkeep.engines import load_engine
from genkeep.engines.base import EngineError, EngineResult, EngineStopped
from genkeep.engines.comfyui import BUNDLED_WORKFLOWS, ComfyUIEngine, client_id_for, prompt_id_for
from genkeep.tasks.model import TaskType
from tests.engines.providers.conftest import PERSON_COLOR
from tests.engines.providers.fake_comfyui import (
    FOREIGN_COLOR,
    PREVIEW_SIZE,
    PREVIEW_STEPS,
    PROXY_KEY,
    RESULT_COLOR,
    FakeComfyUI,
    preview_color,
)
from tests.engines.providers.fakes import FakeContext, image_color, make_job, serving
from tests.support.previews import Preview, fractions_rise


@pytest.fixture
def fake() -> Iterator[FakeComfyUI]:
    with serving(FakeComfyUI()) as app:
        yield app


def settings_for(fake: FakeComfyUI, **extra: str) -> Settings:
    provider = {"GENKEEP_COMFYUI_URL": fake.base_url, "GENKEEP_COMFYUI_TIMEOUT": "5"}
    return Settings.from_env({"GENKEEP_ENGINE": "comfyui", **provider, **extra})


@pytest.fixture
def engine(fake: FakeComfyUI) -> Iterator[ComfyUIEngine]:
    made = load_engine(settings_for(fake))
    assert isinstance(made, ComfyUIEngine)
    yield made
    made.close()


def generate(engine: ComfyUIEngine, task_type: TaskType = TaskType.CREATE, paths: tuple[Path, ...] = (),
             prompt: str | None = "a red bicycle") -> EngineResult:
    ctx = FakeContext()
    job = make_job(task_type, paths, prompt=prompt)
    return engine.wait(job, engine.submit(job, ctx), ctx)


def failure(engine: ComfyUIEngine, task_type: TaskType = TaskType.CREATE, paths: tuple[Path, ...] = ()) -> EngineError:
    with pytest.raises(EngineError) as caught:
        generate(engine, task_type, paths)
    return caught.value


def node(workflow: dict, class_type: str, title: str | None = None) -> dict:
    matches = [n for n in workflow.values()
               if n["class_type"] == class_type and (title is None or n.get("_meta", {}).get("title") == title)]
    assert matches, f"no {class_type} node"
    return matches[0]["inputs"]


def test_create_runs_the_bundled_workflow(engine: ComfyUIEngine, fake: FakeComfyUI) -> None:
    result = generate(engine)

    assert image_color(result.data) == RESULT_COLOR
    queued, = fake.submitted
    # genkeep chose the prompt_id, derived from the task.
    assert queued.prompt_id == prompt_id_for("task-abc123")
    assert node(queued.workflow, "TextEncodeQwenImageEditPlus", "Positive")["prompt"] == "a red bicycle"
    seed = node(queued.workflow, "KSampler")["seed"]
    assert isinstance(seed, int) and 0 <= seed < 2**31
    assert fake.uploads == {}
    body = fake.seen("POST", "/prompt")[0].json()
    # The client id is the task's own: ComfyUI sends a prompt's previews to the socket of that client only.
    assert body["prompt_id"] == queued.prompt_id and body["client_id"] == client_id_for("task-abc123")
    assert client_id_for("task-abc123").startswith("genkeep-") and client_id_for("task-other") != body["client_id"]


def test_clothing_change_uploads_person_then_garment_under_task_names(
        engine: ComfyUIEngine, fake: FakeComfyUI, person_and_garment: tuple[Path, Path]) -> None:
    generate(engine, TaskType.CLOTHING_CHANGE, person_and_garment, prompt=None)

    assert sorted(fake.uploads) == ["genkeep-task-abc123-1.png", "genkeep-task-abc123-2.jpg"]
    assert image_color(fake.uploads["genkeep-task-abc123-1.png"]) == PERSON_COLOR
    queued, = fake.submitted
    loads = [n["inputs"]["image"] for n in queued.workflow.values() if n["class_type"] == "LoadImage"]
    assert loads == ["genkeep-task-abc123-1.png", "genkeep-task-abc123-2.jpg"]
    positive = node(queued.workflow, "TextEncodeQwenImageEditPlus", "Positive")
    assert positive["prompt"].startswith("Dress the person in the first image")


def test_white_background_uploads_its_one_image(
        engine: ComfyUIEngine, fake: FakeComfyUI, person_and_garment: tuple[Path, Path]) -> None:
    generate(engine, TaskType.WHITE_BACKGROUND, person_and_garment[:1], prompt="keep the shadow")

    assert list(fake.uploads) == ["genkeep-task-abc123-1.png"]
    positive = node(fake.submitted[0].workflow, "TextEncodeQwenImageEditPlus", "Positive")
    assert "pure white (#FFFFFF)" in positive["prompt"] and positive["prompt"].endswith("keep the shadow")


def test_custom_workflow_folder_and_placeholders(fake: FakeComfyUI, tmp_path: Path,
                                                 person_and_garment: tuple[Path, Path]) -> None:
    for name in ("white_background", "clothing_change"):
        (tmp_path / f"{name}.json").write_text((BUNDLED_WORKFLOWS / f"{name}.json").read_text())
    (tmp_path / "create.json").write_text(json.dumps({
        "1": {"class_type": "LoadImage", "inputs": {"image": "{{image_1}}"}},
        "2": {"class_type": "KSampler", "inputs": {"seed": "{{seed}}", "note": "seed {{seed}} for {{task_id}}"}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "{{user_prompt}}"}},
    }))
    engine = ComfyUIEngine(settings_for(fake, GENKEEP_COMFYUI_WORKFLOWS=str(tmp_path)))
    generate(engine, TaskType.CREATE, person_and_garment)
    engine.close()

    workflow = fake.submitted[0].workflow
    seed = workflow["2"]["inputs"]["seed"]
    assert workflow["2"]["inputs"]["note"] == f"seed {seed} for task-abc123"
    assert workflow["3"]["inputs"]["text"] == "a red bicycle"
    # Only the images the workflow names are uploaded.
    assert list(fake.uploads) == ["genkeep-task-abc123-1.png"]


def test_a_workflow_that_needs_more_images_than_the_task_has(fake: FakeComfyUI, tmp_path: Path) -> None:
    for name in ("create", "white_background", "clothing_change"):
        (tmp_path / f"{name}.json").write_text(json.dumps({"1": {"class_type": "LoadImage",
                                                                 "inputs": {"image": "{{image_1}}"}}}))
    engine = ComfyUIEngine(settings_for(fake, GENKEEP_COMFYUI_WORKFLOWS=str(tmp_path)))
    error = failure(engine, TaskType.CREATE)
    assert error.code == "invalid_input" and "create.json needs image_1" in error.message
    assert fake.submitted == []


def test_a_missing_workflow_is_a_settings_error(fake: FakeComfyUI, tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"create\.json is missing"):
        ComfyUIEngine(settings_for(fake, GENKEEP_COMFYUI_WORKFLOWS=str(tmp_path)))


def test_a_workflow_comfyui_rejects(fake: FakeComfyUI, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    for name in ("create", "white_background", "clothing_change"):
        (tmp_path / f"{name}.json").write_text(json.dumps({"1": {"class_type": "KSampler",
                                                                 "inputs": {"seed": "7"}}}))
    engine = ComfyUIEngine(settings_for(fake, GENKEEP_COMFYUI_WORKFLOWS=str(tmp_path)))
    error = failure(engine)
    assert error.code == "provider_error"
    assert error.message.startswith("ComfyUI rejected the request (HTTP 400: prompt_outputs_failed_validation); ")
    # Which node and why: the operator reads it in the log.
    assert "node 1 (KSampler): Failed to convert" in caplog.text


def test_bad_key_at_an_authenticating_proxy(fake: FakeComfyUI) -> None:
    fake.require_key = True
    error = failure(ComfyUIEngine(settings_for(fake, GENKEEP_COMFYUI_API_KEY="wrong")))
    assert error.code == "provider_error" and "GENKEEP_COMFYUI_API_KEY" in error.message
    assert image_color(generate(ComfyUIEngine(settings_for(fake, GENKEEP_COMFYUI_API_KEY=PROXY_KEY))).data) \
        == RESULT_COLOR


def test_rate_limited(engine: ComfyUIEngine, fake: FakeComfyUI) -> None:
    fake.mode = "rate_limited"
    assert failure(engine).message == "ComfyUI is rate limiting genkeep; try again in a minute."


def test_server_error(engine: ComfyUIEngine, fake: FakeComfyUI) -> None:
    fake.mode = "server_error"
    error = failure(engine)
    assert error.code == "provider_unavailable" and "HTTP 502" in error.message


def test_a_server_that_never_answers(fake: FakeComfyUI) -> None:
    fake.mode = "hang"
    engine = ComfyUIEngine(settings_for(fake, GENKEEP_COMFYUI_TIMEOUT="1"))
    started = time.monotonic()
    error = failure(engine)
    assert time.monotonic() - started < 4
    assert error.message.startswith("ComfyUI did not answer within 1 s")


def test_a_server_that_is_not_running(fake: FakeComfyUI) -> None:
    error = failure(ComfyUIEngine(settings_for(fake, GENKEEP_COMFYUI_URL="http://127.0.0.1:9")))
    assert error.code == "provider_unavailable"
    assert error.message.startswith("ComfyUI could not be reached at http://127.0.0.1:9")
    assert "check GENKEEP_COMFYUI_URL" in error.message


def test_a_malformed_history(engine: ComfyUIEngine, fake: FakeComfyUI) -> None:
    fake.mode = "malformed"
    error = failure(engine)
    assert error.code == "engine_error" and "not JSON" in error.message


def test_a_failed_execution(engine: ComfyUIEngine, fake: FakeComfyUI, caplog: pytest.LogCaptureFixture) -> None:
    fake.outcome = "error"
    error = failure(engine)
    assert (error.code, error.message) == (
        "provider_error",
        "ComfyUI could not make this image (UNETLoader); retry the task, or try other images or another prompt.")
    assert "UNETLoader (node 1) failed: CUDA out of memory" in caplog.text


def test_a_workflow_that_saves_no_image(engine: ComfyUIEngine, fake: FakeComfyUI) -> None:
    fake.outcome = "no_image"
    assert "needs a SaveImage node" in failure(engine).message


def test_a_job_comfyui_lost_in_a_restart(engine: ComfyUIEngine, fake: FakeComfyUI) -> None:
    job = make_job(TaskType.CREATE)
    prompt_id = engine.submit(job, FakeContext())
    fake.restart()
    with pytest.raises(EngineError) as caught:
        engine.wait(job, prompt_id, FakeContext())
    assert (caught.value.code, caught.value.message) == (
        "provider_error", "ComfyUI no longer knows this job (it was probably restarted); retry the task.")


def test_a_new_worker_resumes_the_saved_job_without_queueing_it_again(fake: FakeComfyUI) -> None:
    first = ComfyUIEngine(settings_for(fake))
    saved_id = first.submit(make_job(TaskType.CREATE), FakeContext())
    first.close()
    second = ComfyUIEngine(settings_for(fake))
    result = second.wait(make_job(TaskType.CREATE), saved_id, FakeContext())
    second.close()

    assert image_color(result.data) == RESULT_COLOR
    assert len(fake.submitted) == 1


@pytest.mark.parametrize("finished_first", [False, True])
def test_a_crash_before_the_id_was_saved_does_not_queue_twice(
        fake: FakeComfyUI, person_and_garment: tuple[Path, Path], finished_first: bool) -> None:
    job = make_job(TaskType.CLOTHING_CHANGE, person_and_garment)
    first = ComfyUIEngine(settings_for(fake))
    first.submit(job, FakeContext())
    first.close()
    if finished_first:
        fake.finish_all()
    # The worker died before saving the id: the next worker submits again, and finds the job.
    second = ComfyUIEngine(settings_for(fake))
    prompt_id = second.submit(job, FakeContext())
    result = second.wait(job, prompt_id, FakeContext())
    second.close()

    assert image_color(result.data) == RESULT_COLOR
    assert len(fake.submitted) == 1 and len(fake.seen("POST", "/prompt")) == 1
    assert prompt_id == fake.submitted[0].prompt_id


def test_an_old_comfyui_that_picks_its_own_ids(engine: ComfyUIEngine, fake: FakeComfyUI) -> None:
    fake.honours_prompt_id = False
    job = make_job(TaskType.CREATE)
    prompt_id = engine.submit(job, FakeContext())
    assert prompt_id == fake.submitted[0].prompt_id != prompt_id_for(job.task_id)
    assert image_color(engine.wait(job, prompt_id, FakeContext()).data) == RESULT_COLOR


@pytest.mark.parametrize("running", [False, True])
def test_a_canceled_task_drops_its_comfyui_job(fake: FakeComfyUI, running: bool) -> None:
    engine = ComfyUIEngine(settings_for(fake))
    job = make_job(TaskType.CREATE)
    prompt_id = engine.submit(job, FakeContext())
    if running:
        fake.queue[prompt_id].looks = 1
    engine.cancel(job, prompt_id)
    engine.close()
    assert prompt_id not in fake.queue and prompt_id not in fake.history
    assert len(fake.seen("POST", "/interrupt")) == (1 if running else 0)


# ---- live previews: ComfyUI's websocket ----------------------------------------------------------------------------


def reading_previews(fake: FakeComfyUI, **options: Any) -> FakeContext:
    """A context for a prompt that runs until the engine has shown all its previews.

    ComfyUI's previews come seconds apart while a prompt samples; the fake sends them at once, so without this the
    prompt could be over before the engine read them.
    """
    fake.may_finish.clear()

    def seen(previews: list[Preview]) -> None:
        if len(previews) >= PREVIEW_STEPS:
            fake.may_finish.set()

    return FakeContext(on_preview=seen, **options)


def close_to(color: tuple[int, int, int], expected: tuple[int, int, int]) -> bool:
    # Half the previews are JPEGs: their colour comes back approximately.
    return all(abs(a - b) <= 4 for a, b in zip(color, expected, strict=True))


def test_previews_arrive_over_the_websocket_while_the_prompt_runs(engine: ComfyUIEngine, fake: FakeComfyUI) -> None:
    fake.websocket = True
    ctx = reading_previews(fake)
    job = make_job(TaskType.CREATE)
    result = engine.wait(job, engine.submit(job, ctx), ctx)

    assert image_color(result.data) == RESULT_COLOR
    # The socket was opened with the client id the prompt was queued with.
    assert list(fake.sockets) == [client_id_for(job.task_id)] == [fake.submitted[0].client_id]
    # One preview per sampler step, JPEG and PNG frames alike, drawing closer to the result.
    assert len(ctx.previews) == PREVIEW_STEPS
    for step, preview in enumerate(ctx.previews, start=1):
        assert preview.size == PREVIEW_SIZE
        assert close_to(preview.color(), preview_color(step)), (step, preview.color())
    # Each comes with the sampler's progress, inside the stretch between queueing and fetching the result.
    assert fractions_rise(ctx.previews)
    assert 0.1 < ctx.previews[0].fraction < ctx.previews[-1].fraction <= 0.9  # type: ignore[operator]
    assert ctx.progress == sorted(ctx.progress) and ctx.progress[-1] == 0.9


def test_without_a_websocket_the_engine_polls_as_before(engine: ComfyUIEngine, fake: FakeComfyUI) -> None:
    ctx = FakeContext()
    job = make_job(TaskType.CREATE)
    result = engine.wait(job, engine.submit(job, ctx), ctx)

    assert image_color(result.data) == RESULT_COLOR
    assert len(fake.seen("GET", "/ws")) == 1
    assert ctx.previews == [] and ctx.sleeps
    assert ctx.progress == sorted(ctx.progress)


def test_a_websocket_that_drops_falls_back_to_polling(engine: ComfyUIEngine, fake: FakeComfyUI) -> None:
    fake.websocket = fake.drop_socket = True
    ctx = FakeContext()
    job = make_job(TaskType.CREATE)
    result = engine.wait(job, engine.submit(job, ctx), ctx)

    assert image_color(result.data) == RESULT_COLOR
    assert fake.sockets[client_id_for(job.task_id)].closed.is_set()
    assert len(ctx.previews) <= 1


def test_previews_of_another_clients_prompt_are_not_shown(engine: ComfyUIEngine, fake: FakeComfyUI) -> None:
    # A prompt queued without a client id runs first; ComfyUI sends its previews to every socket, ours included.
    fake.websocket = fake.foreign_preview = True
    ctx = reading_previews(fake)
    job = make_job(TaskType.CREATE)
    engine.wait(job, engine.submit(job, ctx), ctx)

    assert len(ctx.previews) == PREVIEW_STEPS
    assert not any(close_to(preview.color(), FOREIGN_COLOR) for preview in ctx.previews)


def test_the_proxy_key_opens_the_websocket_too(fake: FakeComfyUI) -> None:
    fake.websocket = fake.require_key = True
    engine = ComfyUIEngine(settings_for(fake, GENKEEP_COMFYUI_API_KEY=PROXY_KEY))
    ctx = reading_previews(fake)
    job = make_job(TaskType.CREATE)
    engine.wait(job, engine.submit(job, ctx), ctx)
    engine.close()
    assert len(ctx.previews) == PREVIEW_STEPS


def test_a_stop_while_listening_to_the_websocket(engine: ComfyUIEngine, fake: FakeComfyUI) -> None:
    fake.websocket = fake.hold = True
    ctx = FakeContext(stop_after_previews=1)
    job = make_job(TaskType.CREATE)
    prompt_id = engine.submit(job, ctx)
    with pytest.raises(EngineStopped):
        engine.wait(job, prompt_id, ctx)
    assert len(ctx.previews) == 1
