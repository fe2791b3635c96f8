"""A new task as a user asks for it, checked once: type, prompt and how many images.

The web layer builds it from a request before any image is decoded; the task manager accepts only this value.
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from genkeep.errors import InvalidInput
from genkeep.tasks.model import IMAGE_COUNTS, TaskType

IMAGE_LABELS: dict[TaskType, tuple[str, ...]] = {
    TaskType.CREATE: ("Reference image 1", "Reference image 2", "Reference image 3", "Reference image 4"),
    TaskType.WHITE_BACKGROUND: ("The product photo",),
    TaskType.CLOTHING_CHANGE: ("The person photo", "The garment photo"),
}
WANTED_IMAGES = {
    TaskType.CREATE: "between 0 and 4 reference images",
    TaskType.WHITE_BACKGROUND: "exactly 1 product photo",
    TaskType.CLOTHING_CHANGE: "exactly 2 images: the person first, then the garment",
}
TYPE_CHOICES = "CREATE, WHITE_BACKGROUND or CLOTHING_CHANGE"
# The types whose generations start from words alone; the others work from their photos, a prompt optional.
PROMPT_REQUIRED = frozenset({TaskType.CREATE})
# Line breaks and tabs are text a person typed; every other control character (Unicode category Cc) is not.
# Written as a regular expression because the API's schema publishes this very rule.
PROMPT_PATTERN = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*$"
# What str.strip() removes (str.isspace()), spelled out so the schema's "not blank" rule reads the same in
# every regular-expression engine.
WHITESPACE_CLASS = r"\t-\r\u001c-\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
NOT_BLANK_PATTERN = rf"[^{WHITESPACE_CLASS}]"
_PROMPT_CHARACTERS = re.compile(PROMPT_PATTERN)


# A batch is the owner's own id for tasks made together (one per photo of a catalog); the page makes one per drop.
BATCH_PATTERN = "^[A-Za-z0-9_-]{1,64}$"
_BATCH = re.compile(BATCH_PATTERN)
# The longest original file name kept (a download's entry is named after it).
FILENAME_MAX_CHARS = 200


def parse_batch(raw: str | None) -> str | None:
    if raw is None:
        return None
    if not _BATCH.fullmatch(raw):
        raise InvalidInput("batch must be 1 to 64 letters, digits, '-' or '_' (a UUID will do); send it so or leave "
                           "it out.", field="batch")
    return raw


def clean_filename(raw: str | None) -> str | None:
    """The name of the seller's file as a download may reuse it: no folders, no control or direction characters,
    at most FILENAME_MAX_CHARS (the extension kept); None if nothing is left."""
    if not raw:
        return None
    name = unicodedata.normalize("NFC", raw.replace("\\", "/").rsplit("/", 1)[-1])
    name = "".join(char for char in name if unicodedata.category(char) not in ("Cc", "Cf")).strip().strip(".")
    if len(name) > FILENAME_MAX_CHARS:
        stem, dot, extension = name.rpartition(".")
        extension = dot + extension if dot and len(extension) <= 10 else ""
        name = (stem if dot else name)[:FILENAME_MAX_CHARS - len(extension)] + extension
    return name or None


def new_task_id() -> str:
    """Unique and unguessable: 128 random bits."""
    return secrets.token_hex(16)


# What is_task_id accepts, as the API's schema publishes it.
TASK_ID_PATTERN = "^[0-9a-f]{32}$"


def is_task_id(text: str) -> bool:
    """Task ids are 32 hex digits: anything else is unknown without asking the database."""
    return len(text) == 32 and all(char in "0123456789abcdef" for char in text)


def parse_type(raw: str | None) -> TaskType:
    if not raw:
        raise InvalidInput(f"Choose a type: {TYPE_CHOICES}.", field="type")
    try:
        # Exactly as the schema's enum spells it: what the document says is what is accepted.
        return TaskType(raw)
    except ValueError:
        raise InvalidInput(f"Unknown type {raw[:40]!r}; use {TYPE_CHOICES}.", field="type") from None


def image_label(task_type: TaskType, index: int) -> str:
    labels = IMAGE_LABELS[task_type]
    return labels[index] if index < len(labels) else f"Reference image {index + 1}"


@dataclass(frozen=True)
class NewTask:
    """What a user asked for, valid: the type, the cleaned prompt, the number of images that go with it, the names
    their files had, and the batch it belongs to."""

    type: TaskType
    prompt: str | None
    image_count: int
    filenames: tuple[str | None, ...] = ()
    batch: str | None = None

    @classmethod
    def build(cls, raw_type: str | None, prompt: str | None, image_count: int, *, max_prompt_chars: int,
              filenames: Sequence[str | None] = (), batch: str | None = None) -> NewTask:
        task_type = parse_type(raw_type)
        if prompt:
            # Checked as sent (before trimming), like the form field's maxlength and the schema's maxLength.
            if len(prompt) > max_prompt_chars:
                raise InvalidInput(f"The prompt is {len(prompt)} characters long; shorten it to {max_prompt_chars} "
                                   "or fewer.", field="prompt", sentence="prompt_too_long",
                                   values={"length": len(prompt), "max": max_prompt_chars})
            if not _PROMPT_CHARACTERS.fullmatch(prompt):
                raise InvalidInput("The prompt contains control characters (such as NUL); remove them and send "
                                   "plain text.", field="prompt", sentence="prompt_control_characters")
        prompt = (prompt or "").strip() or None
        if task_type in PROMPT_REQUIRED and prompt is None:
            raise InvalidInput("Describe the image you want: a prompt is required to create an image.",
                               field="prompt", sentence="prompt_required")
        fewest, most = IMAGE_COUNTS[task_type]
        if not fewest <= image_count <= most:
            raise InvalidInput(f"{task_type.value} takes {WANTED_IMAGES[task_type]}; you sent {image_count}.",
                               field="reference_images", sentence=f"image_count.{task_type.value}",
                               values={"count": image_count})
        return cls(task_type, prompt, image_count, tuple(clean_filename(name) for name in filenames),
                   parse_batch(batch))
