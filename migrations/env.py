"""Alembic environment: the URL is Mina's setting, the metadata is mina.schema's."""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context

from mina import db
from mina.schema import metadata
from mina.settings import get_settings

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = metadata


def _url() -> str:
    return config.attributes.get("url") or get_settings().resolved_database_url


def _include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """The SQLite FTS5 tables of the search index are the migration's, not the models'."""
    return not (type_ == "table" and (name or "").startswith("utterance_fts"))


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = db.make_engine(_url())
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
            include_name=_include_name,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
