"""HTTP: /v1/teams — groups of members with their head: add, list, read, change, and delete an empty team.

Everyone in the workspace reads them; admins and heads of sales change them. A team someone is still in
cannot be deleted (409 naming them). Publishes team.created, team.updated and team.deleted.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field

from services.common.auth import CurrentPrincipal
from services.common.cursors import decode_cursor, encode_cursor
from services.common.db import DB, Connection, ReadConn
from services.common.etags import IfMatchHeader, check_version, etag
from services.common.idempotency import IdempotencyKeyHeader, IdempotentRequest, answer_once
from services.common.problems import InvalidField, NotFound
from services.common.responses import model_response
from services.common.text import NoNul
from services.leads import roster
from services.leads.models import SCHEMA
from services.leads.roster import TeamRepository

router = APIRouter(prefix="/v1/teams", tags=["roster"])

TeamName = Annotated[str, NoNul, Field(min_length=1, max_length=100)]
Description = Annotated[str, NoNul, Field(max_length=2000)]


class TeamCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: TeamName = Field(description="Unique in the workspace, ignoring case")
    description: Description | None = None
    head_id: uuid.UUID | None = Field(default=None, description="A member of the workspace who leads the team")


class TeamPatch(BaseModel):
    """Only the fields present change; null clears description and head_id."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: TeamName | None = None
    description: Description | None = None
    head_id: uuid.UUID | None = None


class TeamOut(BaseModel):
    id: uuid.UUID
    workspace_id: uuid.UUID
    name: str
    description: str | None
    head_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime
    version: int


class TeamPage(BaseModel):
    items: list[TeamOut]
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next page; null on the last page")


def _response(row: asyncpg.Record, status_code: int = 200) -> Response:
    headers = {"Location": f"/v1/teams/{row['id']}", "ETag": etag(row["version"])}
    return model_response(TeamOut.model_validate(dict(row)), status_code, headers)


def _stored(sent: dict[str, Any]) -> dict[str, Any]:
    if "name" in sent and sent["name"] is None:
        raise InvalidField("name", "A team always has a name; send a new one instead of null.", code="null")
    # An empty description is no description.
    return {**sent, "description": sent["description"] or None} if "description" in sent else sent


@router.post("", status_code=status.HTTP_201_CREATED, response_model=TeamOut)
async def create_team(
    body: TeamCreate, principal: CurrentPrincipal, db: DB, idempotency_key: IdempotencyKeyHeader = None
) -> Response:
    roster.require_manager(principal, "teams")
    values = _stored(body.model_dump())

    async def write(conn: Connection) -> Response:
        return _response(await TeamRepository(conn, principal).add(values), status.HTTP_201_CREATED)

    if idempotency_key is None:
        async with db.transaction() as conn:
            response = await write(conn)
        return response
    keyed = IdempotentRequest.of(principal, idempotency_key, "POST /v1/teams", body)
    return await answer_once(db, SCHEMA, keyed, write)


@router.get("", response_model=TeamPage)
async def list_teams(
    principal: CurrentPrincipal,
    conn: ReadConn,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor from the previous page")] = None,
) -> Response:
    rows = await TeamRepository(conn, principal).page(limit + 1, decode_cursor(cursor) if cursor else None)
    items = [TeamOut.model_validate(dict(r)) for r in rows[:limit]]
    next_cursor = encode_cursor(items[-1].id) if len(rows) > limit else None
    return model_response(TeamPage(items=items, next_cursor=next_cursor))


@router.get("/{team_id}", response_model=TeamOut)
async def get_team(team_id: uuid.UUID, principal: CurrentPrincipal, conn: ReadConn) -> Response:
    row = await TeamRepository(conn, principal).get(team_id)
    if row is None:
        raise NotFound(f"There is no team {team_id}.")
    return _response(row)


@router.patch("/{team_id}", response_model=TeamOut)
async def patch_team(
    team_id: uuid.UUID, body: TeamPatch, principal: CurrentPrincipal, db: DB, if_match: IfMatchHeader = None
) -> Response:
    roster.require_manager(principal, "teams")
    values = _stored(body.model_dump(include=body.model_fields_set))
    async with db.transaction() as conn:
        teams = TeamRepository(conn, principal)
        current = await teams.get(team_id, for_update=True)
        if current is None:
            raise NotFound(f"There is no team {team_id}.")
        check_version(if_match, current["version"])
        row = await teams.update(current, values)
    return _response(row)


@router.delete("/{team_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_team(
    team_id: uuid.UUID, principal: CurrentPrincipal, db: DB, if_match: IfMatchHeader = None
) -> Response:
    """Deletes a team nobody is in (409 naming the members still in it). Publishes team.deleted."""
    roster.require_manager(principal, "teams")
    async with db.transaction() as conn:
        teams = TeamRepository(conn, principal)
        current = await teams.get(team_id, for_delete=True)
        if current is None:
            raise NotFound(f"There is no team {team_id}.")
        check_version(if_match, current["version"])
        await teams.delete(current)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
