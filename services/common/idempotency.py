"""Idempotency-Key for writes clients may retry: the first answer is stored with the write, replayed after.

A key belongs to one user in one workspace. Its row is inserted in the same transaction as the write it
answers, after the write: two requests racing with one key both do the work, but the loser's insert waits
for the winner's commit, finds the key taken, rolls its work back and replays the winner's answer. A key
lives 24 hours; expired rows are ignored, overwritten by a new request with the same key, and deleted now
and then after a keyed write in their workspace (`delete_expired`).
"""

from __future__ import annotations

import hashlib
import logging
import random
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

import asyncpg
from fastapi import Header
from pydantic import BaseModel
from sqlalchemy import (
    Column,
    DateTime,
    Index,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    Table,
    Text,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from starlette.background import BackgroundTask
from starlette.responses import Response

from services.common.auth import Principal
from services.common.db import Connection, Database
from services.common.outbox import checked_schema
from services.common.problems import Conflict, InvalidField, Problem

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
KEY_TTL = timedelta(hours=24)
# One keyed write in this many also deletes a batch of its workspace's expired keys, after its response went out.
SWEEP_ODDS = 100
SWEEP_BATCH = 500

log = logging.getLogger("voronka.idempotency")

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias=HEADER,
        description=(
            f"Up to {MAX_KEY_LENGTH} printable ASCII characters (a UUID is a good key). A retry with the same key "
            "and body within 24 hours gets the first answer back and changes nothing."
        ),
    ),
]


class InvalidIdempotencyKey(InvalidField):
    def __init__(self, message: str, code: str) -> None:
        super().__init__(HEADER, message, code)


class IdempotencyKeyReused(Problem):
    """The key already answered a different request: retrying it would not mean what the client thinks."""

    status, code, title = 422, "idempotency-key-reused", "The idempotency key was used for another request"

    def __init__(self) -> None:
        message = "This key was already used with a different request; use a new key for a new request."
        super().__init__(message, errors=[{"field": HEADER, "code": "reused", "message": message}])


class IdempotencyKeyInProgress(Conflict):
    """The key is taken but its answer cannot be read (yet): the client should simply retry."""

    code, title = "idempotency-key-in-progress", "A request with this key is still in progress"

    def __init__(self) -> None:
        super().__init__("Retry in a moment to get its answer.", headers={"Retry-After": "1"})


def _checked_key(value: str) -> str:
    # draft-ietf-httpapi-idempotency-key-header sends the key as a structured-field string ("..."); most
    # clients (Stripe's) send it bare. Both name the same key.
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    if not value:
        raise InvalidIdempotencyKey("The key must not be empty.", "string_too_short")
    if len(value) > MAX_KEY_LENGTH:
        raise InvalidIdempotencyKey(f"The key must be at most {MAX_KEY_LENGTH} characters.", "string_too_long")
    if not (value.isascii() and value.isprintable()):
        raise InvalidIdempotencyKey("The key must be printable ASCII.", "invalid")
    return value


@dataclass(frozen=True, slots=True)
class IdempotentRequest:
    """A keyed request: whose key it is, and a fingerprint of what it asks for."""

    workspace_id: uuid.UUID
    user_id: uuid.UUID
    key: str
    fingerprint: bytes

    @classmethod
    def of(cls, principal: Principal, key: str, operation: str, body: BaseModel) -> IdempotentRequest:
        """`operation` (e.g. "POST /v1/leads") keeps one key from meaning two different writes. The body is
        fingerprinted as parsed, so a retry that differs only in spacing or field order is the same request."""
        canonical = operation.encode() + b"\n" + body.model_dump_json().encode()
        return cls(principal.workspace_id, principal.user_id, _checked_key(key), hashlib.sha256(canonical).digest())


class _KeyTaken(Exception):
    """Raised inside the write's transaction to roll the duplicate work back."""


# A replay repeats the stored headers (Location, ETag, Content-Type) but computes its own length.
_NOT_STORED = frozenset({"content-length"})


async def _remember(
    conn: Connection, schema: str, request: IdempotentRequest, response: Response, ttl: timedelta
) -> bool:
    """Stores the answer under the key in the caller's transaction; False if the key is already taken.

    An insert that meets a row another transaction has not committed yet waits for it: the loser of a race
    sees the winner's row, and two writes never both commit. An expired row is overwritten as if absent.
    """
    headers = {name: value for name, value in response.headers.items() if name not in _NOT_STORED}
    stored = await conn.fetchval(
        f"""
        INSERT INTO {checked_schema(schema)}.idempotency_keys AS k
            (workspace_id, user_id, key, fingerprint, status, headers, body, expires_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, now() + $8::interval)
        ON CONFLICT (workspace_id, user_id, key) DO UPDATE
        SET fingerprint = excluded.fingerprint, status = excluded.status, headers = excluded.headers,
            body = excluded.body, created_at = now(), expires_at = excluded.expires_at
        WHERE k.expires_at <= now()
        RETURNING true
        """,
        request.workspace_id, request.user_id, request.key, request.fingerprint,
        response.status_code, headers, bytes(response.body), ttl,
    )
    return stored is not None


