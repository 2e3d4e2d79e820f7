"""pyproject.toml as an installer reads it: an SPDX licence, a deliberate PostgreSQL driver."""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_license_is_an_spdx_string_and_reaches_the_installed_metadata() -> None:
    # A TOML table here makes every install print "project.license as a TOML table is
    # deprecated"; setuptools reads the SPDX string from 77 on.
    project = pyproject()
    assert project["project"]["license"] == "MIT"
    assert "setuptools>=77" in project["build-system"]["requires"]
    assert importlib.metadata.metadata("mina")["License-Expression"] == "MIT"
