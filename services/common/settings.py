"""Configuration shared by every process, read from VORONKA_* environment variables.

Each service adds its own settings class with its own prefix (VORONKA_LEADS_, ...) on top of this one.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Literal
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Known only so that production can refuse it; never use it outside development and tests.
DEVELOPMENT_JWT_SECRET = "voronka-development-jwt-secret-do-not-use-in-production"
# base64 of "voronka-development-events-secret", in the Standard Webhooks whsec_ form.
DEVELOPMENT_EVENTS_SECRET = "whsec_dm9yb25rYS1kZXZlbG9wbWVudC1ldmVudHMtc2VjcmV0"

SERVICES = ("leads", "deals", "tasks", "reporting")
Service = Literal["leads", "deals", "tasks", "reporting"]


class InsecureSettingsError(ValueError):
    """Raised when production is started with a development secret."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VORONKA_", extra="ignore")

    env: Literal["development", "test", "production"] = "development"
    log_level: str = "INFO"

    # The admin URL: migrations use it as is; each service connects as its own role on the same server.
    database_url: str | None = Field(default=None, validation_alias="DATABASE_URL")
    db_pool_min: int = 2
    db_pool_max: int = 20

    jwt_algorithm: Literal["HS256", "RS256"] = "HS256"
    jwt_secret: SecretStr = SecretStr(DEVELOPMENT_JWT_SECRET)
    jwks_url: str | None = None
    jwt_issuer: str = "voronka"
    jwt_audience: str = "voronka"

    # Standard Webhooks secret that signs event deliveries between services (and, through a key derived from
    # it, the services' own tokens for GET /events: see auth.service_token).
    events_secret: SecretStr = SecretStr(DEVELOPMENT_EVENTS_SECRET)
    # A delivery whose webhook-timestamp is further than this from the receiver's clock is refused (replays).
    events_tolerance_seconds: int = Field(default=300, gt=0)
    # POST /events refuses a larger body with 413 before reading it; the dispatcher sends smaller batches.
    events_max_body_bytes: int = Field(default=8 * 1024 * 1024, gt=0)

    leads_url: str = "http://127.0.0.1:8001"
    deals_url: str = "http://127.0.0.1:8002"
    tasks_url: str = "http://127.0.0.1:8003"
    reporting_url: str = "http://127.0.0.1:8004"

    # Background queues (inbound webhooks, imports, distribution, scoring): off on replicas that should only serve
    # requests. Or only some of them off, by class name (VORONKA_WORKERS_DISABLED='["RescoreWorker"]'): e.g. to
    # keep a workspace-wide rescoring off the replicas that take leads in.
    workers_enabled: bool = True
    workers_disabled: frozenset[str] = frozenset()
    # Inbound webhooks: the largest body taken (413 beyond), and how far a signed timestamp may be off.
    inbound_max_body_bytes: int = Field(default=256 * 1024, gt=0)
    inbound_tolerance_seconds: int = Field(default=300, gt=0)
    # CSV imports: the largest file taken (413 beyond).
    import_max_bytes: int = Field(default=64 * 1024 * 1024, gt=0)

    # Outbox dispatcher tuning.
    dispatcher_enabled: bool = True
    dispatcher_poll_seconds: float = 1.0
    dispatcher_linger_seconds: float = 0.005
    dispatcher_batch_size: int = 500
    dispatcher_lease_seconds: float = 10.0
    dispatcher_max_attempts: int = 8
    dispatcher_backoff_base_seconds: float = 0.2
    dispatcher_backoff_max_seconds: float = 30.0
    # The whole POST of one batch; less than half the lease (checked below).
    dispatcher_timeout_seconds: float = 4.0

    @model_validator(mode="after")
    def _refuse_development_secrets_in_production(self) -> Settings:
        if self.env != "production":
            return self
        if self.jwt_algorithm == "HS256" and self.jwt_secret.get_secret_value() == DEVELOPMENT_JWT_SECRET:
            raise InsecureSettingsError("VORONKA_JWT_SECRET must be set in production")
        if self.jwt_algorithm == "RS256" and not self.jwks_url:
            raise InsecureSettingsError("VORONKA_JWKS_URL must be set when VORONKA_JWT_ALGORITHM=RS256")
        if self.events_secret.get_secret_value() == DEVELOPMENT_EVENTS_SECRET:
            raise InsecureSettingsError("VORONKA_EVENTS_SECRET must be set in production")
        return self

    @model_validator(mode="after")
    def _delivery_ends_before_its_lease(self) -> Settings:
        # A courier renews its lease, then delivers. A delivery still running when the lease runs out lets
        # another replica claim the subscriber and send the same batch again; half the lease leaves room for
        # the claim and cursor queries around the POST.
        if not self.dispatcher_timeout_seconds < self.dispatcher_lease_seconds / 2:
            raise ValueError(
                f"VORONKA_DISPATCHER_TIMEOUT_SECONDS ({self.dispatcher_timeout_seconds:g}) must be less than half "
                f"of VORONKA_DISPATCHER_LEASE_SECONDS ({self.dispatcher_lease_seconds:g}), or a slow consumer "
                "could be sent the same batch by two replicas"
            )
        return self

    def service_url(self, service: str) -> str:
        url: str = getattr(self, f"{service}_url")
        return url

    def service_database_url(self, service: str, password: str | None = None) -> str:
        """The URL a service connects with: the admin URL's server and database, the service's own role."""
        if not self.database_url:
            raise RuntimeError("DATABASE_URL is not set (voronka up sets it for every process it starts)")
        return database_url_for_role(
            self.database_url, role_name(service), password or role_password(service, self)
        )


def role_name(service: str) -> str:
    return f"voronka_{service}"


def development_role_password(service: str) -> str:
    return f"{role_name(service)}_dev"


def role_password(service: str, settings: Settings | None = None) -> str:
    """The role's password: VORONKA_<SERVICE>_DB_PASSWORD, or a development default that production refuses.

    Checked here, where a service's (or `voronka migrate`'s) connection is built, rather than when Settings
    load: each process needs only its own role's credentials (the gateway none), and a service given its own
    VORONKA_<SERVICE>_DATABASE_URL (db.service_dsn) never asks for the password at all.
    """
    password = os.environ.get(f"VORONKA_{service.upper()}_DB_PASSWORD") or development_role_password(service)
    if password == development_role_password(service) and (settings or get_settings()).env == "production":
        raise InsecureSettingsError(
            f"VORONKA_{service.upper()}_DB_PASSWORD (or VORONKA_{service.upper()}_DATABASE_URL) must be set "
            "in production: the development password is public"
        )
    return password


def database_url_for_role(admin_url: str, role: str, password: str) -> str:
    parts = urlsplit(admin_url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{quote(role)}:{quote(password)}@{host}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@lru_cache
def get_settings() -> Settings:
    return Settings()