async def _recall(conn: Connection, schema: str, request: IdempotentRequest) -> Response | None:
    row = await conn.fetchrow(
        f"""
        SELECT fingerprint, status, headers, body FROM {checked_schema(schema)}.idempotency_keys
        WHERE workspace_id = $1 AND user_id = $2 AND key = $3 AND expires_at > now()
        """,
        request.workspace_id, request.user_id, request.key,
    )
    if row is None:
        return None
    if row["fingerprint"] != request.fingerprint:
        raise IdempotencyKeyReused()
    headers: dict[str, str] = {**row["headers"], "Idempotent-Replayed": "true"}
    return Response(content=row["body"], status_code=row["status"], headers=headers)


async def answer_once(
    db: Database,
    schema: str,
    request: IdempotentRequest,
    write: Callable[[Connection], Awaitable[Response]],
    *,
    ttl: timedelta = KEY_TTL,
) -> Response:
    """Runs `write` in one transaction with storing its answer under the key, or replays the stored answer.

    Only answers `write` returns are stored: a domain error it raises rolls everything back, so the client
    may fix the cause and retry with the same key. The key costs the first request one statement.
    """
    try:
        async with db.transaction() as conn:
            response = await write(conn)
            if not await _remember(conn, schema, request, response, ttl):
                raise _KeyTaken
    except _KeyTaken:
        async with db.connection() as conn:
            replay = await _recall(conn, schema, request)
        if replay is None:
            # Taken a moment ago, expired by now: rare enough that the client's retry sorts it out.
            raise IdempotencyKeyInProgress() from None
        return replay
    except Problem:
        # A retry can fail on the first attempt's own effects before reaching the key (a source name its first
        # attempt took is now "taken"): when the key holds an answer, that answer is the one to give.
        async with db.connection() as conn:
            replay = await _recall(conn, schema, request)
        if replay is None:
            raise
        return replay
    if response.background is None and random.randrange(SWEEP_ODDS) == 0:
        response.background = BackgroundTask(_sweep, db, schema, request.workspace_id)
    return response


async def delete_expired(
    conn: Connection, schema: str, workspace_id: uuid.UUID, limit: int = SWEEP_BATCH
) -> int:
    """Deletes up to `limit` of a workspace's expired keys, skipping rows another sweep holds; returns how
    many. Per workspace, like every index on workspace data: a workspace that stops writing keeps at most a
    day of keys, which lookups ignore."""
    table = f"{checked_schema(schema)}.idempotency_keys"
    result: str = await conn.execute(
        f"""
        DELETE FROM {table} WHERE workspace_id = $1 AND (user_id, key) IN (
            SELECT user_id, key FROM {table} WHERE workspace_id = $1 AND expires_at <= now()
            ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED
        )
        """,
        workspace_id, limit,
    )
    return int(result.split()[-1])


async def _sweep(db: Database, schema: str, workspace_id: uuid.UUID) -> None:
    # Runs after the response went out: housekeeping must not turn a delivered answer into an error.
    try:
        async with db.connection() as conn:
            await delete_expired(conn, schema, workspace_id)
    except (asyncpg.PostgresError, OSError):
        log.warning("could not delete expired idempotency keys", exc_info=True, extra={"schema": schema})


def add_idempotency_table(metadata: MetaData) -> None:
    """Adds `idempotency_keys` to a service's MetaData (its schema comes from the MetaData)."""
    Table(
        "idempotency_keys",
        metadata,
        Column("workspace_id", Uuid, nullable=False),
        Column("user_id", Uuid, nullable=False),
        Column("key", Text, nullable=False),
        # SHA-256 of the operation and the parsed body: a reused key with another request is refused.
        Column("fingerprint", LargeBinary, nullable=False),
        Column("status", SmallInteger, nullable=False),
        Column("headers", JSONB, nullable=False),
        Column("body", LargeBinary, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
        Column("expires_at", DateTime(timezone=True), nullable=False),
        PrimaryKeyConstraint("workspace_id", "user_id", "key"),
        # What delete_expired walks.
        Index("ix_idempotency_keys_expiry", "workspace_id", "expires_at"),
    )
