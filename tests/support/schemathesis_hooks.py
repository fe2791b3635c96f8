"""What schemathesis cannot learn from the schema, taught as Hypothesis strategies (loaded with SCHEMATHESIS_HOOKS).

- `format: binary` (the form's reference_images): real small pictures in each accepted format, sized like the
  studio accepts them. The schema says "PNG, JPEG or WebP, at least 64 pixels a side" in words only; without
  this, schema-valid requests would carry bytes no image decoder reads.

And, for each valid request, a fresh Idempotency-Key (the schema's example key sent with every generated body would
be one key reused for different generations, which genkeep rightly refuses: 422, as the IETF draft has it) and
a real picture in place of the document's example's words "(the product photo's bytes)".

And one filter, for negative (schema-breaking) multipart bodies that do not break the schema once sent: a form
field is text on the wire, so a prompt mutated into the integer 255 arrives as the valid text "255"; and
schemathesis skips its own "is this really invalid?" check for bodies that hold files, so a mutation inside the
form's per-type rules (dropping `required` from an if/then) can leave a valid body. genkeep rightly accepts
those; they are dropped here by validating each body as the server reads it.
"""

from __future__ import annotations

import io
import json
import uuid
from typing import Any

import jsonschema_rs
import schemathesis
from hypothesis import strategies as st
from PIL import Image
from schemathesis.transport.serialization import Binary

from genkeep.web.task_routes import CREATE_TASK_DOCUMENT

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


schemathesis.openapi.format("binary", pictures())


_VALIDATORS: dict[tuple[int, str], Any] = {}


def _validator(document: dict[str, Any], reference: str) -> Any:
    key = (id(document), reference)
    if key not in _VALIDATORS:
        _VALIDATORS[key] = jsonschema_rs.validator_for({"$ref": reference, "components": document["components"]})
    return _VALIDATORS[key]


def _as_text(value: Any) -> Any:
    """One multipart part as the server reads it: a file is a (binary) string, anything else its text."""
    if isinstance(value, Binary | bytes):
        return ""
    if isinstance(value, str):
        return value
    # How schemathesis spells other values in a part: JSON (255, 1.5, true, null, {...}).
    return json.dumps(value)


def _as_sent(body: dict[str, Any], properties: dict[str, Any]) -> dict[str, Any]:
    """The form as the server reads it: a list goes as the field repeated, one part per item, so the server sees
    one part as a single value (unless the field is an array), several as a list, and none as no field."""
    sent: dict[str, Any] = {}
    for name, value in body.items():
        parts = [_as_text(item) for item in value] if isinstance(value, list) else [_as_text(value)]
        if parts:
            is_array = properties.get(name, {}).get("type") == "array"
            sent[name] = parts if is_array or len(parts) > 1 else parts[0]
    return sent


@schemathesis.hook
def filter_case(context: Any, case: Any) -> bool:
    meta = case.meta
    if meta is None or not meta.generation.mode.is_negative or case.media_type != "multipart/form-data":
        return True
    if not isinstance(case.body, dict):
        return True
    reference = case.operation.definition.raw["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"]
    document = case.operation.schema.raw_schema
    properties = document["components"]["schemas"][reference.rsplit("/", 1)[1]]["properties"]
    return not _validator(document, reference).is_valid(_as_sent(case.body, properties))


@schemathesis.hook
def before_call(context: Any, case: Any, **kwargs: Any) -> None:
    meta = case.meta
    if meta is not None and meta.generation.mode.is_negative:
        return
    for name in list(case.headers or {}):
        if name.lower() == "idempotency-key":
            case.headers[name] = uuid.uuid4().hex
    if isinstance(case.body, dict) and isinstance(case.body.get("reference_images"), list):
        case.body["reference_images"] = [_EXAMPLE_PICTURE if item in _EXAMPLE_WORDS else item
                                         for item in case.body["reference_images"]]


def _picture() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (96, 96), (200, 120, 40)).save(out, "PNG")
    return out.getvalue()


_EXAMPLE_PICTURE = _picture()
# What the document's example shows in place of each image's bytes.
_EXAMPLE_BODY: Any = CREATE_TASK_DOCUMENT["requestBody"]
_EXAMPLE_WORDS = frozenset(_EXAMPLE_BODY["content"]["multipart/form-data"]["example"]["reference_images"])
