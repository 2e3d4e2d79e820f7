"""Each state machine has one owner (docs/architecture.md, "State machines"): no module but its
own writes `chunk.status`, `conversation.status`, `processing_status`, `is_finished`,
`is_all_chunks_transcribed` or `post_task.status`, and the tables' defaults are the machines'
initial states."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from mina.models import Chunk, Conversation, PostTask
from mina.pipeline import chunk_state, conversation_state, machine, task_state

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("mina", "api", "workers", "scheduler", "mina_cli")

#: column -> the modules allowed to write it
OWNERS = {
    "Chunk.status": {"mina/pipeline/chunk_state.py"},
    "Conversation.status": {"mina/pipeline/conversation_state.py"},
    "Conversation.processing_status": {"mina/pipeline/conversation_state.py"},
    "Conversation.is_finished": {"mina/pipeline/conversation_state.py"},
    "Conversation.is_all_chunks_transcribed": {"mina/pipeline/conversation_state.py"},
    "PostTask.status": {"mina/pipeline/task_state.py"},
}
TABLES = {"Chunk", "Conversation", "PostTask"}
COLUMNS = {"status", "processing_status", "is_finished", "is_all_chunks_transcribed"}
#: An object's `.status` assignment can't be told apart by type here: these modules own other
#: machines with a `status` column (outgoing webhook deliveries and subscriptions).
OTHER_STATUS_OWNERS = ("mina/outbound/",)
STATE_MODULES = set().union(*OWNERS.values())


def _table_of_values_call(call: ast.Call) -> str | None:
    """`update(Chunk).where(...).values(status=...)` → "Chunk" (insert too)."""
    node: ast.AST = call.func
    while isinstance(node, ast.Attribute | ast.Call):
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name) and f.id in ("update", "insert") and node.args:
                arg = node.args[0]
                if isinstance(arg, ast.Name):
                    return arg.id
            node = f
        else:
            node = node.value
    return None


def writes(source: str) -> list[tuple[int, str]]:
    """(line, "Table.column" or ".column") of every write of a state column in `source`."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                elts = target.elts if isinstance(target, ast.Tuple) else [target]
                for t in elts:
                    if isinstance(t, ast.Attribute) and t.attr in COLUMNS:
                        found.append((node.lineno, f".{t.attr}"))
        elif isinstance(node, ast.Call):
            keys = {k.arg for k in node.keywords if k.arg in COLUMNS}
            if not keys:
                continue
            table = None
            if isinstance(node.func, ast.Attribute) and node.func.attr == "values":
                table = _table_of_values_call(node)
            elif isinstance(node.func, ast.Name) and node.func.id in TABLES:
                table = node.func.id
            if table in TABLES:
                found += [(node.lineno, f"{table}.{k}") for k in sorted(keys)]  # type: ignore[arg-type]
    return found


def _allowed(path: str, what: str) -> bool:
    if what.startswith("."):
        if what == ".status" and path.startswith(OTHER_STATUS_OWNERS):
            return True
        return path in STATE_MODULES and any(c.endswith(what) for c in OWNERS)
    return path in OWNERS.get(what, set())


def test_no_module_but_its_owner_writes_a_state_column() -> None:
    offenders = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = str(path.relative_to(ROOT))
            for line, what in writes(path.read_text()):
                if not _allowed(rel, what):
                    offenders.append(f"{rel}:{line} writes {what}")
    assert offenders == []


@pytest.mark.parametrize(
    "source, expected",
    [
        ("chunk.status = 'queued'", [(1, ".status")]),
        ("a.status, a.lease_until = QUEUED, None", [(1, ".status")]),
        ("conv.is_all_chunks_transcribed = False", [(1, ".is_all_chunks_transcribed")]),
        ("s.execute(update(Chunk).where(x).values(status=QUEUED))", [(1, "Chunk.status")]),
        (
            "update(Conversation).values(processing_status=RUNNING, progress=1)",
            [(1, "Conversation.processing_status")],
        ),
        ("PostTask(conversation_id=c, name=n, status=PENDING)", [(1, "PostTask.status")]),
        ("update(Delivery).values(status=PENDING)", []),
        ("x = chunk.status", []),
    ],
)
def test_the_check_sees_writes(source: str, expected: list[tuple[int, str]]) -> None:
    assert writes(source) == expected


def test_a_write_elsewhere_is_an_offence() -> None:
    assert not _allowed("mina/repair.py", ".status")
    assert not _allowed("mina/repair.py", "Chunk.status")
    assert not _allowed("mina/pipeline/chunk_state.py", "PostTask.status")
    assert _allowed("mina/pipeline/task_state.py", "PostTask.status")
    assert _allowed("mina/outbound/delivery.py", ".status")


def test_defaults_are_the_initial_states() -> None:
    def default(column: object) -> object:
        return column.default.arg  # type: ignore[attr-defined]

    assert default(Chunk.__table__.c.status) == chunk_state.MACHINE.initial
    assert default(Conversation.__table__.c.status) == conversation_state.TRANSCRIPTION.initial
    assert (
        default(Conversation.__table__.c.processing_status) == conversation_state.PROCESSING.initial
    )
    assert default(PostTask.__table__.c.status) == task_state.MACHINE.initial


def test_every_state_is_reachable_and_every_transition_known() -> None:
    for m in machine.machines():
        reached = {m.initial}
        for _ in m.states:
            reached |= {t for tr in m.transitions if set(tr.sources) & reached for t in tr.targets}
        assert reached == set(m.states), m.name
    with pytest.raises(KeyError):
        chunk_state.MACHINE.sources("no such transition")
    with pytest.raises(ValueError):
        chunk_state.MACHINE.check("complete", "queued", "transcribed")


def test_the_diagrams_in_the_docs_are_the_tables() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text()
    begin, end = "<!-- state machines: begin -->", "<!-- state machines: end -->"
    assert begin in text and end in text, "docs/architecture.md lacks the diagram markers"
    shown = text.split(begin, 1)[1].split(end, 1)[0].strip()
    assert shown == machine.diagrams().strip(), (
        "docs/architecture.md is out of step with the state tables: "
        "python -m mina.pipeline.machine --write docs/architecture.md"
    )
