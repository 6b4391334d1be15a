"""Distribution in GraphQL: assignment rules (who gets which leads), their queries and mutations, and each lead's
record of assignments (`Lead.assignments`: who got it by which rule and why, and whom the rule skipped).

The rules are the leads service's (`/v1/assignment-rules`, `/v1/leads/{id}/assignments`): everyone in the
workspace reads the rules, admins and heads of sales change them; the gateway passes what the client sent and
turns the service's refusals into `userErrors` pointing into the input.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from enum import Enum
from typing import Any

import strawberry

from gateway.clients.base import UpstreamRejected
from gateway.clients.distribution import AssignmentRecord, AssignmentRuleRecord
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
from gateway.types.leads import IDEMPOTENCY_KEY, Channel
from gateway.types.roster import Member, Team
from gateway.types.scoring import ScoreGrade

DEFAULT_FIRST = 20

VERSION = "The rule's `version` you read: the change applies only if nobody changed it since (else STALE_VERSION)."


# ---- enums ------------------------------------------------------------------------------------------------


@strawberry.enum(
    description="Which leads a rule distributes: NEW leads to work (hunters), QUALIFIED ones (closers), and CLIENT: "
    "leads whose deal was won, to a farmer."
)
class AssignmentStage(Enum):
    NEW = "new"
    QUALIFIED = "qualified"
    CLIENT = "client"


@strawberry.enum(
    description=(
        "How a rule picks from its pool: ROUND_ROBIN (turns), WEIGHTED_ROUND_ROBIN (turns in proportion to "
        "`weights`, spread out), LEAST_LOADED (fewest open leads relative to capacity), FIXED (the one member listed)."
    )
)
class AssignmentMethod(Enum):
    ROUND_ROBIN = "round_robin"
    WEIGHTED_ROUND_ROBIN = "weighted_round_robin"
    LEAST_LOADED = "least_loaded"
    FIXED = "fixed"


@strawberry.enum(description="How an assignment was decided: by a rule's method, or MANUAL (by hand).")
class AssignmentRecordMethod(Enum):
    ROUND_ROBIN = "round_robin"
    WEIGHTED_ROUND_ROBIN = "weighted_round_robin"
    LEAST_LOADED = "least_loaded"
    FIXED = "fixed"
    MANUAL = "manual"


def _id(value: uuid.UUID | str) -> strawberry.ID:
    return strawberry.ID(str(value))


def _optional_id(value: uuid.UUID | None) -> strawberry.ID | None:
    return strawberry.ID(str(value)) if value is not None else None


# ---- the AssignmentRule type ------------------------------------------------------------------------------


@strawberry.type(
    description=(
        "What a lead must be for a rule to take it: each list given must match; a list left out (null) matches "
        "any lead."
    )
)
class AssignmentConditions:
    channels: list[Channel] | None = strawberry.field(description="The lead's channel is one of them.")
    source_ids: list[strawberry.ID] | None = strawberry.field(description="It came through one of these sources.")
    tags: list[str] | None = strawberry.field(description="It has any of these tags (ignoring case).")
    countries: list[str] | None = strawberry.field(
        description="ISO alpha-2: its custom field `country`, else its phone number's country, is one of them."
    )
    territory_ids: list[strawberry.ID] | None = strawberry.field(description="One of these territories covers it.")
    products: list[str] | None = strawberry.field(
        description="QUALIFIED and CLIENT rules only: its qualification names any of these products."
    )
    grades: list[ScoreGrade] | None = strawberry.field(
        description="Its grade by the workspace's scoring model, computed when the rule is tried, is one of them."
    )

    @classmethod
    def from_record(cls, conditions: dict[str, list[str]]) -> AssignmentConditions:
        def ids(name: str) -> list[strawberry.ID] | None:
            values = conditions.get(name)
            return [_id(value) for value in values] if values is not None else None

        channels = conditions.get("channels")
        return cls(
            channels=[Channel(channel) for channel in channels] if channels is not None else None,
            source_ids=ids("source_ids"),
            tags=conditions.get("tags"),
            countries=conditions.get("countries"),
            territory_ids=ids("territory_ids"),
            products=conditions.get("products"),
            grades=[ScoreGrade(g) for g in grades] if (grades := conditions.get("grades")) is not None else None,
        )


@strawberry.type(description="A member's weight in a WEIGHTED_ROUND_ROBIN rule; a member without one weighs 1.")
class AssignmentWeight:
    member_id: strawberry.ID
    weight: int = strawberry.field(description="1 to 1000.")


async def resolve_rule_team(root: AssignmentRule, info: Info) -> Team | None:
    if root.team_id is None:
        return None
    record = await info.context.loaders.team.load(uuid.UUID(root.team_id))
    return Team.from_record(record) if record else None


async def resolve_rule_members(root: AssignmentRule, info: Info) -> list[Member]:
    if not root.member_ids:
        return []
    records = await info.context.loaders.member.load_many([uuid.UUID(member_id) for member_id in root.member_ids])
    return [Member.from_record(record) for record in records if record is not None]


@strawberry.type(
    description=(
        "Who gets which leads. The active rules of a stage are tried in `position` order; the first whose conditions "
        "match decides, handing the lead to someone in its pool (`teamId` or `memberIds`) by its method."
    )
)
class AssignmentRule:
    id: strawberry.ID
    name: str
    position: int = strawberry.field(description="Evaluation order within the stage; equal positions go by creation.")
    active: bool = strawberry.field(description="An inactive rule is skipped.")
    stage: AssignmentStage
    conditions: AssignmentConditions
    method: AssignmentMethod
    team_id: strawberry.ID | None = strawberry.field(
        description="The pool: the team's members whose role fits the stage (hunters for NEW, closers for QUALIFIED, "
        "farmers for CLIENT)."
    )
    member_ids: list[strawberry.ID] | None = strawberry.field(
        description="Or the pool as these members, in this order; null when the pool is a team."
    )
    weights: list[AssignmentWeight] = strawberry.field(description="WEIGHTED_ROUND_ROBIN only.")
    only_working_hours: bool = strawberry.field(description="Skip members outside their working hours, now.")
    created_at: datetime
    updated_at: datetime
    version: int = strawberry.field(
        description="Goes up with every change; pass it back as `version` to change only what you read."
    )
    team: Team | None = strawberry.field(resolver=resolve_rule_team, description="The team whose members are the pool.")
    members: list[Member] = strawberry.field(
        resolver=resolve_rule_members,
        description="The members `memberIds` lists, in that order ([] when the pool is a team).",
    )

    @classmethod
    def from_record(cls, record: AssignmentRuleRecord) -> AssignmentRule:
        return cls(
            id=_id(record.id),
            name=record.name,
            position=record.position,
            active=record.active,
            stage=AssignmentStage(record.stage),
            conditions=AssignmentConditions.from_record(record.conditions),
            method=AssignmentMethod(record.method),
            team_id=_optional_id(record.team_id),
            member_ids=[_id(m) for m in record.member_ids] if record.member_ids is not None else None,
            weights=[AssignmentWeight(member_id=_id(m), weight=w) for m, w in record.weights.items()],
            only_working_hours=record.only_working_hours,
            created_at=record.created_at,
            updated_at=record.updated_at,
            version=record.version,
        )


@strawberry.type
class AssignmentRuleEdge:
    cursor: str
    node: AssignmentRule


@strawberry.type
class AssignmentRuleConnection:
    edges: list[AssignmentRuleEdge]
    page_info: PageInfo


# ---- a lead's assignments ---------------------------------------------------------------------------------


async def resolve_skipped_member(root: SkippedMember, info: Info) -> Member | None:
    record = await info.context.loaders.member.load(uuid.UUID(root.member_id))
    return Member.from_record(record) if record else None


@strawberry.type(description="A member of the pool who could not take the lead, and why.")
class SkippedMember:
    member_id: strawberry.ID
    why: str = strawberry.field(
        description=(
            "away, inactive, at capacity (n of m open leads) or outside working hours (sat 23:10 Europe/Moscow)."
        )
    )
    member: Member | None = strawberry.field(resolver=resolve_skipped_member)


async def resolve_assignment_member(root: Assignment, info: Info) -> Member | None:
    if root.member_id is None:
        return None
    record = await info.context.loaders.member.load(uuid.UUID(root.member_id))
    return Member.from_record(record) if record else None


async def resolve_assignment_rule(root: Assignment, info: Info) -> AssignmentRule | None:
    if root.rule_id is None:
        return None
    record = await info.context.loaders.assignment_rule.load(uuid.UUID(root.rule_id))
    return AssignmentRule.from_record(record) if record else None


@strawberry.type(description="One decision about who works a lead: by a rule, or by hand.")
class Assignment:
    id: strawberry.ID
    lead_id: strawberry.ID
    member_id: strawberry.ID | None = strawberry.field(
        description="Who got the lead; null: it waits in the rule's queue."
    )
    previous_owner_id: strawberry.ID | None
    rule_id: strawberry.ID | None = strawberry.field(description="The rule that decided; null when assigned by hand.")
    stage: AssignmentStage
    method: AssignmentRecordMethod
    reason: str = strawberry.field(description="Why, in words: who was next, and who was skipped.")
    skipped: list[SkippedMember] = strawberry.field(description="Every member of the pool who could not take it.")
    assigned_at: datetime
    assigned_by: strawberry.ID | None = strawberry.field(description="Who assigned it by hand; null: distribution.")
    member: Member | None = strawberry.field(resolver=resolve_assignment_member, description="Who got the lead.")
    rule: AssignmentRule | None = strawberry.field(
        resolver=resolve_assignment_rule, description="The rule that decided, unless it was deleted since."
    )

    @classmethod
    def from_record(cls, record: AssignmentRecord) -> Assignment:
        return cls(
            id=_id(record.id),
            lead_id=_id(record.lead_id),
            member_id=_optional_id(record.member_id),
            previous_owner_id=_optional_id(record.previous_owner_id),
            rule_id=_optional_id(record.rule_id),
            stage=AssignmentStage(record.stage),
            method=AssignmentRecordMethod(record.method),
            reason=record.reason,
            skipped=[SkippedMember(member_id=_id(s["member_id"]), why=s.get("why", "")) for s in record.skipped],
            assigned_at=record.assigned_at,
            assigned_by=_optional_id(record.assigned_by),
        )


# ---- inputs and payloads ----------------------------------------------------------------------------------


@strawberry.input(description="Each list given must match the lead; a list left out (or empty) matches any lead.")
class AssignmentConditionsInput:
    channels: list[Channel] | None = strawberry.field(default=None, description="Up to 20.")
    source_ids: list[strawberry.ID] | None = strawberry.field(default=None, description="Up to 100.")
    tags: list[str] | None = strawberry.field(default=None, description="Up to 100, ignoring case.")
    countries: list[str] | None = strawberry.field(default=None, description="ISO 3166-1 alpha-2 codes, up to 100.")
    territory_ids: list[strawberry.ID] | None = strawberry.field(default=None, description="Up to 100.")
    products: list[str] | None = strawberry.field(
        default=None, description="Product codes, up to 100; QUALIFIED and CLIENT rules only."
    )
    grades: list[ScoreGrade] | None = strawberry.field(default=None, description="A to D.")

    def as_json(self) -> dict[str, Any]:
        return given(
            {
                "channels": [channel.value for channel in self.channels] if self.channels is not None else None,
                "source_ids": self.source_ids,
                "tags": self.tags,
                "countries": self.countries,
                "territory_ids": self.territory_ids,
                "products": self.products,
                "grades": [grade.value for grade in self.grades] if self.grades is not None else None,
            }
        )


@strawberry.input
class AssignmentWeightInput:
    member_id: strawberry.ID
    weight: int = strawberry.field(description="1 to 1000.")


@strawberry.input(description="Give the pool as exactly one of `teamId` and `memberIds`.")
class CreateAssignmentRuleInput:
    name: str = strawberry.field(description="1 to 100 characters.")
    stage: AssignmentStage
    method: AssignmentMethod
    position: int | None = strawberry.field(default=None, description="0 or more; default: after the last rule.")
    active: bool | None = strawberry.field(default=None, description="Defaults to true.")
    conditions: AssignmentConditionsInput | None = strawberry.field(
        default=None, description="Defaults to none: the rule matches every lead of its stage."
    )
    team_id: strawberry.ID | None = None
    member_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Up to 100; FIXED takes exactly one."
    )
    weights: list[AssignmentWeightInput] | None = strawberry.field(
        default=None, description="WEIGHTED_ROUND_ROBIN only; a member without a weight weighs 1."
    )
    only_working_hours: bool | None = strawberry.field(default=None, description="Defaults to false.")
    idempotency_key: str | None = strawberry.field(default=None, description=IDEMPOTENCY_KEY)


@strawberry.type
class CreateAssignmentRulePayload:
    assignment_rule: AssignmentRule | None
    user_errors: list[UserError]


@strawberry.input(
    description=(
        "Only the fields given change, then the rule is checked as a whole; null clears teamId or memberIds (the "
        "other fields refuse it). `conditions` and `weights` replace the old ones. A new method, pool, weights or "
        "stage starts the turns afresh."
    )
)
class UpdateAssignmentRuleInput:
    id: strawberry.ID
    version: int | None = strawberry.field(default=None, description=VERSION)
    name: str | None = strawberry.UNSET
    position: int | None = strawberry.UNSET
    active: bool | None = strawberry.UNSET
    stage: AssignmentStage | None = strawberry.UNSET
    conditions: AssignmentConditionsInput | None = strawberry.UNSET
    method: AssignmentMethod | None = strawberry.UNSET
    team_id: strawberry.ID | None = strawberry.UNSET
    member_ids: list[strawberry.ID] | None = strawberry.UNSET
    weights: list[AssignmentWeightInput] | None = strawberry.UNSET
    only_working_hours: bool | None = strawberry.UNSET


@strawberry.type
class UpdateAssignmentRulePayload:
    assignment_rule: AssignmentRule | None
    user_errors: list[UserError]


@strawberry.input
class DeleteAssignmentRuleInput:
    id: strawberry.ID
    version: int | None = strawberry.field(default=None, description=VERSION)


@strawberry.type
class DeleteAssignmentRulePayload:
    deleted_id: strawberry.ID | None = strawberry.field(description="The deleted rule's id; null on userErrors.")
    user_errors: list[UserError]


class Weights:
    """`weights` as the service takes them ({member id: weight}), and where in the list sent each came from, so the
    service's errors (`weights.<member id>`) can point back into it."""

    def __init__(self, entries: Sequence[AssignmentWeightInput]) -> None:
        self.body: dict[str, int] = {}
        self.entries: dict[str, int] = {}
        for index, entry in enumerate(entries):
            self.body[entry.member_id] = entry.weight
            self.entries.setdefault(entry.member_id, index)
            # The service names a valid id in its canonical form.
            parsed = parse_uuid(entry.member_id)
            if parsed is not None:
                self.entries.setdefault(str(parsed), index)

    def locate(self, error: UserError) -> UserError:
        """["input", "weights", "<id>", ...] as ["input", "weights", "<index>", "memberId" or "weight"]: an unknown
        member or a malformed id is the id's fault, anything else the weight's."""
        match error.field:
            case ["input", "weights", key, *rest] if key in self.entries:
                at_fault = "memberId" if error.code == "unknown_member" or rest else "weight"
                path = ["input", "weights", str(self.entries[key]), at_fault]
                return UserError(field=path, code=error.code, message=error.message)
        return error


