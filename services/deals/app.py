"""The deals service: pipelines, stages and deals (its domain arrives with the deals issue)."""

from __future__ import annotations

from fastapi import FastAPI

from services.common.service_app import create_service_app


def create_app() -> FastAPI:
    return create_service_app("deals", title="Voronka deals", routers=[])
