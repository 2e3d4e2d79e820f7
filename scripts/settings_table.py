"""Print the README's configuration table from mina.settings.Settings (keep them in step)."""

from __future__ import annotations

from mina.settings import Settings


def rows() -> list[str]:
    out = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        env = field.validation_alias if isinstance(field.validation_alias, str) else None
        var = env or f"MINA_{name.upper()}"
        default = field.default
        shown = "unset" if default is None else f"`{default}`"
        if name == "data_dir":
            shown = "`./mina-data`"
        out.append(f"| `{var}` | {shown} | {field.description or ''} |")
    return out


if __name__ == "__main__":
    print("\n".join(rows()))
