"""The deals service: pipelines with their stages and playbooks (deals themselves arrive with part 2 of the deals
issue); publishes pipeline.* and playbook.updated events."""

from __future__ import annotations

from fastapi import FastAPI

from services.common.service_app import create_service_app
from services.deals.api import pipelines, playbooks


def create_app() -> FastAPI:
    return create_service_app(
        "deals", title="Voronka deals", routers=[pipelines.router, playbooks.router],
    )
