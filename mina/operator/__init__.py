"""What operators see and do (docs/operator-api.md): list and inspect conversations, stats,
retry what failed, force a finish. Retries and finishes go through the same services as the
participant API and the scheduler."""

from mina.operator.listing import ListFilter, detail, list_conversations
from mina.operator.retry import retry
from mina.operator.stats import percentile, stats

__all__ = ["ListFilter", "detail", "list_conversations", "percentile", "retry", "stats"]
