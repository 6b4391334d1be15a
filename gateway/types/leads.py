"""Leads in GraphQL: the `Lead` type, the `lead`/`leads` queries and the `createLead` mutation."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import strawberry

from gateway.clients.base import UpstreamRejected
from gateway.clients.leads import LeadRecord, NewLead
from gateway.context import Info
from gateway.errors import InvalidArgument
from gateway.pagination import MAX_FIRST, window
from gateway.types.common import PageInfo, UserError, user_errors

DEFAULT_FIRST = 20


@strawberry.type
class Lead:
    id: strawberry.ID
    name: str
    email: str | None
    phone: str | None
    company: str | None
    source: str | None
    owner_id: strawberry.ID | None
    status: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_record(cls, record: LeadRecord) -> Lead:
        return cls(
            id=strawberry.ID(str(record.id)),
            name=record.name,
            email=record.email,
            phone=record.phone,
            company=record.company,
            source=record.source,
            owner_id=strawberry.ID(str(record.owner_id)) if record.owner_id else None,
            status=record.status,
            created_at=record.created_at,
            updated_at=record.updated_at,
        )


@strawberry.type
class LeadEdge:
    cursor: str
    node: Lead


@strawberry.type
class LeadConnection:
    edges: list[LeadEdge]
    page_info: PageInfo


@strawberry.input
class CreateLeadInput:
    name: str
    email: str | None = None
    phone: str | None = None
    source: str | None = None
    company: str | None = None
    idempotency_key: str | None = strawberry.field(
        default=None,
        description=(
            "Send the same key when retrying after a network failure: within 24 hours the retry returns the "
            "lead the first attempt created instead of a second one. Up to 255 printable ASCII characters."
        ),
    )


@strawberry.type
class CreateLeadPayload:
    lead: Lead | None
    user_errors: list[UserError]


async def resolve_lead(info: Info, id: strawberry.ID) -> Lead | None:
    try:
        lead_id = uuid.UUID(id)
    except ValueError:
        # Lead ids are UUIDs: anything else names no lead, the same answer as an unknown UUID.
        return None
    record = await info.context.loaders.lead.load(lead_id)
    return Lead.from_record(record) if record else None


async def resolve_leads(
    info: Info, first: int | None = DEFAULT_FIRST, after: str | None = None
) -> LeadConnection:
    client = info.context.clients.leads

    async def fetch(limit: int, cursor: str | None) -> tuple[Sequence[LeadRecord], str | None]:
        try:
            page = await client.page(limit=limit, cursor=cursor)
        except UpstreamRejected as rejected:
            # The limit is ours and always in range, so a refusal means the cursor inside `after` was forged.
            raise InvalidArgument("after is not a valid cursor") from rejected
        return page.items, page.next_cursor

    result = await window(fetch, first=DEFAULT_FIRST if first is None else first, after=after)
    return LeadConnection(
        edges=[LeadEdge(cursor=cursor, node=Lead.from_record(record)) for cursor, record in result.edges],
        page_info=PageInfo(has_next_page=result.has_next_page, end_cursor=result.end_cursor),
    )


async def create_lead(info: Info, input: CreateLeadInput) -> CreateLeadPayload:
    new_lead = NewLead(
        name=input.name,
        email=input.email,
        phone=input.phone,
        source=input.source,
        company=input.company,
    )
    try:
        record = await info.context.clients.leads.create(new_lead, idempotency_key=input.idempotency_key)
    except UpstreamRejected as rejected:
        return CreateLeadPayload(lead=None, user_errors=user_errors("input", rejected))
    return CreateLeadPayload(lead=Lead.from_record(record), user_errors=[])


# Resolvers are passed in rather than decorated: the decorator-with-arguments form is untyped for mypy.
@strawberry.type
class LeadsQuery:
    lead: Lead | None = strawberry.field(
        resolver=resolve_lead,
        description="The lead with this id, or null if it does not exist or is not yours to see.",
    )
    # Nullable so that, with the leads service down, the other root fields still come back.
    leads: LeadConnection | None = strawberry.field(
        resolver=resolve_leads, description=f"Leads, newest first. `first` is at most {MAX_FIRST}."
    )


@strawberry.type
class LeadsMutation:
    create_lead: CreateLeadPayload = strawberry.mutation(
        resolver=create_lead,
        description="Creates a lead; invalid input comes back as userErrors, not as errors.",
    )
