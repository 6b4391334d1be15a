"""Sources and what they receive: the configured inbound endpoints, their credentials, and the raw requests.

A source is workspace configuration (no owner), so its rows are scoped by workspace alone; the API lets only
admins and heads of sales near them. An inbound request names only its source id (the URL carries no
workspace), so `source_for_inbound` is the one lookup by id alone; everything after it uses the source's
workspace. Secrets are Standard Webhooks signing secrets, kept in clear because verifying an HMAC needs them;
tokens (for senders that cannot sign, such as plain HTML forms) are kept only as their SHA-256.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from standardwebhooks.webhooks import Webhook, hmac_data

from services.common.auth import Principal
from services.common.db import Connection
from services.common.ids import new_id
from services.common.problems import Unauthorized
from services.common.workers import notify

SECRET_PREFIX = "whsec_"
SOURCE_COLUMNS = (
    "workspace_id, id, name, channel, mapping, active, created_by, created_at, updated_at, version"
)
REQUEST_COLUMNS = (
    "workspace_id, id, source_id, message_id, content_type, body, headers, status, errors, attempts, lead_id, "
    "outcome, received_at, processed_at"
)
# The request headers an inbound request keeps (what helps tell where a payload came from); never the ones
# that carry credentials (Authorization, X-Voronka-Token) or cookies.
KEPT_HEADERS = (
    "user-agent", "referer", "origin", "x-forwarded-for", "x-real-ip", "webhook-id", "webhook-timestamp",
    "idempotency-key",
)


# ------------------------------------------------------------------------------------------------ credentials


@dataclass(frozen=True)
class Credentials:
    """A source's secrets in clear: returned once, when the source is created or its secret rotated."""

    secret: str
    token: str

    @property
    def token_hash(self) -> str:
        return hash_token(self.token)


def new_credentials() -> Credentials:
    """A Standard Webhooks secret (whsec_ + base64 of 24 random bytes) and a bearer token (256 bits)."""
    secret = SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()
    return Credentials(secret=secret, token=secrets.token_urlsafe(32))


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(token_hash: str, token: str) -> bool:
    # The hashes are compared in constant time, so the comparison tells nothing of how much of a guess matched.
    return hmac.compare_digest(token_hash.encode(), hash_token(token).encode())


class InboundUnauthorized(Unauthorized):
    """The sender did not prove it speaks for the source (its WWW-Authenticate: Bearer fits token mode)."""

    code = "inbound-unauthorized"


# The same answer for an unknown source, an inactive one and credentials that do not match: the URL alone
# does not tell a stranger whether the source exists.
NOT_ACCEPTED = "The request is not signed with this source's secret, or does not carry its token."


def check_timestamp(stamp: str, tolerance_seconds: int, now: float | None = None) -> int:
    """The webhook-timestamp as Unix seconds; InboundUnauthorized when malformed or outside ±tolerance."""
    if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12):
        raise InboundUnauthorized("webhook-timestamp must be a Unix time in whole seconds.")
    sent_at = int(stamp)
    skew = (time.time() if now is None else now) - sent_at
    if abs(skew) > tolerance_seconds:
        when = "old" if skew > 0 else "ahead of our clock"
        raise InboundUnauthorized(
            f"The signature's timestamp is {abs(skew):.0f} s {when} (tolerance {tolerance_seconds} s): "
            "a replay, or the sender's clock is off. Sign each delivery when you send it."
        )
    return sent_at


def signature_matches(secret: str, message_id: str, sent_at: int, body: bytes, signatures: str) -> bool:
    """Standard Webhooks: one of the space-separated `v1,<base64>` signatures is HMAC-SHA256 of
    `{id}.{timestamp}.{body}` with the secret (several are allowed while a sender rotates secrets)."""
    webhook = Webhook(secret)
    try:
        expected = webhook.sign(message_id, datetime.fromtimestamp(sent_at, UTC), body.decode()).encode()
    except UnicodeDecodeError:
        # The library signs text; a body that is not UTF-8 is signed as the bytes it is, like the spec says.
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX) + "==")
        expected = b"v1," + base64.b64encode(hmac_data(key, f"{message_id}.{sent_at}.".encode() + body))
    return any(hmac.compare_digest(candidate.encode(), expected) for candidate in signatures.split())


