"""Hand-offs other services' events trigger: a won deal hands the client to a farmer (deal.won), and a missed
first-contact deadline hands the lead to the next hunter (task.overdue). Both run in the inbox transaction, so
their effects commit with the event's inbox row and a redelivered event changes nothing.
"""

from __future__ import annotations

import logging
import uuid

import asyncpg

from services.common.auth import ALL_WORKSPACES, Principal, Role
from services.common.db import Connection
from services.common.ids import new_id
from services.contracts import DealWonV1, TaskOverdueV1
from services.leads import distribution
from services.leads.distribution import Assigner, Stage
from services.leads.lifecycle import TRANSITIONS, record_status
from services.leads.repository import COLUMNS
from services.leads.roster import MemberRole
from services.leads.schemas import Status

log = logging.getLogger("voronka.leads.handoffs")

MISSED = "missed the first-contact deadline"
# Who converted a won client when the deal does not say who won it: the service principal's (nil) user id.
SERVICE_USER = ALL_WORKSPACES


async def _locked(conn: Connection, workspace_id: uuid.UUID, lead_id: uuid.UUID) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        f"SELECT {COLUMNS} FROM leads.leads WHERE workspace_id = $1 AND id = $2 FOR UPDATE", workspace_id, lead_id
    )
    return row


# ------------------------------------------------------------------------------------------------ won deal


async def client_to_farmer(conn: Connection, won: DealWonV1) -> None:
    """The deal's lead becomes `converted` (from `qualified`) and goes to a farmer by the workspace's `client`
    rules; the closer is recorded as the previous owner. A client that already has a farmer keeps them (another
    deal of the same client was won), and one already waiting in a client rule's queue keeps waiting."""
    if won.lead_id is None:
        return
    lead = await _locked(conn, won.workspace_id, won.lead_id)
    if lead is None:
        log.warning("deal.won names a lead the workspace does not have", extra={
            "deal_id": str(won.deal_id), "lead_id": str(won.lead_id), "workspace_id": str(won.workspace_id),
        })
        return
    status = Status(lead["status"])
    if status is not Status.converted:
        if Status.converted not in TRANSITIONS[status]:
            log.warning("deal.won for a lead that cannot become converted: left as it is, no farmer", extra={
                "deal_id": str(won.deal_id), "lead_id": str(lead["id"]), "status": status.value,
            })
            return
        by = Principal(workspace_id=won.workspace_id, user_id=won.won_by or SERVICE_USER, role=Role.service)
        lead = await record_status(conn, by, lead, Status.converted, comment=f"deal won: {won.title}")
    if lead["assignment_state"] in ("pending", "queued"):
        return  # a client rule's queue holds it already: the worker gives it the farmer
    if await _has_farmer(conn, lead):
        return
    products = await distribution.qualification_products(conn, lead["workspace_id"], [lead["id"]])
    await distribution.assign_now(conn, lead, products.get(lead["id"], ()))


async def _has_farmer(conn: Connection, lead: asyncpg.Record) -> bool:
    """Whether the client has its farmer: it was given to one before (by a client rule, or by hand once it was
    converted), or its owner is a farmer (given to them by hand before the deal was won)."""
    found = await conn.fetchval(
        """
        SELECT EXISTS (SELECT FROM leads.lead_assignments
                       WHERE workspace_id = $1 AND lead_id = $2 AND stage = $3 AND member_id IS NOT NULL)
            OR EXISTS (SELECT FROM leads.members WHERE workspace_id = $1 AND id = $4 AND role = $5)
        """,
        lead["workspace_id"], lead["id"], Stage.client.value, lead["owner_id"], MemberRole.farmer.value,
    )
    return bool(found)


# ------------------------------------------------------------------------------------------------ missed contact


async def first_contact_missed(conn: Connection, overdue: TaskOverdueV1) -> None:
    """The owner did not make first contact in time: the lead goes to the next member by the `new` rules, the
    one who missed it skipped. Only while the lead is still theirs and still `new` (nobody worked it); a lead
    worked or reassigned since makes the event stale, and nothing is recorded.

    When nobody else can take it, the owner keeps the lead and the record says so (`member_id` and
    `previous_owner_id` both the owner); no lead.assigned, since the owner did not change. The tasks service tells
    the head of sales from task.overdue itself either way."""
    if overdue.kind != "first_contact" or overdue.lead_id is None:
        return
    lead = await _locked(conn, overdue.workspace_id, overdue.lead_id)
    if lead is None:
        log.warning("task.overdue names a lead the workspace does not have", extra={
            "task_id": str(overdue.task_id), "lead_id": str(overdue.lead_id),
            "workspace_id": str(overdue.workspace_id),
        })
        return
    if lead["owner_id"] != overdue.assignee_id or lead["status"] != Status.new.value:
        log.info("first contact missed, but the lead was worked or reassigned since: nothing to do", extra={
            "task_id": str(overdue.task_id), "lead_id": str(lead["id"]),
        })
        return
    missed = overdue.assignee_id
    assigner = await Assigner.load(conn, lead["workspace_id"])
    await assigner.load_grades([lead])
    decision = assigner.decide(lead, exclude={missed: MISSED})
    if decision is None:
        # No rule for it any more: distribution has no say over who works it, as for any lead no rule matches.
        log.info("first contact missed, and no rule matches the lead: its owner keeps it", extra={
            "lead_id": str(lead["id"]), "member_id": str(missed),
        })
        return
    who = assigner.members[missed]["name"] if missed in assigner.members else str(missed)
    if decision.member is None:
        reason = (
            f"{who} {MISSED}, and nobody else can take the lead now ({decision.method_words}): {who} keeps it"
            f"{decision.skipped_words}"
        )
        await distribution.insert_records(conn, lead["workspace_id"], assigner.now, [{
            "id": str(new_id()), "lead_id": str(lead["id"]), "member_id": str(missed),
            "previous_owner_id": str(missed), "rule_id": str(decision.rule["id"]), "stage": Stage.new.value,
            "method": decision.rule["method"], "reason": reason, "skipped": decision.skipped, "assigned_by": None,
        }])
        return
    decision.reason = f"{who} {MISSED}; {decision.reason}"
    assigner.record(lead, decision, missed_by=missed)
    await assigner.save()
