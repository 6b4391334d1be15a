"""The FastAPI application every service is built from: auth, errors, logs, metrics, events, lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI

from services.common import events_api, health
from services.common.db import Database, service_dsn
from services.common.dispatcher import Dispatcher
from services.common.inbox import Handler, Inbox
from services.common.observability import RequestContextMiddleware, configure_logging
from services.common.outbox import notify_channel
from services.common.problems import install_problem_handlers
from services.common.settings import get_settings
from services.common.signing import DeliverySigner
from services.common.workers import WorkerFactory


def create_service_app(
    service: str,
    *,
    title: str,
    routers: Sequence[APIRouter],
    handlers: Mapping[str, Handler] | None = None,
    workers: Sequence[WorkerFactory] = (),
) -> FastAPI:
    settings = get_settings()
    # At factory time, so that uvicorn's own start-up lines are JSON too.
    configure_logging(service, settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(
            service_dsn(settings, service), schema=service,
            min_size=settings.db_pool_min, max_size=settings.db_pool_max,
        )
        await db.connect()
        app.state.db = db
        app.state.inbox = Inbox(db, service, handlers or {})
        dispatcher = Dispatcher(service, db, settings)
        app.state.dispatcher = dispatcher
        if settings.dispatcher_enabled:
            await dispatcher.start()
            # Events this process commits wake its own dispatcher directly, without a NOTIFY (db.wake_after_commit).
            db.wakers[notify_channel(service)] = dispatcher.poke
        # Background queues (webhook processing, imports, ...) run beside the API; with workers disabled a
        # replica only serves requests and others do the work.
        running = [
            factory(db) for factory in workers
            if settings.workers_enabled and getattr(factory, "__name__", "") not in settings.workers_disabled
        ]
        app.state.workers = running
        for worker in running:
            await worker.start()
        try:
            yield
        finally:
            for worker in running:
                await worker.stop()
            await dispatcher.stop()
            await db.close()

    # The API description stays off in production (it maps every endpoint for whoever asks); docs/api.md
    # and a development instance's /docs and /openapi.json describe it.
    public_docs = settings.env != "production"
    app = FastAPI(
        title=title,
        version="1",
        lifespan=lifespan,
        openapi_url="/openapi.json" if public_docs else None,
        docs_url="/docs" if public_docs else None,
        redoc_url="/redoc" if public_docs else None,
    )
    app.state.service = service
    app.state.signer = DeliverySigner(settings.events_secret.get_secret_value(), settings.events_tolerance_seconds)
    app.state.events_max_body_bytes = settings.events_max_body_bytes
    app.state.migration_heads = health.migration_heads(service)
    install_problem_handlers(app)
    app.include_router(health.router)
    app.include_router(events_api.router)
    for router in routers:
        app.include_router(router)
    app.add_middleware(RequestContextMiddleware, service=service)
    return app
