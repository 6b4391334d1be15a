"""What scoring reads about leads, loaded for many leads at once: the lead's attributes and qualification as
`scoring.Facts`, and its touches as engagement events. The rule score (scoring.compute), the learned model
(conversion.features) and distribution's grade conditions all read these, so they agree on what a lead is.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import asyncpg

from services.common.db import Connection
from services.leads import scoring
from services.leads.normalize import lead_country


@dataclass(frozen=True)
class LeadInputs:
    lead_id: uuid.UUID
    owner_id: uuid.UUID | None
    status: str
    created_at: datetime
    facts: scoring.Facts
    touches: tuple[scoring.Touch, ...]
    # Whether the lead has an email and a phone: the learned model reads them, the rules do not.
    has_email: bool
    has_phone: bool


def facts_of(lead: asyncpg.Record, answers: asyncpg.Record | None, *, country: bool = True) -> scoring.Facts:
    """A lead row (with company, position, channel, source, phone, tags, custom) and its qualification row.
    `country=False` leaves the country out: finding it parses the phone number, a fifth of what building a
    lead's inputs costs, and most models never read it."""
    budget: tuple[Decimal, str] | None = None
    confirmed = False
    if answers is not None:
        if answers["budget_amount"] is not None:
            budget = (answers["budget_amount"], answers["budget_currency"])
        confirmed = bool(answers["budget_confirmed"])
    return scoring.Facts(
        company=lead["company"], position=lead["position"], channel=lead["channel"], source=lead["source"],
        country=lead_country(lead) if country else None, tags=tuple(lead["tags"]), budget=budget,
        budget_confirmed=confirmed, custom=lead["custom"] or {},
    )


async def load(
    conn: Connection, workspace_id: uuid.UUID, lead_ids: Sequence[uuid.UUID], *, country: bool = True
) -> dict[uuid.UUID, LeadInputs]:
    """The inputs of each lead of the workspace among `lead_ids` (merged-away and unknown ids are left out),
    in three queries whatever the number of leads; without the country when `country` is False."""
    if not lead_ids:
        return {}
    ids = list(lead_ids)
    leads = await conn.fetch(
        """
        SELECT id, owner_id, status, created_at, email, phone, company, position, channel, source, tags, custom
        FROM leads.leads WHERE workspace_id = $1 AND id = ANY($2::uuid[]) AND status <> 'merged'
        """,
        workspace_id, ids,
    )
    answers = {
        row["lead_id"]: row
        for row in await conn.fetch(
            """
            SELECT lead_id, budget_amount, budget_currency, budget_confirmed FROM leads.lead_qualifications
            WHERE workspace_id = $1 AND lead_id = ANY($2::uuid[])
            """,
            workspace_id, ids,
        )
    }
    touches: dict[uuid.UUID, list[scoring.Touch]] = {}
    for row in await conn.fetch(
        """
        SELECT lead_id, via, touched_at FROM leads.lead_touches
        WHERE workspace_id = $1 AND lead_id = ANY($2::uuid[]) ORDER BY lead_id, id
        """,
        workspace_id, ids,
    ):
        event = scoring.EVENT_FOR_VIA.get(row["via"])
        if event is not None:
            touches.setdefault(row["lead_id"], []).append(scoring.Touch(event, row["touched_at"]))
    return {
        lead["id"]: LeadInputs(
            lead_id=lead["id"], owner_id=lead["owner_id"], status=lead["status"], created_at=lead["created_at"],
            facts=facts_of(lead, answers.get(lead["id"]), country=country), touches=tuple(touches.get(lead["id"], ())),
            has_email=lead["email"] is not None, has_phone=lead["phone"] is not None,
        )
        for lead in leads
    }
