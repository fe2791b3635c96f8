"""The image storage's contract, the same tests on the data folder and on a real S3-compatible server."""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from genkeep.config import Settings, SettingsError
from genkeep.errors import StorageUnavailable
from genkeep.previews import REFERENCE_THUMBNAIL_SIDES, THUMBNAIL_SIDES, thumbnail_name
from genkeep.reference_images import clean_image
from genkeep.storage import FolderStorage, ImageStorage
from genkeep.storage.s3 import S3Storage
from genkeep.studio import Studio
from genkeep.tasks import manager as manager_module
from genkeep.tasks.model import TaskType
from genkeep.tasks.new_task import NewTask
from tests.conftest import SCRIPTED_ENGINE
from tests.support import s3
from tests.support.images import png_bytes
from tests.support.processes import free_port

TASK, OTHER, THIRD = "a" * 32, "b" * 32, "c" * 32
FIRST, SECOND = png_bytes(), png_bytes(color=(10, 200, 30))
SECRET = "test-secret-key-" + "x" * 16


@pytest.fixture(params=["folder", "another-folder", "s3"])
def studio(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Studio]:
    """A studio (on an in-memory database) whose images live in the data folder, another folder, or a bucket."""
    url = {"folder": "", "another-folder": f"file://{tmp_path / 'elsewhere'}"}.get(request.param) or \
        request.getfixturevalue("s3_url")
    opened = Studio.open(Settings(data_dir=tmp_path / "data", database_url="memory:", engine=SCRIPTED_ENGINE,
                                  storage_url=url, secret_key=SECRET))
    yield opened
    opened.close()


@pytest.fixture
def storage(studio: Studio) -> ImageStorage:
    return studio.storage


def read(storage: ImageStorage, task_id: str, name: str) -> bytes | None:
    """A file's bytes, the way /files gets them."""
    found = storage.read(task_id, name)
    if found is None:
        return None
    if isinstance(found, Path):
        return found.read_bytes()
    data = b"".join(found.chunks)
    assert len(data) == found.size
    return data


def leftovers(storage: ImageStorage) -> list[str]:
    """Every file the storage holds, looked at from outside genkeep."""
    if isinstance(storage, FolderStorage):
        return sorted(str(path.relative_to(storage.root)) for path in storage.root.rglob("*") if path.is_file())
    assert isinstance(storage, S3Storage)
    return s3.keys(os.environ["AWS_ENDPOINT_URL"], storage.bucket, storage.prefix)


def staged_ids(storage: ImageStorage) -> list[str]:
    return sorted(task_id for task_id, _ in storage.staged_task_ids())


def test_the_url_chooses_the_storage(studio: Studio) -> None:
    url = studio.settings.storage_url
    if url.startswith("s3://"):
        assert isinstance(studio.storage, S3Storage) and f"s3://{studio.storage.bucket}/studio" == url
    else:
        assert isinstance(studio.storage, FolderStorage)
        expected = Path(url.removeprefix("file://")) if url else studio.settings.data_dir / "images"
        assert studio.storage.root == expected


@pytest.mark.parametrize("value", ["s3://", "s3:///prefix", "/srv/images", "file://relative/images",
                                   "https://bucket.example/images"])
def test_a_storage_url_genkeep_cannot_use_stops_the_start_naming_the_variable(value: str) -> None:
    with pytest.raises(SettingsError, match=r"GENKEEP_STORAGE_URL must be s3://bucket/prefix .* or file:///"):
        Settings.from_env({"GENKEEP_STORAGE_URL": value})
    assert Settings.from_env({"GENKEEP_STORAGE_URL": " s3://images/studio/ "}).storage_url == "s3://images/studio/"


def test_staged_files_wait_for_the_row_then_are_the_task_s(storage: ImageStorage) -> None:
    storage.stage(TASK, [("reference-1.png", FIRST), ("reference-2.png", SECOND)])
    assert staged_ids(storage) == [TASK]
    assert all(0 <= age < 600 for _, age in storage.staged_task_ids())
    storage.publish(TASK)
    storage.publish(TASK)  # the accepting request and a fast worker may both publish
    assert staged_ids(storage) == []
    assert read(storage, TASK, "reference-1.png") == FIRST
    assert read(storage, TASK, "reference-2.png") == SECOND
    assert read(storage, TASK, "reference-3.png") is None


