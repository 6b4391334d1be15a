"""The leads service's tables, in its own `leads` schema and MetaData.

leads                 one row per person or company to sell to; merged-away leads stay, pointing at the survivor
lead_identities       the normalized email and phone numbers each lead owns: the dedupe key, unique per workspace
lead_touches          every time a lead reached us (API, batch, webhook, import) with its source and UTM tags
lead_status_changes   the lifecycle: who moved a lead from which status to which, when, and why
lead_merges           the audit of hand merges: which fields the survivor took from which lead
lead_settings         per-workspace settings: phone region, disqualification reasons, custom fields, required BANT
lead_qualifications   each lead's qualification answers (BANT: budget, authority, need, timeline) and notes
scoring_models        per-workspace scoring model: fit and engagement rules, half-life, grade and temperature thresholds
sources               inbound webhook endpoints an admin configured: channel, field mapping, secret
inbound_requests      every raw webhook request, stored before it is answered; quarantined ones keep the reason
imports               CSV imports: the file, its mapping and the progress of the background run
import_rejections     the rows an import could not take, with the reasons (the downloadable file)
members               the sales team: each person's role in the process, team, territories, hours and capacity
teams                 groups of members, with their head of sales
territories           the places a member covers: countries, regions, cities, postal-code prefixes
assignment_rules      distribution: which leads go to whom, by which method, in evaluation order
lead_assignments      every distribution decision: who got a lead (or why it waits), by which rule, and why
lead_scores           each lead's stored score, grade, temperature and conversion probability (for filters and rules)
score_queue           leads whose stored score is out of date; the ScoringWorker recomputes them
rescore_jobs          background rescoring of a whole workspace (a model changed, nightly decay), with progress
lead_outcomes         what became of each lead's deals (deal.won / deal.lost): the learned model's history
conversion_models     each trained probability-of-conversion model: coefficients, quality (AUC, calibration)
conversion_requests   workspaces whose conversion model should be retrained (on demand, or new outcomes)
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ARRAY,
    CheckConstraint,
    Column,
    Computed,
    Date,
    DateTime,
    Double,
    Index,
    LargeBinary,
    MetaData,
    Numeric,
    Text,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from services.common.event_tables import add_event_tables
from services.common.idempotency import add_idempotency_table

SCHEMA = "leads"
metadata = MetaData(schema=SCHEMA)


class LeadsTable(SQLModel, registry=registry(metadata=metadata)):
    """Base of this service's tables: they land in its MetaData, not SQLModel's global one."""


def _now() -> Any:
    return Field(sa_column=Column(DateTime(timezone=True), nullable=False, server_default=text("now()")))


def _jsonb(default: str) -> Any:
    return Field(sa_column=Column(JSONB, nullable=False, server_default=text(f"'{default}'::jsonb")))


def _text_array() -> Any:
    return Field(sa_column=Column(ARRAY(Text), nullable=False, server_default=text("'{}'::text[]")))


class Lead(LeadsTable, table=True):
    __tablename__ = "leads"
    __table_args__ = (
        # Each list filter has an index that also yields the newest-first order, so a filtered first page
        # reads only the rows it returns (docs/leads.md, "Finding leads").
        Index("ix_leads_owner", "workspace_id", "owner_id", "id"),
        Index("ix_leads_status", "workspace_id", "status", "id"),
        Index("ix_leads_source", "workspace_id", "source_id", "id"),
        Index("ix_leads_channel", "workspace_id", "channel", "id"),
        Index("ix_leads_updated", "workspace_id", "updated_at", "id"),
        # Tags and free-text search: GIN with workspace_id first (btree_gin), trigrams for substrings.
        Index("ix_leads_tags", "workspace_id", "tags", postgresql_using="gin"),
        Index(
            "ix_leads_search", "workspace_id", "search_text", postgresql_using="gin",
            postgresql_ops={"search_text": "public.gin_trgm_ops"},
        ),
        # The AssignmentWorker's queue and the queued leads a roster change sends back to it: only those rows,
        # so it stays small however many leads there are.
        Index(
            "ix_leads_assignment", "workspace_id", "id",
            postgresql_where=text("assignment_state IN ('pending', 'queued')"),
        ),
    )

    workspace_id: uuid.UUID = Field(primary_key=True)
    id: uuid.UUID = Field(primary_key=True)
    name: str
    email: str | None = None
    phone: str | None = None
    company: str | None = None
    position: str | None = None
    notes: str | None = None
    tags: list[str] = _text_array()
    custom: dict[str, Any] = _jsonb("{}")
    # The first touch: where the lead came from. Later touches are in lead_touches.
    source: str | None = None
    source_id: uuid.UUID | None = None
    channel: str | None = None
    utm: dict[str, Any] = _jsonb("{}")
    owner_id: uuid.UUID | None = None
    # The hunter who qualified the lead, kept when a closer becomes its owner.
    hunter_id: uuid.UUID | None = None
    # Distribution (services.leads.distribution): pending (the AssignmentWorker will assign it), queued (a rule
    # matched but nobody could take it: assigned when someone frees up), assigned, unmatched (no rule matched).
    # Capture writes 'assigned' for a lead taken in with an owner; the default is the rest.
    assignment_state: str = Field(default="pending", sa_column_kwargs={"server_default": "pending"})
    # The rule the lead is queued on (or was last assigned by).
    assignment_rule_id: uuid.UUID | None = None
    status: str = Field(default="new", sa_column_kwargs={"server_default": "new"})
    disqualification_reason: str | None = None
    # Set when a hand merge folded this lead into another; such a lead is read-only.
    merged_into_id: uuid.UUID | None = None
    # Lower-cased name, email, phone and company, kept by the database for the trigram search. Migration 0004
    # gives it a 1,000-bucket histogram, so the planner can tell a common search term from a rare one.
    search_text: str = Field(
        sa_column=Column(
            Text,
            Computed(
                "lower(name || ' ' || coalesce(email, '') || ' ' || coalesce(phone, '') || ' '"
                " || coalesce(company, ''))",
                persisted=True,
            ),
            nullable=False,
        )
    )
    created_by: uuid.UUID
    created_at: datetime = _now()
    updated_at: datetime = _now()
    status_changed_at: datetime = _now()
    version: int = Field(default=1, sa_column_kwargs={"server_default": "1"})


class LeadIdentity(LeadsTable, table=True):
    __tablename__ = "lead_identities"
    __table_args__ = (Index("ix_lead_identities_lead", "workspace_id", "lead_id"),)

    workspace_id: uuid.UUID = Field(primary_key=True)
    kind: str = Field(primary_key=True)  # email | phone
    value: str = Field(primary_key=True)
    lead_id: uuid.UUID


class LeadTouch(LeadsTable, table=True):
    __tablename__ = "lead_touches"
    __table_args__ = (Index("ix_lead_touches_lead", "workspace_id", "lead_id", "id"),)

    workspace_id: uuid.UUID = Field(primary_key=True)
    id: uuid.UUID = Field(primary_key=True)
    lead_id: uuid.UUID
    via: str  # api | batch | webhook | import
    source: str | None = None
    source_id: uuid.UUID | None = None
    channel: str | None = None
    utm: dict[str, Any] = _jsonb("{}")
    # What this touch brought, normalized: the audit of where each value came from.
    data: dict[str, Any] = _jsonb("{}")
    # The inbound request or import this touch came from, if any.
    origin_id: uuid.UUID | None = None
    touched_at: datetime = _now()


class LeadStatusChange(LeadsTable, table=True):
    __tablename__ = "lead_status_changes"
    __table_args__ = (Index("ix_lead_status_changes_lead", "workspace_id", "lead_id", "id"),)

    workspace_id: uuid.UUID = Field(primary_key=True)
    id: uuid.UUID = Field(primary_key=True)
    lead_id: uuid.UUID
    from_status: str
    to_status: str
    reason: str | None = None
    comment: str | None = None
    changed_by: uuid.UUID
    changed_at: datetime = _now()


class LeadMerge(LeadsTable, table=True):
    __tablename__ = "lead_merges"
    __table_args__ = (
        Index("ix_lead_merges_survivor", "workspace_id", "survivor_id", "id"),
        Index("ix_lead_merges_merged", "workspace_id", "merged_id"),
    )

    workspace_id: uuid.UUID = Field(primary_key=True)
    id: uuid.UUID = Field(primary_key=True)
    survivor_id: uuid.UUID
    merged_id: uuid.UUID
    # field -> {"value": ..., "from": lead id}: what the survivor holds after the merge and whose it was.
    fields: dict[str, Any] = _jsonb("{}")
    merged_by: uuid.UUID
    merged_at: datetime = _now()


class LeadSettings(LeadsTable, table=True):
    __tablename__ = "lead_settings"

    workspace_id: uuid.UUID = Field(primary_key=True)
    # ISO 3166 region used to read phone numbers written without a country code; null: they need a "+".
    default_region: str | None = None
    disqualification_reasons: list[str] = Field(
        sa_column=Column(
            ARRAY(Text),
            nullable=False,
            server_default=text("'{no_budget,no_need,no_authority,bad_timing,competitor,unreachable,spam}'::text[]"),
        )
    )
    # [{"key", "label", "type", "required", "options"}]: the workspace's custom lead fields.
    custom_fields: list[dict[str, Any]] = Field(
        sa_column=Column(JSONB, nullable=False, server_default=text("'[]'::jsonb"))
    )
    # The BANT answers (budget, authority, need, timeline) a lead needs before it can be qualified.
    qualification_required: list[str] = Field(
        sa_column=Column(ARRAY(Text), nullable=False, server_default=text("'{budget,need}'::text[]"))
    )
    updated_at: datetime = _now()
    version: int = Field(default=1, sa_column_kwargs={"server_default": "1"})


class LeadQualification(LeadsTable, table=True):
    """A lead's qualification (BANT), saved piece by piece; POST /v1/leads/{id}/qualify checks it."""

    __tablename__ = "lead_qualifications"
    __table_args__ = (
        # Money is an amount and its currency, or neither (services.common.money).
        CheckConstraint(
            "(budget_amount IS NULL) = (budget_currency IS NULL)", name="ck_lead_qualifications_budget"
        ),
    )

    workspace_id: uuid.UUID = Field(primary_key=True)
    lead_id: uuid.UUID = Field(primary_key=True)
    # Budget: numeric keeps the amount exact, in the currency's decimal places.
    budget_amount: Decimal | None = Field(default=None, sa_column=Column(Numeric, nullable=True))
    budget_currency: str | None = None
    budget_confirmed: bool = Field(default=False, sa_column_kwargs={"server_default": text("false")})
    # Authority: who decides (name, position), and whether it is our contact.
    decision_maker: str | None = None
    is_decision_maker: bool = Field(default=False, sa_column_kwargs={"server_default": text("false")})
    # Need: the problem the client wants solved, and the product codes it is about.
    need: str | None = None
    products: list[str] = _text_array()
    # Timeline: when the client expects to decide.
    timeline: date | None = Field(default=None, sa_column=Column(Date, nullable=True))
    notes: str | None = None
    updated_by: uuid.UUID
    updated_at: datetime = _now()
    version: int = Field(default=1, sa_column_kwargs={"server_default": "1"})


