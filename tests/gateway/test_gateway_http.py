"""The gateway's HTTP surface: authentication before GraphQL, GraphiQL, health, readiness and metrics."""

from __future__ import annotations

import uuid

import httpx

from gateway.app import create_app
from services.common.auth import Role, issue_token
from services.common.settings import Settings

QUERY = {"query": "{ leadStats { total } }"}


async def test_graphql_without_a_token_is_401_problem_json(anonymous, upstreams):
    response = await anonymous.post("/graphql", json=QUERY)

    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["status"] == 401
    assert upstreams.calls == []


async def test_a_bad_token_never_reaches_the_upstreams(anonymous, upstreams, settings):
    expired = issue_token(
        settings, workspace_id=uuid.uuid4(), user_id=uuid.uuid4(), role=Role.rep, ttl_seconds=-60
    )
    for header in (f"Bearer {expired}", "Bearer not.a.jwt", "Basic dXNlcjpwYXNz"):
        response = await anonymous.post("/graphql", json=QUERY, headers={"Authorization": header})
        assert response.status_code == 401, header
    assert upstreams.calls == []


async def test_graphiql_loads_without_a_token_in_development(anonymous, settings):
    assert settings.env != "production"

    response = await anonymous.get("/graphql", headers={"Accept": "text/html"})

    assert response.status_code == 200
    assert "graphiql" in response.text.lower()


async def test_queries_over_get_are_refused(anonymous):
    response = await anonymous.get("/graphql", params={"query": "{ leadStats { total } }"})

    assert response.status_code >= 400
    assert "leadStats" not in response.text


async def test_health_readiness_and_metrics(anonymous, graphql):
    await graphql("{ leadStats { total } }")

    assert (await anonymous.get("/healthz")).json() == {"status": "ok"}
    assert (await anonymous.get("/readyz")).status_code == 200
    metrics = await anonymous.get("/metrics")
    assert metrics.status_code == 200
    assert 'voronka_http_requests_total{method="POST",route="/graphql",service="gateway"' in metrics.text


async def test_graphiql_is_off_in_production():
    production = Settings(env="production", jwt_secret="s3cret-for-this-test", events_secret="whsec_dGVzdA==")
    app = create_app(production)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as client:
        response = await client.get("/graphql", headers={"Accept": "text/html"})

    assert response.status_code == 404
