"""Qualification (BANT): a lead's answers on budget, authority, need and timeline, saved piece by piece, and
`qualify`, which checks the answers the workspace requires, moves the lead to qualified and publishes
lead.qualified with everything a deal needs: the hunter -> closer hand-off.

The callers hold the lead's row lock, so a lead's answers are written one request at a time and a status change
cannot slip in between saving them and checking them.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg

from services.common.auth import Principal
from services.common.db import Connection
from services.common.money import Money
from services.common.outbox import publish
from services.common.problems import Conflict, InvalidFields
from services.contracts import LeadQualifiedV1, QualificationV1
from services.leads import distribution, normalize, score_store
from services.leads.intake import CaptureSettings
from services.leads.lifecycle import check_transition, record_status
from services.leads.roster import distinct
from services.leads.schemas import QualificationOut, QualificationPatch, Status, StatusChange

COLUMNS = (
    "lead_id, budget_amount, budget_currency, budget_confirmed, decision_maker, is_decision_maker, need, products, "
    "timeline, notes, updated_by, updated_at, version"
)
# The answers a PATCH (or the body of qualify) may set, as QualificationOut names them.
ANSWERS = (
    "budget", "budget_confirmed", "decision_maker", "is_decision_maker", "need", "products", "timeline", "notes",
)
# A converted lead is a deal's business now, and a merged one lives on in its survivor: their answers are final.
FINAL = frozenset({Status.converted, Status.merged})

# What to ask when a required answer is missing, by the name the workspace's settings use.
_ASK = {
    "budget": "Ask about the budget: how much, and in which currency.",
    "authority": "Find out who decides: name the decision maker, or say that our contact is the one who decides.",
    "need": "Write down the need: the problem the client wants solved.",
    "timeline": "Ask when the client expects to decide.",
}


def empty(lead_id: uuid.UUID) -> QualificationOut:
    """A lead nobody has asked anything yet: version 0."""
    return QualificationOut(
        lead_id=lead_id, budget=None, budget_confirmed=False, decision_maker=None, is_decision_maker=False,
        need=None, products=[], timeline=None, notes=None, updated_by=None, updated_at=None, version=0,
    )


def _out(row: asyncpg.Record) -> QualificationOut:
    values = dict(row)
    amount, currency = values.pop("budget_amount"), values.pop("budget_currency")
    budget = Money(amount=amount, currency=currency) if amount is not None else None
    return QualificationOut(**values, budget=budget)


async def load(conn: Connection, workspace_id: uuid.UUID, lead_id: uuid.UUID) -> QualificationOut:
    row = await conn.fetchrow(
        f"SELECT {COLUMNS} FROM leads.lead_qualifications WHERE workspace_id = $1 AND lead_id = $2",
        workspace_id, lead_id,
    )
    return _out(row) if row is not None else empty(lead_id)


def _stored(patch: QualificationPatch) -> dict[str, Any]:
    """The answers sent, in stored form; null clears an answer (false, for the yes/no ones)."""
    values: dict[str, Any] = {}
    for name in ANSWERS:
        if name not in patch.model_fields_set:
            continue
        value = getattr(patch, name)
        if name in ("budget_confirmed", "is_decision_maker"):
            value = bool(value)
        elif name == "products":
            value = distinct(value or [])
        elif name == "decision_maker" and value is not None:
            value = normalize.clean_text(value)
        values[name] = value
    return values


async def save_answers(
    conn: Connection, principal: Principal, lead: asyncpg.Record, patch: QualificationPatch,
    current: QualificationOut | None = None,
) -> QualificationOut:
    """Applies the answers sent to a locked lead's qualification; unchanged answers keep the version."""
    status = Status(lead["status"])
    if status in FINAL:
        where = f" into {lead['merged_into_id']}" if status is Status.merged else ""
        raise Conflict(f"The lead is {status.value}{where}: its qualification can no longer change.")
    if current is None:
        current = await load(conn, lead["workspace_id"], lead["id"])
    changed = {name: value for name, value in _stored(patch).items() if value != getattr(current, name)}
    if not changed:
        return current
    answers = {name: getattr(current, name) for name in ANSWERS} | changed
    budget: Money | None = answers["budget"]
    row = await conn.fetchrow(
        f"""
        INSERT INTO leads.lead_qualifications AS q
            (workspace_id, lead_id, budget_amount, budget_currency, budget_confirmed, decision_maker,
             is_decision_maker, need, products, timeline, notes, updated_by, updated_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, now())
        ON CONFLICT (workspace_id, lead_id) DO UPDATE SET
            budget_amount = excluded.budget_amount, budget_currency = excluded.budget_currency,
            budget_confirmed = excluded.budget_confirmed, decision_maker = excluded.decision_maker,
            is_decision_maker = excluded.is_decision_maker, need = excluded.need, products = excluded.products,
            timeline = excluded.timeline, notes = excluded.notes, updated_by = excluded.updated_by,
            updated_at = excluded.updated_at, version = q.version + 1
        RETURNING {COLUMNS}
        """,
        lead["workspace_id"], lead["id"], budget.amount if budget else None, budget.currency if budget else None,
        answers["budget_confirmed"], answers["decision_maker"], answers["is_decision_maker"], answers["need"],
        answers["products"], answers["timeline"], answers["notes"], principal.user_id,
    )
    assert row is not None
    # The budget and its confirmation are fit attributes (qualify saves its answers through here too).
    await score_store.enqueue(conn, lead["workspace_id"], [lead["id"]])
    return _out(row)