class ScoringModel(LeadsTable, table=True):
    """A workspace's scoring model (services.leads.scoring); a workspace without a row scores by the default."""

    __tablename__ = "scoring_models"

    workspace_id: uuid.UUID = Field(primary_key=True)
    # [{"label", "attribute", "op", "value", "points"}]: points for what the lead is.
    fit_rules: list[dict[str, Any]] = Field(sa_column=Column(JSONB, nullable=False, server_default=text("'[]'::jsonb")))
    # [{"label", "event", "points"}]: points for what the lead did, decaying with half_life_days.
    engagement_rules: list[dict[str, Any]] = Field(
        sa_column=Column(JSONB, nullable=False, server_default=text("'[]'::jsonb"))
    )
    half_life_days: float = Field(sa_column=Column(Double, nullable=False, server_default=text("14")))
    # {"a", "b", "c"}: the lowest score of each grade; {"hot", "warm"}: of each temperature.
    grades: dict[str, Any] = _jsonb('{"a": 75, "b": 50, "c": 25}')
    temperature: dict[str, Any] = _jsonb('{"hot": 70, "warm": 40}')
    updated_by: uuid.UUID | None = None
    updated_at: datetime = _now()
    version: int = Field(default=1, sa_column_kwargs={"server_default": "1"})


