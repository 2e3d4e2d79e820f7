"""Running Alembic from any directory: alembic.ini sits at the project root."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

import mina
from mina.errors import ConfigurationError


def alembic_config(url: str) -> Config:
    root = Path(mina.__file__).resolve().parent.parent
    ini = root / "alembic.ini"
    if not ini.exists():
        raise ConfigurationError(f"alembic.ini not found at {ini}: run from a source checkout")
    cfg = Config(str(ini))
    cfg.attributes["url"] = url
    cfg.attributes["configure_logger"] = False
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


def check(url: str) -> None:
    command.check(alembic_config(url))
