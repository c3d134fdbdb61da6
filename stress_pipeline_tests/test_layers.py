"""The layering rules, read from the source: the core imports no Dagster and reads no environment,
no module uses Dagster's private API, and no file is over 600 lines."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "stress_pipeline"
# The edges that may read the environment: the CLI, the Dagster layer, and the one reader in settings.
# services/launch.py copies the environment for the embedded servers' processes (with a fixed locale):
# it hands the environment on and reads no configuration from it.
ENVIRONMENT_READERS = {"cli.py", "settings.py", "services/launch.py"}
MAX_LINES = 600


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _is_core(path: Path) -> bool:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0] != "defs" and relative.as_posix() not in {"definitions.py", "cli.py"}


def _imports(tree: ast.AST) -> list[tuple[str, int]]:
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append((node.module, node.lineno))
    return names


def _environment_reads(tree: ast.AST) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in {"environ", "getenv", "environb"}:
            if isinstance(node.value, ast.Name) and node.value.id == "os":
                lines.append(node.lineno)
        elif _names_settings_or_environ(node):
            lines.append(node.lineno)
    return lines


def _names_settings_or_environ(node: ast.AST) -> bool:
    if isinstance(node, ast.Name):
        return node.id == "get_settings"
    if isinstance(node, ast.ImportFrom):
        return any(alias.name in {"environ", "getenv"} for alias in node.names)
    return False


def test_the_core_never_imports_dagster() -> None:
    offenders = [
        f"{path.relative_to(PACKAGE)}:{line} imports {name}"
        for path in _modules() if _is_core(path)
        for name, line in _imports(ast.parse(path.read_text()))
        if name == "dagster" or name.startswith("dagster.") or name.startswith("dagster_")
    ]  # fmt: skip
    assert offenders == []


def test_the_core_never_reads_the_environment() -> None:
    offenders = []
    for path in _modules():
        relative = path.relative_to(PACKAGE)
        if not _is_core(path) or relative.as_posix() in ENVIRONMENT_READERS:
            continue
        tree = ast.parse(path.read_text())
        offenders += [f"{relative}:{line}" for line in _environment_reads(tree)]
    assert offenders == []


def test_no_private_dagster_api() -> None:
    offenders = [
        f"{path.relative_to(PACKAGE)}:{line} imports {name}"
        for path in _modules()
        for name, line in _imports(ast.parse(path.read_text()))
        if name.startswith("dagster._")
    ]
    assert offenders == []


def test_no_file_over_600_lines() -> None:
    long_files = {
        str(path.relative_to(PACKAGE)): count
        for path in _modules()
        if (count := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long_files == {}


def test_the_checker_finds_what_it_looks_for() -> None:
    tree = ast.parse("import os\nimport dagster as dg\nx = os.environ.get('A')\nfrom os import getenv\n")
    assert sorted(_environment_reads(tree)) == [3, 4]
    assert ("dagster", 2) in _imports(tree)
