"""A state machine written as data: its states, and its transitions as (name, from, to).

Each machine of the pipeline (mina.pipeline.chunk_state, conversation_state, task_state) holds
one `Machine`. Its transition functions take their conditions from it (`sources`), so the
table is what the code does; `mermaid` draws it for docs/architecture.md, and a test keeps the
drawings in step with the tables (`python -m mina.pipeline.machine --write FILE` writes them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True)
class Transition:
    name: str
    sources: tuple[StrEnum, ...]
    targets: tuple[StrEnum, ...]
    why: str = ""


@dataclass(frozen=True)
class Machine:
    name: str
    column: str
    states: type[StrEnum]
    initial: StrEnum
    transitions: tuple[Transition, ...]
    terminal: tuple[StrEnum, ...] = ()

    def __post_init__(self) -> None:
        names = [t.name for t in self.transitions]
        if len(names) != len(set(names)):
            raise ValueError(f"{self.name}: a transition name is used twice")
        for t in self.transitions:
            for state in (*t.sources, *t.targets):
                if state not in self.states.__members__.values():
                    raise ValueError(f"{self.name}.{t.name}: {state!r} is not a state")

    def transition(self, name: str) -> Transition:
        for t in self.transitions:
            if t.name == name:
                return t
        raise KeyError(f"{self.name} has no transition {name!r}")

    def sources(self, name: str) -> tuple[str, ...]:
        """The states `name` may leave from: the condition of its UPDATE."""
        return tuple(str(s) for s in self.transition(name).sources)

    def allows(self, name: str, source: str, target: str) -> bool:
        t = self.transition(name)
        return source in t.sources and target in t.targets

    def check(self, name: str, source: str, target: str) -> None:
        """For a change made on a loaded row (under its lock): refuse one the table lacks."""
        if not self.allows(name, source, target):
            raise ValueError(f"{self.name}: {name} does not lead from {source} to {target}")

    def mermaid(self) -> str:
        lines = ["stateDiagram-v2", f"    [*] --> {self.initial}"]
        for t in self.transitions:
            for source in t.sources:
                for target in t.targets:
                    lines.append(f"    {source} --> {target}: {t.name}")
        lines += [f"    {s} --> [*]" for s in self.terminal]
        return "\n".join(lines)


def machines() -> Sequence[Machine]:
    """Every machine of the pipeline, in the order docs/architecture.md shows them."""
    from mina.pipeline import chunk_state, conversation_state, task_state

    return (
        chunk_state.MACHINE,
        conversation_state.TRANSCRIPTION,
        conversation_state.PROCESSING,
        task_state.MACHINE,
    )


def diagrams() -> str:
    """The block docs/architecture.md holds between its diagram markers."""
    parts = []
    for m in machines():
        parts.append(f"#### {m.name} (`{m.column}`)\n\n```mermaid\n{m.mermaid()}\n```\n")
        rows = "\n".join(
            f"| `{t.name}` | {', '.join(t.sources) or '(new)'} | {', '.join(t.targets)} | {t.why} |"
            for t in m.transitions
        )
        parts.append(f"| transition | from | to | when |\n|---|---|---|---|\n{rows}\n")
    return "\n".join(parts)


BEGIN, END = "<!-- state machines: begin -->", "<!-- state machines: end -->"


def write_into(path: str) -> None:
    """Replace the block between the markers of `path` with `diagrams()`."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"{head}{BEGIN}\n\n{diagrams().strip()}\n\n{END}{tail}")


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["--write"]:
        write_into(sys.argv[2])
    else:
        print(diagrams())