def _rule_errors(rejected: UpstreamRejected, weights: Weights | None) -> list[UserError]:
    errors = user_errors("input", rejected, fields={404: "id"})
    return [weights.locate(error) for error in errors] if weights is not None else errors


def _rule_fields(input: CreateAssignmentRuleInput | UpdateAssignmentRuleInput) -> dict[str, Any]:
    """The rule fields of the input by their REST names, `weights` left out (see `Weights`)."""
    conditions = input.conditions

    def value(choice: Enum | None) -> Any:
        return choice.value if isinstance(choice, Enum) else choice

    return {
        "name": input.name,
        "position": input.position,
        "active": input.active,
        "stage": value(input.stage),
        "conditions": conditions.as_json() if isinstance(conditions, AssignmentConditionsInput) else conditions,
        "method": value(input.method),
        "team_id": input.team_id,
        "member_ids": input.member_ids,
        "only_working_hours": input.only_working_hours,
    }


# ---- query resolvers --------------------------------------------------------------------------------------


async def resolve_assignment_rule_by_id(info: Info, id: strawberry.ID) -> AssignmentRule | None:
    rule_id = parse_uuid(id)
    if rule_id is None:
        return None
    try:
        record = await info.context.loaders.assignment_rule.load(rule_id)
    except UpstreamRejected as rejected:
        refuse_query(rejected)
    return AssignmentRule.from_record(record) if record else None


