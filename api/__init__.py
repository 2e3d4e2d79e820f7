"""The thin HTTP layer: validates, stores, enqueues; never transcribes."""

from __future__ import annotations

import hashlib
import logging

from flask import Flask

from api import errors, inputs
from api.extensions import socketio, spec
from mina import db, events, redact
from mina.dispatch import Dispatcher
from mina.realtime import SocketIOEmitter, build_manager
from mina.services import build_services
from mina.settings import Settings, get_settings

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, dispatcher: Dispatcher | None = None) -> Flask:
    """The web app. `dispatcher`: how work is queued; by default Dramatiq (`_wiring`)."""
    settings = settings or get_settings()
    app = Flask(__name__)
    app.config["MINA_SETTINGS"] = settings
    app.config["MAX_CONTENT_LENGTH"] = settings.max_chunk_bytes + 1024 * 1024
    app.config["SECRET_KEY"] = (
        settings.secret_key
        or hashlib.sha256(
            f"mina:{settings.operator_token or settings.resolved_database_url}".encode()
        ).hexdigest()
    )
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.json.sort_keys = False  # type: ignore[attr-defined]
    redact.install(logging.getLogger("werkzeug"))  # its request log quotes `?token=…`

    db.configure(settings.resolved_database_url, settings)
    app.extensions["mina"] = build_services(settings, dispatcher or _wiring())

    from api import health, participant

    app.register_blueprint(health.bp)
    app.register_blueprint(participant.bp)
    from api import pages

    app.register_blueprint(pages.bp)
    from api import operator as operator_api
    from api import results, sse

    app.register_blueprint(results.bp)
    from api import notes

    app.register_blueprint(notes.bp)
    app.register_blueprint(sse.bp)
    app.register_blueprint(operator_api.bp)
    from api import metrics, uploads, webhooks

    app.register_blueprint(uploads.bp)
    app.register_blueprint(webhooks.bp)
    from api import webhooks_out  # outgoing webhooks (docs/webhooks.md)

    app.register_blueprint(webhooks_out.bp)
    app.register_blueprint(metrics.bp)
    from api import erasure, search

    app.register_blueprint(search.bp)  # meeting memory (docs/memory.md)
    app.register_blueprint(erasure.bp)
    from api import people  # known speakers (docs/memory.md)

    app.register_blueprint(people.bp)
    errors.register(app)
    inputs.register(app)  # no NUL or lone surrogate in any text input
    spec.register(app)
    socketio.init_app(
        app,
        client_manager=build_manager(settings),  # Redis message queue, or in-process
        async_mode="threading",
        cors_allowed_origins=[],
    )
    from api import realtime as socket_handlers

    socket_handlers.register(socketio)
    events.relay.set_emitter(
        SocketIOEmitter(socketio.server),
        dashboard_interval=settings.realtime_dashboard_interval_seconds,
    )
    return app


def _wiring() -> Dispatcher:
    """The one place the web layer reaches into `workers` (the composition root of
    `gunicorn 'api:create_app()'`): the Dramatiq dispatcher, and outgoing webhooks woken after
    this process's commits (`workers.outbound.install` runs on import)."""
    from workers import outbound  # noqa: F401
    from workers.dispatch import DramatiqDispatcher

    return DramatiqDispatcher()
