"""Settings refuse insecure production setups; tokens carry workspace, user and role."""

from __future__ import annotations

import asyncio
import time
import uuid

import jwt
import pytest
from pydantic import ValidationError

from services.common.auth import Role, TokenVerifier, issue_token, service_token
from services.common.db import service_dsn
from services.common.problems import Unauthorized
from services.common.settings import InsecureSettingsError, Settings


def test_production_refuses_the_development_keys():
    with pytest.raises(ValidationError, match="VORONKA_JWT_SECRET"):
        Settings(env="production")
    with pytest.raises(ValidationError, match="VORONKA_EVENTS_SECRET"):
        Settings(env="production", jwt_secret="a-real-secret-from-the-vault-0123456789")
    with pytest.raises(ValidationError, match="JWKS"):
        Settings(env="production", jwt_algorithm="RS256", events_secret="whsec_c2VjcmV0LXNlY3JldA==")
    ok = Settings(env="production", jwt_secret="a-real-secret-from-the-vault-0123456789",
                  events_secret="whsec_c2VjcmV0LXNlY3JldA==")
    assert ok.env == "production"


async def test_a_token_round_trips_to_a_principal():
    settings = Settings()
    workspace, user = uuid.uuid4(), uuid.uuid4()
    token = issue_token(settings, workspace_id=workspace, user_id=user, role=Role.head_of_sales)
    principal = await TokenVerifier(settings).verify(token)
    assert (principal.workspace_id, principal.user_id, principal.role) == (workspace, user, Role.head_of_sales)
    assert principal.sees_whole_workspace


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda c: {**c, "exp": int(time.time()) - 10}, id="expired"),
        pytest.param(lambda c: {**c, "aud": "someone-else"}, id="wrong-audience"),
        pytest.param(lambda c: {**c, "role": "superuser"}, id="unknown-role"),
        pytest.param(lambda c: {k: v for k, v in c.items() if k != "workspace_id"}, id="no-workspace"),
    ],
)
async def test_bad_tokens_are_unauthorized(mutate):
    settings = Settings()
    claims = {"iss": "voronka", "aud": "voronka", "sub": str(uuid.uuid4()), "workspace_id": str(uuid.uuid4()),
              "role": "rep", "exp": int(time.time()) + 60}
    token = jwt.encode(mutate(claims), settings.jwt_secret.get_secret_value(), algorithm="HS256")
    with pytest.raises(Unauthorized):
        await TokenVerifier(settings).verify(token)


async def test_a_token_signed_with_another_key_is_unauthorized():
    token = issue_token(Settings(jwt_secret="another-secret-entirely-0123456789abcdef"),
                        workspace_id=uuid.uuid4(), user_id=uuid.uuid4(), role=Role.admin)
    with pytest.raises(Unauthorized):
        await TokenVerifier(Settings()).verify(token)


async def test_rs256_tokens_are_verified_against_the_jwks_url():
    from cryptography.hazmat.primitives.asymmetric import rsa
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from services.common.testing import ServedApp, free_port

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True) | {"kid": "k1", "use": "sig"}

    async def jwks(request):
        return JSONResponse({"keys": [jwk]})

    server = await ServedApp(Starlette(routes=[Route("/jwks.json", jwks)]), free_port()).start()
    try:
        settings = Settings(jwt_algorithm="RS256", jwks_url=f"{server.url}/jwks.json")
        workspace = uuid.uuid4()
        claims = {"iss": "voronka", "aud": "voronka", "sub": str(uuid.uuid4()), "workspace_id": str(workspace),
                  "role": "rep", "exp": int(time.time()) + 60}
        verifier = TokenVerifier(settings)
        token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"})
        assert (await verifier.verify(token)).workspace_id == workspace
        unknown_kid = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k2"})
        with pytest.raises(Unauthorized):
            await verifier.verify(unknown_kid)
        hs256 = issue_token(Settings(), workspace_id=workspace, user_id=uuid.uuid4(), role=Role.admin)
        with pytest.raises(Unauthorized):
            await verifier.verify(hs256)
    finally:
        await server.stop()


