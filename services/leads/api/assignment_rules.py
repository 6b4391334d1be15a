"""HTTP: /v1/assignment-rules — who gets which leads (add, list in evaluation order, read, change, delete) — and
/v1/leads/{id}/assignments, the record of every assignment of a lead with its reason.

Everyone in the workspace reads the rules; admins and heads of sales change them. A change sends the leads waiting
in the workspace's rule queues back to the AssignmentWorker, which tries them again under the new rules.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Query, Response, status
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

from services.common.auth import CurrentPrincipal
from services.common.cursors import decode_cursor, encode_cursor
from services.common.db import DB, Connection, ReadConn
from services.common.etags import IfMatchHeader, check_version, etag
from services.common.idempotency import IdempotencyKeyHeader, IdempotentRequest, answer_once
from services.common.ids import new_id
from services.common.problems import InvalidField, InvalidFields, NotFound
from services.common.responses import model_response
from services.common.text import NoNul
from services.leads import assignment_queue, distribution, roster
from services.leads.distribution import RULE_COLUMNS, Method, Stage
from services.leads.models import SCHEMA
from services.leads.repository import LeadRepository
from services.leads.schemas import Channel

router = APIRouter(prefix="/v1/assignment-rules", tags=["distribution"])
lead_router = APIRouter(prefix="/v1/leads", tags=["distribution"])

RuleName = Annotated[str, NoNul, Field(min_length=1, max_length=100)]
Country = Annotated[str, NoNul, Field(max_length=2), AfterValidator(roster.check_country)]
Word = Annotated[str, NoNul, Field(min_length=1, max_length=50)]
Weight = Annotated[int, Field(ge=1, le=1000)]
MAX_LIST = 100


def check_grade(grade: str) -> str:
    """A score grade, A to D, upper-cased (as countries are)."""
    upper = grade.strip().upper()
    if upper not in distribution.GRADES:
        raise PydanticCustomError("invalid_grade", "A grade is one of A, B, C and D.")
    return upper


Grade = Annotated[str, NoNul, AfterValidator(check_grade)]


class Conditions(BaseModel):
    """Each list given must match the lead; a list left out (or empty) matches any lead."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    channels: list[Channel] | None = Field(default=None, max_length=20)
    source_ids: list[uuid.UUID] | None = Field(default=None, max_length=MAX_LIST)
    tags: list[Word] | None = Field(default=None, max_length=MAX_LIST, description="Any of them (ignoring case)")
    countries: list[Country] | None = Field(
        default=None, max_length=MAX_LIST,
        description="ISO alpha-2; the lead's custom field `country`, else its phone number's country",
    )
    territory_ids: list[uuid.UUID] | None = Field(default=None, max_length=MAX_LIST)
    products: list[Word] | None = Field(
        default=None, max_length=MAX_LIST,
        description="Stages qualified and client only: any of the qualification's products",
    )
    grades: list[Grade] | None = Field(
        default=None, max_length=20,
        description="The lead's score grade (A-D), computed from the scoring model when the rule is evaluated",
    )


class RuleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: RuleName
    position: int | None = Field(default=None, ge=0, le=1_000_000, description="Evaluation order; default: last")
    active: bool = True
    stage: Stage = Field(
        description="new: leads to work (hunters); qualified: qualified leads (closers); client: won clients (farmers)"
    )
    conditions: Conditions = Field(default_factory=Conditions)
    method: Method
    team_id: uuid.UUID | None = Field(
        default=None, description="The pool: the team's hunters (new), closers (qualified) or farmers (client)"
    )
    member_ids: list[uuid.UUID] | None = Field(default=None, max_length=MAX_LIST, description="Or these members")
    weights: dict[uuid.UUID, Weight] = Field(default_factory=dict, description="weighted_round_robin; default 1")
    only_working_hours: bool = False


