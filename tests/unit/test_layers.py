"""Imports go one way (docs/design.md §7): a stage package imports only the packages before it in
the data flow, so that a package can be read, tested and reused without those after it."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "src" / "facetviz"
ORDER = [
    "core",
    "data",
    "model",
    "activations",
    "directions",
    "facets",
    "priors",
    "synthesis",
    "measure",
    "evaluation",
    "report",
]


def imported_packages(path: Path) -> set[str]:
    """The facetviz packages a module imports, at its top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "facetviz" and len(parts) > 1:
                found.add(parts[1])
    return found


def backward_imports() -> list[str]:
    problems = []
    for rank, package in enumerate(ORDER):
        for path in sorted((PACKAGE / package).rglob("*.py")):
            later = sorted(imported_packages(path) & set(ORDER[rank + 1 :]))
            problems += [f"{path.relative_to(REPO)} imports facetviz.{p}" for p in later]
    return problems


def test_every_stage_package_is_in_the_order() -> None:
    packages = {path.parent.name for path in PACKAGE.glob("*/__init__.py")}
    assert packages == set(ORDER)


def test_packages_import_only_the_packages_before_them() -> None:
    problems = backward_imports()
    assert not problems, "\n".join(problems)
