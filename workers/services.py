"""What every actor of this process shares: settings, storage, dispatcher, providers.

The first call also gives this process's event relay an emitter (`mina.realtime.install`): the
Socket.IO Redis message queue, so events committed by actors reach the web processes' clients.
In the embedded mode the web app in the same process has set its own emitter already.
"""

from __future__ import annotations

import functools

from mina import realtime
from mina.services import Services, build_services
from mina.settings import get_settings
from workers.dispatch import DramatiqDispatcher


@functools.lru_cache(maxsize=1)
def services() -> Services:
    settings = get_settings()
    realtime.install(settings)
    return build_services(settings, DramatiqDispatcher())
