"""`mina` imports none of the layers built on it (api, workers, scheduler, mina_cli)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {"api", "workers", "scheduler", "mina_cli"}


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_mina_never_imports_the_outer_layers() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_roots(path) & FORBIDDEN)
        for path in (ROOT / "mina").rglob("*.py")
        if imported_roots(path) & FORBIDDEN
    }
    assert offenders == {}


def test_the_check_sees_imports() -> None:
    sample = ROOT / "workers" / "actors.py"
    assert "mina" in imported_roots(sample)


#: The only functions of `api` and `scheduler` that may import `workers`: each process's
#: composition root, where the Dramatiq dispatcher is chosen (docs/architecture.md).
WIRING = {("api/__init__.py", "_wiring"), ("scheduler/service.py", "_wiring")}


def worker_imports(path: Path) -> list[tuple[int, str | None]]:
    """(line, enclosing function or None) of every import of `workers` in `path`."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[int, str | None]] = []

    def visit(node: ast.AST, function: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                visit(child, child.name)
                continue
            roots: set[str] = set()
            if isinstance(child, ast.Import):
                roots = {alias.name.split(".")[0] for alias in child.names}
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                roots = {child.module.split(".")[0]}
            if "workers" in roots:
                found.append((child.lineno, function))
            visit(child, function)

    visit(tree, None)
    return found


def test_api_and_scheduler_reach_workers_only_through_their_wiring() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{line} ({function or 'module level'})"
        for package in ("api", "scheduler")
        for path in sorted((ROOT / package).rglob("*.py"))
        for line, function in worker_imports(path)
        if (str(path.relative_to(ROOT)), function) not in WIRING
    ]
    assert offenders == []


def test_the_wiring_check_sees_imports() -> None:
    found = worker_imports(ROOT / "api" / "__init__.py")
    assert found and all(function == "_wiring" for _, function in found)
