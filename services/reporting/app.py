"""The reporting service: read models built from every service's events, and the numbers on them."""

from __future__ import annotations

from fastapi import FastAPI

from services.common.service_app import create_service_app
from services.reporting.api import stats
from services.reporting.consumers import HANDLERS


def create_app() -> FastAPI:
    return create_service_app("reporting", title="Voronka reporting", routers=[stats.router], handlers=HANDLERS)
