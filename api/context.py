"""The services a request needs, built once per app."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from mina.dispatch import Dispatcher
from mina.settings import Settings
from mina.storage import Storage


@dataclass
class AppServices:
    settings: Settings
    storage: Storage
    dispatcher: Dispatcher


def services() -> AppServices:
    found: AppServices = current_app.extensions["mina"]
    return found
