"""Leads in GraphQL: the `Lead` type with its history, the `lead`/`leads` queries and the mutations that take a
lead in, edit it, move it along its lifecycle and merge two leads.

Every rule is the leads service's: the gateway passes the caller's token and the fields the client sent, and
turns the service's refusals into `userErrors`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.scalars import JSON

from gateway.clients.base import UpstreamRejected
from gateway.clients.leads import HistoryRecord, LeadQuery, LeadRecord
from gateway.context import Info
from gateway.pagination import MAX_FIRST, window
from gateway.types.common import (
    PageInfo,
    UserError,
    given,
    no_such,
    parse_uuid,
    refuse_query,
    sent,
    user_errors,
)
from gateway.types.scoring import ScoreGrade, ScoreTemperature

if TYPE_CHECKING:
    from gateway.types.distribution import Assignment
    from gateway.types.qualification import Qualification
    from gateway.types.scoring import LeadScore

DEFAULT_FIRST = 20


# ---- enums ------------------------------------------------------------------------------------------------


@strawberry.enum(description="The kind of way a lead reached the workspace.")
class Channel(Enum):
    WEB_FORM = "web_form"
    ADS = "ads"
    MARKETING_TOOL = "marketing_tool"
    COLD_LIST = "cold_list"
    REFERRAL = "referral"
    EVENT = "event"
    PARTNER = "partner"
    MANUAL = "manual"
    OTHER = "other"


@strawberry.enum(
    description=(
        "Where a lead is in its lifecycle: NEW -> WORKING <-> NURTURING -> QUALIFIED -> CONVERTED, or "
        "DISQUALIFIED (with a reason) from any open status. CONVERTED and MERGED are final."
    )
)
class LeadStatus(Enum):
    NEW = "new"
    WORKING = "working"
    NURTURING = "nurturing"
    QUALIFIED = "qualified"
    CONVERTED = "converted"
    DISQUALIFIED = "disqualified"
    MERGED = "merged"


@strawberry.enum(
    description=(
        "Where a lead is in distribution: PENDING (to be distributed, usually within milliseconds), QUEUED (a rule "
        "matched but nobody in its pool can take it now), ASSIGNED (it has its owner), UNMATCHED (no rule matched: "
        "nobody owns it until someone assigns it by hand)."
    )
)
class AssignmentState(Enum):
    PENDING = "pending"
    QUEUED = "queued"
    ASSIGNED = "assigned"
    UNMATCHED = "unmatched"


@strawberry.enum(description="The order of `leads`.")
class LeadSort(Enum):
    CREATED_AT_DESC = "-created_at"
    CREATED_AT_ASC = "created_at"
    UPDATED_AT_DESC = "-updated_at"
    UPDATED_AT_ASC = "updated_at"


@strawberry.enum(description="What `createLead` did with the submission.")
class CaptureOutcome(Enum):
    CREATED = "created"
    MERGED = "merged"


@strawberry.enum(description="Which door a touch came through.")
class TouchVia(Enum):
    API = "api"
    BATCH = "batch"
    WEBHOOK = "webhook"
    IMPORT = "import"


def _id(value: uuid.UUID) -> strawberry.ID:
    return strawberry.ID(str(value))


def _optional_id(value: uuid.UUID | None) -> strawberry.ID | None:
    return strawberry.ID(str(value)) if value is not None else None


def channel_of(value: str | None) -> Channel | None:
    return Channel(value) if value is not None else None


# ---- the Lead type ----------------------------------------------------------------------------------------


@strawberry.type(description="UTM parameters of the lead's first touch.")
class Utm:
    source: str | None
    medium: str | None
    campaign: str | None
    term: str | None
    content: str | None

    @classmethod
    def from_record(cls, utm: dict[str, str]) -> Utm:
        return cls(
            source=utm.get("source"),
            medium=utm.get("medium"),
            campaign=utm.get("campaign"),
            term=utm.get("term"),
            content=utm.get("content"),
        )


@strawberry.type(description="One time the lead reached the workspace, by whatever door.")
class LeadTouch:
    id: strawberry.ID
    via: TouchVia
    source: str | None
    source_id: strawberry.ID | None
    channel: Channel | None
    utm: Utm
    data: JSON = strawberry.field(description="The lead fields this touch brought, as received.")
    origin_id: strawberry.ID | None = strawberry.field(
        description="The inbound request or import the touch came from, if any."
    )
    touched_at: datetime


@strawberry.type
class LeadStatusChange:
    id: strawberry.ID
    from_status: LeadStatus
    to_status: LeadStatus
    reason: str | None
    comment: str | None
    changed_by: strawberry.ID
    changed_at: datetime


@strawberry.type(description="A hand merge this lead took part in.")
class LeadMerge:
    id: strawberry.ID
    survivor_id: strawberry.ID
    merged_id: strawberry.ID
    fields: JSON = strawberry.field(description="For each field, the value kept and which lead it came from.")
    merged_by: strawberry.ID
    merged_at: datetime


@strawberry.type
class LeadHistory:
    touches: list[LeadTouch]
    status_changes: list[LeadStatusChange]
    merges: list[LeadMerge]

    @classmethod
    def from_record(cls, record: HistoryRecord) -> LeadHistory:
        return cls(
            touches=[
                LeadTouch(
                    id=_id(t.id),
                    via=TouchVia(t.via),
                    source=t.source,
                    source_id=_optional_id(t.source_id),
                    channel=channel_of(t.channel),
                    utm=Utm.from_record(t.utm),
                    data=JSON(t.data),
                    origin_id=_optional_id(t.origin_id),
                    touched_at=t.touched_at,
                )
                for t in record.touches
            ],
            status_changes=[
                LeadStatusChange(
                    id=_id(c.id),
                    from_status=LeadStatus(c.from_status),
                    to_status=LeadStatus(c.to_status),
                    reason=c.reason,
                    comment=c.comment,
                    changed_by=_id(c.changed_by),
                    changed_at=c.changed_at,
                )
                for c in record.status_changes
            ],
            merges=[
                LeadMerge(
                    id=_id(m.id),
                    survivor_id=_id(m.survivor_id),
                    merged_id=_id(m.merged_id),
                    fields=JSON(m.fields),
                    merged_by=_id(m.merged_by),
                    merged_at=m.merged_at,
                )
                for m in record.merges
            ],
        )


async def resolve_history(root: Lead, info: Info) -> LeadHistory | None:
    record = await info.context.loaders.history.load(uuid.UUID(root.id))
    return LeadHistory.from_record(record) if record else None


async def resolve_qualification(
    root: Lead, info: Info
) -> Annotated[Qualification, strawberry.lazy("gateway.types.qualification")] | None:
    # Imported here, not at the top: gateway.types.qualification builds on this module (its payloads carry a Lead).
    from gateway.types.qualification import Qualification

    record = await info.context.loaders.qualification.load(uuid.UUID(root.id))
    return Qualification.from_record(record) if record else None


async def resolve_score(
    root: Lead, info: Info
) -> Annotated[LeadScore, strawberry.lazy("gateway.types.scoring")] | None:
    # Imported here, not at the top: gateway.types.scoring is built after this module, as qualification is.
    from gateway.types.scoring import LeadScore

    record = await info.context.loaders.score.load(uuid.UUID(root.id))
    return LeadScore.from_record(record) if record else None


async def resolve_assignments(
    root: Lead, info: Info
) -> list[Annotated[Assignment, strawberry.lazy("gateway.types.distribution")]]:
    # Imported here, not at the top: gateway.types.distribution builds on this module (its rules use Channel).
    from gateway.types.distribution import Assignment

    records = await info.context.loaders.assignments.load(uuid.UUID(root.id))
    return [Assignment.from_record(record) for record in records or []]


async def resolve_merged_into(root: Lead, info: Info) -> Lead | None:
    if root.merged_into_id is None:
        return None
    record = await info.context.loaders.lead.load(uuid.UUID(root.merged_into_id))
    return Lead.from_record(record) if record else None


@strawberry.type
class Lead:
    id: strawberry.ID
    name: str
    email: str | None
    phone: str | None
    company: str | None
    position: str | None
    notes: str | None
    tags: list[str]
    custom: JSON = strawberry.field(description="Values of the workspace's custom fields, by key.")
    source: str | None = strawberry.field(description="Where the lead came from, in words.")
    source_id: strawberry.ID | None = strawberry.field(description="The configured source it came through.")
    channel: Channel | None
    utm: Utm
    owner_id: strawberry.ID | None = strawberry.field(description="The rep who works the lead.")
    hunter_id: strawberry.ID | None = strawberry.field(
        description="The hunter who qualified the lead, once a closer owns it."
    )
    assignment_state: AssignmentState
    assignment_rule_id: strawberry.ID | None = strawberry.field(
        description="The rule the lead is queued on or was assigned by."
    )
    status: LeadStatus
    disqualification_reason: str | None
    merged_into_id: strawberry.ID | None = strawberry.field(description="Set once the lead is MERGED.")
    created_by: strawberry.ID
    created_at: datetime
    updated_at: datetime
    status_changed_at: datetime
    version: int = strawberry.field(
        description="Goes up with every change; pass it back as `version` to change only what you read."
    )
    merged_into: Lead | None = strawberry.field(
        resolver=resolve_merged_into, description="The lead this one was merged into, if you may see it."
    )
    history: LeadHistory | None = strawberry.field(
        resolver=resolve_history,
        description="Every touch, status change and hand merge, oldest first. One upstream call per lead.",
    )
    qualification: Annotated[Qualification, strawberry.lazy("gateway.types.qualification")] | None = (
        strawberry.field(
            resolver=resolve_qualification,
            description="The qualification (BANT) answers so far. One upstream call per lead.",
        )
    )
    score: Annotated[LeadScore, strawberry.lazy("gateway.types.scoring")] | None = strawberry.field(
        resolver=resolve_score,
        description="The score, grade and temperature by the workspace's scoring model, computed now, with the "
        "rules that gave points. One upstream call per lead.",
    )
    assignments: list[Annotated[Assignment, strawberry.lazy("gateway.types.distribution")]] = strawberry.field(
        resolver=resolve_assignments,
        description=(
            "Every assignment of the lead, oldest first: who got it by which rule and why, whom the rule skipped, "
            "and reassignments by hand. One upstream call per lead."
        ),
    )

    @classmethod
    def from_record(cls, record: LeadRecord) -> Lead:
        return cls(
            id=_id(record.id),
            name=record.name,
            email=record.email,
            phone=record.phone,
            company=record.company,
            position=record.position,
            notes=record.notes,
            tags=list(record.tags),
            custom=JSON(record.custom),
            source=record.source,
            source_id=_optional_id(record.source_id),
            channel=channel_of(record.channel),
            utm=Utm.from_record(record.utm),
            owner_id=_optional_id(record.owner_id),
            hunter_id=_optional_id(record.hunter_id),
            assignment_state=AssignmentState(record.assignment_state),
            assignment_rule_id=_optional_id(record.assignment_rule_id),
            status=LeadStatus(record.status),
            disqualification_reason=record.disqualification_reason,
            merged_into_id=_optional_id(record.merged_into_id),
            created_by=_id(record.created_by),
            created_at=record.created_at,
            updated_at=record.updated_at,
            status_changed_at=record.status_changed_at,
            version=record.version,
        )


@strawberry.type
class LeadEdge:
    cursor: str
    node: Lead


@strawberry.type
class LeadConnection:
    edges: list[LeadEdge]
    page_info: PageInfo


# ---- inputs and payloads ----------------------------------------------------------------------------------

IDEMPOTENCY_KEY = (
    "Send the same key when retrying after a network failure: within 24 hours the retry returns the "
    "first attempt's answer instead of doing it twice. Up to 255 printable ASCII characters."
)
VERSION = "The `version` you read: the change applies only if nobody changed the lead since (else STALE_VERSION)."


@strawberry.input
class UtmInput:
    source: str | None = None
    medium: str | None = None
    campaign: str | None = None
    term: str | None = None
    content: str | None = None


@strawberry.input
class CreateLeadInput:
    name: str | None = strawberry.field(default=None, description="Defaults to the email or the phone.")
    email: str | None = None
    phone: str | None = strawberry.field(
        default=None, description="Any common format; stored as E.164 (the workspace's default region)."
    )
    company: str | None = None
    position: str | None = None
    notes: str | None = None
    tags: list[str] | None = None
    custom: JSON | None = strawberry.field(
        default=None, description="Values of the workspace's custom fields, by key (see `leadSettings`)."
    )
    source: str | None = strawberry.field(default=None, description="Where the lead came from, in words.")
    source_id: strawberry.ID | None = None
    channel: Channel | None = None
    utm: UtmInput | None = None
    owner_id: strawberry.ID | None = strawberry.field(
        default=None, description="A rep's leads are their own; only a head of sales or admin hands one to a rep."
    )
    idempotency_key: str | None = strawberry.field(default=None, description=IDEMPOTENCY_KEY)


@strawberry.type
class CreateLeadPayload:
    lead: Lead | None = strawberry.field(
        description="The created lead, or the known lead the submission merged into; null on userErrors, and "
        "when the known lead is another rep's (see `notice`)."
    )
    outcome: CaptureOutcome | None = strawberry.field(
        description="CREATED, or MERGED when the email or phone was known: the submission was added to that lead."
    )
    notice: str | None = strawberry.field(
        description="Set when the submission merged into a lead you may not see (another rep's)."
    )
    user_errors: list[UserError]


@strawberry.input(description="Only the fields given change; null clears a field (a lead keeps its name).")
class UpdateLeadInput:
    id: strawberry.ID
    version: int | None = strawberry.field(default=None, description=VERSION)
    name: str | None = strawberry.UNSET
    email: str | None = strawberry.UNSET
    phone: str | None = strawberry.UNSET
    company: str | None = strawberry.UNSET
    position: str | None = strawberry.UNSET
    notes: str | None = strawberry.UNSET
    tags: list[str] | None = strawberry.field(default=strawberry.UNSET, description="Replaces the tags.")
    custom: JSON | None = strawberry.field(
        default=strawberry.UNSET,
        description="Merged key by key: keys given replace, keys given as null are removed, the rest stay.",
    )
    owner_id: strawberry.ID | None = strawberry.field(
        default=strawberry.UNSET, description="Handing a lead to a rep (or null: to nobody) is a head of sales' call."
    )


@strawberry.type
class UpdateLeadPayload:
    lead: Lead | None
    user_errors: list[UserError]


@strawberry.input
class ChangeLeadStatusInput:
    id: strawberry.ID
    status: LeadStatus
    reason: str | None = strawberry.field(
        default=None, description="Required to disqualify: one of the workspace's disqualification reasons."
    )
    comment: str | None = None
    version: int | None = strawberry.field(default=None, description=VERSION)
    idempotency_key: str | None = strawberry.field(default=None, description=IDEMPOTENCY_KEY)


@strawberry.type
class ChangeLeadStatusPayload:
    lead: Lead | None
    user_errors: list[UserError]


@strawberry.input
class MergeLeadsInput:
    survivor_id: strawberry.ID = strawberry.field(description="The lead that stays and takes what it lacks.")
    other_id: strawberry.ID = strawberry.field(description="The lead folded in; it becomes MERGED.")
    idempotency_key: str | None = strawberry.field(default=None, description=IDEMPOTENCY_KEY)


@strawberry.type
class MergeLeadsPayload:
    lead: Lead | None = strawberry.field(description="The survivor, after the merge.")
    user_errors: list[UserError]


@strawberry.input(description="Every filter given must hold.")
class LeadFilter:
    status: list[LeadStatus] | None = strawberry.field(
        default=None, description="Any of these statuses; MERGED leads only when asked for."
    )
    owner_id: strawberry.ID | None = None
    unassigned: bool | None = strawberry.field(default=None, description="Only leads nobody owns yet.")
    source_id: strawberry.ID | None = None
    channel: Channel | None = None
    tag: str | None = None
    created_after: datetime | None = strawberry.field(default=None, description="Inclusive; with a UTC offset.")
    created_before: datetime | None = strawberry.field(default=None, description="Exclusive; with a UTC offset.")
    search: str | None = strawberry.field(
        default=None, description="Part of the name, email, phone or company; at least 3 characters."
    )
    grade: list[ScoreGrade] | None = strawberry.field(
        default=None, description="Any of these stored grades; a lead not scored yet matches none."
    )
    temperature: list[ScoreTemperature] | None = strawberry.field(
        default=None, description="Any of these stored temperatures."
    )

    def query(self, sort: LeadSort) -> LeadQuery:
        return LeadQuery(
            status=[s.value for s in self.status] if self.status else None,
            owner_id=self.owner_id,
            unassigned=bool(self.unassigned),
            source_id=self.source_id,
            channel=self.channel.value if self.channel else None,
            tag=self.tag,
            created_after=self.created_after,
            created_before=self.created_before,
            q=self.search,
            grade=[g.value for g in self.grade] if self.grade else None,
            temperature=[t.value for t in self.temperature] if self.temperature else None,
            sort=sort.value,
        )


# `GET /v1/leads` parameters and the `leads` arguments they come from, for error messages.
LEADS_ARGUMENTS = {
    "status": "filter.status",
    "owner_id": "filter.ownerId",
    "unassigned": "filter.unassigned",
    "source_id": "filter.sourceId",
    "channel": "filter.channel",
    "tag": "filter.tag",
    "created_after": "filter.createdAfter",
    "created_before": "filter.createdBefore",
    "q": "filter.search",
    "grade": "filter.grade",
    "temperature": "filter.temperature",
    "sort": "sort",
}


# ---- resolvers --------------------------------------------------------------------------------------------


async def resolve_lead(info: Info, id: strawberry.ID) -> Lead | None:
    lead_id = parse_uuid(id)
    if lead_id is None:
        # Lead ids are UUIDs: anything else names no lead, the same answer as an unknown UUID.
        return None
    record = await info.context.loaders.lead.load(lead_id)
    return Lead.from_record(record) if record else None


async def resolve_leads(
    info: Info,
    filter: LeadFilter | None = None,
    sort: LeadSort = LeadSort.CREATED_AT_DESC,
    first: int | None = DEFAULT_FIRST,
    after: str | None = None,
) -> LeadConnection:
    client = info.context.clients.leads
    query = (filter or LeadFilter()).query(sort)

    async def fetch(limit: int, cursor: str | None) -> tuple[Sequence[LeadRecord], str | None]:
        try:
            page = await client.page(limit=limit, cursor=cursor, query=query)
        except UpstreamRejected as rejected:
            # The limit is ours and always in range: a refused cursor was forged (or made for another sort).
            refuse_query(rejected, LEADS_ARGUMENTS)
        return page.items, page.next_cursor

    result = await window(fetch, first=DEFAULT_FIRST if first is None else first, after=after)
    return LeadConnection(
        edges=[LeadEdge(cursor=cursor, node=Lead.from_record(record)) for cursor, record in result.edges],
        page_info=PageInfo(has_next_page=result.has_next_page, end_cursor=result.end_cursor),
    )


async def create_lead(info: Info, input: CreateLeadInput) -> CreateLeadPayload:
    body = given(
        {
            "name": input.name,
            "email": input.email,
            "phone": input.phone,
            "company": input.company,
            "position": input.position,
            "notes": input.notes,
            "tags": input.tags,
            "custom": input.custom,
            "source": input.source,
            "source_id": input.source_id,
            "channel": input.channel.value if input.channel else None,
            "utm": given(vars(input.utm)) if input.utm else None,
            "owner_id": input.owner_id,
        }
    )
    try:
        captured = await info.context.clients.leads.create(body, idempotency_key=input.idempotency_key)
    except UpstreamRejected as rejected:
        # The only refusal that is not about a field's value: a rep naming someone else as the owner.
        errors = user_errors("input", rejected, fields={403: "owner_id"})
        return CreateLeadPayload(lead=None, outcome=None, notice=None, user_errors=errors)
    return CreateLeadPayload(
        lead=Lead.from_record(captured.lead) if captured.lead else None,
        outcome=CaptureOutcome(captured.outcome),
        notice=captured.notice,
        user_errors=[],
    )


async def update_lead(info: Info, input: UpdateLeadInput) -> UpdateLeadPayload:
    lead_id = parse_uuid(input.id)
    if lead_id is None:
        return UpdateLeadPayload(lead=None, user_errors=[no_such("input", "id", "lead", input.id)])
    changes = sent(
        {
            "name": input.name,
            "email": input.email,
            "phone": input.phone,
            "company": input.company,
            "position": input.position,
            "notes": input.notes,
            "tags": input.tags,
            "custom": input.custom,
            "owner_id": input.owner_id,
        }
    )
    try:
        record = await info.context.clients.leads.update(lead_id, changes, version=input.version)
    except UpstreamRejected as rejected:
        errors = user_errors("input", rejected, fields={404: "id", 403: "owner_id"})
        return UpdateLeadPayload(lead=None, user_errors=errors)
    return UpdateLeadPayload(lead=Lead.from_record(record), user_errors=[])


async def change_lead_status(info: Info, input: ChangeLeadStatusInput) -> ChangeLeadStatusPayload:
    lead_id = parse_uuid(input.id)
    if lead_id is None:
        return ChangeLeadStatusPayload(lead=None, user_errors=[no_such("input", "id", "lead", input.id)])
    change = given({"status": input.status.value, "reason": input.reason, "comment": input.comment})
    try:
        record = await info.context.clients.leads.change_status(
            lead_id, change, version=input.version, idempotency_key=input.idempotency_key
        )
    except UpstreamRejected as rejected:
        # 409 is a move the lifecycle does not allow: the message lists the allowed ones.
        errors = user_errors("input", rejected, fields={404: "id", 409: "status"})
        return ChangeLeadStatusPayload(lead=None, user_errors=errors)
    return ChangeLeadStatusPayload(lead=Lead.from_record(record), user_errors=[])


async def merge_leads(info: Info, input: MergeLeadsInput) -> MergeLeadsPayload:
    given = {"survivorId": input.survivor_id, "otherId": input.other_id}
    parsed = {field: parse_uuid(value) for field, value in given.items()}
    # Both are read first (one batched call) so that an unknown one is named: the service's 404 does not say which.
    records = await info.context.loaders.lead.load_many([lead_id for lead_id in parsed.values() if lead_id])
    known = {record.id for record in records if record is not None}
    missing = [
        no_such("input", field, "lead", given[field]) for field, lead_id in parsed.items() if lead_id not in known
    ]
    survivor_id, other_id = parsed["survivorId"], parsed["otherId"]
    if missing or survivor_id is None or other_id is None:
        return MergeLeadsPayload(lead=None, user_errors=missing)
    try:
        record = await info.context.clients.leads.merge(survivor_id, other_id, idempotency_key=input.idempotency_key)
    except UpstreamRejected as rejected:
        errors = user_errors("input", rejected, renames={"other_lead_id": "other_id"})
        return MergeLeadsPayload(lead=None, user_errors=errors)
    return MergeLeadsPayload(lead=Lead.from_record(record), user_errors=[])


# Resolvers are passed in rather than decorated: the decorator-with-arguments form is untyped for mypy.
@strawberry.type
class LeadsQuery:
    lead: Lead | None = strawberry.field(
        resolver=resolve_lead,
        description="The lead with this id, or null if it does not exist or is not yours to see.",
    )
    # Nullable so that, with the leads service down, the other root fields still come back.
    leads: LeadConnection | None = strawberry.field(
        resolver=resolve_leads,
        description=f"Leads you may see, newest first unless `sort` says otherwise. `first` is at most {MAX_FIRST}.",
    )


@strawberry.type
class LeadsMutation:
    create_lead: CreateLeadPayload = strawberry.mutation(
        resolver=create_lead,
        description=(
            "Takes a lead in. A known email or phone merges the submission into that lead (outcome MERGED) "
            "instead of creating a twin; invalid input comes back as userErrors, not as errors."
        ),
    )
    update_lead: UpdateLeadPayload = strawberry.mutation(
        resolver=update_lead, description="Changes the fields given; an email or phone another lead has is CONFLICT."
    )
    change_lead_status: ChangeLeadStatusPayload = strawberry.mutation(
        resolver=change_lead_status,
        description="Moves the lead along its lifecycle; a move it does not allow is CONFLICT.",
    )
    merge_leads: MergeLeadsPayload = strawberry.mutation(
        resolver=merge_leads,
        description="Folds `otherId` into `survivorId`: the survivor takes what it lacks, the other becomes MERGED.",
    )
