"""HTTP endpoints of the event backbone every service mounts: receive (POST /events) and replay (GET /events)."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from services.common.auth import CurrentPrincipal, Role
from services.common.db import ReadConn
from services.common.inbox import Inbox
from services.common.problems import Forbidden, InvalidField, Problem
from services.common.signing import DeliverySigner
from services.contracts import event_type

MAX_DELIVERY_BYTES = 16 * 1024 * 1024

router = APIRouter(tags=["events"])


class PayloadTooLarge(Problem):
    status, code, title = 413, "payload-too-large", "Payload too large"


class UnreadableBatch(Problem):
    status, code, title = 422, "unreadable-batch", "The body is not a CloudEvents batch"


@router.post("/events", summary="Receive a signed batch of CloudEvents from another service")
async def receive_events(request: Request) -> Response:
    body = await request.body()
    if len(body) > MAX_DELIVERY_BYTES:
        raise PayloadTooLarge(f"A delivery may carry at most {MAX_DELIVERY_BYTES} bytes.")
    signer: DeliverySigner = request.app.state.signer
    signer.verify(body, dict(request.headers))
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
        if name:
            result.append(name if name.startswith("voronka.") else event_type(name))
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
    try:
        cursor = int(after) if after else 0
    except ValueError as exc:
        raise InvalidField("after", "The cursor is not one this endpoint gave out.") from exc
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
