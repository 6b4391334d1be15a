"""The pipeline a workspace starts with: a classic B2B process, from a new lead to a client onboarded.

Created on a workspace's first call to a pipeline endpoint or POST /v1/deals, or with its first lead.qualified.
Two first calls at once create one pipeline: both insert it with ON CONFLICT DO NOTHING against the
one-default-per-workspace index, the second waits for the first to commit and inserts nothing, and only the one
that inserted adds the stages, playbooks and events.
"""

from __future__ import annotations

import uuid
from typing import Any

from services.common.auth import ALL_WORKSPACES, Principal, Role
from services.common.db import Connection, Database
from services.deals import playbooks
from services.deals.pipelines import PipelineRepository

NAME = "Sales"
DESCRIPTION = "The classic B2B process, from a new lead to a client onboarded and trained."


def _stage(
    name: str, phase: str, probability: int, rotting_days: int | None, expected_result: str,
    actions: list[str], exit_criteria: list[str], *, is_won: bool = False, is_completed: bool = False,
) -> dict[str, Any]:
    return {
        "name": name, "phase": phase, "probability": probability, "rotting_days": rotting_days,
        "expected_result": expected_result, "required_actions": actions, "exit_criteria": exit_criteria,
        "is_won": is_won, "is_completed": is_completed,
    }


STAGES: tuple[dict[str, Any], ...] = (
    _stage("New lead", "pre_sale", 10, 2, "First contact made and the request understood",
           ["Call or write to the client within the response time", "Record the request and who asked"],
           ["contact"]),
    _stage("Qualification", "pre_sale", 20, 5, "Budget, authority, need and timeline confirmed (BANT)",
           ["Ask about budget, authority, need and timeline", "Find out who decides"],
           ["company", "contact"]),
    _stage("Needs analysis", "pre_sale", 30, 7, "The client's needs and success criteria written down and agreed",
           ["Hold a discovery meeting or a demo", "Write down the needs, pains and success criteria"],
           ["products"]),
    _stage("Proposal preparation", "pre_sale", 40, 5, "A priced proposal approved inside the company",
           ["Prepare the commercial proposal", "Agree any discount with the head of sales"],
           ["amount", "line_items"]),
    _stage("Proposal sent", "closing", 50, 7, "The client has read the proposal and given feedback",
           ["Send the proposal", "Walk the client through it within 2 working days"],
           ["amount"]),
    _stage("Negotiation", "closing", 60, 10, "Price, scope and schedule agreed with the client",
           ["Handle the objections", "Agree the final terms"],
           ["amount", "expected_close_date"]),
    _stage("Decision", "closing", 75, 10, "The decision maker said yes",
           ["Meet the decision maker", "Confirm the decision and the signing date"],
           ["amount", "expected_close_date"]),
    _stage("Contract and invoice", "closing", 90, 7, "Contract signed and the invoice issued",
           ["Send the contract for signature", "Issue the invoice"],
           ["amount", "expected_close_date"]),
    _stage("Won", "closing", 100, None, "The deal is won and handed over to delivery",
           ["Hand the client over to delivery"], ["amount", "expected_close_date"], is_won=True),
    _stage("Payment", "post_sale", 100, 14, "The invoice is paid",
           ["Remind the client of the due date", "Confirm the payment"], []),
    _stage("Delivery", "post_sale", 100, 30, "The product delivered and accepted by the client",
           ["Plan the delivery with the client", "Get the acceptance signed"], []),
    _stage("Onboarding and training", "post_sale", 100, 30, "The client's team uses the product on its own",
           ["Run the onboarding session", "Train the client's users"], []),
    _stage("Completed", "post_sale", 100, None, "The client handed over to account management",
           ["Hand the client to a farmer", "Ask for a review or a referral"], [], is_completed=True),
)


def _step(title: str, task_type: str, due_in: int, due_unit: str = "working_days", *,
          assignee: str = "deal_owner", checkpoint: bool = False, description: str | None = None) -> dict[str, Any]:
    return {
        "title": title, "task_type": task_type, "description": description, "due_in": due_in, "due_unit": due_unit,
        "assignee": assignee, "checkpoint": checkpoint,
    }


# Stage name -> (script, steps): starter playbooks for the stages where a missed step loses most deals.
PLAYBOOKS: dict[str, tuple[str, list[dict[str, Any]]]] = {
    "Qualification": (
        "Introduce yourself and the reason for the call. Ask: what made you look for a solution now? Who else "
        "takes part in the decision, and who signs? Is there a budget for this, and roughly how much? By when do "
        "you need it working?",
        [_step("Qualification call", "call", 1),
         _step("Send a summary of the call", "email", 4, "working_hours")],
    ),
    "Proposal sent": (
        "Ask whether the proposal reached the right people and what they thought of it. Go through price, scope "
        "and timing one by one; write down every objection and agree the next step before you hang up.",
        [_step("Call about the proposal", "call", 2, checkpoint=True,
               description="Walk the client through the proposal and agree the next step."),
         _step("Follow up if there is no answer", "follow_up", 5)],
    ),
    "Contract and invoice": (
        "Confirm who signs and how (paper or electronic signature). Check the invoice details with the client's "
        "accountant before you send it.",
        [_step("Send the contract and the invoice", "email", 1, checkpoint=True),
         _step("Check the signature and the payment date", "call", 3),
         _step("Review the contract terms", "other", 2, assignee="head_of_sales")],
    ),
}


async def ensure_default(db: Database, principal: Principal) -> None:
    """Creates the workspace's default pipeline unless it has one. A workspace always has a default once it was
    created (it cannot be deleted, only handed to another pipeline), so its presence means "provisioned"."""
    if principal.role is Role.service:
        return  # a service token belongs to no workspace
    async with db.connection() as conn:
        if await conn.fetchval(
            "SELECT true FROM deals.pipelines WHERE workspace_id = $1 AND is_default", principal.workspace_id
        ):
            return
    async with db.transaction() as conn:
        await provision(conn, principal.workspace_id)


async def provision(conn: Connection, workspace_id: uuid.UUID) -> None:
    """Creates the workspace's default pipeline in the caller's transaction unless it has one (an event handler
    provisions the workspace this way, in its inbox transaction). A concurrent first use waits on the
    one-default index and inserts nothing."""
    if await conn.fetchval("SELECT true FROM deals.pipelines WHERE workspace_id = $1 AND is_default", workspace_id):
        return
    # Voronka itself provisions: created_by and the playbooks' authors are null.
    voronka = Principal(workspace_id=workspace_id, user_id=ALL_WORKSPACES, role=Role.admin)
    created = await PipelineRepository(conn, voronka).add(
        {"name": NAME, "description": DESCRIPTION, "audience": [], "is_default": True, "position": 0},
        STAGES, created_by=None,
    )
    if created is None:
        return  # another first call created it
    _, stages = created
    for stage in stages:
        starter = PLAYBOOKS.get(stage["name"])
        if starter is not None:
            script, steps = starter
            await playbooks.save(
                conn, workspace_id, stage["pipeline_id"], stage["id"], script, steps, by=None, latest=None,
            )
