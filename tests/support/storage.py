"""The image storage as tests see it."""

from __future__ import annotations

from genkeep.storage import FolderStorage
from genkeep.studio import Studio


def folder_of(studio: Studio) -> FolderStorage:
    """The studio's images folder: tests of the default storage look at the files themselves."""
    assert isinstance(studio.storage, FolderStorage), "this test looks at the images folder"
    return studio.storage
