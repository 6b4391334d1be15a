"""Who is calling: JWT bearer tokens (HS256 in development, RS256 + JWKS in production).

Every endpoint but health depends on `CurrentPrincipal`; the principal's workspace scopes every query.
"""

from __future__ import annotations

import time
import uuid
from enum import StrEnum
from typing import Annotated, Any

import httpx
import jwt
from fastapi import Depends, Request
from pydantic import BaseModel, ConfigDict

from services.common.problems import Forbidden, Unauthorized
from services.common.settings import Settings, get_settings


class Role(StrEnum):
    admin = "admin"
    head_of_sales = "head_of_sales"
    rep = "rep"
    # Other Voronka services (replay of /events); never issued to people.
    service = "service"


class Principal(BaseModel):
    model_config = ConfigDict(frozen=True)

    workspace_id: uuid.UUID
    user_id: uuid.UUID
    role: Role

    @property
    def sees_whole_workspace(self) -> bool:
        """Heads of sales and admins see every rep's records; a rep sees their own."""
        return self.role in (Role.admin, Role.head_of_sales, Role.service)


# The service principal is not bound to a workspace; this nil id marks that.
ALL_WORKSPACES = uuid.UUID(int=0)


def issue_token(
    settings: Settings,
    *,
    workspace_id: uuid.UUID,
    user_id: uuid.UUID,
    role: Role,
    ttl_seconds: int = 30 * 24 * 3600,
) -> str:
    """An HS256 token signed with the configured secret (development, tests and service-to-service)."""
    now = int(time.time())
    claims = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": str(user_id),
        "workspace_id": str(workspace_id),
        "role": role.value,
        "iat": now,
        "exp": now + ttl_seconds,
    }
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm="HS256")


def service_token(settings: Settings) -> str:
    return issue_token(settings, workspace_id=ALL_WORKSPACES, user_id=ALL_WORKSPACES, role=Role.service)


class JWKSCache:
    """Keys from a JWKS URL, fetched asynchronously and refreshed when an unknown key id shows up."""

    def __init__(self, url: str, min_refresh_seconds: float = 60.0) -> None:
        self._url = url
        self._keys: dict[str, Any] = {}
        self._fetched_at = 0.0
        self._min_refresh = min_refresh_seconds

    async def key_for(self, kid: str) -> Any:
        if kid not in self._keys and time.monotonic() - self._fetched_at > self._min_refresh:
            async with httpx.AsyncClient(timeout=5.0) as client:
                response = await client.get(self._url)
                response.raise_for_status()
            jwks = jwt.PyJWKSet.from_dict(response.json())
            self._keys = {key.key_id: key.key for key in jwks.keys if key.key_id}
            self._fetched_at = time.monotonic()
        if kid not in self._keys:
            raise Unauthorized("The token was signed by an unknown key.")
        return self._keys[kid]


class TokenVerifier:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._jwks = JWKSCache(settings.jwks_url) if settings.jwks_url else None

    async def verify(self, token: str) -> Principal:
        settings = self._settings
        try:
            if settings.jwt_algorithm == "RS256":
                if self._jwks is None:
                    raise Unauthorized("RS256 tokens need VORONKA_JWKS_URL.")
                kid = jwt.get_unverified_header(token).get("kid", "")
                key: Any = await self._jwks.key_for(str(kid))
            else:
                key = settings.jwt_secret.get_secret_value()
            claims = jwt.decode(
                token,
                key,
                algorithms=[settings.jwt_algorithm],
                audience=settings.jwt_audience,
                issuer=settings.jwt_issuer,
                options={"require": ["exp", "sub", "workspace_id", "role"]},
            )
            return Principal(
                workspace_id=uuid.UUID(claims["workspace_id"]),
                user_id=uuid.UUID(claims["sub"]),
                role=Role(claims["role"]),
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("The token has expired.") from exc
        except (jwt.InvalidTokenError, ValueError, KeyError) as exc:
            raise Unauthorized("The token is not valid.") from exc


def get_verifier(request: Request) -> TokenVerifier:
    verifier: TokenVerifier | None = getattr(request.app.state, "token_verifier", None)
    if verifier is None:
        verifier = TokenVerifier(get_settings())
        request.app.state.token_verifier = verifier
    return verifier


def bearer_token(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("Send a bearer token in the Authorization header.")
    return token


async def current_principal(request: Request) -> Principal:
    principal = await get_verifier(request).verify(bearer_token(request))
    request.state.principal = principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require_role(*roles: Role) -> Any:
    async def check(principal: CurrentPrincipal) -> Principal:
        if principal.role not in roles:
            raise Forbidden(f"This needs one of the roles: {', '.join(r.value for r in roles)}.")
        return principal

    return Depends(check)
