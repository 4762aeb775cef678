"""The file work behind the Lambda assets, without CDK, Docker or a network.

Building the layer for real downloads wheels from PyPI, so it is left to ``cdk synth``; what it
installs and prunes is decided by the functions tested here.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

from infra import REPO_ROOT
from infra.bundling import (
    LAMBDA_PLATFORMS,
    RUNTIME_PROVIDED,
    copy_core_package,
    copy_function_code,
    handler_package,
    pip_install_command,
    prune_distributions,
    python_version,
    requirement_name,
    runtime_requirements,
)
from merge_assist.platform.resources import FUNCTIONS, PYTHON_RUNTIME, FunctionSpec

pytestmark = pytest.mark.infra

FUNCTIONS_DIR = REPO_ROOT / "functions"


@pytest.mark.parametrize("spec", FUNCTIONS, ids=lambda spec: spec.key)
def test_function_asset_holds_the_handler_module(tmp_path: Path, spec: FunctionSpec) -> None:
    package = handler_package(spec.handler)

    copy_function_code(FUNCTIONS_DIR, package, tmp_path)

    *module, _attribute = spec.handler.split(".")
    assert (tmp_path / Path(*module).with_suffix(".py")).is_file()
    assert (tmp_path / "functions" / "__init__.py").is_file()
    assert (tmp_path / "functions" / package / "__init__.py").is_file()
    assert not list(tmp_path.rglob("__pycache__"))
    # Only the handler's own package: the other functions are not shipped with it.
    assert [path.name for path in (tmp_path / "functions").iterdir() if path.is_dir()] == [package]


def test_function_asset_leaves_bytecode_behind(tmp_path: Path) -> None:
    functions = tmp_path / "src" / "functions"
    for relative in ("__init__.py", "hook/__init__.py", "hook/app.py"):
        (functions / relative).parent.mkdir(parents=True, exist_ok=True)
        (functions / relative).write_text("")
    (functions / "hook" / "__pycache__").mkdir()
    (functions / "hook" / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"")
    (functions / "hook" / "stale.pyc").write_bytes(b"")

    copy_function_code(functions, "hook", tmp_path / "out")

    shipped = sorted(
        path.relative_to(tmp_path / "out").as_posix()
        for path in (tmp_path / "out").rglob("*")
        if path.is_file()
    )
    assert shipped == [
        "functions/__init__.py",
        "functions/hook/__init__.py",
        "functions/hook/app.py",
    ]


def test_function_asset_of_an_unknown_package_fails(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere"):
        copy_function_code(FUNCTIONS_DIR, "nowhere", tmp_path)


@pytest.mark.parametrize(
    ("handler", "package"),
    [
        ("functions.workflow.select.handler", "workflow"),
        ("functions.api.app.handler", "api"),
        ("functions.webhook.handler", "webhook"),
    ],
)
def test_handler_package(handler: str, package: str) -> None:
    assert handler_package(handler) == package


@pytest.mark.parametrize(
    "handler", ["app.handler", "functions.handler", "handlers.api.app.handler", "functions..x"]
)
def test_handler_outside_functions_is_refused(handler: str) -> None:
    with pytest.raises(ValueError, match="handler"):
        handler_package(handler)


def test_core_package_goes_where_lambda_looks_for_layer_code(tmp_path: Path) -> None:
    core = REPO_ROOT / "layers" / "core" / "merge_assist"

    target = copy_core_package(core, tmp_path)

    assert target == tmp_path / "python" / "merge_assist"
    assert (target / "platform" / "resources.py").is_file()
    assert not list(target.rglob("*.pyc"))


def test_the_layer_holds_no_command_line_tool_local_stack_or_benchmark(tmp_path: Path) -> None:
    target = copy_core_package(REPO_ROOT / "layers" / "core" / "merge_assist", tmp_path)

    outside = {"cli", "local", "bench"}
    shipped = [path.relative_to(tmp_path) for path in (tmp_path / "python").rglob("*.py")]
    assert shipped
    assert not [
        path for path in shipped if outside & {part.removesuffix(".py") for part in path.parts}
    ]
    # Nor does anything shipped reach for them: a Lambda would fail on the import.
    reaching = [
        f"{path.relative_to(target)}: {module}"
        for path in target.rglob("*.py")
        for module in _imported_roots(path.read_text(encoding="utf-8"))
        if module in outside
    ]
    assert reaching == []


def _imported_roots(source: str) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            roots.add(node.module.split(".")[0])
    return roots


def test_layer_requirements_are_pyproject_dependencies_without_the_runtimes_own() -> None:
    pyproject = REPO_ROOT / "pyproject.toml"
    declared = tomllib.loads(pyproject.read_text())["project"]["dependencies"]

    requirements = runtime_requirements(pyproject)

    assert requirements == [dep for dep in declared if requirement_name(dep) != "boto3"]
    assert not {requirement_name(dep) for dep in requirements} & RUNTIME_PROVIDED


def test_runtime_requirements_normalise_names(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[project]\nname = "x"\ndependencies = ["BotoCore>=1", "Boto3 ; python_version>\'3\'",'
        ' "pydantic[email]>=2", "s3_transfer==0.1"]\n'
    )
    assert runtime_requirements(pyproject) == ["pydantic[email]>=2", "s3_transfer==0.1"]


@pytest.mark.parametrize(
    ("requirement", "name"),
    [
        ("aws-lambda-powertools[parser,tracer]>=3.37,<4", "aws-lambda-powertools"),
        ("PyJWT[crypto]>=2.10", "pyjwt"),
        ("zope.interface ; python_version < '3.12'", "zope-interface"),
        ("Foo__Bar", "foo-bar"),
    ],
)
def test_requirement_name(requirement: str, name: str) -> None:
    assert requirement_name(requirement) == name


def test_python_version_of_the_runtime() -> None:
    assert python_version("python3.14") == "3.14"
    assert python_version(PYTHON_RUNTIME) == PYTHON_RUNTIME.removeprefix("python")
    with pytest.raises(ValueError, match=r"nodejs22\.x"):
        python_version("nodejs22.x")


def test_pip_fetches_lambda_wheels_only(tmp_path: Path) -> None:
    command = pip_install_command(["pydantic>=2", "merge3"], tmp_path / "python", "3.14")

    assert command[1:4] == ["-m", "pip", "install"]
    assert command[command.index("--target") + 1] == str(tmp_path / "python")
    assert command[command.index("--python-version") + 1] == "3.14"
    assert command[command.index("--implementation") + 1] == "cp"
    assert "--only-binary=:all:" in command
    assert "--no-compile" in command
    platforms = [command[i + 1] for i, arg in enumerate(command) if arg == "--platform"]
    assert platforms == list(LAMBDA_PLATFORMS)
    assert "manylinux2014_x86_64" in platforms
    assert command[-2:] == ["pydantic>=2", "merge3"]


def _install_fake(site: Path, name: str, files: dict[str, str]) -> None:
    dist_info = site / f"{name}-1.0.0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(f"Name: {name}\n")
    for relative, content in files.items():
        path = site / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    records = [*files, f"{dist_info.name}/METADATA", f"{dist_info.name}/RECORD"]
    (dist_info / "RECORD").write_text("".join(f"{record},,\n" for record in records))


def test_prune_removes_what_the_runtime_provides(tmp_path: Path) -> None:
    site = tmp_path / "python"
    outside = tmp_path / "bin" / "botocore-tool"
    outside.parent.mkdir(parents=True)
    outside.write_text("#!/usr/bin/python3\n")
    _install_fake(
        site,
        "botocore",
        {
            "botocore/__init__.py": "",
            "botocore/data/s3/service-2.json": "{}",
            "../bin/botocore-tool": "#!/usr/bin/python3\n",
        },
    )
    _install_fake(site, "s3transfer", {"s3transfer/__init__.py": ""})
    _install_fake(site, "aws_xray_sdk", {"aws_xray_sdk/__init__.py": ""})

    removed = prune_distributions(site, RUNTIME_PROVIDED)

    assert sorted(removed) == ["botocore", "s3transfer"]
    assert sorted(path.name for path in site.iterdir()) == [
        "aws_xray_sdk",
        "aws_xray_sdk-1.0.0.dist-info",
    ]
    assert outside.is_file(), "files outside the layer directory are left alone"
