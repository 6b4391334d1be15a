"""Liveness, readiness and Prometheus metrics: the endpoints that need no token."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import asyncpg
from alembic.config import Config
from alembic.script import ScriptDirectory
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

router = APIRouter(tags=["operations"])
log = logging.getLogger("voronka.health")

METRICS_DB_TIMEOUT_SECONDS = 2.0

MIGRATIONS_DIR = Path(os.environ.get("VORONKA_MIGRATIONS_DIR", Path(__file__).resolve().parents[2] / "migrations"))


def migration_heads(service: str) -> set[str]:
    """The revisions a service's schema must be at; read once at start-up from migrations/."""
    config = Config(str(MIGRATIONS_DIR / "alembic.ini"), ini_section=service)
    config.set_main_option("script_location", str(MIGRATIONS_DIR / service))
    return set(ScriptDirectory.from_config(config).get_heads())


@router.get("/healthz", summary="The process is alive")
async def healthz() -> JSONResponse:
    return JSONResponse({"status": "ok"})


@router.get("/readyz", summary="The database answers and the schema is at the latest migration")
async def readyz(request: Request) -> JSONResponse:
    service: str = request.app.state.service
    expected: set[str] = request.app.state.migration_heads
    try:
        async with request.app.state.db.pool.acquire(timeout=2) as conn:
            rows = await conn.fetch(f"SELECT version_num FROM {service}.alembic_version")
    except Exception as exc:
        return JSONResponse({"status": "unavailable", "database": str(exc)}, status_code=503)
    current = {r["version_num"] for r in rows}
    if current != expected:
        return JSONResponse(
            {"status": "unavailable", "migrations": {"current": sorted(current), "expected": sorted(expected)}},
            status_code=503,
        )
    return JSONResponse({"status": "ok"})


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(request: Request) -> Response:
    dispatcher = getattr(request.app.state, "dispatcher", None)
    if dispatcher is not None:
        # Metrics matter most while the database is in trouble: the outbox gauges are refreshed when it
        # answers within a moment, and otherwise keep their last values beside everything else.
        try:
            async with asyncio.timeout(METRICS_DB_TIMEOUT_SECONDS):
                async with request.app.state.db.pool.acquire() as conn:
                    await dispatcher.observe(conn)
        except (TimeoutError, OSError, asyncpg.PostgresError):
            log.warning("outbox gauges not refreshed: the database did not answer", exc_info=True)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
