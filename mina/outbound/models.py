"""The tables of outgoing webhooks (docs/webhooks.md): subscriptions and their deliveries.

A subscription's `cursor` is the last ledger id its fan-out looked at; every ledger event after
it of a subscribed type gets one `webhook_outbox` row per subscription (unique on the pair, so a
fan-out that runs twice adds nothing). Rows are the truth; Dramatiq messages only wake senders.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from mina.db import utcnow
from mina.models import Base, EventId, new_id

# webhook_subscription.status
ACTIVE, PAUSED = "active", "paused"
# webhook_outbox.status
PENDING, SENDING, DELIVERED, DEAD = "pending", "sending", "delivered", "dead"
OPEN = (PENDING, SENDING)


class Subscription(Base):
    __tablename__ = "webhook_subscription"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    url: Mapped[str] = mapped_column(String(2000))
    secret: Mapped[str] = mapped_column(String(200))
    event_types: Mapped[list[Any]] = mapped_column(JSON)
    description: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[str] = mapped_column(String(16), default=ACTIVE)
    paused_reason: Mapped[str | None] = mapped_column(Text)
    paused_at: Mapped[datetime | None] = mapped_column(DateTime)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    max_concurrency: Mapped[int] = mapped_column(Integer, default=2)
    max_attempts: Mapped[int] = mapped_column(Integer, default=8)
    pause_after_failures: Mapped[int] = mapped_column(Integer, default=10)
    timeout_seconds: Mapped[float] = mapped_column(Float, default=5.0)
    retry_min_seconds: Mapped[float] = mapped_column(Float, default=1.0)
    retry_max_seconds: Mapped[float] = mapped_column(Float, default=600.0)
    cursor: Mapped[int] = mapped_column(EventId, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    __table_args__ = (Index("ix_webhook_subscription_status", "status"),)


class Delivery(Base):
    __tablename__ = "webhook_outbox"

    id: Mapped[int] = mapped_column(EventId, primary_key=True, autoincrement=True)
    subscription_id: Mapped[str] = mapped_column(
        ForeignKey("webhook_subscription.id", ondelete="CASCADE")
    )
    event_id: Mapped[int] = mapped_column(EventId, ForeignKey("event.id", ondelete="CASCADE"))
    #: the event's conversation ("" for an event of none): deliveries are in order per stream
    stream: Mapped[str] = mapped_column(String(32), default="")
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_status: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime)

    __table_args__ = (
        UniqueConstraint("subscription_id", "event_id", name="uq_webhook_outbox_sub_event"),
        Index("ix_webhook_outbox_stream", "subscription_id", "stream", "status", "event_id"),
        Index("ix_webhook_outbox_due", "status", "next_attempt_at"),
        Index("ix_webhook_outbox_event", "event_id"),  # the ledger's cascading deletes
    )
