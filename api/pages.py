"""HTML pages: the participant's recording page, the operator dashboard and its login.

The pages are thin shells: templates with data attributes, plain JS in `api/static/js/` that
talks to the JSON API and Socket.IO. Nothing secret is written into a page: the participant's
token is already in their link, and the dashboard's calls ride on the HTTP-only session cookie.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    Response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.sessions import SecureCookieSessionInterface
from werkzeug.wrappers import Response as BaseResponse

from api.auth import operator_token
from api.context import services
from mina import conversations, languages
from mina.db import session_scope
from mina.errors import Forbidden, NotFound, Unauthorized
from mina.settings import Settings

# Templates and static files are the app's own: api/templates, api/static.
bp = Blueprint("pages", __name__)
log = logging.getLogger(__name__)

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self' ws: wss:; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'"
)


class HttpsAwareSessionInterface(SecureCookieSessionInterface):
    """The session cookie is `Secure` whenever the page was served over https."""

    def get_cookie_secure(self, app: Flask) -> bool:
        settings: Settings = app.config["MINA_SETTINGS"]
        return bool(
            app.config.get("SESSION_COOKIE_SECURE")
            or request.is_secure
            or settings.base_url.startswith("https://")
        )


@bp.record_once
def _install_session_interface(state: Any) -> None:
    state.app.session_interface = HttpsAwareSessionInterface()


@bp.after_request
def _headers(resp: Response) -> Response:
    if resp.mimetype == "text/html":
        resp.headers.setdefault("Content-Security-Policy", CSP)
        resp.headers.setdefault("Referrer-Policy", "no-referrer")
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("Cache-Control", "no-store")
    return resp


def _error_page(status: int, title: str, message: str) -> tuple[str, int]:
    return render_template("error.html", title=title, message=message), status


@bp.get("/c/<conversation_id>")
def participant(conversation_id: str) -> tuple[str, int]:
    """The participant's page; `?slice=SECONDS` shortens the recorded files (tests, demos)."""
    token = request.args.get("token", "")
    settings = services().settings
    try:
        with session_scope() as s:
            conv = conversations.authorize(s, conversation_id, token, operator_token())
            title, language = conv.title, conv.language
    except (Unauthorized, Forbidden):
        return _error_page(403, "Link not valid", "This link does not open this conversation.")
    except NotFound:
        return _error_page(404, "Not found", "There is no such conversation.")
    slice_seconds = _slice_seconds(request.args.get("slice"), settings)
    return (
        render_template(
            "participant.html",
            conversation_id=conversation_id,
            title=title or "Untitled conversation",
            language=language,
            language_name=languages.name(language) if language else "",
            slice_seconds=slice_seconds,
            max_chunk_bytes=settings.max_chunk_bytes,
            max_chunk_seconds=settings.max_chunk_seconds,
        ),
        200,
    )


def _slice_seconds(raw: str | None, settings: Settings) -> float:
    try:
        value = float(raw) if raw else settings.chunk_seconds
    except ValueError:
        value = settings.chunk_seconds
    return max(1.0, min(value, settings.max_chunk_seconds))


def _operator_signed_in() -> bool | None:
    """True when signed in by the session cookie or a bearer header (which then signs the
    session in, so the page's own API calls and Socket.IO carry the cookie, never the token);
    None for a wrong bearer token."""
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        token = header[7:].strip()
        if not conversations.check_operator(token, operator_token()):
            return None
        session["operator_token"] = token
        return True
    return conversations.check_operator(session.get("operator_token"), operator_token())


@bp.get("/dashboard")
def dashboard() -> BaseResponse | tuple[str, int]:
    signed_in = _operator_signed_in()
    if signed_in is None:
        return _error_page(403, "Not allowed", "That bearer token is not the operator token.")
    if not signed_in:
        return redirect(url_for("pages.login", next=request.full_path.rstrip("?")))
    return render_template("dashboard.html", csrf=_csrf()), 200


def _csrf() -> str:
    token = session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(16)
        session["csrf"] = token
    return token


def _csrf_ok() -> bool:
    sent = request.form.get("csrf", "")
    return bool(sent) and hmac.compare_digest(sent.encode(), str(session.get("csrf", "")).encode())


def _safe_next(raw: str | None) -> str:
    """Only local paths: `/dashboard`, never `//evil.example` or `https://…`."""
    if not raw or not raw.startswith("/") or raw.startswith("//") or "\\" in raw:
        return url_for("pages.dashboard")
    parts = urlsplit(raw)
    if parts.scheme or parts.netloc:
        return url_for("pages.dashboard")
    return raw


@bp.get("/login")
def login() -> tuple[str, int]:
    if operator_token() is None:
        return _error_page(
            503, "Dashboard disabled", "Set MINA_OPERATOR_TOKEN to enable the operator dashboard."
        )
    return render_template(
        "login.html", next=_safe_next(request.args.get("next")), csrf=_csrf()
    ), 200


@bp.post("/login")
def login_submit() -> BaseResponse | tuple[str, int]:
    token = request.form.get("token", "").strip()
    target = _safe_next(request.form.get("next"))
    error = None
    if not _csrf_ok():
        error = "The form expired; please try again."
    elif not conversations.check_operator(token, operator_token()):
        error = "That is not the operator token."
    if error:
        return render_template("login.html", next=target, csrf=_csrf(), error=error), 401
    session.clear()
    session["operator_token"] = token
    log.info("operator signed in from %s", request.remote_addr)
    return redirect(target)


@bp.post("/logout")
def logout() -> BaseResponse:
    if _csrf_ok():
        session.clear()
    return redirect(url_for("pages.login"))
