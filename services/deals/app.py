"""The deals service: pipelines with their stages and playbooks, and the deals in them (a qualified lead opens
one); publishes deal.*, pipeline.* and playbook.updated events and consumes lead.qualified."""

from __future__ import annotations

from fastapi import FastAPI

from services.common.service_app import create_service_app
from services.deals.api import deals, pipelines, playbooks
from services.deals.consumers import HANDLERS


def create_app() -> FastAPI:
    return create_service_app(
        "deals", title="Voronka deals", routers=[pipelines.router, playbooks.router, deals.router],
        handlers=HANDLERS,
    )