# ------------------------------------------------------------------------------------------------ sources


class SourceRepository:
    """A workspace's sources. Sources have no owner: every read and write is scoped by workspace alone."""

    def __init__(self, conn: Connection, principal: Principal) -> None:
        self.conn = conn
        self.workspace_id = principal.workspace_id
        self.user_id = principal.user_id

    async def add(
        self, name: str, channel: str, mapping: Mapping[str, Any], active: bool, credentials: Credentials
    ) -> asyncpg.Record | None:
        """The new source, or None when the workspace already has a source of that name."""
        row: asyncpg.Record | None = await self.conn.fetchrow(
            f"""
            INSERT INTO leads.sources (workspace_id, id, name, channel, mapping, secret, token_hash, active, created_by)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
            ON CONFLICT (workspace_id, name) DO NOTHING
            RETURNING {SOURCE_COLUMNS}
            """,
            self.workspace_id, new_id(), name, channel, dict(mapping), credentials.secret, credentials.token_hash,
            active, self.user_id,
        )
        return row

    async def get(self, source_id: uuid.UUID, *, for_update: bool = False) -> asyncpg.Record | None:
        lock = " FOR UPDATE" if for_update else ""
        row: asyncpg.Record | None = await self.conn.fetchrow(
            f"SELECT {SOURCE_COLUMNS} FROM leads.sources WHERE workspace_id = $1 AND id = $2{lock}",
            self.workspace_id, source_id,
        )
        return row

    async def page(self, limit: int, after: uuid.UUID | None) -> list[asyncpg.Record]:
        """Oldest first (ids are UUIDv7), keyset-paginated on the primary key."""
        rows: list[asyncpg.Record] = await self.conn.fetch(
            f"""
            SELECT {SOURCE_COLUMNS} FROM leads.sources
            WHERE workspace_id = $1 AND ($2::uuid IS NULL OR id > $2)
            ORDER BY id LIMIT $3
            """,
            self.workspace_id, after, limit,
        )
        return rows

    async def update(self, source_id: uuid.UUID, changes: Mapping[str, Any]) -> asyncpg.Record:
        """Applies `changes` (name, channel, mapping, active) to a source the caller has locked.

        Raises asyncpg.UniqueViolationError when the new name is taken in the workspace."""
        names = [name for name in ("name", "channel", "mapping", "active") if name in changes]
        assignments = ", ".join(f"{name} = ${i}" for i, name in enumerate(names, start=3))
        row: asyncpg.Record | None = await self.conn.fetchrow(
            f"""
            UPDATE leads.sources SET {assignments}{", " if names else ""}updated_at = now(), version = version + 1
            WHERE workspace_id = $1 AND id = $2
            RETURNING {SOURCE_COLUMNS}
            """,
            self.workspace_id, source_id, *(changes[name] for name in names),
        )
        assert row is not None  # the caller holds the row lock
        return row

    async def rotate(self, source_id: uuid.UUID, credentials: Credentials) -> asyncpg.Record | None:
        """Replaces the secret and token at once: the old ones stop working when this commits."""
        row: asyncpg.Record | None = await self.conn.fetchrow(
            f"""
            UPDATE leads.sources SET secret = $3, token_hash = $4, updated_at = now(), version = version + 1
            WHERE workspace_id = $1 AND id = $2
            RETURNING {SOURCE_COLUMNS}
            """,
            self.workspace_id, source_id, credentials.secret, credentials.token_hash,
        )
        return row


async def source_for_inbound(conn: Connection, source_id: uuid.UUID) -> asyncpg.Record | None:
    """The source an inbound URL names, with its credentials, whatever its workspace (uq_sources_id)."""
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT workspace_id, id, name, channel, active, secret, token_hash FROM leads.sources WHERE id = $1",
        source_id,
    )
    return row