class RulePatch(BaseModel):
    """Only the fields present change; null clears team_id and member_ids (the other fields refuse null)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: RuleName | None = None
    position: int | None = Field(default=None, ge=0, le=1_000_000)
    active: bool | None = None
    stage: Stage | None = None
    conditions: Conditions | None = None
    method: Method | None = None
    team_id: uuid.UUID | None = None
    member_ids: list[uuid.UUID] | None = Field(default=None, max_length=MAX_LIST)
    weights: dict[uuid.UUID, Weight] | None = None
    only_working_hours: bool | None = None


class RuleOut(BaseModel):
    id: uuid.UUID
    workspace_id: uuid.UUID
    name: str
    position: int
    active: bool
    stage: str
    conditions: dict[str, list[str]]
    method: str
    team_id: uuid.UUID | None
    member_ids: list[uuid.UUID] | None
    weights: dict[str, int]
    only_working_hours: bool
    created_at: datetime
    updated_at: datetime
    version: int


class RulePage(BaseModel):
    items: list[RuleOut]
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next page; null on the last page")


class AssignmentOut(BaseModel):
    id: uuid.UUID
    lead_id: uuid.UUID
    member_id: uuid.UUID | None = Field(description="Who got the lead; null: it waits in the rule's queue")
    previous_owner_id: uuid.UUID | None
    rule_id: uuid.UUID | None
    stage: str
    method: str
    reason: str
    skipped: list[dict[str, str]]
    assigned_at: datetime
    assigned_by: uuid.UUID | None = Field(description="Who assigned it by hand; null: distribution")


class AssignmentList(BaseModel):
    items: list[AssignmentOut]


# NOT NULL columns a PATCH may change but not clear.
REQUIRED = frozenset({"name", "position", "active", "stage", "conditions", "method", "weights", "only_working_hours"})
FIELDS = (
    "name", "position", "active", "stage", "conditions", "method", "team_id", "member_ids", "weights",
    "only_working_hours",
)


def _response(row: asyncpg.Record, status_code: int = 200) -> Response:
    headers = {"Location": f"/v1/assignment-rules/{row['id']}", "ETag": etag(row["version"])}
    return model_response(RuleOut.model_validate(dict(row)), status_code, headers)


def _conditions(conditions: Conditions) -> dict[str, list[str]]:
    """Stored form: only the lists given and not empty, as strings, without repeats."""
    stored: dict[str, list[str]] = {}
    for name in distribution.CONDITIONS:
        values = getattr(conditions, name)
        if values:
            stored[name] = roster.distinct(str(v.value if isinstance(v, Channel) else v) for v in values)
    return stored


def _stored(sent: dict[str, Any], *, patch: bool = True) -> dict[str, Any]:
    values = dict(sent)
    for name in REQUIRED & values.keys() if patch else ():
        if values[name] is None:
            raise InvalidField(name, f"A rule always has {name}; send a new value instead of null.", code="null")
    if "conditions" in values:
        values["conditions"] = _conditions(Conditions.model_validate(values["conditions"]))
    for name in ("stage", "method"):
        if name in values:
            values[name] = str(values[name])
    if values.get("member_ids") is not None:
        values["member_ids"] = roster.distinct(values["member_ids"])
    if "weights" in values:
        values["weights"] = {str(k): v for k, v in values["weights"].items()}
    return values


def _error(field: str, code: str, message: str) -> dict[str, str]:
    return {"field": field, "code": code, "message": message}


async def _check(conn: Connection, workspace_id: uuid.UUID, rule: dict[str, Any]) -> None:
    """The whole rule after the change: 422 naming each field that does not fit."""
    errors: list[dict[str, str]] = []
    team_id, member_ids, method = rule["team_id"], rule["member_ids"], rule["method"]
    if (team_id is None) == (member_ids is None):
        errors.append(_error("team_id", "pool", "Give the pool: either team_id or member_ids, not both."))
    if member_ids is not None and not member_ids:
        errors.append(_error("member_ids", "empty", "List at least one member."))
    if method == Method.fixed and (member_ids is None or len(member_ids) != 1):
        errors.append(_error("member_ids", "fixed_owner", "A fixed rule lists exactly one member in member_ids."))
    if rule["weights"] and method != Method.weighted_round_robin:
        errors.append(_error("weights", "not_weighted", "Weights are for method weighted_round_robin."))
    if rule["conditions"].get("products") and rule["stage"] == Stage.new:
        errors.append(_error(
            "conditions.products", "stage_qualified",
            "Products are known once a lead is qualified: stage qualified or client.",
        ))
    if team_id is not None and await conn.fetchval(
        "SELECT id FROM leads.teams WHERE workspace_id = $1 AND id = $2", workspace_id, team_id
    ) is None:
        errors.append(_error("team_id", "unknown_team", f"The workspace has no team {team_id}."))

    async def known(table: str, ids: list[Any]) -> set[str]:
        rows = await conn.fetch(
            f"SELECT id FROM leads.{table} WHERE workspace_id = $1 AND id = ANY($2::uuid[])", workspace_id,
            [uuid.UUID(str(i)) for i in ids],
        )
        return {str(r["id"]) for r in rows}

    lists = [
        ("member_ids", "members", member_ids or [], "member"),
        ("conditions.territory_ids", "territories", rule["conditions"].get("territory_ids", []), "territory"),
        ("conditions.source_ids", "sources", rule["conditions"].get("source_ids", []), "source"),
    ]
    for field, table, ids, kind in lists:
        if ids:
            found = await known(table, ids)
            errors += [
                _error(f"{field}[{i}]", f"unknown_{kind}", f"The workspace has no {kind} {value}.")
                for i, value in enumerate(ids) if str(value) not in found
            ]
    if rule["weights"]:
        found = await known("members", list(rule["weights"]))
        errors += [
            _error(f"weights.{key}", "unknown_member", f"The workspace has no member {key}.")
            for key in rule["weights"] if key not in found
        ]
    if errors:
        raise InvalidFields(errors)


async def _get(conn: Connection, workspace_id: uuid.UUID, rule_id: uuid.UUID, *, lock: bool = False) -> asyncpg.Record:
    row: asyncpg.Record | None = await conn.fetchrow(
        f"SELECT {RULE_COLUMNS} FROM leads.assignment_rules WHERE workspace_id = $1 AND id = $2"
        + (" FOR UPDATE" if lock else ""),
        workspace_id, rule_id,
    )
    if row is None:
        raise NotFound(f"There is no assignment rule {rule_id}.")
    return row


@router.post("", status_code=status.HTTP_201_CREATED, response_model=RuleOut)
async def create_rule(
    body: RuleCreate, principal: CurrentPrincipal, db: DB, idempotency_key: IdempotencyKeyHeader = None
) -> Response:
    roster.require_manager(principal, "assignment rules")
    values = _stored(body.model_dump(include=set(FIELDS)), patch=False)

    async def write(conn: Connection) -> Response:
        await _check(conn, principal.workspace_id, values)
        position = values["position"]
        if position is None:
            position = await conn.fetchval(
                "SELECT coalesce(max(position) + 1, 0) FROM leads.assignment_rules WHERE workspace_id = $1",
                principal.workspace_id,
            )
        row: asyncpg.Record | None = await conn.fetchrow(
            f"""
            INSERT INTO leads.assignment_rules (
                workspace_id, id, name, position, active, stage, conditions, method, team_id, member_ids, weights,
                only_working_hours
            ) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
            RETURNING {RULE_COLUMNS}
            """,
            principal.workspace_id, new_id(), values["name"], position, values["active"], values["stage"],
            values["conditions"], values["method"], values["team_id"], values["member_ids"], values["weights"],
            values["only_working_hours"],
        )
        assert row is not None
        await assignment_queue.requeue(conn, principal.workspace_id)
        return _response(row, status.HTTP_201_CREATED)

    if idempotency_key is None:
        async with db.transaction() as conn:
            response = await write(conn)
        return response
    keyed = IdempotentRequest.of(principal, idempotency_key, "POST /v1/assignment-rules", body)
    return await answer_once(db, SCHEMA, keyed, write)


@router.get("", response_model=RulePage)
async def list_rules(
    principal: CurrentPrincipal,
    conn: ReadConn,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor from the previous page")] = None,
    stage: Annotated[Stage | None, Query()] = None,
) -> Response:
    """In evaluation order (stage, position, then creation)."""
    after = decode_cursor(cursor) if cursor else None
    rows = await conn.fetch(
        f"""
        SELECT {RULE_COLUMNS} FROM leads.assignment_rules r
        WHERE workspace_id = $1 AND ($2::text IS NULL OR stage = $2)
          AND ($3::uuid IS NULL OR (stage, position, id) > (
              SELECT stage, position, id FROM leads.assignment_rules WHERE workspace_id = $1 AND id = $3))
        ORDER BY stage, position, id LIMIT $4
        """,
        principal.workspace_id, stage.value if stage else None, after, limit + 1,
    )
    items = [RuleOut.model_validate(dict(r)) for r in rows[:limit]]
    next_cursor = encode_cursor(items[-1].id) if len(rows) > limit else None
    return model_response(RulePage(items=items, next_cursor=next_cursor))


@router.get("/{rule_id}", response_model=RuleOut)
async def get_rule(rule_id: uuid.UUID, principal: CurrentPrincipal, conn: ReadConn) -> Response:
    return _response(await _get(conn, principal.workspace_id, rule_id))


@router.patch("/{rule_id}", response_model=RuleOut)
async def patch_rule(
    rule_id: uuid.UUID, body: RulePatch, principal: CurrentPrincipal, db: DB, if_match: IfMatchHeader = None
) -> Response:
    """Changes the fields sent (the rule is checked as a whole afterwards). A new pool or method starts its
    turns afresh."""
    roster.require_manager(principal, "assignment rules")
    values = _stored(body.model_dump(include=body.model_fields_set))
    async with db.transaction() as conn:
        # Queued leads first, then the rule: the order every assigner locks in (leads, then rules).
        await assignment_queue.requeue(conn, principal.workspace_id)
        current = await _get(conn, principal.workspace_id, rule_id, lock=True)
        check_version(if_match, current["version"])
        changed = {f: v for f, v in values.items() if v != current[f]}
        if not changed:
            return _response(current)
        rule = {f: current[f] for f in FIELDS} | changed
        await _check(conn, principal.workspace_id, rule)
        reset = ", rr_last_member_id = NULL, rr_weights = '{}'" if changed.keys() & {
            "method", "team_id", "member_ids", "weights", "stage"
        } else ""
        assignments = ", ".join(f"{f} = ${i}" for i, f in enumerate(changed, start=3))
        row = await conn.fetchrow(
            f"""
            UPDATE leads.assignment_rules SET {assignments}{reset}, updated_at = now(), version = version + 1
            WHERE workspace_id = $1 AND id = $2 RETURNING {RULE_COLUMNS}
            """,
            principal.workspace_id, rule_id, *changed.values(),
        )
        assert row is not None  # locked above
    return _response(row)


@router.delete("/{rule_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_rule(
    rule_id: uuid.UUID, principal: CurrentPrincipal, db: DB, if_match: IfMatchHeader = None
) -> Response:
    """Deletes the rule; the leads queued on it are tried again by the remaining rules. Its past decisions stay
    in the leads' assignment records."""
    roster.require_manager(principal, "assignment rules")
    async with db.transaction() as conn:
        await assignment_queue.requeue(conn, principal.workspace_id)  # leads before rules, as every assigner
        current = await _get(conn, principal.workspace_id, rule_id, lock=True)
        check_version(if_match, current["version"])
        await conn.execute(
            "DELETE FROM leads.assignment_rules WHERE workspace_id = $1 AND id = $2", principal.workspace_id, rule_id
        )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@lead_router.get("/{lead_id}/assignments", response_model=AssignmentList)
async def lead_assignments(lead_id: uuid.UUID, principal: CurrentPrincipal, conn: ReadConn) -> Response:
    """Every assignment of the lead, oldest first: who got it by which rule and why, whom the rule skipped, and
    manual reassignments."""
    if await LeadRepository(conn, principal).get(lead_id) is None:
        raise NotFound(f"There is no lead {lead_id}.")
    rows = await distribution.history(conn, principal.workspace_id, lead_id)
    return model_response(AssignmentList(items=[AssignmentOut.model_validate(dict(r)) for r in rows]))
