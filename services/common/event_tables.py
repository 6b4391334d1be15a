"""The tables behind the event backbone, created in every service's own schema.

outbox         the service's event log: written in the same transaction as the state change
subscriptions  one row per consumer: its cursor into the log and the dispatcher's lease
dead_letters   events a consumer rejected too often, parked for `voronka events redrive`
inbox          ids of the events this service has handled, written with the handler's effects
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB


def add_event_tables(metadata: MetaData) -> None:
    """Adds the backbone tables to a service's MetaData (its schema comes from the MetaData)."""
    Table(
        "outbox",
        metadata,
        Column("workspace_id", Uuid, nullable=False),
        Column("id", Uuid, nullable=False),
        # Allocated at insert, after the aggregate's row lock: orders one aggregate's events correctly.
        Column("seq", BigInteger, Identity(always=True), nullable=False),
        # Allocated by the dispatcher once the row is committed and visible, so the log has no gaps a
        # reader could skip over; consumers and GET /events read by position.
        Column("position", BigInteger, nullable=True),
        Column("type", Text, nullable=False),
        Column("subject", Text, nullable=True),
        Column("occurred_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
        Column("event", JSONB, nullable=False),
        PrimaryKeyConstraint("workspace_id", "id"),
        Index("ix_outbox_unsequenced", "seq", postgresql_where=text("position IS NULL")),
        Index("ux_outbox_position", "position", unique=True, postgresql_where=text("position IS NOT NULL")),
    )
    Table(
        "subscriptions",
        metadata,
        Column("subscriber", Text, nullable=False),
        Column("position", BigInteger, nullable=False, server_default=text("0")),
        Column("lease_owner", Text, nullable=True),
        Column("lease_until", DateTime(timezone=True), nullable=True),
        Column("attempts", Integer, nullable=False, server_default=text("0")),
        Column("retry_at", DateTime(timezone=True), nullable=True),
        Column("last_error", Text, nullable=True),
        Column("updated_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
        PrimaryKeyConstraint("subscriber"),
    )
    Table(
        "dead_letters",
        metadata,
        Column("workspace_id", Uuid, nullable=False),
        Column("event_id", Uuid, nullable=False),
        Column("subscriber", Text, nullable=False),
        Column("position", BigInteger, nullable=False),
        Column("type", Text, nullable=False),
        Column("error", Text, nullable=False),
        Column("attempts", Integer, nullable=False),
        # dead -> redrive (asked for by an operator) -> redriven, or back to dead
        Column("status", Text, nullable=False, server_default=text("'dead'")),
        Column("dead_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
        Column("redriven_at", DateTime(timezone=True), nullable=True),
        PrimaryKeyConstraint("workspace_id", "event_id", "subscriber"),
        Index("ix_dead_letters_status", "subscriber", "status"),
    )
    Table(
        "inbox",
        metadata,
        Column("workspace_id", Uuid, nullable=False),
        Column("event_id", Uuid, nullable=False),
        Column("type", Text, nullable=False),
        Column("source", Text, nullable=False),
        Column("handled_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
        PrimaryKeyConstraint("workspace_id", "event_id"),
    )
