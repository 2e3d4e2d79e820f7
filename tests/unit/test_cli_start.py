"""`mina` starts light: importing the command group pulls in no command's heavy modules, so
`mina process` begins loading its model and cutting its files first (mina_cli/main.py)."""

from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

from mina_cli.main import main


def test_the_command_group_imports_no_database_or_search_modules() -> None:
    code = (
        "import sys, mina_cli.main; "
        "print(sorted(m for m in ('mina_cli.search', 'mina.memory.index', 'sqlalchemy', "
        "'numpy', 'mina.pipeline.seams') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


def test_search_is_still_a_command() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "search" in result.output
    result = CliRunner().invoke(main, ["search", "--help"])
    assert result.exit_code == 0, result.output
    assert "--speaker" in result.output
