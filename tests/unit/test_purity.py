"""House rule: domain logic speaks only to interfaces. Outside ``merge_assist.adapters`` (and
the CLI, which wires adapters), no core module imports an AWS, GitLab or HTTP client."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import merge_assist

FORBIDDEN = frozenset({"boto3", "botocore", "gitlab", "moto", "requests"})
PACKAGE = Path(merge_assist.__file__).resolve().parent


def domain_modules() -> list[Path]:
    return sorted(
        path
        for path in PACKAGE.rglob("*.py")
        if path.relative_to(PACKAGE).parts[0]
        not in {"adapters", "cli.py", "cli_project.py", "cli_recovery.py"}
    )


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, package: str) -> list[tuple[int, str]]:
    """Every module ``source`` imports (statically, or by a literal ``import_module`` /
    ``__import__`` call), as absolute dotted names with their line numbers."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                prefix = ".".join([*base, node.module] if node.module else base)
                if node.module:
                    found.append((node.lineno, prefix))
                else:
                    found += [(node.lineno, f"{prefix}.{alias.name}") for alias in node.names]
            elif node.module:
                found.append((node.lineno, node.module))
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and (
                (isinstance(node.func, ast.Name) and node.func.id == "__import__")
                or (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
            )
        ):
            found.append((node.lineno, node.args[0].value))
    return found


def is_forbidden(module: str) -> bool:
    return (
        module.split(".", maxsplit=1)[0] in FORBIDDEN
        or module == "merge_assist.adapters"
        or module.startswith("merge_assist.adapters.")
    )


def violations(path: Path) -> list[str]:
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    return [
        f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}"
        for line, module in imported_modules(path.read_text(encoding="utf-8"), package)
        if is_forbidden(module)
    ]


def test_the_domain_modules_are_found() -> None:
    names = {module_name(path) for path in domain_modules()}
    assert {
        "merge_assist.platform.models",
        "merge_assist.queue.queue",
        "merge_assist.platform.ports",
    } <= names
    assert not any(".adapters" in name for name in names)


@pytest.mark.parametrize("path", domain_modules(), ids=module_name)
def test_domain_module_imports_no_client_library_and_no_adapter(path: Path) -> None:
    assert violations(path) == []


@pytest.mark.parametrize(
    "source",
    [
        "import boto3",
        "import botocore.session as s",
        "from gitlab.v4.objects import Project",
        "from requests import Session",
        "def f():\n    import moto\n",
        "import importlib\nimportlib.import_module('boto3')",
        "__import__('gitlab')",
        "from .adapters.aws import store_from_settings",
        "from . import adapters",
        "from merge_assist.adapters import dynamodb_store",
    ],
)
def test_the_check_catches_each_way_of_importing(source: str) -> None:
    # The check itself must be able to fail, or the rule above proves nothing.
    found = [
        module for _, module in imported_modules(source, "merge_assist") if is_forbidden(module)
    ]
    assert found, f"{source!r} slipped through"


def test_the_check_lets_the_allowed_imports_through() -> None:
    source = (
        "import pydantic\n"
        "from merge_assist.platform.models import Batch\n"
        "from .ports import Store\n"
    )
    found = [
        module for _, module in imported_modules(source, "merge_assist") if is_forbidden(module)
    ]
    assert found == []


def test_importing_the_domain_loads_no_client_library() -> None:
    # Catches what the static check cannot: a forbidden library pulled in transitively.
    modules = [module_name(path) for path in domain_modules()]
    script = (
        "import sys\n"
        + "".join(f"import {name}\n" for name in modules)
        + f"print(sorted(name for name in {sorted(FORBIDDEN)!r} if name in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
