"""Lambda code and layer assets, built on the synthesizing machine instead of in Docker.

``cdk synth`` has to work where no Docker engine runs (CI runners, laptops), so both kinds of
asset implement :class:`aws_cdk.ILocalBundling` and never fall back to a container. The layer's
third-party packages come from ``pip`` downloading wheels for the Lambda platform and Python
version, never from compiling on the host, so the host's OS and Python do not leak into it.

The file work is in plain functions so that it can be tested without CDK or a network.
"""

from __future__ import annotations

import csv
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterable, Sequence
from pathlib import Path

import jsii
from aws_cdk import DockerImage, ILocalBundling

# The Lambda runtime ships these. A copy in the layer would come first on sys.path and pair the
# runtime's boto3 with a botocore of another release; aws-xray-sdk pulls botocore in regardless
# of what pyproject lists, hence the pruning after pip has run.
RUNTIME_PROVIDED: frozenset[str] = frozenset({"boto3", "botocore", "s3transfer"})

# Python 3.12+ runtimes run on Amazon Linux 2023 (glibc 2.34). pip matches only the platform tags
# it is given, without widening manylinux_2_x to older levels, so every level a dependency may
# publish wheels under is named.
LAMBDA_PLATFORMS: tuple[str, ...] = (
    "manylinux_2_34_x86_64",
    "manylinux_2_28_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
)

FUNCTIONS_PACKAGE = "functions"
LAYER_SITE_DIR = "python"

