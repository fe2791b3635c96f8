"""What schemathesis cannot learn from the schema, taught as Hypothesis strategies (loaded with SCHEMATHESIS_HOOKS).

- `format: binary` (the form's reference_images): real small pictures in each accepted format, sized like the
  studio accepts them. The schema says "PNG, JPEG or WebP, at least 64 pixels a side" in words only; without
  this, schema-valid requests would carry bytes no image decoder reads.
- `format: genkeep-cursor` (the list's cursor): cursors of the form genkeep hands out, for tasks that may or may
  not exist. Only a `next_cursor` is valid, which no schema can say.

And one filter: schemathesis checks that a negative (schema-breaking) body really breaks the schema, except when
the body holds files; a mutation inside the form's per-type rules (dropping `required` from an if/then) can then
yield a body that is valid after all, which genkeep rightly accepts. Such bodies are dropped here.
"""

from __future__ import annotations

import io
from typing import Any

import jsonschema_rs
import schemathesis
from hypothesis import strategies as st
from PIL import Image
from schemathesis.transport.serialization import Binary

from genkeep.tasks.manager import encode_cursor
from genkeep.tasks.model import Task, TaskStatus, TaskType

FORMATS = {"PNG": "png", "JPEG": "jpeg", "WEBP": "webp"}


@st.composite
def pictures(draw: st.DrawFn) -> bytes:
    picture_format = draw(st.sampled_from(sorted(FORMATS)))
    width = draw(st.integers(64, 160))
    height = draw(st.integers(64, 160))
    colour = draw(st.tuples(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255)))
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, picture_format)
    return out.getvalue()


@st.composite
def cursors(draw: st.DrawFn) -> str:
    task = Task(id=draw(st.text("0123456789abcdef", min_size=32, max_size=32)), owner_id="", type=TaskType.CREATE,
                status=TaskStatus.PROCESSING, prompt=None, reference_images=(),
                created_at=draw(st.integers(0, 2**62 - 1)), updated_at=0)
    return encode_cursor(task)


schemathesis.openapi.format("binary", pictures())
schemathesis.openapi.format("genkeep-cursor", cursors())


_VALIDATORS: dict[tuple[int, str], Any] = {}


def _validator(document: dict[str, Any], reference: str) -> Any:
    key = (id(document), reference)
    if key not in _VALIDATORS:
        _VALIDATORS[key] = jsonschema_rs.validator_for({"$ref": reference, "components": document["components"]})
    return _VALIDATORS[key]


def _as_json(value: Any) -> Any:
    """The body as the schema sees it: a file part is a (binary) string."""
    if isinstance(value, Binary | bytes):
        return ""
    if isinstance(value, dict):
        return {key: _as_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_as_json(item) for item in value]
    return value


@schemathesis.hook
def filter_case(context: Any, case: Any) -> bool:
    meta = case.meta
    if meta is None or not meta.generation.mode.is_negative or case.media_type != "multipart/form-data":
        return True
    body = _as_json(case.body)
    if not isinstance(body, dict):
        return True
    schema = case.operation.definition.raw["requestBody"]["content"]["multipart/form-data"]["schema"]
    return not _validator(case.operation.schema.raw_schema, schema["$ref"]).is_valid(body)
