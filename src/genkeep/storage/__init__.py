"""Image bytes in and out, behind one interface (base.ImageStorage) chosen by GENKEEP_STORAGE_URL: a folder
(the data folder's images/ by default: the fast path on one machine) or an S3-compatible bucket (many machines)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from genkeep.storage.base import (
    ABANDONED_AFTER_SECONDS,
    CONTENT_TYPES,
    EXTENSIONS,
    SIGNED_URL_SECONDS,
    ImageStorage,
    ImageStream,
    content_type_of,
)
from genkeep.storage.folder import FolderStorage

if TYPE_CHECKING:
    from genkeep.config import Settings

__all__ = ["ABANDONED_AFTER_SECONDS", "CONTENT_TYPES", "EXTENSIONS", "SIGNED_URL_SECONDS", "FolderStorage",
           "ImageStorage", "ImageStream", "content_type_of", "open_storage"]

# Where a run's local copies of reference images go when they live in a bucket (inside the data folder).
LOCAL_COPIES_DIR = "reference-copies"


def open_storage(settings: Settings, secret: str) -> ImageStorage:
    """The storage GENKEEP_STORAGE_URL names (checked when the settings were read)."""
    if settings.storage_url.startswith("s3://"):
        # Imported here: boto3 takes a few hundred milliseconds to import, which a folder never needs.
        from genkeep.storage.s3 import S3Storage

        bucket, _, prefix = settings.storage_url.removeprefix("s3://").partition("/")
        # A local copy lives as long as its run, and no run outlives its task's timeout.
        return S3Storage(bucket, prefix, secret, settings.data_dir / LOCAL_COPIES_DIR,
                         scratch_max_age=max(ABANDONED_AFTER_SECONDS, 2 * settings.task_timeout))
    return FolderStorage(settings.images_dir, secret)
