"""HTTP: a lead's qualification (BANT) — /v1/leads/{id}/qualification to read and save the answers, and
/v1/leads/{id}/qualify to check them and hand the lead to a closer (qualified, lead.qualified)."""

from __future__ import annotations

import uuid

import asyncpg
from fastapi import APIRouter, Response

from services.common.auth import CurrentPrincipal, Principal
from services.common.db import DB, Connection, ReadConn
from services.common.etags import IfMatchHeader, check_version, etag
from services.common.idempotency import IdempotencyKeyHeader, IdempotentRequest, answer_once
from services.common.problems import NotFound
from services.common.responses import model_response
from services.leads import intake, qualification
from services.leads.models import SCHEMA
from services.leads.repository import LeadRepository
from services.leads.schemas import LeadOut, QualificationOut, QualificationPatch, QualifiedOut, QualifyRequest

router = APIRouter(prefix="/v1/leads", tags=["qualification"])


async def _lead(conn: Connection, principal: Principal, lead_id: uuid.UUID, *, lock: bool) -> asyncpg.Record:
    """The lead as the caller may see it (a rep: only their own), else 404, as every /v1/leads/{id} endpoint."""
    lead = await LeadRepository(conn, principal).get(lead_id, for_update=lock)
    if lead is None:
        raise NotFound(f"There is no lead {lead_id}.")
    return lead


def _answers(answers: QualificationOut) -> Response:
    return model_response(answers, headers={"ETag": etag(answers.version)})


@router.get("/{lead_id}/qualification", response_model=QualificationOut)
async def get_qualification(lead_id: uuid.UUID, principal: CurrentPrincipal, conn: ReadConn) -> Response:
    """The lead's answers so far; an empty record with version 0 before anything was saved."""
    await _lead(conn, principal, lead_id, lock=False)
    return _answers(await qualification.load(conn, principal.workspace_id, lead_id))


@router.patch("/{lead_id}/qualification", response_model=QualificationOut)
async def patch_qualification(
    lead_id: uuid.UUID, body: QualificationPatch, principal: CurrentPrincipal, db: DB, if_match: IfMatchHeader = None
) -> Response:
    """Saves the answers sent (null clears one). With If-Match (the qualification's ETag), only if nobody changed
    the answers since (412 otherwise). A converted or merged lead's answers are final (409)."""
    async with db.transaction() as conn:
        lead = await _lead(conn, principal, lead_id, lock=True)
        current = await qualification.load(conn, principal.workspace_id, lead_id)
        check_version(if_match, current.version)
        saved = await qualification.save_answers(conn, principal, lead, body, current)
    return _answers(saved)


@router.post("/{lead_id}/qualify", response_model=QualifiedOut)
async def qualify(
    lead_id: uuid.UUID,
    body: QualifyRequest,
    principal: CurrentPrincipal,
    db: DB,
    if_match: IfMatchHeader = None,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    """Saves the answers sent, then moves the lead to qualified if the move is allowed (409 otherwise) and every
    answer the workspace requires is given (422 naming each missing one); publishes lead.qualified. If-Match is
    the lead's ETag, as for a status move. A refused request saves nothing."""

    async def write(conn: Connection) -> Response:
        lead = await _lead(conn, principal, lead_id, lock=True)
        check_version(if_match, lead["version"])
        settings = await intake.load_settings(conn, principal.workspace_id)
        row, answers = await qualification.qualify(conn, principal, lead, body, settings, comment=body.comment)
        result = QualifiedOut(lead=LeadOut.model_validate(dict(row)), qualification=answers)
        return model_response(result, headers={"ETag": etag(row["version"])})

    if idempotency_key is None:
        async with db.transaction() as conn:
            response = await write(conn)
        return response
    keyed = IdempotentRequest.of(principal, idempotency_key, f"POST /v1/leads/{lead_id}/qualify", body)
    return await answer_once(db, SCHEMA, keyed, write)
