"""POST /webhooks/transcription/{provider}: verify, store raw, enqueue, answer 200.

No provider call and no transcript parsing happen here (mina.webhooks): a bad token is 401 and
stores nothing; a repeat is acknowledged with 200 and ignored; a stored delivery whose message
cannot be queued (broker down) is still acknowledged, because the scheduler finishes pending
deliveries (mina.pipeline.provider_jobs.poll_overdue).
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel, Field
from spectree import Response as Resp

from api.context import services
from api.extensions import spec
from api.schemas import ErrorResponse
from mina import metrics, webhooks
from mina.errors import MinaError, TransientError
from mina.providers.assemblyai import WEBHOOK_HEADER

log = logging.getLogger(__name__)

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")


class TranscriptionWebhook(BaseModel):
    """AssemblyAI's notification; `?chunk=` and the X-Mina-Webhook-Token header authenticate."""

    transcript_id: str
    status: str = Field(examples=["completed", "error"])


class WebhookQuery(BaseModel):
    chunk: str = Field(max_length=64, description="the chunk the provider job was submitted for")


class WebhookHeaders(BaseModel):
    token: str = Field(
        alias=WEBHOOK_HEADER,
        description="HMAC-SHA256 of `{provider}:{chunk}` with MINA_WEBHOOK_SECRET, hex",
    )


class WebhookAck(BaseModel):
    status: str = Field(examples=["accepted", "duplicate"])
    id: str


@bp.post("/transcription/<provider>")
@spec.validate(
    json=TranscriptionWebhook,
    query=WebhookQuery,
    headers=WebhookHeaders,
    skip_validation=True,  # verified and parsed by mina.webhooks, after the token
    resp=Resp(
        HTTP_200=WebhookAck, HTTP_400=ErrorResponse, HTTP_401=ErrorResponse, HTTP_404=ErrorResponse
    ),
)
def transcription(provider: str) -> tuple[Response, int]:
    svc = services()
    try:
        received = webhooks.receive(
            svc.settings,
            provider,
            request.args.get("chunk"),
            request.headers.get(WEBHOOK_HEADER),
            request.get_data(cache=False),
        )
    except MinaError:
        label = provider if provider in webhooks.PROVIDERS else "other"
        metrics.WEBHOOKS.labels(label, "refused").inc()
        raise
    if received.delivery_id is None:
        metrics.WEBHOOKS.labels(provider, "repeat").inc()
        return jsonify({"status": "duplicate", "id": received.external_id}), 200
    try:
        svc.dispatcher.complete_provider_job(received.delivery_id)
    except TransientError as exc:
        log.warning("webhook %s: not queued (%s); the scheduler will", received.delivery_id, exc)
    metrics.WEBHOOKS.labels(provider, "accepted").inc()
    return jsonify({"status": "accepted", "id": received.external_id}), 200
