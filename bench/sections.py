"""The sections of docs/benchmarks.md that scripts measured apart write and `make bench` keeps."""

from __future__ import annotations

from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def kept_section(marker: str, doc: Path = DOC) -> str:
    """The section that starts with `marker` (its "## " heading, or an HTML comment just before one), up to the next
    section's heading or marker; "" if the document has none."""
    text = doc.read_text() if doc.exists() else ""
    start = text.find(marker)
    if start < 0:
        return ""
    # Past the section's own heading: a marker comment comes right before it.
    body = text.find("\n", text.find("## ", start))
    if body < 0:
        return "\n" + text[start:].rstrip() + "\n"
    ends = [end for end in (text.find("\n## ", body), text.find("\n<!-- ", body)) if end >= 0]
    return "\n" + text[start:min(ends, default=len(text))].rstrip() + "\n"


def replace_section(marker: str, text: str, doc: Path = DOC) -> None:
    """Writes `text` in place of the section that starts with `marker`, or at the end if there is none."""
    old = kept_section(marker, doc)
    current = doc.read_text() if doc.exists() else ""
    doc.write_text(current.replace(old, text) if old else current.rstrip("\n") + "\n" + text)