async def resolve_assignment_rules(
    info: Info, first: int | None = DEFAULT_FIRST, after: str | None = None, stage: AssignmentStage | None = None
) -> AssignmentRuleConnection:
    client = info.context.clients.assignment_rules

    async def fetch(limit: int, cursor: str | None) -> tuple[Sequence[AssignmentRuleRecord], str | None]:
        try:
            page = await client.page(limit=limit, cursor=cursor, stage=stage.value if stage else None)
        except UpstreamRejected as rejected:
            refuse_query(rejected)
        return page.items, page.next_cursor

    result = await window(fetch, first=DEFAULT_FIRST if first is None else first, after=after)
    return AssignmentRuleConnection(
        edges=[
            AssignmentRuleEdge(cursor=cursor, node=AssignmentRule.from_record(record))
            for cursor, record in result.edges
        ],
        page_info=PageInfo(has_next_page=result.has_next_page, end_cursor=result.end_cursor),
    )


# ---- mutation resolvers -----------------------------------------------------------------------------------


async def create_assignment_rule(info: Info, input: CreateAssignmentRuleInput) -> CreateAssignmentRulePayload:
    body = given(_rule_fields(input))
    weights = Weights(input.weights) if input.weights is not None else None
    if weights is not None:
        body["weights"] = weights.body
    try:
        record = await info.context.clients.assignment_rules.create(body, idempotency_key=input.idempotency_key)
    except UpstreamRejected as rejected:
        return CreateAssignmentRulePayload(assignment_rule=None, user_errors=_rule_errors(rejected, weights))
    return CreateAssignmentRulePayload(assignment_rule=AssignmentRule.from_record(record), user_errors=[])


