"""Clients for the leads service's roster endpoints: members (`/v1/members`), teams (`/v1/teams`) and
territories (`/v1/territories`), the sales team as distribution will read it."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from gateway.clients.base import QueryValue, Record, ServiceClient, idempotency, if_match


class MemberRecord(Record):
    """A member as the leads service returns it (`MemberOut`)."""

    id: uuid.UUID
    workspace_id: uuid.UUID
    name: str
    email: str | None = None
    role: str
    team_id: uuid.UUID | None = None
    territory_ids: list[uuid.UUID] = []
    products: list[str] = []
    channels: list[str] = []
    time_zone: str
    # Weekday (mon..sun) -> [start, end) local times; the service stores all seven days.
    working_hours: dict[str, list[list[str]]] = {}
    capacity: int | None = None
    status: str
    away_until: datetime | None = None
    created_at: datetime
    updated_at: datetime
    version: int


class MemberPage(Record):
    items: list[MemberRecord]
    next_cursor: str | None = None


class TeamRecord(Record):
    id: uuid.UUID
    workspace_id: uuid.UUID
    name: str
    description: str | None = None
    head_id: uuid.UUID | None = None
    created_at: datetime
    updated_at: datetime
    version: int


class TeamPage(Record):
    items: list[TeamRecord]
    next_cursor: str | None = None


class TerritoryRecord(Record):
    id: uuid.UUID
    workspace_id: uuid.UUID
    name: str
    countries: list[str] = []
    regions: list[str] = []
    cities: list[str] = []
    postal_prefixes: list[str] = []
    created_at: datetime
    updated_at: datetime
    version: int


class TerritoryPage(Record):
    items: list[TerritoryRecord]
    next_cursor: str | None = None


def _page_params(limit: int, cursor: str | None) -> dict[str, QueryValue]:
    params: dict[str, QueryValue] = {"limit": limit}
    if cursor is not None:
        params["cursor"] = cursor
    return params


# The roster lives in the leads service: each client shares its pool and its name in "... service unavailable".


class MembersClient(ServiceClient):
    service = "leads"

    async def me(self) -> MemberRecord:
        """The caller's member record; the service creates it from their token on first use."""
        response = await self._send("GET", "/v1/members/me", ok=(200,))
        return MemberRecord.model_validate_json(response.content)

    async def create(self, body: Mapping[str, Any], *, idempotency_key: str | None = None) -> MemberRecord:
        response = await self._send(
            "POST", "/v1/members", ok=(201,), json=dict(body), headers=idempotency(idempotency_key)
        )
        return MemberRecord.model_validate_json(response.content)

    async def update(self, member_id: uuid.UUID, changes: Mapping[str, Any], *, version: int | None) -> MemberRecord:
        """PATCH: only the fields in `changes` change (None clears one); with `version`, only that version."""
        response = await self._send(
            "PATCH", f"/v1/members/{member_id}", ok=(200,), json=dict(changes), headers=if_match(version)
        )
        return MemberRecord.model_validate_json(response.content)

    async def get(self, member_id: uuid.UUID) -> MemberRecord:
        response = await self._send("GET", f"/v1/members/{member_id}", ok=(200,))
        return MemberRecord.model_validate_json(response.content)

    async def page(
        self,
        *,
        limit: int,
        cursor: str | None,
        role: str | None = None,
        team_id: str | None = None,
        status: str | None = None,
    ) -> MemberPage:
        """In id order. `team_id` is passed as the client gave it: the service says what is wrong with it."""
        params = _page_params(limit, cursor)
        for name, value in (("role", role), ("team_id", team_id), ("status", status)):
            if value is not None:
                params[name] = value
        response = await self._send("GET", "/v1/members", ok=(200,), params=params)
        return MemberPage.model_validate_json(response.content)


class TeamsClient(ServiceClient):
    service = "leads"

    async def create(self, body: Mapping[str, Any], *, idempotency_key: str | None = None) -> TeamRecord:
        response = await self._send(
            "POST", "/v1/teams", ok=(201,), json=dict(body), headers=idempotency(idempotency_key)
        )
        return TeamRecord.model_validate_json(response.content)

    async def update(self, team_id: uuid.UUID, changes: Mapping[str, Any], *, version: int | None) -> TeamRecord:
        response = await self._send(
            "PATCH", f"/v1/teams/{team_id}", ok=(200,), json=dict(changes), headers=if_match(version)
        )
        return TeamRecord.model_validate_json(response.content)

    async def delete(self, team_id: uuid.UUID, *, version: int | None) -> None:
        """Deletes a team nobody is in; a team with members is refused (409 naming them)."""
        await self._send("DELETE", f"/v1/teams/{team_id}", ok=(204,), headers=if_match(version))

    async def get(self, team_id: uuid.UUID) -> TeamRecord:
        response = await self._send("GET", f"/v1/teams/{team_id}", ok=(200,))
        return TeamRecord.model_validate_json(response.content)

    async def page(self, *, limit: int, cursor: str | None) -> TeamPage:
        response = await self._send("GET", "/v1/teams", ok=(200,), params=_page_params(limit, cursor))
        return TeamPage.model_validate_json(response.content)


class TerritoriesClient(ServiceClient):
    service = "leads"

    async def create(self, body: Mapping[str, Any], *, idempotency_key: str | None = None) -> TerritoryRecord:
        response = await self._send(
            "POST", "/v1/territories", ok=(201,), json=dict(body), headers=idempotency(idempotency_key)
        )
        return TerritoryRecord.model_validate_json(response.content)

    async def update(
        self, territory_id: uuid.UUID, changes: Mapping[str, Any], *, version: int | None
    ) -> TerritoryRecord:
        response = await self._send(
            "PATCH", f"/v1/territories/{territory_id}", ok=(200,), json=dict(changes), headers=if_match(version)
        )
        return TerritoryRecord.model_validate_json(response.content)

    async def delete(self, territory_id: uuid.UUID, *, version: int | None) -> None:
        """Deletes a territory no member covers; one still covered is refused (409 naming the members)."""
        await self._send("DELETE", f"/v1/territories/{territory_id}", ok=(204,), headers=if_match(version))

    async def get(self, territory_id: uuid.UUID) -> TerritoryRecord:
        response = await self._send("GET", f"/v1/territories/{territory_id}", ok=(200,))
        return TerritoryRecord.model_validate_json(response.content)

    async def page(self, *, limit: int, cursor: str | None) -> TerritoryPage:
        response = await self._send("GET", "/v1/territories", ok=(200,), params=_page_params(limit, cursor))
        return TerritoryPage.model_validate_json(response.content)
