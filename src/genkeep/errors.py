"""What can go wrong when a user asks something of genkeep (the task manager, storage, image intake); the web
layer turns these into HTTP. At the package root: every layer raises them, so none imports them upward."""

from __future__ import annotations

from collections.abc import Mapping


class TaskManagerError(Exception):
    """Base: `code` is a short stable word, `detail` a sentence that says what to change.

    `sentence` names the sentence and `values` holds what fills it, so the web layer can say the same in the
    language a page asks for (web/problem_text.py); `detail` stays the English one, for clients that ask for none.
    """

    code = "error"

    def __init__(self, detail: str, *, code: str | None = None, field: str | None = None,
                 sentence: str | None = None, values: Mapping[str, object] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.sentence = sentence
        self.values = dict(values or {})
        if code is not None:
            self.code = code


class TaskNotFound(TaskManagerError):
    code = "not_found"


class WrongState(TaskManagerError):
    code = "wrong_state"


class InvalidInput(TaskManagerError):
    """A missing or wrong field, a wrong count of images, an image too small, too large in pixels, undecodable."""

    code = "invalid_input"


class UnsupportedImage(InvalidInput):
    """Not an image of an accepted format (PNG, JPEG, WebP)."""

    code = "unsupported_image"


class TooLarge(InvalidInput):
    """A file or the request over the byte cap."""

    code = "too_large"


class TooManyUnfinished(TaskManagerError):
    code = "too_many_unfinished"
    retry_after = 10


class Unavailable(TaskManagerError):
    """A fault of the infrastructure, not of the request: nothing was changed; try again shortly."""

    code = "unavailable"
    retry_after = 5


class DatabaseUnavailable(Unavailable):
    """The task database cannot be reached or did not answer in time."""

    code = "database_unavailable"

    def __init__(self, reason: str) -> None:
        # The reason goes to the log; users see a sentence without internals.
        super().__init__("The task database is not answering right now; nothing was changed. Try again in a "
                         "few seconds.")
        self.reason = reason


class StorageUnavailable(Unavailable):
    """The image storage cannot be written or read (full, read-only, unreachable)."""

    code = "storage_unavailable"

    def __init__(self, reason: str) -> None:
        super().__init__("The image storage is not available right now (full or unreachable); nothing was "
                         "changed. Try again in a few minutes.")
        self.reason = reason