class Source(LeadsTable, table=True):
    __tablename__ = "sources"
    __table_args__ = (
        Index("uq_sources_name", "workspace_id", "name", unique=True),
        # Inbound requests name only the source id (the URL carries no workspace). Sources are few and
        # small: a reference table when data is distributed (docs/architecture.md, "Scale-out").
        Index("uq_sources_id", "id", unique=True),
    )

    workspace_id: uuid.UUID = Field(primary_key=True)
    id: uuid.UUID = Field(primary_key=True)
    name: str
    channel: str
    # lead field -> where to find it in the payload (docs/leads.md, "Field mapping").
    mapping: dict[str, Any] = _jsonb("{}")
    # Standard Webhooks signing secret ("whsec_..."), needed in clear to verify signatures.
    secret: str
    # sha256 of the plain-form token, for senders that cannot sign (HTML forms); shown once at creation.
    token_hash: str
    active: bool = Field(default=True, sa_column_kwargs={"server_default": text("true")})
    created_by: uuid.UUID
    created_at: datetime = _now()
    updated_at: datetime = _now()
    version: int = Field(default=1, sa_column_kwargs={"server_default": "1"})


class InboundRequest(LeadsTable, table=True):
    __tablename__ = "inbound_requests"
    __table_args__ = (
        # A message id is taken once per source: a replayed delivery is recognised, not processed again.
        Index("uq_inbound_requests_message", "workspace_id", "source_id", "message_id", unique=True),
        # The worker's queue: only pending rows, so it stays small however many requests were received.
        Index(
            "ix_inbound_requests_pending", "workspace_id", "id",
            postgresql_where=text("status = 'pending'"),
        ),
        Index("ix_inbound_requests_status", "workspace_id", "status", "source_id", "id"),
    )

    workspace_id: uuid.UUID = Field(primary_key=True)
    id: uuid.UUID = Field(primary_key=True)
    source_id: uuid.UUID
    message_id: str
    content_type: str
    body: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    # The request headers worth keeping (user agent, sender's ids), never the secret-bearing ones.
    headers: dict[str, Any] = _jsonb("{}")
    # pending | processed | quarantined
    status: str = Field(default="pending", sa_column_kwargs={"server_default": "pending"})
    # Why it is quarantined: [{"field", "code", "message"}].
    errors: list[dict[str, Any]] = Field(sa_column=Column(JSONB, nullable=False, server_default=text("'[]'::jsonb")))
    attempts: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    lead_id: uuid.UUID | None = None
    outcome: str | None = None  # created | merged
    received_at: datetime = _now()
    processed_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))


