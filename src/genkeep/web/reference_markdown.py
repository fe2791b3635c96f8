"""docs/api.md: the OpenAPI document (/openapi.json, also behind /docs) as a page to read, an example per operation.

Generated, never edited by hand: `make api-docs` writes it, and tests/web/test_openapi.py fails when it no longer
matches the document the server publishes (with the default settings).
"""

from __future__ import annotations

import json
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

from genkeep.config import Settings

BASE = "http://127.0.0.1:8000"
# The owner cookie, kept between commands the way a browser keeps it.
COOKIE_JAR = "-b genkeep.cookies -c genkeep.cookies"
REF = "#/components/schemas/"
HEADER = """\
# genkeep HTTP API

<!-- Generated from the OpenAPI document by `make api-docs` (genkeep.web.reference_markdown); a test checks it is
current. Edit the routes and web/contract.py, not this file. -->

The same document is served at `/openapi.json` and shown at `/docs`. The examples use curl against `make run`'s
address and keep the owner cookie in `genkeep.cookies`.

"""


def published_document() -> dict[str, Any]:
    """/openapi.json as a studio with the default settings publishes it."""
    from genkeep.web.app import create_app

    with tempfile.TemporaryDirectory() as folder:
        app = create_app(Settings(data_dir=Path(folder), secret_key="api-reference-" + "x" * 32, workers=0),
                         run_workers=False)
        try:
            return app.openapi()
        finally:
            app.state.studio.close()


def render(document: dict[str, Any]) -> str:
    lines = [HEADER + document["info"]["description"].strip(), "", "## Operations", "",
             "| method | path | what it does |", "|---|---|---|"]
    operations = [(path, method, operation) for path, item in document["paths"].items()
                  for method, operation in item.items()]
    lines += [f"| {method.upper()} | `{path}` | {operation['summary']} |" for path, method, operation in operations]
    for path, method, operation in operations:
        lines += ["", *_operation(path, method, operation)]
    lines += ["", "## Schemas"]
    for name, schema in document["components"]["schemas"].items():
        lines += ["", *_schema(name, schema)]
    return "\n".join(lines).rstrip() + "\n"


def _operation(path: str, method: str, operation: dict[str, Any]) -> list[str]:
    lines = [f"### {method.upper()} {path}", "", f"**{operation['summary']}** (`{operation['operationId']}`)"]
    if operation.get("description"):
        lines += ["", operation["description"]]
    parameters = operation.get("parameters", [])
    if parameters:
        lines += ["", "| parameter | in | value | description |", "|---|---|---|---|"]
        lines += [f"| `{p['name']}`{'' if p.get('required') else ' (optional)'} | {p['in']} | "
                  f"{_type(p['schema'])} | {_cell(p.get('description', ''))} |" for p in parameters]
    body = operation.get("requestBody")
    if body:
        forms = ", ".join(f"`{media_type}` ({_type(content['schema'])})"
                          for media_type, content in body["content"].items())
        lines += ["", f"Request body: {forms}."]
    lines += ["", "```sh", *_curl(path, method, operation), "```", "", "| answer | body | when |", "|---|---|---|"]
    problems = []
    for status, answer in operation["responses"].items():
        content = answer.get("content", {})
        bodies = ", ".join(f"`{media_type}` {_type(media['schema'])}" if media.get("schema") else f"`{media_type}`"
                           for media_type, media in content.items()) or "none"
        headers = "".join(f" Header `{name}`." for name in answer.get("headers", {}))
        lines.append(f"| {status} | {bodies} | {_cell(answer['description'])}{headers} |")
        for media in content.values():
            example = media.get("example")
            if isinstance(example, dict) and "code" in example and "detail" in example:
                problems.append(f"- {status} `{example['code']}`: {example['detail']}")
    shown: list[Any] = []
    for status, answer in operation["responses"].items():
        for media_type, media in answer.get("content", {}).items():
            examples = ([("", media["example"])] if "example" in media else
                        [(f" ({name})", example["value"]) for name, example in media.get("examples", {}).items()])
            for label, example in examples:
                if status.startswith("2") and media_type == "application/json" and example not in shown:
                    shown.append(example)
                    lines += ["", f"Example {status}{label}:", "", "```json",
                              json.dumps(example, indent=2, ensure_ascii=False), "```"]
    links = [link["operationId"] for answer in operation["responses"].values()
             for link in answer.get("links", {}).values()]
    if links:
        lines += ["", "Then: " + ", ".join(f"`{name}`" for name in dict.fromkeys(links)) + " (OpenAPI links)."]
    if problems:
        lines += ["", "Example problems:", "", *problems]
    return lines


