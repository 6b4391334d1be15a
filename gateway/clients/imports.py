"""Client for the leads service's import endpoints (`/v1/imports`): reading CSV imports and their progress.

Uploading a file is not the gateway's job: clients send it to `POST /v1/imports` as multipart/form-data.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from gateway.clients.base import Record, ServiceClient


class ImportRecord(Record):
    id: uuid.UUID
    status: str
    filename: str | None = None
    encoding: str
    delimiter: str
    mapping: dict[str, Any] = {}
    source: str | None = None
    channel: str | None = None
    owner_id: uuid.UUID | None = None
    tags: list[str] = []
    total_rows: int
    rows_done: int
    created: int
    merged: int
    rejected: int
    error: str | None = None
    created_by: uuid.UUID
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    rejected_file_url: str | None = None


class ImportPage(Record):
    items: list[ImportRecord]
    next_cursor: str | None = None


class ImportsClient(ServiceClient):
    # Imports live in the leads service: the same pool, the same name in "... service unavailable".
    service = "leads"

    async def get(self, import_id: uuid.UUID) -> ImportRecord:
        response = await self._send("GET", f"/v1/imports/{import_id}", ok=(200,))
        return ImportRecord.model_validate_json(response.content)

    async def page(self, *, limit: int, cursor: str | None) -> ImportPage:
        params: dict[str, str | int] = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        response = await self._send("GET", "/v1/imports", ok=(200,), params=params)
        return ImportPage.model_validate_json(response.content)
