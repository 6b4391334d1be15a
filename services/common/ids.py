"""Identifiers: UUIDv7 (time-ordered, so keyset pagination and B-tree inserts stay cheap)."""

from __future__ import annotations

import uuid
from datetime import datetime

from uuid_utils import compat

# Workspace names given on the command line map to stable ids in this namespace.
WORKSPACE_NAMESPACE = uuid.UUID("0193a1f0-7c2e-7000-8000-766f726f6e6b")


def new_id() -> uuid.UUID:
    return compat.uuid7()


def first_id_at(moment: datetime) -> uuid.UUID:
    """The smallest UUIDv7 minted at `moment`'s millisecond: a time range becomes a range of ids, so a query
    on "created between" can walk the primary key instead of a separate index on the creation time."""
    ms = max(0, int(moment.timestamp() * 1000))
    return uuid.UUID(int=(ms << 80) | (0x7 << 76) | (0b10 << 62))


def workspace_id_from(value: str) -> uuid.UUID:
    """A workspace given as a UUID is taken as is; a name (e.g. `acme`) maps to a stable UUIDv5."""
    try:
        return uuid.UUID(value)
    except ValueError:
        return uuid.uuid5(WORKSPACE_NAMESPACE, value.strip().lower())
