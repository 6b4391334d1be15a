"""Alembic environment of the deals service."""

from services.common.alembic_env import run_migrations
from services.deals.models import metadata

run_migrations(metadata, "deals")