def _curl(path: str, method: str, operation: dict[str, Any]) -> list[str]:
    """The operation's examples as curl commands: one per kind of request body."""
    query = []
    for parameter in operation.get("parameters", []):
        example = parameter.get("example")
        if example is None:
            continue
        if parameter["in"] == "path":
            path = path.replace("{" + parameter["name"] + "}", str(example))
        elif parameter["in"] == "query":
            values = example if isinstance(example, list) else [example]
            query += [f"{parameter['name']}={value}" for value in values]
    words = ["curl", COOKIE_JAR]
    for parameter in operation.get("parameters", []):
        if parameter["in"] == "header" and "example" in parameter:
            words += ["-H", shlex.quote(f"{parameter['name']}: {parameter['example']}")]
    url = shlex.quote(BASE + path + ("?" + "&".join(query) if query else ""))
    forms = operation.get("requestBody", {}).get("content", {})
    if not forms:
        return [" ".join([*words, *([] if method == "get" else ["-X", method.upper()]), url])]
    commands = []
    for media_type, form in forms.items():
        # curl sends -F fields as multipart/form-data and --data-urlencode ones as a plain form.
        option = "-F" if media_type == "multipart/form-data" else "--data-urlencode"
        fields = [f"{name}=@photo{index + 1}.jpg" if name == "reference_images" else f"{name}={item}"
                  for name, value in form["example"].items()
                  for index, item in enumerate(value if isinstance(value, list) else [value])]
        commands.append(" ".join([*words, *(f"{option} {shlex.quote(field)}" for field in fields), url]))
    return commands


def _schema(name: str, schema: dict[str, Any]) -> list[str]:
    lines = [f"### {name}"]
    if schema.get("description"):
        lines += ["", schema["description"]]
    if "enum" in schema:
        return [*lines, "", "One of " + ", ".join(f"`{value}`" for value in schema["enum"]) + "."]
    required = set(schema.get("required", ()))
    properties = schema.get("properties", {})
    if properties:
        lines += ["", "| field | value | description |", "|---|---|---|"]
        lines += [f"| `{field}`{'' if field in required else ' (optional)'} | {_type(value)} | "
                  f"{_cell(value.get('description', ''))} |" for field, value in properties.items()]
    if schema.get("additionalProperties") is False:
        lines += ["", "No other fields."]
    for rule in schema.get("allOf", []):
        kind = rule["if"]["properties"]["type"]["const"]
        then = rule["then"]
        rules = [f"`{field}` required" for field in then.get("required", ())]
        rules += [f"`{field}` {value.get('description') or _constraints(value)}"
                  for field, value in then.get("properties", {}).items()]
        lines += ["", f"- When `type` is `{kind}`: " + "; ".join(rules) + "."]
    for example in schema.get("examples", [])[:1]:
        lines += ["", "```json", json.dumps(example, indent=2, ensure_ascii=False), "```"]
    return lines


def _type(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        name = schema["$ref"].removeprefix(REF)
        return f"[{name}](#{name.lower()})"
    if "anyOf" in schema:
        return " or ".join(_type(variant) for variant in schema["anyOf"])
    if "const" in schema:
        return f"`{schema['const']}`"
    if "enum" in schema:
        return "one of " + ", ".join(f"`{value}`" for value in schema["enum"])
    kind = schema.get("type", "any")
    if kind == "array":
        text = "array of " + _type(schema.get("items", {}))
    elif schema.get("format"):
        text = f"{kind} ({schema['format']})"
    else:
        text = str(kind)
    constraints = _constraints(schema)
    return f"{text}, {constraints}" if constraints else text


def _constraints(schema: dict[str, Any]) -> str:
    said = []
    if "minItems" in schema or "maxItems" in schema:
        fewest, most = schema.get("minItems", 0), schema.get("maxItems")
        if fewest == most:
            said.append(f"exactly {most} item{'' if most == 1 else 's'}")
        else:
            said.append(f"{fewest} to {most} items" if most is not None else f"at least {fewest} items")
    if "minimum" in schema and "maximum" in schema:
        said.append(f"{_number(schema['minimum'])} to {_number(schema['maximum'])}")
    elif "minimum" in schema:
        said.append(f"at least {_number(schema['minimum'])}")
    elif "maximum" in schema:
        said.append(f"at most {_number(schema['maximum'])}")
    if "maxLength" in schema:
        said.append(f"at most {schema['maxLength']} characters")
    if "pattern" in schema:
        said.append(f"matching `{schema['pattern']}`")
    if "default" in schema:
        said.append(f"default {json.dumps(schema['default'])}")
    return ", ".join(said)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def main() -> None:
    """`python -m genkeep.web.reference_markdown [path]`: write the page (to stdout without a path)."""
    text = render(published_document())
    if len(sys.argv) > 1:
        Path(sys.argv[1]).write_text(text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
