"""The DashScope engine against a fake DashScope speaking its asynchronous image-synthesis API."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from genkeep.config import Settings, SettingsError
from genkeep.engines import load_engine
from genkeep.engines.base import EngineError, EngineResult, EngineStopped
from genkeep.engines.dashscope import DashScopeEngine
from genkeep.tasks.model import TaskType
from tests.engines.providers.fake_dashscope import API_KEY, RESULT_COLOR, FakeDashScope
from tests.engines.providers.fakes import FakeContext, image_color, make_job, serving

URLS = tuple(f"https://genkeep.example/signed/{n}?sig=abc" for n in range(1, 5))


@pytest.fixture
def fake() -> Iterator[FakeDashScope]:
    with serving(FakeDashScope()) as app:
        yield app


def settings_for(fake: FakeDashScope, **extra: str) -> Settings:
    provider = {"GENKEEP_DASHSCOPE_API_KEY": API_KEY, "GENKEEP_DASHSCOPE_BASE_URL": f"{fake.base_url}/api/v1",
                "GENKEEP_DASHSCOPE_TIMEOUT": "5"}
    return Settings.from_env({"GENKEEP_ENGINE": "dashscope", **provider, **extra})


@pytest.fixture
def engine(fake: FakeDashScope) -> Iterator[DashScopeEngine]:
    made = load_engine(settings_for(fake))
    assert isinstance(made, DashScopeEngine)
    yield made
    made.close()


def generate(engine: DashScopeEngine, task_type: TaskType, paths: tuple[Path, ...] = (),
             urls: tuple[str, ...] = (), prompt: str | None = "a red bicycle",
             ctx: FakeContext | None = None) -> EngineResult:
    ctx = ctx or FakeContext()
    job = make_job(task_type, paths, urls=urls, prompt=prompt)
    return engine.wait(job, engine.submit(job, ctx), ctx)


def failure(engine: DashScopeEngine, task_type: TaskType = TaskType.CREATE) -> EngineError:
    with pytest.raises(EngineError) as caught:
        generate(engine, task_type)
    return caught.value


def test_create_uses_text_to_image(engine: DashScopeEngine, fake: FakeDashScope) -> None:
    ctx = FakeContext()
    result = generate(engine, TaskType.CREATE, ctx=ctx)

    assert image_color(result.data) == RESULT_COLOR and result.content_type == "image/png"
    task, = fake.submissions
    assert (task.model, task.input, task.parameters) == (
        "wan2.2-t2i-flash", {"prompt": "a red bicycle"}, {"size": "1024*1024", "n": 1})
    submit, = fake.seen("POST", "/api/v1/services/aigc/")
    assert submit.path == "/api/v1/services/aigc/text2image/image-synthesis"
    assert submit.headers["x-dashscope-async"] == "enable"
    # Polled with backoff, reporting progress on the way.
    assert ctx.sleeps == [1.0, 1.5]
    assert ctx.progress == sorted(ctx.progress) and ctx.progress[-1] >= 0.9


def test_create_with_references_fuses_them(engine: DashScopeEngine, fake: FakeDashScope,
                                           person_and_garment: tuple[Path, Path]) -> None:
    generate(engine, TaskType.CREATE, person_and_garment * 2, URLS)

    task, = fake.submissions
    # The wan image-to-image models take at most three images.
    assert task.model == "wan2.5-i2i-preview"
    assert task.input == {"prompt": "a red bicycle", "images": list(URLS[:3])}


def test_white_background_uses_image_edit_with_the_template(
        engine: DashScopeEngine, fake: FakeDashScope, person_and_garment: tuple[Path, Path]) -> None:
    generate(engine, TaskType.WHITE_BACKGROUND, person_and_garment[:1], URLS[:1], prompt=None)

    task, = fake.submissions
    assert task.model == "wanx2.1-imageedit"
    assert task.input["function"] == "description_edit"
    assert task.input["base_image_url"] == URLS[0]
    assert "pure white (#FFFFFF) background" in task.input["prompt"]


def test_clothing_change_uses_virtual_try_on(engine: DashScopeEngine, fake: FakeDashScope,
                                             person_and_garment: tuple[Path, Path]) -> None:
    result = generate(engine, TaskType.CLOTHING_CHANGE, person_and_garment, URLS[:2])

    assert image_color(result.data) == RESULT_COLOR
    task, = fake.submissions
    assert task.model == "aitryon"
    assert task.input == {"person_image_url": URLS[0], "top_garment_url": URLS[1]}


def test_models_are_configurable(fake: FakeDashScope, person_and_garment: tuple[Path, Path]) -> None:
    engine = DashScopeEngine(settings_for(fake, GENKEEP_DASHSCOPE_CLOTHING_CHANGE_MODEL="aitryon-plus",
                                          GENKEEP_DASHSCOPE_WHITE_BACKGROUND_MODEL="wan2.5-i2i-preview"))
    generate(engine, TaskType.CLOTHING_CHANGE, person_and_garment, URLS[:2])
    generate(engine, TaskType.WHITE_BACKGROUND, person_and_garment[:1], URLS[:1])
    engine.close()

    tryon, edit = fake.submissions
    assert tryon.model == "aitryon-plus"
    assert edit.model == "wan2.5-i2i-preview" and edit.input["images"] == [URLS[0]]


def test_images_without_a_public_base_url_fail_before_submitting(
        engine: DashScopeEngine, fake: FakeDashScope, person_and_garment: tuple[Path, Path]) -> None:
    job = make_job(TaskType.CLOTHING_CHANGE, person_and_garment)
    with pytest.raises(EngineError) as caught:
        engine.submit(job, FakeContext())
    assert caught.value.code == "provider_unavailable"
    assert "set GENKEEP_PUBLIC_BASE_URL" in caught.value.message
    assert fake.requests == []


def test_bad_key(fake: FakeDashScope, caplog: pytest.LogCaptureFixture) -> None:
    error = failure(DashScopeEngine(settings_for(fake, GENKEEP_DASHSCOPE_API_KEY="sk-wrong")))
    assert error.code == "provider_error"
    assert error.message == "DashScope rejected genkeep's API key (InvalidApiKey); check GENKEEP_DASHSCOPE_API_KEY."
    assert "Invalid API-key provided" in caplog.text


def test_a_missing_key_is_a_settings_error(fake: FakeDashScope) -> None:
    with pytest.raises(SettingsError, match="GENKEEP_DASHSCOPE_API_KEY"):
        DashScopeEngine(settings_for(fake, GENKEEP_DASHSCOPE_API_KEY=""))


def test_rate_limited(engine: DashScopeEngine, fake: FakeDashScope) -> None:
    fake.submit_mode = "rate_limited"
    error = failure(engine)
    assert (error.code, error.message) == (
        "provider_unavailable", "DashScope is rate limiting genkeep; try again in a minute.")


def test_server_error(engine: DashScopeEngine, fake: FakeDashScope) -> None:
    fake.submit_mode = "server_error"
    error = failure(engine)
    assert error.code == "provider_unavailable"
    assert "HTTP 500: InternalError" in error.message


def test_a_provider_that_never_answers(fake: FakeDashScope) -> None:
    fake.submit_mode = "hang"
    engine = DashScopeEngine(settings_for(fake, GENKEEP_DASHSCOPE_TIMEOUT="1"))
    started = time.monotonic()
    error = failure(engine)
    assert time.monotonic() - started < 4
    assert error.code == "provider_unavailable"
    assert error.message.startswith("DashScope did not answer within 1 s")


def test_a_malformed_submission_answer(engine: DashScopeEngine, fake: FakeDashScope) -> None:
    fake.submit_mode = "malformed"
    error = failure(engine)
    assert (error.code, error.message) == (
        "engine_error", "DashScope answered something genkeep cannot use: "
                        "a task submission answer without output.task_id.")


def test_a_result_that_is_not_an_image(engine: DashScopeEngine, fake: FakeDashScope) -> None:
    fake.outcome = "not_image"
    assert failure(engine).code == "engine_error"


def test_a_result_link_that_fails_is_not_a_key_problem(engine: DashScopeEngine, fake: FakeDashScope,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    fake.outcome = "expired_link"
    error = failure(engine)
    assert error.code == "provider_error"
    assert error.message == "DashScope made the image, but its result link failed (HTTP 403); retry the task."
    # The storage's answer is for the operator, not the user.
    assert "Request has expired" in caplog.text


def test_content_refused_at_submission(engine: DashScopeEngine, fake: FakeDashScope) -> None:
    fake.submit_mode = "refused"
    error = failure(engine)
    assert error.code == "provider_error"
    assert error.message.startswith("DashScope refused this content (DataInspectionFailed). Change the prompt")


def test_a_failed_job(engine: DashScopeEngine, fake: FakeDashScope, caplog: pytest.LogCaptureFixture) -> None:
    fake.outcome = "FAILED"
    error = failure(engine)
    assert (error.code, error.message) == (
        "provider_error",
        "DashScope could not make this image (InternalError.Algo); retry the task, or try other images or "
        "another prompt.")
    assert "Person not detected in image" in caplog.text


def test_a_job_whose_output_was_refused(engine: DashScopeEngine, fake: FakeDashScope) -> None:
    fake.outcome = "REFUSED"
    error = failure(engine)
    assert error.code == "provider_error" and error.message.startswith("DashScope refused this content")


def test_a_job_dashscope_no_longer_knows(engine: DashScopeEngine) -> None:
    with pytest.raises(EngineError) as caught:
        engine.wait(make_job(TaskType.CREATE), "task-expired", FakeContext())
    assert caught.value.code == "provider_error"
    assert "no longer knows this job" in caught.value.message


def test_a_few_failed_polls_are_waited_out(engine: DashScopeEngine, fake: FakeDashScope) -> None:
    fake.poll_errors = 3
    assert image_color(generate(engine, TaskType.CREATE).data) == RESULT_COLOR
    assert len(fake.submissions) == 1


def test_polls_that_keep_failing_give_up(engine: DashScopeEngine, fake: FakeDashScope) -> None:
    fake.poll_errors = 100
    error = failure(engine)
    assert error.code == "provider_unavailable"
    assert len(fake.seen("GET", "/api/v1/tasks/")) == 4


def test_backoff_grows_to_five_seconds(engine: DashScopeEngine, fake: FakeDashScope) -> None:
    fake.steps_to_finish = 8
    ctx = FakeContext()
    generate(engine, TaskType.CREATE, ctx=ctx)
    assert ctx.sleeps == [1.0, 1.5, 2.25, 3.375, 5.0, 5.0, 5.0]


def test_stop_is_honoured_while_polling(engine: DashScopeEngine, fake: FakeDashScope) -> None:
    fake.steps_to_finish = 50
    ctx = FakeContext(stop_after_sleeps=2)
    with pytest.raises(EngineStopped):
        generate(engine, TaskType.CREATE, ctx=ctx)
    assert len(fake.seen("GET", "/api/v1/tasks/")) == 2


def test_a_new_worker_resumes_the_saved_job_without_paying_twice(fake: FakeDashScope) -> None:
    job = make_job(TaskType.CREATE)
    first = DashScopeEngine(settings_for(fake))
    saved_id = first.submit(job, FakeContext())
    # The first worker dies here, after the task row saved the job id; a new worker takes the task over.
    first.close()
    second = DashScopeEngine(settings_for(fake))
    resumed = make_job(TaskType.CREATE)
    result = second.wait(resumed, saved_id, FakeContext())
    second.close()

    assert image_color(result.data) == RESULT_COLOR
    assert len(fake.submissions) == 1
    assert len(fake.seen("POST", "/api/v1/services/")) == 1


def test_a_canceled_task_cancels_its_queued_provider_job(engine: DashScopeEngine, fake: FakeDashScope) -> None:
    job = make_job(TaskType.CLOTHING_CHANGE, urls=URLS[:2])
    job_id = engine.submit(job, FakeContext())
    engine.cancel(job, job_id)
    assert fake.tasks[job_id].canceled
    assert len(fake.seen("POST", "/api/v1/tasks/")) == 1
