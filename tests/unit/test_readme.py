"""The README stays true: its two commands exist, CI runs the test one, the table is current."""

from __future__ import annotations

import re
from pathlib import Path

from mina.settings import Settings
from scripts.settings_table import END, START, env_name, table

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_configuration_table_matches_the_settings() -> None:
    current = README.split(START, 1)[1].split(END, 1)[0].strip()
    assert current == table(), "run: python scripts/settings_table.py --write README.md"
    for name in Settings.model_fields:
        assert f"`{env_name(name)}`" in current


def test_the_two_commands_exist_and_ci_runs_the_test_one() -> None:
    commands = re.findall(r"^bash (scripts/\S+\.sh)", README, flags=re.M)
    assert commands[:2] == ["scripts/quickstart.sh", "scripts/test.sh"]
    for script in commands[:2]:
        assert (ROOT / script).exists()
    assert "scripts/test.sh" in (ROOT / ".ci" / "run").read_text()
    assert (ROOT / "samples" / "meeting.ogg").exists()
    assert "samples/meeting.ogg" in (ROOT / "scripts" / "quickstart.sh").read_text()


def test_nothing_is_skipped_as_the_readme_says() -> None:
    tests = ROOT / "tests"
    skipping = re.compile(r"pytest\.skip\(|mark\.skip|importorskip|mark\.xfail")
    for path in tests.rglob("*.py"):
        if path.name == "test_readme.py":
            continue
        assert not skipping.search(path.read_text()), f"{path} skips a test; the README says none"
    marked = [p for p in tests.rglob("test_*.py") if "mark.services_only" in p.read_text()]
    assert len(marked) >= 1 and "`services_only`" in README


def test_browser_screenshots_stay_out_of_the_work_tree() -> None:
    from tests.browser.conftest import SHOTS

    assert not SHOTS.resolve().is_relative_to(ROOT), SHOTS
    script = (ROOT / "scripts" / "screenshots.sh").read_text()
    assert "MINA_TEST_SCREENSHOTS=" in script and "docs/img" in script
    assert "scripts/screenshots.sh" in README
