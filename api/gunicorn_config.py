"""gunicorn settings of the web process: `gunicorn -c python:api.gunicorn_config …` (Procfile)."""

from __future__ import annotations

import gc
from typing import Any

from gunicorn.glogging import Logger

from mina.redact import install, redact


def post_worker_init(worker: Any) -> None:
    """Freeze what start-up allocated (the app, SQLAlchemy's registries, every import) out of
    the cycle collector's reach, so a full collection scans only what requests allocate. Every
    request thread waits while one runs: bench/ingest.py saw 54-89 ms pauses in the web
    process without this. Objects freed by reference counting are freed as before."""
    gc.freeze()


class RedactingLogger(Logger):
    """gunicorn's logger whose access log never writes a credential: the request line, query
    string, referer and every other field go through `mina.redact` (participant links carry
    `?token=…`). The error log gets mina's RedactFilter."""

    def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> dict[str, Any]:
        found = super().atoms(resp, req, environ, request_time)
        return {k: redact(v) if isinstance(v, str) else v for k, v in found.items()}

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        install(self.error_log)


logger_class = RedactingLogger
