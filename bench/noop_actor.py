"""A no-op Dramatiq actor on Mina's own broker: the baseline of bench/throughput.py.

`dramatiq bench.noop_actor` runs it beside every Mina actor (this module imports them), so the
baseline's messages and the pipeline's go through the same worker process and the same Redis.
"""

from __future__ import annotations

import dramatiq

import workers.actors  # noqa: F401  (the same worker runs Mina's actors)
from workers.broker import broker

QUEUE = "bench_noop"


@dramatiq.actor(broker=broker, queue_name=QUEUE, max_retries=0)
def noop(n: int) -> None:
    return None
