"""The gateway's ASGI app: GraphQL at /graphql over the services' REST APIs, plus health and metrics.

Run it with `uvicorn gateway.app:create_app --factory --port 8000`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from strawberry.fastapi import GraphQLRouter

from gateway.clients.pools import UpstreamPools
from gateway.context import GatewayContext, get_context
from gateway.schema import schema
from services.common.auth import TokenVerifier
from services.common.observability import RequestContextMiddleware, configure_logging
from services.common.problems import install_problem_handlers
from services.common.settings import Settings, get_settings


def create_app(
    settings: Settings | None = None,
    *,
    transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
) -> FastAPI:
    """`transports` replaces the network to the named upstream services (tests pass httpx.MockTransport)."""
    settings = settings or get_settings()
    # At factory time, so that uvicorn's own start-up lines are JSON too.
    configure_logging("gateway", settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pools = UpstreamPools.open(settings, transports)
        app.state.upstreams = pools
        try:
            yield
        finally:
            await pools.aclose()

    # The gateway's API is GraphQL; its introspection, not OpenAPI, describes it.
    app = FastAPI(title="Voronka gateway", lifespan=lifespan, openapi_url=None)
    app.state.token_verifier = TokenVerifier(settings)
    install_problem_handlers(app)
    app.add_middleware(RequestContextMiddleware, service="gateway")

    graphql: GraphQLRouter[GatewayContext, None] = GraphQLRouter(
        schema,
        # The path goes on the route, not as an include prefix: FastAPI puts the un-prefixed route in
        # scope["route"], and the metrics middleware labels requests with that route's path.
        path="/graphql",
        context_getter=get_context,
        graphql_ide="graphiql" if settings.env != "production" else None,
        # Operations run only on POST, where the context getter demands a token; GET serves GraphiQL.
        allow_queries_via_get=False,
        # No subscriptions, and a websocket would bypass the POST-only token check.
        subscription_protocols=(),
    )
    app.include_router(graphql)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> dict[str, str]:
        # Upstream outages degrade single fields rather than the gateway, so they do not make it unready.
        return {"status": "ready"}

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
