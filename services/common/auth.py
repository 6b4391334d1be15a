"""Who is calling: JWT bearer tokens (HS256 in development, RS256 + JWKS in production).

Every endpoint but health depends on `CurrentPrincipal`; the principal's workspace scopes every query.
People's tokens come from the configured issuer; the `service` role comes only in Voronka's own service tokens.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
import uuid
from enum import StrEnum
from typing import Annotated, Any

import httpx
import jwt
from fastapi import Depends, Request
from pydantic import BaseModel, ConfigDict

from services.common.problems import Forbidden, Problem, Unauthorized
from services.common.settings import Settings, get_settings

log = logging.getLogger("voronka.auth")


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
# The `kid` of service tokens: the verifier checks them with the services' key, whatever the JWT mode.
SERVICE_KEY_ID = "voronka-service"


class IdentityProviderUnavailable(Problem):
    status, code, title = 503, "identity-provider-unavailable", "Identity provider unreachable"


def issue_token(
    settings: Settings,
    *,
    workspace_id: uuid.UUID,
    user_id: uuid.UUID,
    role: Role,
    ttl_seconds: int = 30 * 24 * 3600,
) -> str:
    """An HS256 token for a person, signed with VORONKA_JWT_SECRET (development and tests)."""
    if role is Role.service:
        raise ValueError("the service role is only issued by service_token()")
    claims = _claims(settings, user_id, workspace_id, role, ttl_seconds)
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm="HS256")


def _claims(
    settings: Settings, user_id: uuid.UUID, workspace_id: uuid.UUID, role: Role, ttl_seconds: int
) -> dict[str, str | int]:
    now = int(time.time())
    return {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": str(user_id),
        "workspace_id": str(workspace_id),
        "role": role.value,
        "iat": now,
        "exp": now + ttl_seconds,
    }


def service_key(settings: Settings) -> bytes:
    """The key of service tokens, derived from VORONKA_EVENTS_SECRET.

    Only the services hold that secret (an identity provider never does), so a token the identity provider
    signed can never carry the service role; the derivation keeps token and delivery signatures apart.
    """
    secret = settings.events_secret.get_secret_value().encode()
    return hmac.new(secret, b"voronka service tokens", hashlib.sha256).digest()


def service_token(settings: Settings, ttl_seconds: int = 3600) -> str:
    """A token another Voronka service sends to GET /events (every workspace's log): HS256 with
    `service_key` in either JWT mode, so replay works with RS256 people's tokens too."""
    claims = _claims(settings, ALL_WORKSPACES, ALL_WORKSPACES, Role.service, ttl_seconds)
    return jwt.encode(claims, service_key(settings), algorithm="HS256", headers={"kid": SERVICE_KEY_ID})


class JWKSCache:
    """Keys from a JWKS URL, fetched asynchronously and refreshed when an unknown key id shows up."""

    # After a failed fetch, requests that need the identity provider are answered 503 at once for this long
    # rather than each waiting on it again.
    RETRY_AFTER_SECONDS = 5

    def __init__(self, url: str, min_refresh_seconds: float = 60.0) -> None:
        self._url = url
        self._keys: dict[str, Any] = {}
        self._fetched_at = 0.0
        self._min_refresh = min_refresh_seconds
        self._unreachable_until = 0.0

    async def key_for(self, kid: str) -> Any:
        if kid not in self._keys and time.monotonic() - self._fetched_at > self._min_refresh:
            await self._fetch()
        if kid not in self._keys:
            raise Unauthorized("The token was signed by an unknown key.")
        return self._keys[kid]

    def _unavailable(self) -> IdentityProviderUnavailable:
        # 503 with Retry-After, not 401: the caller's token may well be fine, we just cannot check it now.
        # A 401 would tell clients (and the gateway) to throw the token away and sign in again; a 503 says
        # "our side, temporary, try again shortly".
        return IdentityProviderUnavailable(
            "The identity provider's signing keys cannot be fetched right now; try again shortly.",
            headers={"Retry-After": str(self.RETRY_AFTER_SECONDS)},
        )

    async def _fetch(self) -> None:
        if time.monotonic() < self._unreachable_until:
            raise self._unavailable()
        try:
            async with httpx.AsyncClient(timeout=5.0) as client:
                response = await client.get(self._url)
                response.raise_for_status()
            jwks = jwt.PyJWKSet.from_dict(response.json())
        except (httpx.HTTPError, ValueError, jwt.PyJWTError) as exc:
            self._unreachable_until = time.monotonic() + self.RETRY_AFTER_SECONDS
            log.warning("identity provider unreachable",
                        extra={"jwks_url": self._url, "error": f"{type(exc).__name__}: {exc}"})
            raise self._unavailable() from exc
        self._keys = {key.key_id: key.key for key in jwks.keys if key.key_id}
        self._fetched_at = time.monotonic()


class TokenVerifier:
    # Clients send the same token on every request; checking its signature each time was ~14% of a lead
    # write's CPU. A verified token is remembered until it expires (bounded, cleared when full).
    CACHE_SIZE = 10_000

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._jwks = JWKSCache(settings.jwks_url) if settings.jwks_url else None
        self._service_key = service_key(settings)
        self._verified: dict[str, tuple[Principal, float]] = {}

    async def verify(self, token: str) -> Principal:
        remembered = self._verified.get(token)
        if remembered is not None and remembered[1] > time.time():
            return remembered[0]
        principal, expires = await self._decode(token)
        if len(self._verified) >= self.CACHE_SIZE:
            self._verified.clear()
        self._verified[token] = (principal, expires)
        return principal

    async def _decode(self, token: str) -> tuple[Principal, float]:
        settings = self._settings
        try:
            kid = jwt.get_unverified_header(token).get("kid", "")
            key: Any
            if kid == SERVICE_KEY_ID:
                key, algorithm = self._service_key, "HS256"
            elif settings.jwt_algorithm == "RS256":
                if self._jwks is None:
                    raise Unauthorized("RS256 tokens need VORONKA_JWKS_URL.")
                key, algorithm = await self._jwks.key_for(str(kid)), "RS256"
            else:
                key, algorithm = settings.jwt_secret.get_secret_value(), "HS256"
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=settings.jwt_audience,
                issuer=settings.jwt_issuer,
                options={"require": ["exp", "sub", "workspace_id", "role"]},
            )
            principal = Principal(
                workspace_id=uuid.UUID(claims["workspace_id"]),
                user_id=uuid.UUID(claims["sub"]),
                role=Role(claims["role"]),
            )
            if (principal.role is Role.service) != (key is self._service_key):
                # People's issuers (the identity provider, VORONKA_JWT_SECRET) never grant the service role,
                # which reads every workspace; a service token carries nothing else.
                raise Unauthorized("The service role comes only in a Voronka service token.")
            return principal, float(claims["exp"])
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