class Import(LeadsTable, table=True):
    __tablename__ = "imports"
    __table_args__ = (
        Index("ix_imports_pending", "workspace_id", "id", postgresql_where=text("status IN ('pending', 'running')")),
    )

    workspace_id: uuid.UUID = Field(primary_key=True)
    id: uuid.UUID = Field(primary_key=True)
    filename: str | None = None
    # pending | running | done | failed
    status: str = Field(default="pending", sa_column_kwargs={"server_default": "pending"})
    encoding: str
    delimiter: str
    # lead field -> CSV column header, and what every row gets (source, channel, owner, tags).
    mapping: dict[str, Any] = _jsonb("{}")
    defaults: dict[str, Any] = _jsonb("{}")
    content: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    total_rows: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    rows_done: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    created: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    merged: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    rejected: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    error: str | None = None
    created_by: uuid.UUID
    created_at: datetime = _now()
    started_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    finished_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))


class ImportRejection(LeadsTable, table=True):
    __tablename__ = "import_rejections"

    workspace_id: uuid.UUID = Field(primary_key=True)
    import_id: uuid.UUID = Field(primary_key=True)
    row_number: int = Field(primary_key=True)
    # The row as it was in the file, so it can be fixed and imported again.
    raw: list[str] = _text_array()
    errors: list[dict[str, Any]] = Field(sa_column=Column(JSONB, nullable=False, server_default=text("'[]'::jsonb")))


