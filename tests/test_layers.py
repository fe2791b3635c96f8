"""Imports run downward only: a module imports from its own layer or a lower one, never from a higher one.

The layers, lowest first, as the code has them:
- the root: the package itself (its version), config, signing and errors: the vocabulary every layer speaks;
- previews (engines' intermediate pictures shrunk), then reference_images (uploads in, which makes previews);
- storage (image bytes in and out; it checks and stores reference images);
- tasks (the domain: model, manager, backends, events, sweeper);
- engines, above tasks: an engine reads the task's vocabulary (tasks.model: its type and inputs), while the task
  manager never calls an engine (the workers do);
- logs and metrics: observers of the task manager's transitions (tasks.transitions), wired in by the studio; and
  downloads (finished tasks' results read from the storage into one archive);
- workers (engine runs recorded through the task manager);
- studio (one process's manager, storage, workers, sweeper and metrics wired together);
- web (the app, routes and pages, on a studio);
- cli (serves the web app, runs workers and sweeps).
Imports inside a function count too: they are deferred, not exempt.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "genkeep"

# Module prefixes, lowest layer first; a module belongs to the layer of its longest matching prefix.
LAYERS: list[tuple[str, ...]] = [
    ("genkeep", "genkeep.config", "genkeep.signing", "genkeep.errors"),
    ("genkeep.previews",),
    ("genkeep.reference_images",),
    ("genkeep.storage",),
    ("genkeep.tasks",),
    ("genkeep.engines",),
    ("genkeep.logs", "genkeep.metrics", "genkeep.downloads"),
    ("genkeep.workers",),
    ("genkeep.studio",),
    ("genkeep.web",),
    ("genkeep.cli",),
]


def layer_of(module: str) -> int:
    matches = [(len(prefix), rank) for rank, prefixes in enumerate(LAYERS) for prefix in prefixes
               if module == prefix or module.startswith(prefix + ".")]
    assert matches, f"{module} is in no layer: add it to LAYERS"
    return max(matches)[1]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, module: str) -> list[tuple[int, str]]:
    """(line, module) of every genkeep import in the file, relative ones resolved."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                found.append((node.lineno, ".".join(base + ([node.module] if node.module else []))))
            else:
                found.append((node.lineno, node.module or ""))
    return [(line, name) for line, name in found if name == "genkeep" or name.startswith("genkeep.")]


def upward_imports() -> list[str]:
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = module_name(path)
        for line, target in imported(path, module):
            if layer_of(target) > layer_of(module):
                upward.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {module} imports {target}")
    return upward


def test_no_module_imports_from_a_higher_layer() -> None:
    assert upward_imports() == []


def test_every_module_is_in_a_layer() -> None:
    modules = [module_name(path) for path in PACKAGE.rglob("*.py")]
    assert len(modules) > 50
    for module in modules:
        layer_of(module)
