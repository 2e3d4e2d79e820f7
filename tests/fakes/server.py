"""A small threaded HTTP server for fakes of services we cannot reach, with injected faults.

A fake is a WSGI app run by werkzeug on 127.0.0.1 in a thread of the test process; workers in
other processes reach it over real HTTP. Faults are scripted per route: `fake.script("asr",
"429", "500", "timeout", "400")` makes the next calls of that route answer so, in order, then
normally again; `fake.fail[route] = "500"` fails every call until cleared. The fake records every
call and the most calls it ever had in flight at once (`max_concurrent`).
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

FAULTS = {
    "400": (400, "invalid_request_error", "the request is invalid"),
    "401": (401, "invalid_api_key", "incorrect API key provided"),
    "413": (413, "request_too_large", "the file is too large"),
    "429": (429, "rate_limit_exceeded", "rate limit reached, slow down"),
    "500": (500, "server_error", "the server had an error"),
    "503": (503, "overloaded", "the engine is currently overloaded"),
}


@dataclass
class Call:
    route: str
    method: str
    path: str
    headers: dict[str, str]
    size: int
    body: Any = None
    answered: int = 0
    at: float = field(default_factory=time.monotonic)


class QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class FakeServer:
    #: Seconds a "timeout" fault sleeps before answering (longer than the client's timeout).
    hang_seconds = 3.0

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: list[Call] = []
        self.latency: dict[str, float] = defaultdict(float)
        self.fail: dict[str, str] = {}
        self._script: dict[str, deque[str]] = defaultdict(deque)
        self.in_flight: dict[str, int] = defaultdict(int)
        self.max_concurrent: dict[str, int] = defaultdict(int)
        self._server: BaseWSGIServer | None = None
        self.url = ""

    # --- control ---------------------------------------------------------------------------

    def script(self, route: str, *faults: str) -> None:
        with self.lock:
            self._script[route].extend(faults)

    def calls_to(self, route: str) -> list[Call]:
        with self.lock:
            return [c for c in self.calls if c.route == route]

    def start(self) -> FakeServer:
        self._server = make_server(
            "127.0.0.1", 0, self.wsgi, threaded=True, request_handler=QuietHandler
        )
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # --- serving ---------------------------------------------------------------------------

    def routes(self) -> list[tuple[str, str, str, Callable[[Request, Call], Response]]]:
        """(method, path prefix, route name, handler); the first match wins."""
        raise NotImplementedError

    def wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        for method, prefix, route, handler in self.routes():
            if request.method == method and request.path.startswith(prefix):
                response = self._serve(request, route, handler)
                break
        else:
            response = error(404, "not_found", f"no route {request.method} {request.path}")
        return response(environ, start_response)

    def _serve(
        self, request: Request, route: str, handler: Callable[[Request, Call], Response]
    ) -> Response:
        call = Call(route, request.method, request.path, dict(request.headers), 0)
        with self.lock:
            self.calls.append(call)
            self.in_flight[route] += 1
            self.max_concurrent[route] = max(self.max_concurrent[route], self.in_flight[route])
            fault = self._script[route].popleft() if self._script[route] else self.fail.get(route)
        try:
            call.size = len(request.get_data(cache=True))
            time.sleep(self.latency[route])
            if fault == "timeout":
                time.sleep(self.hang_seconds)
                response = error(504, "timeout", "too late: the client gave up already")
            elif fault is not None:
                response = error(*FAULTS[fault])
                if fault == "429":
                    response.headers["Retry-After"] = "0.2"
            else:
                response = handler(request, call)
        finally:
            with self.lock:
                self.in_flight[route] -= 1
        call.answered = response.status_code
        return response


def error(status: int, code: str, message: str) -> Response:
    body = {"error": {"message": message, "type": code, "code": code}}
    return Response(json.dumps(body), status=status, mimetype="application/json")


def ok(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")
