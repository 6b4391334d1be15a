"""HTTP: /v1/territories — the places members cover: add, list, read, change, and delete an unused territory.

A territory is lists of countries (ISO 3166-1 alpha-2), regions, cities and postal-code prefixes; each list it
fills must match a lead's place (`roster.covers`). Everyone in the workspace reads them; admins and heads of
sales change them. A territory a member still covers cannot be deleted (409 naming them).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Query, Response, status
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

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
from services.leads.roster import TerritoryRepository

router = APIRouter(prefix="/v1/territories", tags=["roster"])

TerritoryName = Annotated[str, NoNul, Field(min_length=1, max_length=100)]
Country = Annotated[str, NoNul, Field(max_length=8), AfterValidator(roster.check_country)]
Place = Annotated[str, NoNul, Field(min_length=1, max_length=100), AfterValidator(roster.tidy_place)]
PostalPrefix = Annotated[str, NoNul, Field(min_length=1, max_length=20), AfterValidator(roster.check_postal_prefix)]


class TerritoryCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: TerritoryName = Field(description="Unique in the workspace, ignoring case")
    countries: list[Country] = Field(default_factory=list, max_length=300, description="ISO 3166-1 alpha-2 codes")
    regions: list[Place] = Field(default_factory=list, max_length=500)
    cities: list[Place] = Field(default_factory=list, max_length=1000)
    postal_prefixes: list[PostalPrefix] = Field(
        default_factory=list, max_length=1000, description="Starts of postal codes: letters, digits, spaces, dashes"
    )


class TerritoryPatch(BaseModel):
    """Only the fields present change; send [] to empty a list (an empty list matches any place)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: TerritoryName | None = None
    countries: list[Country] | None = Field(default=None, max_length=300)
    regions: list[Place] | None = Field(default=None, max_length=500)
    cities: list[Place] | None = Field(default=None, max_length=1000)
    postal_prefixes: list[PostalPrefix] | None = Field(default=None, max_length=1000)


class TerritoryOut(BaseModel):
    id: uuid.UUID
    workspace_id: uuid.UUID
    name: str
    countries: list[str]
    regions: list[str]
    cities: list[str]
    postal_prefixes: list[str]
    created_at: datetime
    updated_at: datetime
    version: int


class TerritoryPage(BaseModel):
    items: list[TerritoryOut]
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next page; null on the last page")


def _response(row: asyncpg.Record, status_code: int = 200) -> Response:
    headers = {"Location": f"/v1/territories/{row['id']}", "ETag": etag(row["version"])}
    return model_response(TerritoryOut.model_validate(dict(row)), status_code, headers)


def _stored(sent: dict[str, Any]) -> dict[str, Any]:
    """The fields sent in stored form: lists without repeats (places compared ignoring case)."""
    values = dict(sent)
    for name, value in sent.items():
        if value is None:
            message = f"{name} cannot be null; " + ("send a new name." if name == "name" else "send [] to empty it.")
            raise InvalidField(name, message, code="null")
        if name in ("regions", "cities"):
            values[name] = roster.distinct(value, key=str.casefold)
        elif name != "name":
            values[name] = roster.distinct(value)
    return values


@router.post("", status_code=status.HTTP_201_CREATED, response_model=TerritoryOut)
async def create_territory(
    body: TerritoryCreate, principal: CurrentPrincipal, db: DB, idempotency_key: IdempotencyKeyHeader = None
) -> Response:
    roster.require_manager(principal, "territories")
    values = _stored(body.model_dump())

    async def write(conn: Connection) -> Response:
        return _response(await TerritoryRepository(conn, principal).add(values), status.HTTP_201_CREATED)

    if idempotency_key is None:
        async with db.transaction() as conn:
            response = await write(conn)
        return response
    keyed = IdempotentRequest.of(principal, idempotency_key, "POST /v1/territories", body)
    return await answer_once(db, SCHEMA, keyed, write)


@router.get("", response_model=TerritoryPage)
async def list_territories(
    principal: CurrentPrincipal,
    conn: ReadConn,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor from the previous page")] = None,
) -> Response:
    rows = await TerritoryRepository(conn, principal).page(limit + 1, decode_cursor(cursor) if cursor else None)
    items = [TerritoryOut.model_validate(dict(r)) for r in rows[:limit]]
    next_cursor = encode_cursor(items[-1].id) if len(rows) > limit else None
    return model_response(TerritoryPage(items=items, next_cursor=next_cursor))


@router.get("/{territory_id}", response_model=TerritoryOut)
async def get_territory(territory_id: uuid.UUID, principal: CurrentPrincipal, conn: ReadConn) -> Response:
    row = await TerritoryRepository(conn, principal).get(territory_id)
    if row is None:
        raise NotFound(f"There is no territory {territory_id}.")
    return _response(row)


@router.patch("/{territory_id}", response_model=TerritoryOut)
async def patch_territory(
    territory_id: uuid.UUID, body: TerritoryPatch, principal: CurrentPrincipal, db: DB, if_match: IfMatchHeader = None
) -> Response:
    roster.require_manager(principal, "territories")
    values = _stored(body.model_dump(include=body.model_fields_set))
    async with db.transaction() as conn:
        territories = TerritoryRepository(conn, principal)
        current = await territories.get(territory_id, for_update=True)
        if current is None:
            raise NotFound(f"There is no territory {territory_id}.")
        check_version(if_match, current["version"])
        row = await territories.update(current, values)
    return _response(row)


@router.delete("/{territory_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_territory(
    territory_id: uuid.UUID, principal: CurrentPrincipal, db: DB, if_match: IfMatchHeader = None
) -> Response:
    """Deletes a territory no member covers (409 naming the members that still do)."""
    roster.require_manager(principal, "territories")
    async with db.transaction() as conn:
        territories = TerritoryRepository(conn, principal)
        current = await territories.get(territory_id, for_delete=True)
        if current is None:
            raise NotFound(f"There is no territory {territory_id}.")
        check_version(if_match, current["version"])
        await territories.delete(current)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