async def update_assignment_rule(info: Info, input: UpdateAssignmentRuleInput) -> UpdateAssignmentRulePayload:
    rule_id = parse_uuid(input.id)
    if rule_id is None:
        errors = [no_such("input", "id", "assignment rule", input.id)]
        return UpdateAssignmentRulePayload(assignment_rule=None, user_errors=errors)
    changes = sent(_rule_fields(input))
    weights = None
    if input.weights is None:
        changes["weights"] = None  # refused by the service: a rule always has weights ([] for none)
    elif input.weights is not strawberry.UNSET:
        weights = Weights(input.weights)
        changes["weights"] = weights.body
    try:
        record = await info.context.clients.assignment_rules.update(rule_id, changes, version=input.version)
    except UpstreamRejected as rejected:
        return UpdateAssignmentRulePayload(assignment_rule=None, user_errors=_rule_errors(rejected, weights))
    info.context.loaders.assignment_rule.prime(rule_id, record, force=True)
    return UpdateAssignmentRulePayload(assignment_rule=AssignmentRule.from_record(record), user_errors=[])


async def delete_assignment_rule(info: Info, input: DeleteAssignmentRuleInput) -> DeleteAssignmentRulePayload:
    rule_id = parse_uuid(input.id)
    if rule_id is None:
        errors = [no_such("input", "id", "assignment rule", input.id)]
        return DeleteAssignmentRulePayload(deleted_id=None, user_errors=errors)
    try:
        await info.context.clients.assignment_rules.delete(rule_id, version=input.version)
    except UpstreamRejected as rejected:
        errors = user_errors("input", rejected, fields={404: "id"})
        return DeleteAssignmentRulePayload(deleted_id=None, user_errors=errors)
    # Later fields of the request read the rule as gone (`clear` would fail on a rule nobody loaded).
    info.context.loaders.assignment_rule.prime(rule_id, None, force=True)
    return DeleteAssignmentRulePayload(deleted_id=_id(rule_id), user_errors=[])


