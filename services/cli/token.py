"""Development tokens: `voronka token` and the one `voronka up` prints, signed with the configured secret."""

from __future__ import annotations

import uuid

from services.common.auth import Role, issue_token
from services.common.ids import WORKSPACE_NAMESPACE, workspace_id_from
from services.common.settings import Settings

# Users named on the command line map to stable ids in this namespace (derived, so it never collides with
# the workspace namespace).
USER_NAMESPACE = uuid.uuid5(WORKSPACE_NAMESPACE, "voronka:users")
# The user behind the token `voronka up` prints; fixed so that records it creates stay its own across runs.
DEV_USER_ID = uuid.UUID("0193a1f0-7c2e-7000-8000-00000000de00")
DEV_WORKSPACE = "acme"


def user_id_from(value: str) -> uuid.UUID:
    """A user given as a UUID is taken as is; a name (e.g. `maria`) maps to a stable UUIDv5."""
    try:
        return uuid.UUID(value)
    except ValueError:
        return uuid.uuid5(USER_NAMESPACE, value.strip().lower())


def default_user_id(workspace_id: uuid.UUID, role: Role) -> uuid.UUID:
    """One stable user per workspace and role, so repeated `voronka token` calls act as the same person."""
    return uuid.uuid5(USER_NAMESPACE, f"{workspace_id}:{role.value}")


def development_token(
    settings: Settings,
    *,
    workspace: str,
    role: Role,
    user: str | None = None,
    ttl_days: float = 30,
) -> str:
    workspace_id = workspace_id_from(workspace)
    user_id = user_id_from(user) if user else default_user_id(workspace_id, role)
    return issue_token(
        settings,
        workspace_id=workspace_id,
        user_id=user_id,
        role=role,
        ttl_seconds=int(ttl_days * 24 * 3600),
    )