# A member's working hours unless they say otherwise: Monday to Friday, 09:00-18:00 local time.
DEFAULT_WORKING_HOURS_JSON = (
    '{"mon": [["09:00", "18:00"]], "tue": [["09:00", "18:00"]], "wed": [["09:00", "18:00"]], '
    '"thu": [["09:00", "18:00"]], "fri": [["09:00", "18:00"]], "sat": [], "sun": []}'
)


class Member(LeadsTable, table=True):
    """A person of the sales team. The id is the user id their tokens carry (`sub`); members are never
    deleted (someone who left is `inactive` and keeps their history)."""

    __tablename__ = "members"
    __table_args__ = (
        # GET /v1/members?team_id= and "who is still in this team" before a team is deleted.
        Index("ix_members_team", "workspace_id", "team_id", "id"),
        # "Who covers this territory" (territory_ids @> ARRAY[...]), before a territory is deleted (btree_gin).
        Index("ix_members_territories", "workspace_id", "territory_ids", postgresql_using="gin"),
    )

    workspace_id: uuid.UUID = Field(primary_key=True)
    id: uuid.UUID = Field(primary_key=True)
    name: str
    email: str | None = None
    # hunter | closer | farmer | head_of_sales | admin: the role in the sales process, not the token's role.
    role: str
    team_id: uuid.UUID | None = None
    territory_ids: list[uuid.UUID] = Field(
        sa_column=Column(ARRAY(Uuid), nullable=False, server_default=text("'{}'::uuid[]"))
    )
    # Product codes the member sells and the lead channels they cover.
    products: list[str] = _text_array()
    channels: list[str] = _text_array()
    time_zone: str = Field(default="UTC", sa_column_kwargs={"server_default": "UTC"})
    # {"mon": [["09:00", "18:00"]], ..., "sun": []}: [start, end) intervals in the member's local time.
    working_hours: dict[str, Any] = Field(
        sa_column=Column(JSONB, nullable=False, server_default=text(f"'{DEFAULT_WORKING_HOURS_JSON}'::jsonb"))
    )
    # The most open leads the member takes; null: no limit.
    capacity: int | None = None
    # active | away | inactive
    status: str = Field(default="active", sa_column_kwargs={"server_default": "active"})
    away_until: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    created_at: datetime = _now()
    updated_at: datetime = _now()
    version: int = Field(default=1, sa_column_kwargs={"server_default": "1"})


class Team(LeadsTable, table=True):
    __tablename__ = "teams"
    # Names are unique in the workspace whatever their case: "Enterprise" and "enterprise" are one team.
    __table_args__ = (Index("uq_teams_name", "workspace_id", text("lower(name)"), unique=True),)

    workspace_id: uuid.UUID = Field(primary_key=True)
    id: uuid.UUID = Field(primary_key=True)
    name: str
    description: str | None = None
    head_id: uuid.UUID | None = None
    created_at: datetime = _now()
    updated_at: datetime = _now()
    version: int = Field(default=1, sa_column_kwargs={"server_default": "1"})


class Territory(LeadsTable, table=True):
    __tablename__ = "territories"
    __table_args__ = (Index("uq_territories_name", "workspace_id", text("lower(name)"), unique=True),)

    workspace_id: uuid.UUID = Field(primary_key=True)
    id: uuid.UUID = Field(primary_key=True)
    name: str
    # Each non-empty list must match a place for the territory to cover it (roster.covers); ISO 3166-1
    # alpha-2 codes, upper-cased; postal prefixes upper-cased.
    countries: list[str] = _text_array()
    regions: list[str] = _text_array()
    cities: list[str] = _text_array()
    postal_prefixes: list[str] = _text_array()
    created_at: datetime = _now()
    updated_at: datetime = _now()
    version: int = Field(default=1, sa_column_kwargs={"server_default": "1"})