# ------------------------------------------------------------------------------------------------ inbound requests


@dataclass(frozen=True)
class Stored:
    id: uuid.UUID
    duplicate: bool


async def store_request(
    conn: Connection,
    *,
    workspace_id: uuid.UUID,
    source_id: uuid.UUID,
    message_id: str,
    content_type: str,
    body: bytes,
    headers: Mapping[str, str],
    channel: str,
) -> Stored:
    """Keeps the raw request as a pending row and wakes the workers when the caller's transaction commits.

    A message id already taken for this source is a repeat delivery: nothing is stored and the first
    request's id is returned. A concurrent twin waits on the unique index until the first commits.
    """
    request_id = new_id()
    inserted = await conn.fetchval(
        """
        WITH added AS (
            INSERT INTO leads.inbound_requests
                (workspace_id, id, source_id, message_id, content_type, body, headers)
            VALUES ($1, $2, $3, $4, $5, $6, $7)
            ON CONFLICT (workspace_id, source_id, message_id) DO NOTHING
            RETURNING id
        )
        SELECT id FROM added
        """,
        workspace_id, request_id, source_id, message_id, content_type, body, dict(headers),
    )
    if inserted is not None:
        await notify(conn, channel)
        return Stored(inserted, duplicate=False)
    first = await conn.fetchval(
        "SELECT id FROM leads.inbound_requests WHERE workspace_id = $1 AND source_id = $2 AND message_id = $3",
        workspace_id, source_id, message_id,
    )
    return Stored(first, duplicate=True)


class InboundRequestRepository:
    """A workspace's inbound requests, for the quarantine API: list, read, send back to the queue."""

    def __init__(self, conn: Connection, principal: Principal) -> None:
        self.conn = conn
        self.workspace_id = principal.workspace_id

    async def get(self, request_id: uuid.UUID) -> asyncpg.Record | None:
        row: asyncpg.Record | None = await self.conn.fetchrow(
            f"SELECT {REQUEST_COLUMNS} FROM leads.inbound_requests WHERE workspace_id = $1 AND id = $2",
            self.workspace_id, request_id,
        )
        return row

    async def page(
        self, limit: int, before: uuid.UUID | None, status: str | None, source_id: uuid.UUID | None
    ) -> list[asyncpg.Record]:
        """Newest first, keyset-paginated on the id (ix_inbound_requests_status serves the filters)."""
        rows: list[asyncpg.Record] = await self.conn.fetch(
            f"""
            SELECT {REQUEST_COLUMNS} FROM leads.inbound_requests
            WHERE workspace_id = $1 AND ($2::text IS NULL OR status = $2)
              AND ($3::uuid IS NULL OR source_id = $3) AND ($4::uuid IS NULL OR id < $4)
            ORDER BY id DESC LIMIT $5
            """,
            self.workspace_id, status, source_id, before, limit,
        )
        return rows

    async def requeue(self, request_id: uuid.UUID) -> asyncpg.Record | None:
        """Sends a quarantined request back to the queue with fresh attempts; None if it is not quarantined.
        The caller wakes the workers (workers.notify) in the same transaction."""
        row: asyncpg.Record | None = await self.conn.fetchrow(
            f"""
            UPDATE leads.inbound_requests
            SET status = 'pending', errors = '[]'::jsonb, attempts = 0, processed_at = NULL
            WHERE workspace_id = $1 AND id = $2 AND status = 'quarantined'
            RETURNING {REQUEST_COLUMNS}
            """,
            self.workspace_id, request_id,
        )
        return row

    async def requeue_source(self, source_id: uuid.UUID) -> int:
        """Sends every quarantined request of a source back to the queue; returns how many."""
        result: str = await self.conn.execute(
            """
            UPDATE leads.inbound_requests
            SET status = 'pending', errors = '[]'::jsonb, attempts = 0, processed_at = NULL
            WHERE workspace_id = $1 AND source_id = $2 AND status = 'quarantined'
            """,
            self.workspace_id, source_id,
        )
        return int(result.split()[-1])
