"""What the installed package runs (the ``merge-assist`` command: cli, bench, local) never
imports the test suite: ``tests`` is not installed, so such an import fails everywhere but
in a checkout's own folder."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ("cli", "bench", "local", "functions", "infra", "layers")


def _imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", SHIPPED)
def test_shipped_code_does_not_import_the_tests(package: str) -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(
            name for name in _imported(path) if name == "tests" or name.startswith("tests.")
        )
        for path in (ROOT / package).rglob("*.py")
        if "node_modules" not in path.parts and "cdk.out" not in path.parts
    }
    assert {path: names for path, names in offenders.items() if names} == {}
