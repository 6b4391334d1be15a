"""Alembic environment of the tasks service."""

from services.common.alembic_env import run_migrations
from services.tasks.models import metadata

run_migrations(metadata, "tasks")