class AssignmentRule(LeadsTable, table=True):
    """Which leads go to whom: conditions on the lead, a pool of members and a method. Evaluated in `position`
    order per stage; the first rule whose conditions match decides. The round-robin state lives on the row,
    which the assigner locks while it picks, so replicas never hand out the same turn."""

    __tablename__ = "assignment_rules"
    __table_args__ = (Index("ix_assignment_rules_position", "workspace_id", "stage", "position", "id"),)

    workspace_id: uuid.UUID = Field(primary_key=True)
    id: uuid.UUID = Field(primary_key=True)
    name: str
    position: int
    active: bool = Field(default=True, sa_column_kwargs={"server_default": text("true")})
    # new (leads to work: hunters) | qualified (qualified leads: closers)
    stage: str
    # {"channels": [...], "source_ids": [...], "tags": [...], "countries": [...], "territory_ids": [...],
    #  "products": [...]}: each list present must match the lead.
    conditions: dict[str, Any] = _jsonb("{}")
    # round_robin | weighted_round_robin | least_loaded | fixed
    method: str
    team_id: uuid.UUID | None = None
    member_ids: list[uuid.UUID] | None = Field(default=None, sa_column=Column(ARRAY(Uuid), nullable=True))
    # member id -> weight (weighted round robin); members without one weigh 1.
    weights: dict[str, Any] = _jsonb("{}")
    only_working_hours: bool = Field(default=False, sa_column_kwargs={"server_default": text("false")})
    # Round robin: the member who got the last turn; weighted: member id -> current weight.
    rr_last_member_id: uuid.UUID | None = None
    rr_weights: dict[str, Any] = _jsonb("{}")
    created_at: datetime = _now()
    updated_at: datetime = _now()
    version: int = Field(default=1, sa_column_kwargs={"server_default": "1"})


class LeadAssignment(LeadsTable, table=True):
    """One distribution decision: the member a lead went to (null: it waits in the rule's queue), why, and
    whom the rule skipped. Manual reassignments (PATCH owner_id) are recorded too, with method `manual`."""

    __tablename__ = "lead_assignments"
    __table_args__ = (Index("ix_lead_assignments_lead", "workspace_id", "lead_id", "id"),)

    workspace_id: uuid.UUID = Field(primary_key=True)
    id: uuid.UUID = Field(primary_key=True)
    lead_id: uuid.UUID
    member_id: uuid.UUID | None = None
    previous_owner_id: uuid.UUID | None = None
    rule_id: uuid.UUID | None = None
    stage: str
    method: str
    reason: str
    # [{"member_id", "why"}]: the members the rule passed over.
    skipped: list[dict[str, Any]] = Field(sa_column=Column(JSONB, nullable=False, server_default=text("'[]'::jsonb")))
    assigned_at: datetime = _now()
    # Who decided by hand; null: distribution did.
    assigned_by: uuid.UUID | None = None


class LeadScore(LeadsTable, table=True):
    """A lead's score as last computed (services.leads.scoring), kept apart from `leads` so that rescoring a
    workspace rewrites this narrow row and not the lead with its many indexes. The breakdown is not stored:
    GET /v1/leads/{id}/score computes it when asked."""

    __tablename__ = "lead_scores"
    __table_args__ = (Index("ix_lead_scores_grade", "workspace_id", "grade", "lead_id"),)

    workspace_id: uuid.UUID = Field(primary_key=True)
    lead_id: uuid.UUID = Field(primary_key=True)
    score: int
    grade: str  # A | B | C | D
    temperature: str  # hot | warm | cold
    # The rule model's version it was computed with.
    model_version: int
    # The learned probability of conversion, when the workspace has a usable model (conversion_models).
    probability: float | None = Field(default=None, sa_column=Column(Double, nullable=True))
    conversion_model_id: uuid.UUID | None = None
    computed_at: datetime = _now()


