"""HTTP: /v1/pipelines/{id}/stages/{stage_id}/playbook — a stage's script and steps: read, replace (a new
version), and every version, newest first.

Everyone in the workspace reads playbooks; admins and heads of sales change them. Publishes playbook.updated.
"""

from __future__ import annotations

import uuid
from typing import Annotated

import asyncpg
from fastapi import APIRouter, Query, Response

from services.common.auth import CurrentPrincipal, Principal
from services.common.cursors import decode_cursor, encode_cursor
from services.common.db import DB, Connection
from services.common.etags import IfMatchHeader, check_version, etag
from services.common.problems import NotFound
from services.common.responses import model_response
from services.deals import pipelines, playbooks
from services.deals.default_pipeline import ensure_default
from services.deals.pipelines import PipelineRepository
from services.deals.schemas import PlaybookOut, PlaybookPage, PlaybookPut

router = APIRouter(prefix="/v1/pipelines/{pipeline_id}/stages/{stage_id}/playbook", tags=["playbooks"])


def _out(pipeline_id: uuid.UUID, stage_id: uuid.UUID, row: asyncpg.Record | None) -> PlaybookOut:
    if row is None:
        return PlaybookOut(
            pipeline_id=pipeline_id, stage_id=stage_id, version=0, script=None, steps=[], created_at=None,
            created_by=None,
        )
    return PlaybookOut.model_validate(dict(row))


def _response(pipeline_id: uuid.UUID, stage_id: uuid.UUID, row: asyncpg.Record | None) -> Response:
    out = _out(pipeline_id, stage_id, row)
    return model_response(out, headers={"ETag": etag(out.version)})


async def _stage(
    conn: Connection, principal: Principal, pipeline_id: uuid.UUID, stage_id: uuid.UUID, *, lock: bool = False
) -> None:
    """404 unless the stage is one of the workspace's pipeline's; `lock` locks the pipeline for a write."""
    repository = PipelineRepository(conn, principal)
    if await repository.get(pipeline_id, for_update=lock) is None:
        raise NotFound(f"There is no pipeline {pipeline_id}.")
    if await repository.stage(pipeline_id, stage_id) is None:
        raise NotFound(f"The pipeline has no stage {stage_id}.")


@router.get("", response_model=PlaybookOut)
async def get_playbook(
    pipeline_id: uuid.UUID, stage_id: uuid.UUID, principal: CurrentPrincipal, db: DB
) -> Response:
    """The stage's playbook, with its version as the ETag; version 0 and no steps when it has none yet."""
    await ensure_default(db, principal)
    async with db.connection() as conn:
        await _stage(conn, principal, pipeline_id, stage_id)
        row = await playbooks.current(conn, principal.workspace_id, stage_id)
    return _response(pipeline_id, stage_id, row)


@router.put("", response_model=PlaybookOut)
async def put_playbook(
    pipeline_id: uuid.UUID,
    stage_id: uuid.UUID,
    body: PlaybookPut,
    principal: CurrentPrincipal,
    db: DB,
    if_match: IfMatchHeader = None,
) -> Response:
    """Replaces the script and steps: a new version (the old ones stay readable); the same content changes
    nothing. `If-Match` with the playbook's ETag (`"0"` for a stage without one)."""
    pipelines.require_manager(principal)
    await ensure_default(db, principal)
    script = (body.script or "").strip() or None
    steps = [step.model_dump(mode="json") for step in body.steps]
    async with db.transaction() as conn:
        await _stage(conn, principal, pipeline_id, stage_id, lock=True)
        latest = await playbooks.current(conn, principal.workspace_id, stage_id)
        check_version(if_match, latest["version"] if latest else 0)
        row = await playbooks.save(
            conn, principal.workspace_id, pipeline_id, stage_id, script, steps, by=principal.user_id, latest=latest
        )
    return _response(pipeline_id, stage_id, row)


@router.get("/versions", response_model=PlaybookPage)
async def list_versions(
    pipeline_id: uuid.UUID,
    stage_id: uuid.UUID,
    principal: CurrentPrincipal,
    db: DB,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor from the previous page")] = None,
) -> Response:
    """Every version of the stage's playbook, newest first."""
    before = decode_cursor(cursor) if cursor else None
    await ensure_default(db, principal)
    async with db.connection() as conn:
        await _stage(conn, principal, pipeline_id, stage_id)
        rows = await playbooks.page(conn, principal.workspace_id, stage_id, limit + 1, before)
    items = [_out(pipeline_id, stage_id, r) for r in rows[:limit]]
    next_cursor = encode_cursor(rows[limit - 1]["id"]) if len(rows) > limit else None
    return model_response(PlaybookPage(items=items, next_cursor=next_cursor))
