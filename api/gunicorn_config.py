"""gunicorn settings of the web process: `gunicorn -c python:api.gunicorn_config …` (Procfile)."""

from __future__ import annotations

import gc
from typing import Any


def post_worker_init(worker: Any) -> None:
    """Freeze what start-up allocated (the app, SQLAlchemy's registries, every import) out of
    the cycle collector's reach, so a full collection scans only what requests allocate. Every
    request thread waits while one runs: bench/ingest.py saw 54-89 ms pauses in the web
    process without this. Objects freed by reference counting are freed as before."""
    gc.freeze()
