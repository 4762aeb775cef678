"""House rules: domain logic speaks only to interfaces, and each bounded context keeps to its
room. Outside ``merge_assist.adapters`` no core module imports an AWS, GitLab or HTTP
client. The kernel (``merge_assist.platform``) imports no context; a context imports the
kernel, its own modules, and another context only by the public names of its package."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import merge_assist

FORBIDDEN = frozenset({"boto3", "botocore", "gitlab", "moto", "requests"})
PACKAGE = Path(merge_assist.__file__).resolve().parent
KERNEL = "platform"
CONTEXTS = frozenset({"queue", "live", "audit", "admin"})


def domain_modules() -> list[Path]:
    return sorted(
        path for path in PACKAGE.rglob("*.py") if path.relative_to(PACKAGE).parts[0] != "adapters"
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


def room_of(module: str) -> str | None:
    """The kernel or context a core module belongs to (None: not a core module)."""
    parts = module.split(".")
    return parts[1] if parts[0] == "merge_assist" and len(parts) > 1 else None


def public_names(context: str) -> frozenset[str]:
    return frozenset(getattr(importlib.import_module(f"merge_assist.{context}"), "__all__", ()))


def imported_names(source: str) -> list[tuple[int, str, list[str]]]:
    """``from X import a, b`` statements, absolute ones only, as (line, X, [a, b])."""
    return [
        (node.lineno, node.module, [alias.name for alias in node.names])
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.ImportFrom) and node.module and not node.level
    ]


def crossings(module: str, source: str, public: dict[str, frozenset[str]]) -> list[str]:
    """The imports of ``module`` that leave its room by another door than a context's
    public names."""
    own = room_of(module)
    found: list[str] = []
    for line, imported in imported_modules(source, module.rpartition(".")[0]):
        other = room_of(imported)
        if other is None or other in (own, KERNEL, "adapters"):
            continue
        if own == KERNEL:
            found.append(f"{line}: the kernel imports {imported}")
        elif imported != f"merge_assist.{other}":
            found.append(f"{line}: {imported} is inside another context")
    for line, imported, names in imported_names(source):
        other = room_of(imported)
        if imported == f"merge_assist.{other}" and other in CONTEXTS and other != own:
            hidden = [name for name in names if name not in public[other]]
            if hidden:
                found.append(f"{line}: {hidden} are not public names of {imported}")
    return found


def test_the_domain_modules_are_found() -> None:
    names = {module_name(path) for path in domain_modules()}
    assert {
        "merge_assist.platform.config",
        "merge_assist.queue.queue",
        "merge_assist.queue.verdict",
        "merge_assist.platform.ports",
    } <= names
    assert not any(".adapters" in name for name in names)


def test_every_core_module_lives_in_a_room() -> None:
    rooms = {KERNEL, "adapters", *CONTEXTS}
    loose = [
        path.name
        for path in PACKAGE.iterdir()
        if path.name not in {"__init__.py", "py.typed", "__pycache__"} and path.name not in rooms
    ]
    assert loose == []


@pytest.mark.parametrize("path", domain_modules(), ids=module_name)
def test_a_context_keeps_to_its_room(path: Path) -> None:
    public = {context: public_names(context) for context in CONTEXTS}
    assert crossings(module_name(path), path.read_text(encoding="utf-8"), public) == []


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("merge_assist.platform.config", "from merge_assist.queue import Batch"),
        ("merge_assist.platform.config", "import merge_assist.queue.models"),
        ("merge_assist.live.feed", "from merge_assist.queue.models import Batch"),
        ("merge_assist.live.feed", "from merge_assist.queue import comments"),
        ("merge_assist.admin.recovery", "from merge_assist.audit.ports import AuditStore"),
        ("merge_assist.admin.recovery", "from ..queue.workflow import start"),
    ],
)
def test_the_room_check_catches_each_way_out(module: str, source: str) -> None:
    public = {"queue": frozenset({"Batch"}), "audit": frozenset({"AuditStore"})}
    public |= {context: frozenset() for context in CONTEXTS - public.keys()}
    assert crossings(module, source, public), f"{source!r} slipped out of {module}"


def test_the_room_check_lets_the_doors_through() -> None:
    public = {context: frozenset({"Batch"}) for context in CONTEXTS}
    source = (
        "from merge_assist.platform.config import ProjectConfig\n"
        "from merge_assist.live.feed import LiveFeed\n"
        "from merge_assist.queue import Batch\n"
        "from .feed import Update\n"
    )
    assert crossings("merge_assist.live.dashboard", source, public) == []


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
        "import pydantic\nfrom merge_assist.queue.models import Batch\nfrom .ports import Store\n"
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