def answered(qualification: QualificationOut, answer: str) -> bool:
    """Whether one of the BANT answers (as the settings name them) has been given."""
    if answer == "budget":
        return qualification.budget is not None
    if answer == "authority":
        # Knowing who decides is the answer, whether that is our contact or someone we have named.
        return bool(qualification.decision_maker) or qualification.is_decision_maker
    if answer == "need":
        return bool(qualification.need)
    if answer == "timeline":
        return qualification.timeline is not None
    raise ValueError(f"not a qualification answer: {answer!r}")


def check_required(qualification: QualificationOut, required: Sequence[str]) -> None:
    """422 with one error per required answer still missing (`qualification.budget`, ...)."""
    missing = [answer for answer in required if not answered(qualification, answer)]
    if missing:
        raise InvalidFields([
            {"field": f"qualification.{answer}", "code": "required", "message": _ASK[answer]} for answer in missing
        ])


async def qualify(
    conn: Connection,
    principal: Principal,
    lead: asyncpg.Record,
    request: QualificationPatch,
    settings: CaptureSettings,
    *,
    comment: str | None = None,
) -> tuple[asyncpg.Record, QualificationOut]:
    """Saves the answers sent with the request, checks the move and the required answers, moves the (locked)
    lead to qualified, assigns a closer by the `qualified` rules and publishes lead.qualified beside
    lead.status_changed (and lead.assigned when a closer was free). Returns the lead and its qualification."""
    check_transition(Status(lead["status"]), StatusChange(status=Status.qualified, comment=comment), settings)
    qualification = await save_answers(conn, principal, lead, request)
    check_required(qualification, settings.qualification_required)
    row = await record_status(conn, principal, lead, Status.qualified, comment=comment)
    hunter_id = row["owner_id"]
    # The hand-off: a closer by the workspace's `qualified` rules, in this transaction (qualify is low-volume).
    # Nobody free: the lead waits in the rule's queue with its hunter, and lead.assigned names the closer later.
    row, decision = await distribution.assign_now(conn, row, qualification.products)
    closer_id = decision.member["id"] if decision is not None and decision.member is not None else None
    await publish(
        conn,
        LeadQualifiedV1(
            lead_id=row["id"], workspace_id=row["workspace_id"], name=row["name"], email=row["email"],
            phone=row["phone"], company=row["company"], position=row["position"], source=row["source"],
            source_id=row["source_id"], channel=row["channel"], utm=row["utm"], tags=list(row["tags"]),
            custom=row["custom"], owner_id=hunter_id, closer_id=closer_id,
            qualification=QualificationV1(**{name: getattr(qualification, name) for name in ANSWERS}),
            comment=comment, qualified_by=principal.user_id, qualified_at=row["status_changed_at"],
        ),
        workspace_id=row["workspace_id"],
        subject=row["id"],
    )
    return row, qualification
