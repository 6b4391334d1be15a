"""Sources in GraphQL: the workspace's inbound webhook endpoints (`/v1/sources`). Admins manage them, heads of
sales may read them, reps see none. The signing secret and token appear only in the payload of the mutation
that made them (`createSource`, `rotateSourceSecret`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON

from gateway.clients.base import UpstreamRejected
from gateway.clients.sources import SourceRecord
from gateway.context import Info
from gateway.pagination import MAX_FIRST, window
from gateway.types.common import PageInfo, UserError, no_such, parse_uuid, refuse_query, user_errors
from gateway.types.leads import IDEMPOTENCY_KEY, Channel

DEFAULT_FIRST = 20


@strawberry.type(description="An inbound endpoint: what senders POST leads to, and how their fields are read.")
class Source:
    id: strawberry.ID
    name: str = strawberry.field(description="Unique in the workspace; becomes each lead's `source`.")
    channel: Channel
    mapping: JSON = strawberry.field(
        description='Lead field -> where to find it in the payload, e.g. {"email": "contact.mail"}.'
    )
    active: bool = strawberry.field(description="An inactive source refuses deliveries.")
    inbound_url: str = strawberry.field(
        description="The path senders POST to, on the leads service's public address (/v1/inbound/{id})."
    )
    has_secret: bool
    created_by: strawberry.ID
    created_at: datetime
    updated_at: datetime
    version: int

    @classmethod
    def from_record(cls, record: SourceRecord) -> Source:
        return cls(
            id=strawberry.ID(str(record.id)),
            name=record.name,
            channel=Channel(record.channel),
            mapping=JSON(record.mapping),
            active=record.active,
            inbound_url=record.inbound_url,
            has_secret=record.has_secret,
            created_by=strawberry.ID(str(record.created_by)),
            created_at=record.created_at,
            updated_at=record.updated_at,
            version=record.version,
        )


@strawberry.type
class SourceEdge:
    cursor: str
    node: Source


@strawberry.type
class SourceConnection:
    edges: list[SourceEdge]
    page_info: PageInfo


SECRET = "The Standard Webhooks signing secret (whsec_...). Shown only now: keep it."
TOKEN = "For senders that cannot sign (Bearer, X-Voronka-Token or ?token=). Shown only now: keep it."


@strawberry.input
class CreateSourceInput:
    name: str
    channel: Channel
    mapping: JSON | None = strawberry.field(
        default=None, description="Lead field -> path in the payload; fields left out are found by common names."
    )
    active: bool | None = strawberry.field(default=None, description="Defaults to true.")
    idempotency_key: str | None = strawberry.field(default=None, description=IDEMPOTENCY_KEY)


@strawberry.type
class CreateSourcePayload:
    source: Source | None
    secret: str | None = strawberry.field(description=SECRET)
    token: str | None = strawberry.field(description=TOKEN)
    user_errors: list[UserError]


@strawberry.input(description="Only the fields given change.")
class UpdateSourceInput:
    id: strawberry.ID
    version: int | None = strawberry.field(
        default=None, description="The `version` you read: the change applies only if nobody changed it since."
    )
    name: str | None = strawberry.UNSET
    channel: Channel | None = strawberry.UNSET
    mapping: JSON | None = strawberry.field(default=strawberry.UNSET, description="Replaces the mapping.")
    active: bool | None = strawberry.UNSET


@strawberry.type
class UpdateSourcePayload:
    source: Source | None
    user_errors: list[UserError]


@strawberry.input
class RotateSourceSecretInput:
    id: strawberry.ID


@strawberry.type
class RotateSourceSecretPayload:
    source: Source | None
    secret: str | None = strawberry.field(description=SECRET + " The old secret and token stop working at once.")
    token: str | None = strawberry.field(description=TOKEN)
    user_errors: list[UserError]


async def resolve_sources(info: Info, first: int | None = DEFAULT_FIRST, after: str | None = None) -> SourceConnection:
    client = info.context.clients.sources

    async def fetch(limit: int, cursor: str | None) -> tuple[Sequence[SourceRecord], str | None]:
        try:
            page = await client.page(limit=limit, cursor=cursor)
        except UpstreamRejected as rejected:
            refuse_query(rejected)
        return page.items, page.next_cursor

    result = await window(fetch, first=DEFAULT_FIRST if first is None else first, after=after)
    return SourceConnection(
        edges=[SourceEdge(cursor=cursor, node=Source.from_record(record)) for cursor, record in result.edges],
        page_info=PageInfo(has_next_page=result.has_next_page, end_cursor=result.end_cursor),
    )


async def resolve_source(info: Info, id: strawberry.ID) -> Source | None:
    source_id = parse_uuid(id)
    if source_id is None:
        return None
    try:
        record = await info.context.clients.sources.get(source_id)
    except UpstreamRejected as rejected:
        if rejected.status == 404:
            return None
        refuse_query(rejected)
    return Source.from_record(record)


async def create_source(info: Info, input: CreateSourceInput) -> CreateSourcePayload:
    body: dict[str, Any] = {"name": input.name, "channel": input.channel.value}
    if input.mapping is not None:
        body["mapping"] = input.mapping
    if input.active is not None:
        body["active"] = input.active
    try:
        record = await info.context.clients.sources.create(body, idempotency_key=input.idempotency_key)
    except UpstreamRejected as rejected:
        return CreateSourcePayload(source=None, secret=None, token=None, user_errors=user_errors("input", rejected))
    return CreateSourcePayload(
        source=Source.from_record(record), secret=record.secret, token=record.token, user_errors=[]
    )


async def update_source(info: Info, input: UpdateSourceInput) -> UpdateSourcePayload:
    source_id = parse_uuid(input.id)
    if source_id is None:
        return UpdateSourcePayload(source=None, user_errors=[no_such("input", "id", "source", input.id)])
    given = {
        "name": input.name,
        "channel": input.channel.value if isinstance(input.channel, Channel) else input.channel,
        "mapping": input.mapping,
        "active": input.active,
    }
    changes = {name: value for name, value in given.items() if value is not strawberry.UNSET}
    try:
        record = await info.context.clients.sources.update(source_id, changes, version=input.version)
    except UpstreamRejected as rejected:
        return UpdateSourcePayload(source=None, user_errors=user_errors("input", rejected, fields={404: "id"}))
    return UpdateSourcePayload(source=Source.from_record(record), user_errors=[])


async def rotate_source_secret(info: Info, input: RotateSourceSecretInput) -> RotateSourceSecretPayload:
    source_id = parse_uuid(input.id)
    if source_id is None:
        errors = [no_such("input", "id", "source", input.id)]
        return RotateSourceSecretPayload(source=None, secret=None, token=None, user_errors=errors)
    try:
        record = await info.context.clients.sources.rotate_secret(source_id)
    except UpstreamRejected as rejected:
        errors = user_errors("input", rejected, fields={404: "id"})
        return RotateSourceSecretPayload(source=None, secret=None, token=None, user_errors=errors)
    return RotateSourceSecretPayload(
        source=Source.from_record(record), secret=record.secret, token=record.token, user_errors=[]
    )


@strawberry.type
class SourcesQuery:
    sources: SourceConnection | None = strawberry.field(
        resolver=resolve_sources,
        description=(
            f"The workspace's sources, oldest first (admins and heads of sales only). `first` is at most {MAX_FIRST}."
        ),
    )
    source: Source | None = strawberry.field(
        resolver=resolve_source, description="The source with this id, or null if the workspace has none such."
    )


@strawberry.type
class SourcesMutation:
    create_source: CreateSourcePayload = strawberry.mutation(
        resolver=create_source,
        description="Creates an inbound endpoint (admins only); its secret and token are in this payload only.",
    )
    update_source: UpdateSourcePayload = strawberry.mutation(
        resolver=update_source, description="Changes a source's name, channel, mapping or active flag (admins only)."
    )
    rotate_source_secret: RotateSourceSecretPayload = strawberry.mutation(
        resolver=rotate_source_secret,
        description="Gives a source a new secret and token (admins only); the old ones stop working at once.",
    )
