"""The tasks service: each rep's calendar, process tasks and checkpoints (its domain arrives with the tasks issue)."""

from __future__ import annotations

from fastapi import FastAPI

from services.common.service_app import create_service_app


def create_app() -> FastAPI:
    return create_service_app("tasks", title="Voronka tasks", routers=[])
