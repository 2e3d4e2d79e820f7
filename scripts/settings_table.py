"""The README's configuration table, generated from mina.settings.Settings.

`python scripts/settings_table.py` prints it; `--write README.md` replaces the table between the
`settings-table` markers. tests/unit/test_readme.py fails when the README is out of step.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mina.settings import Settings

START, END = "<!-- settings-table:start -->", "<!-- settings-table:end -->"


def env_name(name: str) -> str:
    alias = Settings.model_fields[name].validation_alias
    return alias if isinstance(alias, str) else f"MINA_{name.upper()}"


def table() -> str:
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = field.default
        shown = "unset" if default is None or default == "" else f"`{default}`"
        if name == "data_dir":
            shown = "`./mina-data`"
        rows.append(f"| `{env_name(name)}` | {shown} | {field.description or ''} |")
    return "\n".join(rows)


def replace_table(text: str) -> str:
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    return f"{head}{START}\n{table()}\n{END}{tail}"


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--write":
        path = Path(sys.argv[2])
        path.write_text(replace_table(path.read_text()))
    else:
        print(table())
