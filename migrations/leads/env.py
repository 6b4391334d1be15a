"""Alembic environment of the leads service."""

from services.common.alembic_env import run_migrations
from services.leads.models import metadata

run_migrations(metadata, "leads")
