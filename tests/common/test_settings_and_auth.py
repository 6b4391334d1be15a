"""Settings refuse insecure production setups; tokens carry workspace, user and role."""

from __future__ import annotations

import time
import uuid

import jwt
import pytest
from pydantic import ValidationError

from services.common.auth import Role, TokenVerifier, issue_token
from services.common.problems import Unauthorized
from services.common.settings import Settings


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
