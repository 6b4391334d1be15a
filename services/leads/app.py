"""The leads service: capture and read leads; publishes lead.* events."""

from __future__ import annotations

from fastapi import FastAPI

from services.common.service_app import create_service_app
from services.leads.api import leads


def create_app() -> FastAPI:
    return create_service_app("leads", title="Voronka leads", routers=[leads.router])
