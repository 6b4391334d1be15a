"""Pipelines in GraphQL: the workspace's sales pipelines with their stages, each stage's playbook, and a
pipeline's check against good practice (`Pipeline.check`). Read-only here; they are changed through the deals
service's REST API (`/v1/pipelines`) until the gateway's pipeline mutations arrive with deals.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from enum import Enum

import strawberry

from gateway.clients.base import UpstreamRejected
from gateway.clients.pipelines import PipelineRecord, PlaybookRecord, StageRecord
from gateway.context import Info
from gateway.pagination import MAX_FIRST, window
from gateway.types.common import PageInfo, parse_uuid, refuse_query

DEFAULT_FIRST = 20


@strawberry.enum(description="Where in the sale a stage is: before the deal is won, while closing it, after it.")
class StagePhase(Enum):
    PRE_SALE = "pre_sale"
    CLOSING = "closing"
    POST_SALE = "post_sale"


@strawberry.enum(description="WARNING: against good practice; INFO: worth a look.")
class FindingSeverity(Enum):
    WARNING = "warning"
    INFO = "info"


@strawberry.enum
class PlaybookTaskType(Enum):
    CALL = "call"
    MEETING = "meeting"
    VISIT = "visit"
    EMAIL = "email"
    PROPOSAL = "proposal"
    FOLLOW_UP = "follow_up"
    OTHER = "other"


@strawberry.enum(description="Counted in the assignee's working hours.")
class DueUnit(Enum):
    WORKING_DAYS = "working_days"
    WORKING_HOURS = "working_hours"
    WORKING_MINUTES = "working_minutes"


@strawberry.type(description="A task the rep is to do in a stage: created by the tasks service as a deal enters it.")
class PlaybookStep:
    title: str
    task_type: PlaybookTaskType
    description: str | None
    due_in: int = strawberry.field(description="How long after the deal enters the stage the task is due.")
    due_unit: DueUnit
    assignee: str = strawberry.field(description="deal_owner, head_of_sales or role:<role>.")
    checkpoint: bool = strawberry.field(description="Missed: the head of sales is told.")


@strawberry.type(description="The script and steps of a stage; every saved version is kept.")
class Playbook:
    version: int = strawberry.field(description="0: the stage has no playbook yet.")
    script: str | None = strawberry.field(description="What the rep says and asks at this stage.")
    steps: list[PlaybookStep]
    created_at: datetime | None
    created_by: uuid.UUID | None = strawberry.field(description="Null for a starter playbook.")

    @classmethod
    def from_record(cls, record: PlaybookRecord) -> Playbook:
        return cls(
            version=record.version, script=record.script, created_at=record.created_at,
            created_by=record.created_by,
            steps=[
                PlaybookStep(
                    title=s.title, task_type=PlaybookTaskType(s.task_type), description=s.description,
                    due_in=s.due_in, due_unit=DueUnit(s.due_unit), assignee=s.assignee, checkpoint=s.checkpoint,
                )
                for s in record.steps
            ],
        )


async def resolve_playbook(root: Stage, info: Info) -> Playbook | None:
    try:
        record = await info.context.clients.pipelines.playbook(root.pipeline_id, root.id)
    except UpstreamRejected as rejected:
        if rejected.status == 404:
            return None
        refuse_query(rejected)
    return Playbook.from_record(record)


async def resolve_check(root: Pipeline, info: Info) -> list[PipelineFinding]:
    try:
        record = await info.context.clients.pipelines.check(root.id)
    except UpstreamRejected as rejected:
        refuse_query(rejected)
    return [
        PipelineFinding(code=f.code, severity=FindingSeverity(f.severity), stage_id=f.stage_id, message=f.message)
        for f in record.findings
    ]


@strawberry.type(description="A step of a pipeline: what ends it, what is done in it and what must be filled to leave.")
class Stage:
    id: uuid.UUID
    pipeline_id: strawberry.Private[uuid.UUID]
    position: int
    name: str
    expected_result: str | None = strawberry.field(description="The result that ends the stage.")
    required_actions: list[str]
    exit_criteria: list[str] = strawberry.field(description="Deal fields that must be filled to leave the stage.")
    probability: int = strawberry.field(description="The default win probability of a deal here, in %.")
    rotting_days: int | None = strawberry.field(description="A deal longer than this here is stuck.")
    phase: StagePhase
    is_won: bool
    is_completed: bool

    playbook: Playbook | None = strawberry.field(
        resolver=resolve_playbook, description="The stage's current playbook (version 0 when it has none)."
    )

    @classmethod
    def from_record(cls, pipeline_id: uuid.UUID, record: StageRecord) -> Stage:
        return cls(
            id=record.id, pipeline_id=pipeline_id, position=record.position, name=record.name,
            expected_result=record.expected_result, required_actions=record.required_actions,
            exit_criteria=record.exit_criteria, probability=record.probability, rotting_days=record.rotting_days,
            phase=StagePhase(record.phase), is_won=record.is_won, is_completed=record.is_completed,
        )


@strawberry.type(description="Something in a pipeline that goes against good practice, and why it matters.")
class PipelineFinding:
    code: str = strawberry.field(description="e.g. too_few_stages, probability_not_rising.")
    severity: FindingSeverity
    stage_id: uuid.UUID | None = strawberry.field(description="The stage it is about; null: the whole pipeline.")
    message: str


@strawberry.type(description="An ordered list of stages a deal goes through, from a new lead to a completed sale.")
class Pipeline:
    id: uuid.UUID
    name: str
    description: str | None
    audience: list[str] = strawberry.field(description="The client types, products or channels it is for.")
    is_default: bool = strawberry.field(description="New deals and qualified leads go here unless told otherwise.")
    position: int
    stages: list[Stage]
    created_at: datetime
    updated_at: datetime
    version: int

    check: list[PipelineFinding] = strawberry.field(
        resolver=resolve_check,
        description="The pipeline checked against good practice; saving never fails on these.",
    )

    @classmethod
    def from_record(cls, record: PipelineRecord) -> Pipeline:
        return cls(
            id=record.id, name=record.name, description=record.description, audience=record.audience,
            is_default=record.is_default, position=record.position,
            stages=[Stage.from_record(record.id, stage) for stage in record.stages],
            created_at=record.created_at, updated_at=record.updated_at, version=record.version,
        )


@strawberry.type
class PipelineEdge:
    cursor: str
    node: Pipeline


@strawberry.type
class PipelineConnection:
    edges: list[PipelineEdge]
    page_info: PageInfo


async def resolve_pipelines(
    info: Info, first: int | None = DEFAULT_FIRST, after: str | None = None
) -> PipelineConnection:
    client = info.context.clients.pipelines

    async def fetch(limit: int, cursor: str | None) -> tuple[Sequence[PipelineRecord], str | None]:
        try:
            page = await client.page(limit=limit, cursor=cursor)
        except UpstreamRejected as rejected:
            refuse_query(rejected)
        return page.items, page.next_cursor

    result = await window(fetch, first=DEFAULT_FIRST if first is None else first, after=after)
    return PipelineConnection(
        edges=[PipelineEdge(cursor=cursor, node=Pipeline.from_record(record)) for cursor, record in result.edges],
        page_info=PageInfo(has_next_page=result.has_next_page, end_cursor=result.end_cursor),
    )


async def resolve_pipeline(info: Info, id: strawberry.ID) -> Pipeline | None:
    pipeline_id = parse_uuid(id)
    if pipeline_id is None:
        return None
    try:
        record = await info.context.clients.pipelines.get(pipeline_id)
    except UpstreamRejected as rejected:
        if rejected.status == 404:
            return None
        refuse_query(rejected)
    return Pipeline.from_record(record)


@strawberry.type
class PipelinesQuery:
    pipelines: PipelineConnection | None = strawberry.field(
        resolver=resolve_pipelines,
        description=f"The workspace's pipelines in creation order (the default one is made on first use). `first` is "
        f"at most {MAX_FIRST}.",
    )
    pipeline: Pipeline | None = strawberry.field(
        resolver=resolve_pipeline, description="One pipeline; null for an unknown id or another workspace's."
    )