# Resolvers are passed in rather than decorated: the decorator-with-arguments form is untyped for mypy.
@strawberry.type
class DistributionQuery:
    assignment_rule: AssignmentRule | None = strawberry.field(
        resolver=resolve_assignment_rule_by_id,
        description="The assignment rule with this id, or null if the workspace has none such.",
    )
    assignment_rules: AssignmentRuleConnection | None = strawberry.field(
        resolver=resolve_assignment_rules,
        description=(
            "The workspace's assignment rules in evaluation order (stage, position, then creation), only those of "
            f"`stage` if given. `first` is at most {MAX_FIRST}."
        ),
    )


@strawberry.type
class DistributionMutation:
    create_assignment_rule: CreateAssignmentRulePayload = strawberry.mutation(
        resolver=create_assignment_rule,
        description=(
            "Adds an assignment rule (admins and heads of sales; others FORBIDDEN). Each field that does not fit is a "
            "userError. The workspace's queued leads are tried again under the new rules."
        ),
    )
    update_assignment_rule: UpdateAssignmentRulePayload = strawberry.mutation(
        resolver=update_assignment_rule,
        description=(
            "Changes the fields given and checks the rule as a whole (admins and heads of sales). The workspace's "
            "queued leads are tried again."
        ),
    )
    delete_assignment_rule: DeleteAssignmentRulePayload = strawberry.mutation(
        resolver=delete_assignment_rule,
        description=(
            "Deletes the rule (admins and heads of sales); its past decisions stay in the leads' assignments. The "
            "leads queued on it are tried again by the remaining rules."
        ),
    )
