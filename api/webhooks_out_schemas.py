"""Schemas of the outgoing webhooks' operator API (docs/webhooks.md); in /openapi.json."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from api.schemas import MAX_EVENT_ID


class SubscriptionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        min_length=8, max_length=2000, description="http:// or https:// URL the events go to"
    )
    event_types: list[str] = Field(
        min_length=1,
        max_length=64,
        description='ledger event types (e.g. post_transcription_reveal, chunk_failed), or "*"',
    )
    secret: str | None = Field(
        None,
        min_length=20,
        max_length=200,
        description="whsec_ + base64 of a 16-64 byte key; generated when absent",
    )
    description: str = Field("", max_length=200)
    max_concurrency: int = Field(2, ge=1, le=16, description="POSTs in flight at once")
    max_attempts: int = Field(8, ge=1, le=50, description="then the delivery is a dead letter")
    pause_after_failures: int = Field(
        10, ge=1, le=1000, description="consecutive failures that pause the subscription"
    )
    timeout_seconds: float = Field(5.0, ge=0.1, le=30.0)
    retry_min_seconds: float = Field(1.0, ge=0.01, le=3600.0, description="first backoff")
    retry_max_seconds: float = Field(
        600.0, ge=0.01, le=21_600.0, description="backoff cap (messages live 24 h at most)"
    )


class SubscriptionOut(BaseModel):
    id: str
    url: str
    event_types: list[str]
    description: str
    status: Literal["active", "paused"]
    paused_reason: str | None
    paused_at: datetime | None
    consecutive_failures: int
    max_concurrency: int
    max_attempts: int
    pause_after_failures: int
    timeout_seconds: float
    retry_min_seconds: float
    retry_max_seconds: float
    cursor: int = Field(description="the last ledger id the fan-out looked at")
    created_at: datetime
    deliveries: dict[str, int] = Field(description="deliveries per status")


class SubscriptionCreated(SubscriptionOut):
    secret: str = Field(description="shown once: receivers verify signatures with it")


class SubscriptionList(BaseModel):
    subscriptions: list[SubscriptionOut]


class ReplayQuery(BaseModel):
    after: int = Field(ge=0, le=MAX_EVENT_ID, description="send again the events after this id")


class ReplayOut(BaseModel):
    replayed: int


class DeliveryQuery(BaseModel):
    status: Literal["pending", "sending", "delivered", "dead"] | None = None
    subscription_id: str | None = Field(None, max_length=32)
    limit: int = Field(100, ge=1, le=1000)
    before: int | None = Field(None, ge=1, le=MAX_EVENT_ID, description="page: ids below this")


class DeliveryOut(BaseModel):
    id: int
    subscription_id: str
    event_id: int
    event_type: str
    conversation_id: str | None
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    last_status: int | None
    created_at: datetime
    delivered_at: datetime | None


class DeliveryList(BaseModel):
    deliveries: list[DeliveryOut]


class DeliveryRetried(BaseModel):
    id: int
    status: str
