"""Images in an S3-compatible bucket (AWS S3, Cloudflare R2, Aliyun OSS, MinIO, Ceph), for many machines.

Keys under the URL's prefix: tasks/<task id>/<name> for every file of a task, and incoming/<task id>, an empty
marker that says "files under tasks/<task id>/ may have no row". A new task writes its marker, then its reference
images at their final keys, then its row; once the row has committed the marker goes. Deleting a task writes the
marker again before its files go. So whatever a crash interrupts leaves a marker: `recover_incoming` removes the
markers of committed tasks and, after an hour, the files of the rest. An object appears whole or not at all (a PUT
is atomic, and its Content-MD5 makes the service refuse a body cut short), so no reader ever sees half an image.

The client is boto3, configured by the standard AWS variables (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_REGION or AWS_DEFAULT_REGION, AWS_PROFILE, ...). Engines read files from disk, so a
run downloads its reference images to a private folder in the data folder and removes it when the run ends.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import os
import secrets
import shutil
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from genkeep.errors import StorageUnavailable
from genkeep.storage.base import (
    ABANDONED_AFTER_SECONDS,
    SIGNED_URL_SECONDS,
    ImageStorage,
    ImageStream,
    content_type_of,
)

log = logging.getLogger(__name__)

# Within a data centre a bucket answers in milliseconds; a connection that takes seconds is a fault, and a route
# waiting on it should answer 503 soon rather than hold the request.
CONNECT_TIMEOUT_S = 2.0
READ_TIMEOUT_S = 20.0
MAX_ATTEMPTS = 3
# Bytes per chunk when streaming an image to a browser: a typical preview or photo in one or a few chunks.
STREAM_CHUNK = 256 * 1024
# Error codes that mean "no such object" (GET answers NoSuchKey, HEAD only its status).
MISSING = {"NoSuchKey", "404", "NotFound"}


def describe(error: Exception) -> str:
    """What failed, in words safe for logs: the service's error code or the exception's type, never a message
    (a message may quote the endpoint's address) and never a credential."""
    if isinstance(error, ClientError):
        response: dict[str, Any] = error.response
        code = response.get("Error", {}).get("Code") or "error"
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return f"{code} (HTTP {status})" if status else str(code)
    if isinstance(error, OSError):
        return error.strerror or type(error).__name__
    return type(error).__name__


def is_missing(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") in MISSING


def _client() -> Any:
    """An S3 client configured by the standard AWS variables. boto3 reads all of them except AWS_REGION, which
    the other AWS SDKs read; here it counts too, before AWS_DEFAULT_REGION."""
    options: dict[str, Any] = {}
    # Since boto3 1.36 every upload carries a CRC checksum that some S3-compatible services refuse; Content-MD5,
    # which all of them check, guards uploads instead. AWS_REQUEST_CHECKSUM_CALCULATION=when_supported restores it.
    if not os.environ.get("AWS_REQUEST_CHECKSUM_CALCULATION"):
        options["request_checksum_calculation"] = "when_required"
    if not os.environ.get("AWS_RESPONSE_CHECKSUM_VALIDATION"):
        options["response_checksum_validation"] = "when_required"
    # Signature version 4 everywhere: presigned links would otherwise use version 2, which most services refuse.
    config = Config(signature_version="s3v4", connect_timeout=CONNECT_TIMEOUT_S, read_timeout=READ_TIMEOUT_S,
                    retries={"max_attempts": MAX_ATTEMPTS, "mode": "standard"}, max_pool_connections=32, **options)
    session = boto3.session.Session(region_name=os.environ.get("AWS_REGION") or None)
    return session.client("s3", config=config)


class S3Storage(ImageStorage):
    """A bucket (and a key prefix in it) shared by every genkeep process, on any machine."""

    presigns = True
    # The bucket cannot be reached or refuses us, or the local copy's disk is full.
    fault_types = (BotoCoreError, ClientError, OSError)

    def __init__(self, bucket: str, prefix: str, secret: str, scratch: Path, *,
                 scratch_max_age: float = ABANDONED_AFTER_SECONDS) -> None:
        super().__init__(secret)
        self.bucket = bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self.scratch = scratch
        self.scratch_max_age = scratch_max_age
        self._s3 = _client()

    def describe_fault(self, error: Exception) -> str:
        return describe(error)

    def key(self, task_id: str, name: str) -> str:
        return f"{self.prefix}tasks/{task_id}/{name}"

    def _marker(self, task_id: str) -> str:
        return f"{self.prefix}incoming/{task_id}"

    def _put(self, key: str, data: bytes) -> None:
        digest = base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()
        self._s3.put_object(Bucket=self.bucket, Key=key, Body=data, ContentMD5=digest,
                            ContentType=content_type_of(key))

    def _delete(self, key: str) -> None:
        self._s3.delete_object(Bucket=self.bucket, Key=key)

    def _keys(self, prefix: str) -> Iterator[tuple[str, float]]:
        """Every key under a prefix, with its last change as a Unix time."""
        pages = self._s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        for page in pages:
            for item in page.get("Contents", []):
                yield item["Key"], item["LastModified"].timestamp()

    # ---- a new task's reference images ----------------------------------------------------------------------

    def _stage(self, task_id: str, files: Sequence[tuple[str, bytes]]) -> None:
        # The marker first: from here on, whatever a crash leaves is found again.
        self._put(self._marker(task_id), b"")
        for name, data in files:
            self._put(self.key(task_id, name), data)

    def _stage_copies(self, task_id: str, source_task_id: str, names: Sequence[str]) -> bool:
        self._put(self._marker(task_id), b"")
        for name in names:
            try:
                # A copy inside the service: the bytes do not pass through genkeep.
                self._s3.copy_object(Bucket=self.bucket, Key=self.key(task_id, name),
                                     CopySource={"Bucket": self.bucket, "Key": self.key(source_task_id, name)})
            except ClientError as error:
                if not is_missing(error):
                    raise
                return False
        return True

    def publish(self, task_id: str) -> None:
        # The files are at their final keys already; only the marker that could have them removed goes.
        with self._faults("publishing a task's images"):
            self._delete(self._marker(task_id))

    def discard_staged(self, task_id: str) -> None:
        try:
            self._remove_files(task_id)
            # The marker last: if a fault stopped the removal, a later recovery finds the rest through it.
            with self._faults("discarding staged images"):
                self._delete(self._marker(task_id))
        except StorageUnavailable as fault:
            log.warning("task %s: staged images not removed yet (%s); recovery removes them later", task_id,
                        fault.reason)

    def staged_task_ids(self) -> list[tuple[str, float]]:
        moment = time.time()
        start = len(self._marker(""))
        with self._faults("listing staged images"):
            return [(key[start:], moment - changed) for key, changed in self._keys(self._marker(""))
                    if "/" not in key[start:] and key[start:]]

    def discard_abandoned_copies(self) -> None:
        """Local copies of runs that ended in a crash: older than any run can last."""
        moment = time.time()
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(self.scratch):
                with contextlib.suppress(OSError):
                    if moment - entry.stat().st_mtime > self.scratch_max_age:
                        shutil.rmtree(entry.path, ignore_errors=True)

    # ---- results and previews ---------------------------------------------------------------------------------

    def write_result(self, task_id: str, name: str, data: bytes) -> None:
        with self._faults("saving a result"):
            self._put(self.key(task_id, name), data)

    # ---- reading ---------------------------------------------------------------------------------------------

    def read(self, task_id: str, name: str) -> ImageStream | None:
        with self._faults("reading an image"):
            answer = self._get(task_id, name)
        if answer is None:
            return None
        body = answer["Body"]

        def chunks() -> Iterator[bytes]:
            try:
                yield from body.iter_chunks(STREAM_CHUNK)
            finally:
                body.close()

        return ImageStream(int(answer["ContentLength"]), chunks())

    def _get(self, task_id: str, name: str) -> dict[str, Any] | None:
        """GetObject's answer (its Body a stream to read and close), or None if the object does not exist."""
        try:
            answer: dict[str, Any] = self._s3.get_object(Bucket=self.bucket, Key=self.key(task_id, name))
        except ClientError as error:
            if is_missing(error):
                return None
            raise
        return answer

    @contextlib.contextmanager
    def local_copies(self, task_id: str, names: Sequence[str]) -> Iterator[list[Path] | None]:
        action = "copying a task's images for its engine"
        with self._faults(action):
            self.scratch.mkdir(parents=True, exist_ok=True)
            folder = self.scratch / f"{task_id}-{secrets.token_hex(4)}"
            folder.mkdir()
        try:
            paths: list[Path] = []
            with self._faults(action):
                for name in names:
                    answer = self._get(task_id, name)
                    if answer is None:
                        break
                    path = folder / name
                    with contextlib.closing(answer["Body"]) as body, open(path, "wb") as out:
                        for chunk in body.iter_chunks(STREAM_CHUNK):
                            out.write(chunk)
                    paths.append(path)
            yield paths if len(paths) == len(names) else None
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def presigned_url(self, task_id: str, name: str) -> str | None:
        with self._faults("signing an image link"):
            url: str = self._s3.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": self.key(task_id, name)},
                ExpiresIn=SIGNED_URL_SECONDS)
        return url

    # ---- removing --------------------------------------------------------------------------------------------

    def remove_file(self, task_id: str, name: str) -> None:
        with self._faults("removing an image"):
            self._delete(self.key(task_id, name))

    def _remove_files(self, task_id: str) -> None:
        with self._faults("removing a task's images"):
            for key, _ in list(self._keys(self.key(task_id, ""))):
                self._delete(key)

    def remove_task(self, task_id: str) -> None:
        try:
            # The marker first, as when staging: a removal cut short is finished by a later recovery.
            with self._faults("removing a task's images"):
                self._put(self._marker(task_id), b"")
            self._remove_files(task_id)
            with self._faults("removing a task's images"):
                self._delete(self._marker(task_id))
        except StorageUnavailable as fault:
            log.warning("task %s: images not removed yet (%s); the sweeper removes them later", task_id,
                        fault.reason)
            raise

    def ready(self) -> bool:
        """Whether the bucket answers these credentials (one cheap HEAD request; nothing is written)."""
        try:
            self._s3.head_bucket(Bucket=self.bucket)
        except (BotoCoreError, ClientError) as error:
            log.warning("image storage not ready: %s", describe(error))
            return False
        return True
