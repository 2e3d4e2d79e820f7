"""Every .npz read of the process goes through `mina.insights.npz.opened`, one at a time
(CPython 3.11's AST conversion is not thread-safe, and NumPy parses headers with it)."""

from __future__ import annotations

import ast
import threading
from pathlib import Path

import numpy as np

from mina.insights import npz

ROOT = Path(__file__).resolve().parents[2]


def _np_load_calls(path: Path) -> list[int]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "load"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id in ("np", "numpy")
    ]


def test_no_np_load_outside_the_locked_reader() -> None:
    found = {
        str(p.relative_to(ROOT)): _np_load_calls(p)
        for layer in ("mina", "api", "workers", "scheduler", "mina_cli")
        for p in (ROOT / layer).rglob("*.py")
        if p != ROOT / "mina" / "insights" / "npz.py" and _np_load_calls(p)
    }
    assert found == {}


def test_a_second_reader_waits_for_the_first(tmp_path: Path) -> None:
    path = tmp_path / "a.npz"
    np.savez(path, x=np.arange(3))
    inside = threading.Event()
    release = threading.Event()
    order: list[str] = []

    def first() -> None:
        with npz.opened(path) as data:
            order.append(f"first {data['x'].sum()}")
            inside.set()
            release.wait(10)
            order.append("first done")

    def second() -> None:
        with npz.opened(path) as data:
            order.append(f"second {data['x'].sum()}")

    a = threading.Thread(target=first)
    a.start()
    assert inside.wait(10)
    b = threading.Thread(target=second)
    b.start()
    b.join(0.3)
    assert b.is_alive()  # waiting for the lock the first reader holds
    release.set()
    a.join(10)
    b.join(10)
    assert order == ["first 3", "first done", "second 3"]
