"""Installs reproduce: every dependency of pyproject.toml is pinned, with file hashes, in the lock make installs."""

from __future__ import annotations

import re
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.support.processes import REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+) \\\n((?:\s+--hash=sha256:[0-9a-f]{64}(?: \\)?\n)+)", re.M)


def pins(lock: str) -> dict[str, Version]:
    """The lock's releases, each with at least one file hash (what `pip install --require-hashes` needs)."""
    text = (REPO / "requirements" / lock).read_text()
    found: dict[str, Version] = {canonicalize_name(name): Version(version) for name, version, _ in PIN.findall(text)}
    assert len(found) == text.count("=="), f"{lock}: a pin without a --hash line"
    return found


@pytest.mark.parametrize(("lock", "requirements"), [
    ("run.lock", PYPROJECT["project"]["dependencies"]),
    ("test.lock", PYPROJECT["project"]["dependencies"] + PYPROJECT["project"]["optional-dependencies"]["test"]),
])
def test_every_dependency_is_pinned_within_its_range(lock: str, requirements: list[str]) -> None:
    pinned = pins(lock)
    stale = []
    for line in requirements:
        requirement = Requirement(line)
        version = pinned.get(canonicalize_name(requirement.name))
        if version is None or not requirement.specifier.contains(version, prereleases=True):
            stale.append(f"{line} (locked: {version})")
    assert not stale, f"requirements/{lock} is stale for {stale}: run `make lock`"


def test_the_test_lock_keeps_every_version_the_studio_runs_with() -> None:
    run, test = pins("run.lock"), pins("test.lock")
    assert {name: test.get(name) for name in run} == run