def test_staged_files_join_a_task_folder_a_worker_already_wrote_into(storage: ImageStorage) -> None:
    storage.stage(TASK, [("reference-1.png", FIRST)])
    storage.write_result(TASK, "preview-1-abc.webp", b"preview")  # a fast worker elsewhere, before the move
    storage.publish(TASK)
    assert read(storage, TASK, "reference-1.png") == FIRST
    assert read(storage, TASK, "preview-1-abc.webp") == b"preview"
    assert staged_ids(storage) == []


def test_discarded_staged_files_leave_nothing(storage: ImageStorage) -> None:
    storage.stage(TASK, [("reference-1.png", FIRST)])
    storage.discard_staged(TASK)
    assert read(storage, TASK, "reference-1.png") is None
    assert staged_ids(storage) == [] and leftovers(storage) == []


def test_a_retry_copies_every_reference_or_nothing(storage: ImageStorage) -> None:
    storage.stage(TASK, [("reference-1.png", FIRST), ("reference-2.png", SECOND)])
    storage.publish(TASK)
    assert storage.stage_copies(OTHER, TASK, ["reference-1.png", "reference-2.png"])
    storage.publish(OTHER)
    assert [read(storage, OTHER, name) for name in ("reference-1.png", "reference-2.png")] == [FIRST, SECOND]
    assert not storage.stage_copies(THIRD, TASK, ["reference-1.png", "reference-9.png"])
    assert read(storage, THIRD, "reference-1.png") is None and THIRD not in staged_ids(storage)


def test_results_are_stored_whole_and_removed(storage: ImageStorage) -> None:
    big = os.urandom(3 * 1024 * 1024 + 17)  # streamed in several chunks
    storage.write_result(TASK, "result-1-0a1b2c3d.png", big)
    assert read(storage, TASK, "result-1-0a1b2c3d.png") == big
    storage.remove_file(TASK, "result-1-0a1b2c3d.png")
    storage.remove_file(TASK, "result-1-0a1b2c3d.png")
    assert read(storage, TASK, "result-1-0a1b2c3d.png") is None


def test_removing_a_task_removes_all_its_files(storage: ImageStorage) -> None:
    storage.stage(TASK, [("reference-1.png", FIRST)])
    storage.publish(TASK)
    storage.write_result(TASK, "preview-1-abc.webp", b"preview")
    storage.write_result(TASK, "result-1-0a1b2c3d.png", SECOND)
    storage.stage(OTHER, [("reference-1.png", SECOND)])
    storage.publish(OTHER)
    storage.remove_task(TASK)
    storage.remove_task(TASK)
    assert read(storage, TASK, "reference-1.png") is None and read(storage, TASK, "result-1-0a1b2c3d.png") is None
    assert read(storage, OTHER, "reference-1.png") == SECOND
    assert staged_ids(storage) == []
    assert all(OTHER in name for name in leftovers(storage))


def test_engines_read_local_files_that_last_as_long_as_the_run(studio: Studio, storage: ImageStorage) -> None:
    storage.stage(TASK, [("reference-1.png", FIRST), ("reference-2.png", SECOND)])
    storage.publish(TASK)
    with storage.local_copies(TASK, ["reference-1.png", "reference-2.png"]) as paths:
        assert paths is not None
        assert [path.read_bytes() for path in paths] == [FIRST, SECOND]
    with storage.local_copies(TASK, ["reference-1.png", "reference-9.png"]) as missing:
        assert missing is None
    # The stored files stay; a bucket's copies in the data folder are gone with the run.
    assert read(storage, TASK, "reference-1.png") == FIRST
    copies = studio.settings.data_dir / "reference-copies"
    assert not copies.exists() or not any(copies.iterdir())


def test_the_storage_is_ready(storage: ImageStorage) -> None:
    assert storage.ready()


