"""What can go wrong when a user asks something of the task service; the web layer turns these into HTTP."""

from __future__ import annotations


class TaskServiceError(Exception):
    """Base: `code` is a short stable word, `detail` a sentence that says what to change."""

    code = "error"

    def __init__(self, detail: str, *, code: str | None = None, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field
        if code is not None:
            self.code = code


class TaskNotFound(TaskServiceError):
    code = "not_found"


class WrongState(TaskServiceError):
    code = "wrong_state"


class InvalidInput(TaskServiceError):
    """A missing or wrong field, a wrong count of images, an image too small, too large in pixels, undecodable."""

    code = "invalid_input"


class UnsupportedImage(InvalidInput):
    """Not an image of an accepted format (PNG, JPEG, WebP)."""

    code = "unsupported_image"


class TooLarge(InvalidInput):
    """A file or the request over the byte cap."""

    code = "too_large"


class TooManyUnfinished(TaskServiceError):
    code = "too_many_unfinished"
