"""The leads service: capture (API, webhooks, imports), dedupe, lifecycle; publishes lead.* events."""

from __future__ import annotations

from fastapi import FastAPI

from services.common.service_app import create_service_app
from services.leads.api import imports, inbound, lead_settings, leads, sources
from services.leads.import_worker import ImportWorker
from services.leads.inbound_worker import InboundWorker


def create_app() -> FastAPI:
    return create_service_app(
        "leads",
        title="Voronka leads",
        routers=[leads.router, sources.router, inbound.router, imports.router, lead_settings.router],
        workers=[InboundWorker, ImportWorker],
    )
