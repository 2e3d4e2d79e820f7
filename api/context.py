"""The services a request needs, built once per app (mina.services.build_services)."""

from __future__ import annotations

from flask import current_app

from mina.services import Services


def services() -> Services:
    found: Services = current_app.extensions["mina"]
    return found
