"""directus_ops/ is a plain library: none of its modules needs Prefect, neither to be imported (checked in a
fresh interpreter where ``import prefect`` fails) nor in a function (an import of prefect, flows or tasks
anywhere in its source). Fast: no database, Directus or Prefect server."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import directus_ops

ROOT = Path(__file__).resolve().parent.parent
MODULES = sorted(m.name for m in pkgutil.walk_packages(directus_ops.__path__, "directus_ops."))
# The command line (its options derived from the flows' signatures) and its warm runner are the entry point that
# runs the flows (above flows/, not under it).
ENTRY_POINTS = {"directus_ops.cli", "directus_ops.cli_binding", "directus_ops.runner"}
PREFECT_PACKAGES = ("prefect", "flows", "tasks")  # flows/ and tasks/ import Prefect

IMPORT_ALL = """
import importlib, json, sys

class NoPrefect:
    def find_spec(self, name, path=None, target=None):
        if name == "prefect" or name.startswith("prefect."):
            raise ImportError(f"No module named {name!r} (made unimportable by the test)")
        return None

sys.meta_path.insert(0, NoPrefect())
failed = {}
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except Exception as exc:
        failed[name] = f"{type(exc).__name__}: {exc}"
print(json.dumps(failed))
"""


@pytest.fixture(scope="module")
def import_failures() -> dict[str, str]:
    """Each module's import error in one fresh interpreter without Prefect (none: it imported)."""
    done = subprocess.run([sys.executable, "-c", IMPORT_ALL, *MODULES], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def prefect_imports(module: str) -> list[str]:
    """Where the module's source imports Prefect (directly, or through flows/ or tasks/), as 'line N: name'."""
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None
    found = []
    for node in ast.walk(ast.parse(Path(spec.origin).read_text(), spec.origin)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [f"line {node.lineno}: {name}" for name in names if name.split(".")[0] in PREFECT_PACKAGES]
    return found


@pytest.mark.parametrize("module", [m for m in MODULES if m not in ENTRY_POINTS])
def test_the_module_needs_no_prefect(module: str, import_failures: dict[str, str]) -> None:
    assert module not in import_failures, import_failures[module]
    assert not prefect_imports(module), f"{module} imports Prefect: {prefect_imports(module)}"


def test_the_entry_points_are_the_only_exceptions() -> None:
    assert ENTRY_POINTS <= set(MODULES)  # renamed or moved: this list must follow
    assert all(prefect_imports(m) for m in ENTRY_POINTS)  # one that no longer needs Prefect leaves the list
