"""GET /metrics (Prometheus), and the latency of the requests that must stay fast.

Uploads (direct and presigned) and provider webhooks are timed from the first byte Flask sees
to the response; other requests are not, to keep label sets small.
"""

from __future__ import annotations

import time

from flask import Blueprint, Response, g, request

from api.context import services
from mina import metrics

bp = Blueprint("metrics", __name__)

TIMED = {
    "uploads.upload_chunk": "upload",
    "uploads.presign_chunk": "presign",
    "uploads.confirm_chunk": "confirm",
    "webhooks.transcription": "webhook",
}


@bp.before_app_request
def _start_clock() -> None:
    if request.endpoint in TIMED:
        g.mina_started = time.perf_counter()


@bp.after_app_request
def _observe(response: Response) -> Response:
    started = g.pop("mina_started", None)
    if started is not None and request.endpoint in TIMED:
        metrics.REQUEST_SECONDS.labels(TIMED[request.endpoint], str(response.status_code)).observe(
            time.perf_counter() - started
        )
    return response


@bp.get("/metrics")
def scrape() -> Response:
    body, content_type = metrics.render(services().settings)
    return Response(body, content_type=content_type)
