"""Alembic environment of the reporting service."""

from services.common.alembic_env import run_migrations
from services.reporting.models import metadata

run_migrations(metadata, "reporting")
