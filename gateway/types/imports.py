"""CSV imports in GraphQL: following an import's progress (`GET /v1/imports`). Uploading the file is REST only
(`POST /v1/imports`, multipart/form-data): GraphQL has no file type worth the complexity here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import Enum

import strawberry
from strawberry.scalars import JSON

from gateway.clients.base import UpstreamRejected
from gateway.clients.imports import ImportRecord
from gateway.context import Info
from gateway.pagination import MAX_FIRST, window
from gateway.types.common import PageInfo, parse_uuid, refuse_query
from gateway.types.leads import Channel, channel_of

DEFAULT_FIRST = 20


@strawberry.enum(description="PENDING until a worker takes the import, RUNNING, then DONE or FAILED.")
class ImportStatus(Enum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


@strawberry.type(description="A CSV file of leads being taken in, and how far it got.")
class Import:
    id: strawberry.ID
    status: ImportStatus
    filename: str | None
    encoding: str = strawberry.field(description="The encoding the file was read with.")
    delimiter: str = strawberry.field(description='The delimiter the file was read with: ",", ";" or "tab".')
    mapping: JSON = strawberry.field(description="Lead field -> column header.")
    source: str | None = strawberry.field(description="Every lead's source.")
    channel: Channel | None
    owner_id: strawberry.ID | None = strawberry.field(description="Every new lead's owner.")
    tags: list[str] = strawberry.field(description="Added to every lead.")
    total_rows: int
    rows_done: int
    created: int
    merged: int
    rejected: int
    error: str | None = strawberry.field(description="Why the import FAILED.")
    created_by: strawberry.ID
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    rejected_file_url: str | None = strawberry.field(
        description="The rejected rows as CSV, with the reasons: a path on the leads service, once there are any."
    )

    @classmethod
    def from_record(cls, record: ImportRecord) -> Import:
        return cls(
            id=strawberry.ID(str(record.id)),
            status=ImportStatus(record.status),
            filename=record.filename,
            encoding=record.encoding,
            delimiter=record.delimiter,
            mapping=JSON(record.mapping),
            source=record.source,
            channel=channel_of(record.channel),
            owner_id=strawberry.ID(str(record.owner_id)) if record.owner_id else None,
            tags=list(record.tags),
            total_rows=record.total_rows,
            rows_done=record.rows_done,
            created=record.created,
            merged=record.merged,
            rejected=record.rejected,
            error=record.error,
            created_by=strawberry.ID(str(record.created_by)),
            created_at=record.created_at,
            started_at=record.started_at,
            finished_at=record.finished_at,
            rejected_file_url=record.rejected_file_url,
        )


@strawberry.type
class ImportEdge:
    cursor: str
    node: Import


@strawberry.type
class ImportConnection:
    edges: list[ImportEdge]
    page_info: PageInfo


async def resolve_imports(info: Info, first: int | None = DEFAULT_FIRST, after: str | None = None) -> ImportConnection:
    client = info.context.clients.imports

    async def fetch(limit: int, cursor: str | None) -> tuple[Sequence[ImportRecord], str | None]:
        try:
            page = await client.page(limit=limit, cursor=cursor)
        except UpstreamRejected as rejected:
            refuse_query(rejected)
        return page.items, page.next_cursor

    result = await window(fetch, first=DEFAULT_FIRST if first is None else first, after=after)
    return ImportConnection(
        edges=[ImportEdge(cursor=cursor, node=Import.from_record(record)) for cursor, record in result.edges],
        page_info=PageInfo(has_next_page=result.has_next_page, end_cursor=result.end_cursor),
    )


async def resolve_import(info: Info, id: strawberry.ID) -> Import | None:
    import_id = parse_uuid(id)
    if import_id is None:
        return None
    try:
        record = await info.context.clients.imports.get(import_id)
    except UpstreamRejected as rejected:
        if rejected.status == 404:
            return None
        refuse_query(rejected)
    return Import.from_record(record)


@strawberry.type
class ImportsQuery:
    imports: ImportConnection | None = strawberry.field(
        resolver=resolve_imports,
        description=f"Imports, newest first; a rep sees their own. `first` is at most {MAX_FIRST}.",
    )
    import_: Import | None = strawberry.field(
        name="import",
        resolver=resolve_import,
        description="The import with this id, or null if it does not exist or is not yours to see.",
    )