class ScoreQueue(LeadsTable, table=True):
    """Leads whose stored score must be computed again: written in the transaction of the change (capture, an
    edit, qualification answers), consumed by the ScoringWorker with FOR UPDATE SKIP LOCKED."""

    __tablename__ = "score_queue"

    workspace_id: uuid.UUID = Field(primary_key=True)
    lead_id: uuid.UUID = Field(primary_key=True)
    queued_at: datetime = _now()


class RescoreJob(LeadsTable, table=True):
    """Rescoring every lead of a workspace in the background, chunk by chunk in lead id order; each chunk
    commits its scores with the checkpoint (`last_lead_id`) and the counters, so a restart resumes."""

    __tablename__ = "rescore_jobs"
    __table_args__ = (
        Index("ix_rescore_jobs_running", "workspace_id", "id", postgresql_where=text("state = 'running'")),
        Index("ix_rescore_jobs_workspace", "workspace_id", "id"),
    )

    workspace_id: uuid.UUID = Field(primary_key=True)
    id: uuid.UUID = Field(primary_key=True)
    # model_changed | conversion_model_trained | nightly | requested
    reason: str
    # running | done | superseded (a newer job of the workspace took over) | failed
    state: str = Field(default="running", sa_column_kwargs={"server_default": "running"})
    model_version: int
    total: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    done: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    # Leads whose grade moved (each published lead.scored).
    changed: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    last_lead_id: uuid.UUID | None = None
    error: str | None = None
    created_by: uuid.UUID | None = None
    created_at: datetime = _now()
    updated_at: datetime = _now()
    finished_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))


class LeadOutcome(LeadsTable, table=True):
    """What became of a deal opened from a lead, from the deals service's deal.won and deal.lost: the history
    the learned conversion model trains on. A deal's later event replaces its earlier one (reopened, then won)."""

    __tablename__ = "lead_outcomes"
    __table_args__ = (Index("ix_lead_outcomes_lead", "workspace_id", "lead_id"),)

    workspace_id: uuid.UUID = Field(primary_key=True)
    deal_id: uuid.UUID = Field(primary_key=True)
    lead_id: uuid.UUID
    outcome: str  # won | lost
    amount: Decimal | None = Field(default=None, sa_column=Column(Numeric, nullable=True))
    currency: str | None = None
    reason: str | None = None
    decided_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    event_id: uuid.UUID
    received_at: datetime = _now()


class ConversionModel(LeadsTable, table=True):
    """One training of a workspace's probability-of-conversion model; the newest row is the current one. The
    model is its coefficients (feature name -> weight), so predicting needs no pickled object."""

    __tablename__ = "conversion_models"

    workspace_id: uuid.UUID = Field(primary_key=True)
    id: uuid.UUID = Field(primary_key=True)
    # active (used beside the rules) | insufficient_history | no_signal (trained, but no better than chance)
    state: str
    reason: str
    examples: int
    positives: int
    auc: float | None = Field(default=None, sa_column=Column(Double, nullable=True))
    # [{"from", "to", "predicted", "observed", "count"}]: held-out predictions in probability buckets.
    calibration: list[dict[str, Any]] = Field(
        sa_column=Column(JSONB, nullable=False, server_default=text("'[]'::jsonb"))
    )
    intercept: float = Field(default=0.0, sa_column=Column(Double, nullable=False, server_default=text("0")))
    coefficients: dict[str, Any] = _jsonb("{}")
    # How it was trained: regularization, folds, feature counts, library versions.
    params: dict[str, Any] = _jsonb("{}")
    trained_by: uuid.UUID | None = None
    trained_at: datetime = _now()


class ConversionRequest(LeadsTable, table=True):
    """A workspace whose conversion model should be trained again: asked by a person, or new outcomes arrived.
    The trainer takes requests with FOR UPDATE SKIP LOCKED and deletes them with its result."""

    __tablename__ = "conversion_requests"

    workspace_id: uuid.UUID = Field(primary_key=True)
    requested_at: datetime = _now()
    requested_by: uuid.UUID | None = None
    # Train no earlier than this (new outcomes wait for the nightly run; a person's request is now).
    due_at: datetime = _now()


add_event_tables(metadata)
add_idempotency_table(metadata)