_NOT_SHIPPED = shutil.ignore_patterns("__pycache__", "*.pyc")
_REQUIREMENT_NAME = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def normalize_name(name: str) -> str:
    """PEP 503 normalisation, so ``Foo_Bar`` in a wheel and ``foo-bar`` in pyproject agree."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    match = _REQUIREMENT_NAME.match(requirement)
    if match is None:
        raise ValueError(f"cannot read a distribution name from requirement {requirement!r}")
    return normalize_name(match.group(1))


def runtime_requirements(pyproject: Path) -> list[str]:
    """The ``[project.dependencies]`` the layer has to carry: all but what Lambda provides."""
    with pyproject.open("rb") as file:
        dependencies: list[str] = tomllib.load(file)["project"]["dependencies"]
    return [dep for dep in dependencies if requirement_name(dep) not in RUNTIME_PROVIDED]


def python_version(runtime_name: str) -> str:
    """``python3.14`` -> ``3.14``: the version pip resolves wheels for."""
    match = re.fullmatch(r"python(\d+\.\d+)", runtime_name)
    if match is None:
        raise ValueError(f"{runtime_name!r} is not a Lambda Python runtime name")
    return match.group(1)


def handler_package(handler: str) -> str:
    """The package under ``functions/`` that a handler such as
    ``functions.workflow.select.handler`` lives in (here ``workflow``)."""
    parts = handler.split(".")
    if len(parts) < 3 or parts[0] != FUNCTIONS_PACKAGE or not all(parts):
        raise ValueError(
            f"handler {handler!r} is not of the form {FUNCTIONS_PACKAGE}.<package>.<module>.<name>"
        )
    return parts[1]


def pip_install_command(
    requirements: Sequence[str],
    target: Path,
    version: str,
    platforms: Iterable[str] = LAMBDA_PLATFORMS,
) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--target",
        str(target),
        "--implementation",
        "cp",
        "--python-version",
        version,
        "--only-binary=:all:",
        # Bytecode compiled by the host's Python is useless to the runtime's (and /opt is
        # read-only, so the runtime cannot cache its own either).
        "--no-compile",
        "--disable-pip-version-check",
        "--no-input",
        "--quiet",
    ]
    for platform in platforms:
        command += ["--platform", platform]
    return [*command, *requirements]


def prune_distributions(site_dir: Path, names: frozenset[str]) -> list[str]:
    """Uninstall, by their ``RECORD``, the distributions in ``site_dir`` named in ``names``.

    Returns the normalised names removed."""
    root = site_dir.resolve()
    removed: list[str] = []
    for dist_info in sorted(root.glob("*.dist-info")):
        name = normalize_name(dist_info.name.removesuffix(".dist-info").rsplit("-", 1)[0])
        if name not in names:
            continue
        record = dist_info / "RECORD"
        emptied: set[Path] = set()
        if record.is_file():
            with record.open(newline="") as file:
                for row in csv.reader(file):
                    if not row:
                        continue
                    path = (root / row[0]).resolve()
                    # RECORD may list files outside the target (scripts in ../bin); those are
                    # not ours to delete.
                    if path.is_relative_to(root) and path.is_file():
                        path.unlink()
                        emptied.add(path.parent)
        shutil.rmtree(dist_info)
        for directory in sorted(emptied, key=lambda p: len(p.parts), reverse=True):
            _remove_empty_parents(directory, root)
        removed.append(name)
    return removed


def _remove_empty_parents(directory: Path, root: Path) -> None:
    while directory != root and directory.is_relative_to(root):
        pycache = directory / "__pycache__"
        if pycache.is_dir() and not any(pycache.iterdir()):
            pycache.rmdir()
        if not directory.is_dir() or any(directory.iterdir()):
            return
        directory.rmdir()
        directory = directory.parent


def copy_core_package(core_package: Path, output_dir: Path) -> Path:
    """Place the ``merge_assist`` package where Lambda puts layer code on ``sys.path``."""
    target = output_dir / LAYER_SITE_DIR / core_package.name
    shutil.copytree(core_package, target, ignore=_NOT_SHIPPED)
    return target


def copy_function_code(functions_dir: Path, package: str, output_dir: Path) -> Path:
    """Lay out one function's code as ``functions/<package>/`` so that the handler string is
    the same in the cloud as in the tests."""
    source = functions_dir / package
    if not source.is_dir():
        raise FileNotFoundError(f"no function package {package!r} in {functions_dir}")
    target = output_dir / FUNCTIONS_PACKAGE
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(functions_dir / "__init__.py", target / "__init__.py")
    shutil.copytree(source, target / package, ignore=_NOT_SHIPPED)
    return target / package


def build_layer(
    *, pyproject: Path, core_package: Path, runtime_name: str, output_dir: Path
) -> None:
    site_dir = output_dir / LAYER_SITE_DIR
    site_dir.mkdir(parents=True, exist_ok=True)
    command = pip_install_command(
        runtime_requirements(pyproject), site_dir, python_version(runtime_name)
    )
    subprocess.run(command, check=True)  # noqa: S603 - argv built above, no shell involved
    prune_distributions(site_dir, RUNTIME_PROVIDED)
    # Console scripts name the host's interpreter in their shebang and are not on a layer's
    # PATH anyway.
    shutil.rmtree(site_dir / "bin", ignore_errors=True)
    copy_core_package(core_package, output_dir)


@jsii.implements(ILocalBundling)
class CoreLayerBundling:
    """Builds the core layer: the runtime dependencies and ``merge_assist`` under ``python/``."""

    def __init__(self, *, pyproject: Path, core_package: Path, runtime_name: str) -> None:
        self._pyproject = pyproject
        self._core_package = core_package
        self._runtime_name = runtime_name

    # jsii passes BundlingOptions as keyword arguments when the method has keyword-only
    # parameters; the signature mirrors ILocalBundling.try_bundle so mypy can check it.
    def try_bundle(self, output_dir: str, *, image: DockerImage, **_options: object) -> bool:
        build_layer(
            pyproject=self._pyproject,
            core_package=self._core_package,
            runtime_name=self._runtime_name,
            output_dir=Path(output_dir),
        )
        return True


@jsii.implements(ILocalBundling)
class FunctionCodeBundling:
    """Builds one function package's code asset (its dependencies come from the layer)."""

    def __init__(self, *, functions_dir: Path, package: str) -> None:
        self._functions_dir = functions_dir
        self._package = package

    def try_bundle(self, output_dir: str, *, image: DockerImage, **_options: object) -> bool:
        copy_function_code(self._functions_dir, self._package, Path(output_dir))
        return True