def test_provider_links_serve_reference_images_only_briefly(storage: ImageStorage) -> None:
    storage.stage(TASK, [("reference-1.png", FIRST)])
    storage.publish(TASK)
    url = storage.presigned_url(TASK, "reference-1.png")
    if not storage.presigns:
        assert url is None, "a folder has no links of its own: genkeep's signed /files links serve it"
        return
    assert url is not None and "X-Amz-Expires=600" in url and s3.SECRET_KEY not in url
    answer = httpx.get(url, timeout=10)
    assert answer.status_code == 200 and answer.content == FIRST


def test_recovery_publishes_committed_tasks_and_discards_abandoned_files(
        studio: Studio, storage: ImageStorage, monkeypatch: pytest.MonkeyPatch) -> None:
    # A crash between a row's commit and its files' publication: the row is there, the files still staged.
    image = clean_image(FIRST, "the product photo", max_pixels=10**7, min_side=16)
    with monkeypatch.context() as patch:
        patch.setattr(storage, "publish", lambda _task_id: None)
        committed = studio.manager.accept("owner-a", NewTask(TaskType.WHITE_BACKGROUND, None, 1), [image]).task
    # A crash before the row's commit: files without a row.
    storage.stage(TASK, [("reference-1.png", FIRST)])
    assert staged_ids(storage) == sorted([committed.id, TASK])

    studio.manager.recover_incoming()
    assert staged_ids(storage) == [TASK], "files without a row get an hour's grace: their request may be running"
    assert read(storage, committed.id, "reference-1.png") == image.data
    monkeypatch.setattr(manager_module, "ABANDONED_AFTER_SECONDS", 0)
    studio.manager.recover_incoming()
    assert staged_ids(storage) == []
    assert read(storage, TASK, "reference-1.png") is None
    assert all(committed.id in name for name in leftovers(storage))


# ---- thumbnails: made once, where the picture is made, beside it ---------------------------------------------

def thumbnail_sizes(storage: ImageStorage, task_id: str, name: str) -> list[tuple[int, int] | None]:
    """The pixel size of each possible thumbnail of a picture (None where there is none)."""
    sizes: list[tuple[int, int] | None] = []
    for side in THUMBNAIL_SIDES:
        data = read(storage, task_id, thumbnail_name(name, side))
        picture = Image.open(io.BytesIO(data)) if data else None
        assert picture is None or picture.format == "WEBP"
        sizes.append(picture.size if picture else None)
    return sizes


def test_thumbnails_of_references_and_result_are_stored_beside_them_and_go_with_the_task(
        studio: Studio, storage: ImageStorage) -> None:
    phone_photo = clean_image(png_bytes(1600, 1200), "the product photo", max_pixels=10**7, min_side=16)
    task = studio.manager.accept("owner-a", NewTask(TaskType.WHITE_BACKGROUND, None, 1), [phone_photo]).task
    assert thumbnail_sizes(storage, task.id, "reference-1.png") == [(320, 240), None], "one serves every chip"

    claimed = studio.manager.claim("w1", {TaskType.WHITE_BACKGROUND: "scripted"})[0]
    assert studio.manager.complete(claimed, "w1", png_bytes(1024, 1024), "image/png")
    result = studio.manager.get_sync("owner-a", task.id).result_name
    assert result and thumbnail_sizes(storage, task.id, result) == [(320, 320), (640, 640)]
    # The original bytes are untouched.
    assert read(storage, task.id, "reference-1.png") == phone_photo.data

    studio.manager.delete("owner-a", task.id)
    assert not [name for name in leftovers(storage) if task.id in name]


def test_a_late_result_leaves_neither_itself_nor_thumbnails(studio: Studio, storage: ImageStorage) -> None:
    studio.manager.accept("owner-a", NewTask(TaskType.CREATE, "a kite", 0), [])
    claimed = studio.manager.claim("w1", {TaskType.CREATE: "scripted"})[0]
    studio.manager.cancel("owner-a", claimed.id)
    assert not studio.manager.complete(claimed, "w1", png_bytes(1024, 1024), "image/png")
    assert not [name for name in leftovers(storage) if claimed.id in name]


