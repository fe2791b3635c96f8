"""The OpenAI Images engine, driven through the official client against a fake OpenAI server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from genkeep.config import Settings, SettingsError
from genkeep.engines import load_engine
from genkeep.engines.base import EngineError, EngineStopped
from genkeep.engines.openai_images import OpenAIImagesEngine
from genkeep.tasks.model import TaskType
from tests.engines.providers.conftest import GARMENT_COLOR, PERSON_COLOR
from tests.engines.providers.fake_openai import API_KEY, PARTIAL_SIZE, RESULT_COLOR, FakeOpenAI, partial_color
from tests.engines.providers.fakes import FakeContext, image_color, make_job, serving
from tests.support.previews import fractions_rise


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with serving(FakeOpenAI()) as app:
        yield app


def settings_for(fake: FakeOpenAI, **extra: str) -> Settings:
    provider = {"GENKEEP_OPENAI_API_KEY": API_KEY, "GENKEEP_OPENAI_BASE_URL": f"{fake.base_url}/v1",
                "GENKEEP_OPENAI_TIMEOUT": "5"}
    return Settings.from_env({"GENKEEP_ENGINE": "openai", **provider, **extra})


@pytest.fixture
def engine(fake: FakeOpenAI) -> Iterator[OpenAIImagesEngine]:
    made = load_engine(settings_for(fake))
    assert isinstance(made, OpenAIImagesEngine)
    yield made
    made.close()


def run_failing(engine: OpenAIImagesEngine, task_type: TaskType = TaskType.CREATE,
                paths: tuple[Path, ...] = ()) -> EngineError:
    with pytest.raises(EngineError) as caught:
        engine.run(make_job(task_type, paths), FakeContext())
    return caught.value


def test_create_without_references_generates(engine: OpenAIImagesEngine, fake: FakeOpenAI) -> None:
    result = engine.run(make_job(TaskType.CREATE), FakeContext())

    assert result.content_type == "image/png"
    assert image_color(result.data) == RESULT_COLOR
    (endpoint, fields, images), = fake.calls
    assert endpoint == "generations"
    assert fields["model"] == "gpt-image-1" and fields["size"] == "1024x1024"
    assert fields["prompt"] == "a red bicycle"
    assert images == []


def test_one_reference_image_is_edited_as_a_single_image_field(
        engine: OpenAIImagesEngine, fake: FakeOpenAI, person_and_garment: tuple[Path, Path]) -> None:
    engine.run(make_job(TaskType.WHITE_BACKGROUND, person_and_garment[:1], prompt=None), FakeContext())

    (endpoint, fields, images), = fake.calls
    assert endpoint == "edits"
    assert [(p.name, p.content_type) for p in images] == [("image", "image/png")]
    assert "pure white (#FFFFFF) background" in fields["prompt"]
    # The user's file name never reaches the provider.
    assert images[0].filename == "image.png"


def test_clothing_change_sends_person_then_garment_as_image_array(
        engine: OpenAIImagesEngine, fake: FakeOpenAI, person_and_garment: tuple[Path, Path]) -> None:
    engine.run(make_job(TaskType.CLOTHING_CHANGE, person_and_garment, prompt="tucked in"), FakeContext())

    (endpoint, fields, images), = fake.calls
    assert endpoint == "edits"
    # This client version sends several images as repeated image[] parts, in order.
    assert [p.name for p in images] == ["image[]", "image[]"]
    assert [p.content_type for p in images] == ["image/png", "image/jpeg"]
    assert image_color(images[0].data) == PERSON_COLOR
    # The garment is a JPEG: its colour comes back approximately.
    assert abs(image_color(images[1].data)[2] - GARMENT_COLOR[2]) < 8
    assert fields["prompt"].startswith("Dress the person in the first image in the garment from the second image")
    assert fields["prompt"].endswith("tucked in")


def test_prompt_templates_are_configurable(fake: FakeOpenAI, person_and_garment: tuple[Path, Path]) -> None:
    settings = settings_for(fake, GENKEEP_OPENAI_PROMPT_WHITE_BACKGROUND="Studio white backdrop. {prompt}",
                            GENKEEP_OPENAI_MODEL="gpt-image-1-mini", GENKEEP_OPENAI_SIZE="1536x1024")
    engine = OpenAIImagesEngine(settings)
    engine.run(make_job(TaskType.WHITE_BACKGROUND, person_and_garment[:1], prompt="keep the label"), FakeContext())
    engine.close()

    (_, fields, _), = fake.calls
    assert fields["prompt"] == "Studio white backdrop. keep the label"
    assert (fields["model"], fields["size"]) == ("gpt-image-1-mini", "1536x1024")


def test_a_url_answer_is_downloaded(engine: OpenAIImagesEngine, fake: FakeOpenAI) -> None:
    fake.mode = "url"
    result = engine.run(make_job(TaskType.CREATE), FakeContext())
    assert image_color(result.data) == RESULT_COLOR


def test_bad_key(fake: FakeOpenAI) -> None:
    engine = OpenAIImagesEngine(settings_for(fake, GENKEEP_OPENAI_API_KEY="sk-wrong"))
    error = run_failing(engine)
    assert error.code == "provider_error"
    assert "rejected genkeep's API key" in error.message and "GENKEEP_OPENAI_API_KEY" in error.message


def test_a_missing_key_is_a_settings_error(fake: FakeOpenAI) -> None:
    with pytest.raises(SettingsError, match="GENKEEP_OPENAI_API_KEY"):
        OpenAIImagesEngine(settings_for(fake, GENKEEP_OPENAI_API_KEY=""))


def test_rate_limited_is_not_retried(engine: OpenAIImagesEngine, fake: FakeOpenAI) -> None:
    fake.mode = "rate_limited"
    error = run_failing(engine)
    assert (error.code, error.message) == (
        "provider_unavailable", "OpenAI is rate limiting genkeep; try again in a minute.")
    # Automatic retries are off: a retried POST would bill again.
    assert fake.generations == 1


def test_server_error(engine: OpenAIImagesEngine, fake: FakeOpenAI) -> None:
    fake.mode = "server_error"
    error = run_failing(engine)
    assert error.code == "provider_unavailable" and "HTTP 500" in error.message
    assert fake.generations == 1


def test_a_provider_that_never_answers_times_out(fake: FakeOpenAI) -> None:
    fake.mode = "hang"
    engine = OpenAIImagesEngine(settings_for(fake, GENKEEP_OPENAI_TIMEOUT="1"))
    started = time.monotonic()
    error = run_failing(engine)
    assert time.monotonic() - started < 4
    assert (error.code, error.message) == (
        "provider_unavailable",
        "OpenAI did not answer within 1 s; try again later, or raise GENKEEP_OPENAI_TIMEOUT.")
    assert fake.generations == 1


def test_a_provider_that_is_down(fake: FakeOpenAI) -> None:
    engine = OpenAIImagesEngine(settings_for(fake, GENKEEP_OPENAI_BASE_URL="http://127.0.0.1:9/v1"))
    error = run_failing(engine)
    assert error.code == "provider_unavailable"
    assert "could not be reached" in error.message and "GENKEEP_OPENAI_BASE_URL" in error.message


@pytest.mark.parametrize("mode", ["malformed", "not_image"])
def test_a_malformed_answer(engine: OpenAIImagesEngine, fake: FakeOpenAI, mode: str) -> None:
    fake.mode = mode
    error = run_failing(engine)
    assert error.code == "engine_error"
    assert error.message.startswith("OpenAI answered something genkeep cannot use")


def test_content_refused_by_the_safety_system(
        engine: OpenAIImagesEngine, fake: FakeOpenAI, person_and_garment: tuple[Path, Path],
        caplog: pytest.LogCaptureFixture) -> None:
    fake.mode = "refused"
    error = run_failing(engine, TaskType.CLOTHING_CHANGE, person_and_garment)
    assert error.code == "provider_error"
    # The user reads genkeep's sentence and OpenAI's code; OpenAI's own words are in the log.
    assert error.message == ("OpenAI refused this content (moderation_blocked). "
                             "Change the prompt or the images and retry.")
    assert "Your request was rejected as a result of our safety system" in caplog.text


def test_a_stopped_task_makes_no_call(engine: OpenAIImagesEngine, fake: FakeOpenAI) -> None:
    ctx = FakeContext(stopped=True)
    with pytest.raises(EngineStopped):
        engine.run(make_job(TaskType.CREATE), ctx)
    assert fake.generations == 0


def test_openai_engine_is_not_rerun_safe(engine: OpenAIImagesEngine) -> None:
    assert (engine.name, engine.rerun_safe) == ("openai", False)


# ---- live previews: partial images streamed as server-sent events -------------------------------------------------


def test_a_generation_streams_partial_images_as_previews(engine: OpenAIImagesEngine, fake: FakeOpenAI) -> None:
    ctx = FakeContext()
    result = engine.run(make_job(TaskType.CREATE), ctx)

    assert image_color(result.data) == RESULT_COLOR
    (endpoint, fields, _), = fake.calls
    assert endpoint == "generations" and fields["stream"] == "true" and fields["partial_images"] == "2"
    # Two partial images, each a picture the worker can decode, drawing closer to the result as the bar moves on.
    assert [preview.color() for preview in ctx.previews] == [partial_color(0, 2), partial_color(1, 2)]
    assert [preview.size for preview in ctx.previews] == [PARTIAL_SIZE, PARTIAL_SIZE]
    assert fractions_rise(ctx.previews)
    assert 0.05 < ctx.previews[0].fraction < ctx.previews[-1].fraction < 0.95  # type: ignore[operator]
    assert ctx.progress == sorted(ctx.progress) and ctx.progress[-1] == 0.95


def test_an_edit_streams_its_partial_images_too(
        engine: OpenAIImagesEngine, fake: FakeOpenAI, person_and_garment: tuple[Path, Path]) -> None:
    ctx = FakeContext()
    result = engine.run(make_job(TaskType.CLOTHING_CHANGE, person_and_garment), ctx)

    assert image_color(result.data) == RESULT_COLOR
    (endpoint, fields, images), = fake.calls
    # The multipart form carries the streaming fields next to the images.
    assert endpoint == "edits" and fields["stream"] == "true" and fields["partial_images"] == "2"
    assert len(images) == 2
    assert [preview.color() for preview in ctx.previews] == [partial_color(0, 2), partial_color(1, 2)]
    assert fractions_rise(ctx.previews)


@pytest.mark.parametrize("count", [1, 3])
def test_how_many_partial_images_is_a_setting(fake: FakeOpenAI, count: int) -> None:
    engine = OpenAIImagesEngine(settings_for(fake, GENKEEP_OPENAI_PARTIAL_IMAGES=str(count)))
    ctx = FakeContext()
    engine.run(make_job(TaskType.CREATE), ctx)
    engine.close()

    assert fake.calls[0][1]["partial_images"] == str(count)
    assert [preview.color() for preview in ctx.previews] == [partial_color(i, count) for i in range(count)]
    assert fractions_rise(ctx.previews)


@pytest.mark.parametrize(("name", "value"), [("PARTIAL_IMAGES", "0"), ("PARTIAL_IMAGES", "4"),
                                             ("PARTIAL_IMAGES", "two"), ("STREAM", "maybe")])
def test_bad_streaming_settings_are_settings_errors(fake: FakeOpenAI, name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=f"GENKEEP_OPENAI_{name}"):
        OpenAIImagesEngine(settings_for(fake, **{f"GENKEEP_OPENAI_{name}": value}))


@pytest.mark.parametrize("task_type", [TaskType.CREATE, TaskType.WHITE_BACKGROUND])
def test_streaming_off_for_a_gateway_that_cannot_stream(
        fake: FakeOpenAI, person_and_garment: tuple[Path, Path], task_type: TaskType) -> None:
    fake.can_stream = False
    engine = OpenAIImagesEngine(settings_for(fake, GENKEEP_OPENAI_STREAM="0"))
    paths = person_and_garment[:1] if task_type is TaskType.WHITE_BACKGROUND else ()
    ctx = FakeContext()
    result = engine.run(make_job(task_type, paths), ctx)
    engine.close()

    assert image_color(result.data) == RESULT_COLOR
    (_, fields, _), = fake.calls
    assert "stream" not in fields and "partial_images" not in fields
    assert ctx.previews == []


def test_a_gateway_that_rejects_streaming_says_how_to_turn_it_off(
        engine: OpenAIImagesEngine, fake: FakeOpenAI) -> None:
    fake.can_stream = False
    error = run_failing(engine)
    assert error.code == "provider_error"
    assert error.message.startswith("OpenAI rejected the request (HTTP 400")
    assert error.message.endswith("; if this gateway cannot stream images, set GENKEEP_OPENAI_STREAM=0.")
    assert "Unknown parameter" not in error.message, "the provider's own words go to the log"


def test_a_gateway_that_ignores_stream_still_delivers_the_image(
        engine: OpenAIImagesEngine, fake: FakeOpenAI) -> None:
    fake.mode = "ignores_stream"
    ctx = FakeContext()
    result = engine.run(make_job(TaskType.CREATE), ctx)
    assert image_color(result.data) == RESULT_COLOR
    assert ctx.previews == []


@pytest.mark.parametrize("mode", ["stream_error", "stream_error_flat"])
def test_an_error_event_in_the_middle_of_the_stream(engine: OpenAIImagesEngine, fake: FakeOpenAI, mode: str,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    fake.mode = mode
    ctx = FakeContext()
    with pytest.raises(EngineError) as caught:
        engine.run(make_job(TaskType.CREATE), ctx)
    assert caught.value.code == "provider_error"
    assert caught.value.message.startswith("OpenAI refused this content")
    assert "Change the prompt" in caught.value.message
    assert "rejected by the safety" in caplog.text, "the provider's own words go to the log"
    assert [preview.color() for preview in ctx.previews] == [partial_color(0, 2)]
    assert fake.generations == 1


def test_a_stop_between_events_ends_the_stream(engine: OpenAIImagesEngine, fake: FakeOpenAI) -> None:
    # The stream stalls after its first partial image; a task canceled meanwhile must not wait for the rest (the
    # read timeout would end it as provider_unavailable instead).
    fake.mode = "stall"
    ctx = FakeContext(stop_after_previews=1)
    with pytest.raises(EngineStopped):
        engine.run(make_job(TaskType.CREATE), ctx)
    assert len(ctx.previews) == 1
