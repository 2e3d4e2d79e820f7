"""The development HTTP server of `mina dev`: Werkzeug's threaded server, started quietly.

`socketio.run()` goes through `run_simple`, which prints a "production deployment" warning and a
banner in ANSI colours whatever the output is; `mina dev` prints its own links instead. Request
lines are not logged: a participant link carries its token in the query string.
"""

from __future__ import annotations

import logging

from flask import Flask
from werkzeug.serving import make_server


def serve(app: Flask, host: str, port: int) -> None:
    """Serve `app` (Socket.IO included, threading mode) until KeyboardInterrupt."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server(host, port, app, threaded=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