def test_a_storage_fault_on_a_thumbnail_is_a_fault_and_leaves_no_result(
        studio: Studio, storage: ImageStorage, monkeypatch: pytest.MonkeyPatch) -> None:
    studio.manager.accept("owner-a", NewTask(TaskType.CREATE, "a kite", 0), [])
    claimed = studio.manager.claim("w1", {TaskType.CREATE: "scripted"})[0]
    write = storage.write_result

    def full_disk_for_thumbnails(task_id: str, name: str, data: bytes) -> None:
        if name.endswith(".webp"):
            raise StorageUnavailable("saving a result: No space left on device")
        write(task_id, name, data)

    monkeypatch.setattr(storage, "write_result", full_disk_for_thumbnails)
    with pytest.raises(StorageUnavailable):
        studio.manager.complete(claimed, "w1", png_bytes(700, 700), "image/png")
    assert not [name for name in leftovers(storage) if claimed.id in name]
    assert studio.manager.get_sync("owner-a", claimed.id).status.value == "processing", "not a failure"


def test_a_picture_without_thumbnails_gets_them_made_from_the_stored_original(
        studio: Studio, storage: ImageStorage) -> None:
    # A task accepted before thumbnails existed: only its original is stored.
    image = clean_image(png_bytes(900, 300), "the product photo", max_pixels=10**7, min_side=16)
    task = studio.manager.accept("owner-a", NewTask(TaskType.WHITE_BACKGROUND, None, 1), [image]).task
    for side in REFERENCE_THUMBNAIL_SIDES:
        storage.remove_file(task.id, thumbnail_name("reference-1.png", side))
    assert studio.manager.thumbnail_source(task, "reference-1.png.320.webp", signed=False) == "reference-1.png"
    assert studio.manager.thumbnail_source(task, "reference-1.png.320.webp", signed=True) is None
    assert studio.manager.thumbnail_source(task, "reference-1.png.640.webp", signed=False) is None
    assert studio.manager.thumbnail_source(task, "reference-2.png.320.webp", signed=False) is None
    assert studio.manager.thumbnail_source(task, "reference-1.png.999.webp", signed=False) is None
    assert studio.manager.make_thumbnails(task, "reference-1.png")
    assert thumbnail_sizes(storage, task.id, "reference-1.png") == [(320, 107), None]


# ---- faults (a bucket only: the folder's are in tests/workers/test_faults.py and tests/chaos) -------------------

def test_a_bucket_that_does_not_answer_is_unavailable_and_no_secret_is_told(
        s3_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", closed)
    caplog.set_level(logging.DEBUG, logger="genkeep")
    studio = Studio.open(Settings(data_dir=tmp_path / "data", database_url="memory:", storage_url=s3_url,
                                  secret_key=SECRET))
    try:
        with pytest.raises(StorageUnavailable) as caught:
            studio.storage.write_result(TASK, "result-1-0a1b2c3d.png", FIRST)
        with pytest.raises(StorageUnavailable):
            studio.storage.read(TASK, "result-1-0a1b2c3d.png")
        image = clean_image(FIRST, "the product photo", max_pixels=10**7, min_side=16)
        with pytest.raises(StorageUnavailable):
            studio.manager.accept("owner-a", NewTask(TaskType.WHITE_BACKGROUND, None, 1), [image])
        assert not studio.storage.ready()
    finally:
        studio.close()
    told = " ".join([caught.value.detail, caught.value.reason, caplog.text])
    assert "EndpointConnectionError" in caught.value.reason
    for secret in (s3.SECRET_KEY, s3.ACCESS_KEY, closed.removeprefix("http://")):
        assert secret not in told


def test_a_missing_bucket_is_unavailable_not_an_empty_one(s3_url: str, tmp_path: Path) -> None:
    missing = s3_url.replace("s3://", "s3://missing-").partition("/studio")[0]
    studio = Studio.open(Settings(data_dir=tmp_path / "data", database_url="memory:", storage_url=missing,
                                  secret_key=SECRET))
    try:
        with pytest.raises(StorageUnavailable) as caught:
            studio.storage.read(TASK, "reference-1.png")
        assert "NoSuchBucket" in caught.value.reason
        assert not studio.storage.ready()
    finally:
        studio.close()
