"""HTTP endpoints of the event backbone every service mounts: receive (POST /events) and replay (GET /events)."""

from __future__ import annotations

import re
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from services.common.auth import CurrentPrincipal, Role
from services.common.bodies import read_bounded_body
from services.common.db import ReadConn
from services.common.inbox import Inbox
from services.common.problems import Forbidden, InvalidField, Problem, UnsupportedMediaType
from services.common.signing import DeliverySigner
from services.contracts import event_type

EVENT_NAME = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")
# Positions are bigint: a cursor beyond it would overflow in PostgreSQL.
MAX_CURSOR = 2**63 - 1

router = APIRouter(tags=["events"])


class UnreadableBatch(Problem):
    status, code, title = 422, "unreadable-batch", "The body is not a CloudEvents batch"


# Structured mode (one event), batched mode (a JSON array of them), or plain JSON holding either.
EVENT_MEDIA_TYPES = frozenset(
    {"application/cloudevents+json", "application/cloudevents-batch+json", "application/json"}
)


@router.post("/events", summary="Receive signed CloudEvents from another service (structured or batched)")
async def receive_events(request: Request) -> Response:
    limit = request.app.state.events_max_body_bytes
    body = await read_bounded_body(
        request, limit, f"A delivery may carry at most {limit} bytes; send smaller batches."
    )
    signer: DeliverySigner = request.app.state.signer
    signer.verify(body, dict(request.headers))
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type not in EVENT_MEDIA_TYPES:
        raise UnsupportedMediaType(
            f"Send CloudEvents as {', '.join(sorted(EVENT_MEDIA_TYPES))}, not {media_type or 'no content type'}."
        )
    try:
        parsed: Any = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise UnreadableBatch(f"The body is not JSON: {exc}.") from exc
    raw_events = parsed if isinstance(parsed, list) else [parsed]
    inbox: Inbox = request.app.state.inbox
    result = await inbox.receive(raw_events)
    return Response(orjson.dumps(result.as_json()), media_type="application/json")


def _types_filter(types: str | None) -> list[str] | None:
    if not types:
        return None
    result = []
    for item in types.split(","):
        name = item.strip()
        if not name:
            continue
        # Event names are dotted identifiers; anything else (a NUL byte would make PostgreSQL fail the query)
        # matches nothing, so say so instead.
        if len(name) > 200 or not EVENT_NAME.fullmatch(name):
            raise InvalidField("types", f"{name[:50]!r} is not an event name such as lead.created.")
        result.append(name if name.startswith("voronka.") else event_type(name))
    if len(result) > 100:
        raise InvalidField("types", "Ask for at most 100 event types at once.")
    return result


@router.get("/events", summary="Replay this service's event log from a cursor")
async def replay_events(
    principal: CurrentPrincipal,
    request: Request,
    conn: ReadConn,
    after: Annotated[str | None, Query(description="The next_cursor of the previous page")] = None,
    types: Annotated[str | None, Query(description="Comma-separated event names, e.g. lead.created")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> Response:
    """Events in log order. Services read every workspace; a workspace admin reads their own."""
    if principal.role not in (Role.service, Role.admin):
        raise Forbidden("Only services and workspace admins may read the event log.")
    cursor = 0
    if after:
        # Positions are decimal digits within bigint; anything else (signs, spaces, "1_0", overflow) is not
        # a cursor this endpoint gave out.
        if not (after.isascii() and after.isdigit() and len(after) <= 19 and int(after) <= MAX_CURSOR):
            raise InvalidField("after", "The cursor is not one this endpoint gave out.")
        cursor = int(after)
    workspace = None if principal.role == Role.service else principal.workspace_id
    schema = request.app.state.service
    rows = await conn.fetch(
        f"""
        SELECT position, event::text AS event FROM {schema}.outbox
        WHERE position > $1
          AND ($2::text[] IS NULL OR type = ANY($2::text[]))
          AND ($3::uuid IS NULL OR workspace_id = $3)
        ORDER BY position LIMIT $4
        """,
        cursor, _types_filter(types), workspace, limit,
    )
    next_cursor = str(rows[-1]["position"]) if rows else (str(cursor) if cursor else None)
    body = b'{"events":[' + b",".join(r["event"].encode() for r in rows) + b'],"next_cursor":'
    body += orjson.dumps(next_cursor) + b"}"
    return Response(body, media_type="application/json")
