"""Every table of Mina in one metadata, the one Alembic compares the database with
(migrations/env.py): the core tables (mina.models) and those of the modules built on them
(known speakers and search in mina.memory, outgoing webhooks in mina.outbound). Schema changes
go through Alembic only."""

from __future__ import annotations

from mina.memory import models as _memory_models  # noqa: F401  (search, retention)
from mina.memory import people as _people_models  # noqa: F401  (known speakers)
from mina.models import Base
from mina.outbound import models as _outbound_models  # noqa: F401  (docs/webhooks.md)

metadata = Base.metadata