async def test_a_remembered_token_is_refused_once_it_expires():
    settings = Settings()
    claims = {"iss": "voronka", "aud": "voronka", "sub": str(uuid.uuid4()), "workspace_id": str(uuid.uuid4()),
              "role": "rep", "exp": int(time.time()) + 1}
    token = jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm="HS256")
    verifier = TokenVerifier(settings)
    assert (await verifier.verify(token)).role is Role.rep
    assert (await verifier.verify(token)).role is Role.rep  # now from the verifier's memory
    await asyncio.sleep(claims["exp"] - time.time() + 0.05)
    with pytest.raises(Unauthorized, match="expired"):
        await verifier.verify(token)


PRODUCTION = {"env": "production", "jwt_secret": "a-real-secret-from-the-vault-0123456789",
              "events_secret": "whsec_c2VjcmV0LXNlY3JldA==", "database_url": "postgresql://admin:pw@db:5432/voronka"}


def test_production_refuses_the_development_database_passwords(monkeypatch):
    settings = Settings(**PRODUCTION)
    monkeypatch.delenv("VORONKA_LEADS_DB_PASSWORD", raising=False)
    with pytest.raises(InsecureSettingsError, match="VORONKA_LEADS_DB_PASSWORD"):
        settings.service_database_url("leads")
    monkeypatch.setenv("VORONKA_LEADS_DB_PASSWORD", "voronka_leads_dev")  # set, but to the public value
    with pytest.raises(InsecureSettingsError, match="VORONKA_LEADS_DB_PASSWORD"):
        service_dsn(settings, "leads")
    monkeypatch.setenv("VORONKA_LEADS_DB_PASSWORD", "from-the-vault")
    assert service_dsn(settings, "leads") == "postgresql://voronka_leads:from-the-vault@db:5432/voronka"
    # A service given its own connection URL needs no role password at all.
    monkeypatch.setenv("VORONKA_DEALS_DATABASE_URL", "postgresql://deals:secret@db:5432/voronka")
    assert service_dsn(settings, "deals") == "postgresql://deals:secret@db:5432/voronka"
    # Development keeps working with the defaults.
    monkeypatch.delenv("VORONKA_TASKS_DB_PASSWORD", raising=False)
    development = Settings(database_url=PRODUCTION["database_url"])
    assert "voronka_tasks:voronka_tasks_dev@" in development.service_database_url("tasks")


def test_a_delivery_timeout_that_could_outlive_the_lease_is_refused():
    with pytest.raises(ValidationError, match=r"VORONKA_DISPATCHER_TIMEOUT_SECONDS \(5\) must be less than half"):
        Settings(dispatcher_lease_seconds=10, dispatcher_timeout_seconds=5)
    assert Settings(dispatcher_lease_seconds=10, dispatcher_timeout_seconds=4.9).dispatcher_timeout_seconds == 4.9
    defaults = Settings.model_fields
    assert defaults["dispatcher_timeout_seconds"].default < defaults["dispatcher_lease_seconds"].default / 2


async def test_only_service_tokens_carry_the_service_role():
    settings = Settings()
    principal = await TokenVerifier(settings).verify(service_token(settings))
    assert principal.role is Role.service
    with pytest.raises(ValueError, match="service_token"):
        issue_token(settings, workspace_id=uuid.uuid4(), user_id=uuid.uuid4(), role=Role.service)
    # Whoever holds the people's signing secret still cannot mint the service role...
    claims = {"iss": "voronka", "aud": "voronka", "sub": str(uuid.uuid4()), "workspace_id": str(uuid.uuid4()),
              "role": "service", "exp": int(time.time()) + 60}
    people_signed = jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm="HS256")
    with pytest.raises(Unauthorized, match="service"):
        await TokenVerifier(settings).verify(people_signed)
    # ...nor can a service token of another deployment (another events secret) get in.
    elsewhere = service_token(Settings(events_secret="whsec_c2VjcmV0LXNlY3JldA=="))
    with pytest.raises(Unauthorized):
        await TokenVerifier(settings).verify(elsewhere)
