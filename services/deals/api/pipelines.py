"""HTTP: /v1/pipelines — a workspace's sales processes with their stages: add, list, read, change, delete — and
/v1/pipelines/{id}/check, the pipeline against good practice.

Everyone in the workspace reads them; admins and heads of sales change them. The workspace's default pipeline is
created on its first call to any of these. Publishes pipeline.created, pipeline.updated and pipeline.deleted.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Query, Response, status

from services.common.auth import CurrentPrincipal, Principal
from services.common.cursors import decode_cursor, encode_cursor
from services.common.db import DB, Connection, Database
from services.common.etags import IfMatchHeader, check_version, etag
from services.common.idempotency import IdempotencyKeyHeader, IdempotentRequest, answer_once
from services.common.problems import InvalidField, NotFound
from services.common.responses import model_response
from services.deals import pipelines
from services.deals.default_pipeline import ensure_default
from services.deals.models import SCHEMA
from services.deals.pipeline_check import check_pipeline
from services.deals.pipelines import PipelineRepository
from services.deals.schemas import (
    CheckOut,
    FindingOut,
    PipelineCreate,
    PipelineOut,
    PipelinePage,
    PipelinePatch,
    StageOut,
)

router = APIRouter(prefix="/v1/pipelines", tags=["pipelines"])


def pipeline_out(row: asyncpg.Record, stages: Sequence[asyncpg.Record]) -> PipelineOut:
    return PipelineOut.model_validate(
        {**dict(row), "stages": [StageOut.model_validate(dict(s)) for s in stages]}
    )


def _response(row: asyncpg.Record, stages: Sequence[asyncpg.Record], status_code: int = 200) -> Response:
    headers = {"Location": f"/v1/pipelines/{row['id']}", "ETag": etag(row["version"])}
    return model_response(pipeline_out(row, stages), status_code, headers)


def _stages(body: PipelineCreate | PipelinePatch) -> list[dict[str, Any]] | None:
    """The stages sent, as the repository takes them (an empty expected result is none)."""
    if body.stages is None:
        return None
    return [
        s.model_dump(mode="json") | {"id": s.id, "expected_result": s.expected_result or None} for s in body.stages
    ]


async def _found(repository: PipelineRepository, pipeline_id: uuid.UUID, **lock: bool) -> asyncpg.Record:
    row = await repository.get(pipeline_id, **lock)
    if row is None:
        raise NotFound(f"There is no pipeline {pipeline_id}.")
    return row


@router.post("", status_code=status.HTTP_201_CREATED, response_model=PipelineOut)
async def create_pipeline(
    body: PipelineCreate, principal: CurrentPrincipal, db: DB, idempotency_key: IdempotencyKeyHeader = None
) -> Response:
    """A pipeline with its stages in order. The check's findings never refuse it: GET .../check lists them."""
    pipelines.require_manager(principal)
    await ensure_default(db, principal)
    values = body.model_dump(include={"name", "description", "audience", "position"})
    stages = _stages(body)
    assert stages is not None

    async def write(conn: Connection) -> Response:
        created = await PipelineRepository(conn, principal).add(values, stages, created_by=principal.user_id)
        if created is None:
            raise pipelines.name_taken(values["name"])
        return _response(*created, status.HTTP_201_CREATED)

    if idempotency_key is None:
        async with db.transaction() as conn:
            response = await write(conn)
        return response
    keyed = IdempotentRequest.of(principal, idempotency_key, "POST /v1/pipelines", body)
    return await answer_once(db, SCHEMA, keyed, write)


@router.get("", response_model=PipelinePage)
async def list_pipelines(
    principal: CurrentPrincipal,
    db: DB,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor from the previous page")] = None,
) -> Response:
    """The workspace's pipelines with their stages, oldest first (the default one first of all)."""
    after = decode_cursor(cursor) if cursor else None
    await ensure_default(db, principal)
    async with db.connection() as conn:
        repository = PipelineRepository(conn, principal)
        rows = await repository.page(limit + 1, after)
        stages = await repository.stages([r["id"] for r in rows[:limit]])
    items = [pipeline_out(r, stages[r["id"]]) for r in rows[:limit]]
    next_cursor = encode_cursor(items[-1].id) if len(rows) > limit else None
    return model_response(PipelinePage(items=items, next_cursor=next_cursor))


async def read_pipeline(
    db: Database, principal: Principal, pipeline_id: uuid.UUID
) -> tuple[asyncpg.Record, list[asyncpg.Record]]:
    await ensure_default(db, principal)
    async with db.connection() as conn:
        repository = PipelineRepository(conn, principal)
        row = await _found(repository, pipeline_id)
        stages = (await repository.stages([pipeline_id]))[pipeline_id]
    return row, stages


@router.get("/{pipeline_id}", response_model=PipelineOut)
async def get_pipeline(pipeline_id: uuid.UUID, principal: CurrentPrincipal, db: DB) -> Response:
    return _response(*await read_pipeline(db, principal, pipeline_id))


@router.get("/{pipeline_id}/check", response_model=CheckOut)
async def check(pipeline_id: uuid.UUID, principal: CurrentPrincipal, db: DB) -> Response:
    """The pipeline against good practice: each finding says what and why. Findings never block a save."""
    row, stages = await read_pipeline(db, principal, pipeline_id)
    findings = [
        FindingOut(code=f.code, severity=f.severity, stage_id=f.stage_id, message=f.message)
        for f in check_pipeline(stages)
    ]
    return model_response(
        CheckOut(pipeline_id=row["id"], pipeline_version=row["version"], findings=findings),
        headers={"ETag": etag(row["version"])},
    )


@router.patch("/{pipeline_id}", response_model=PipelineOut)
async def patch_pipeline(
    pipeline_id: uuid.UUID, body: PipelinePatch, principal: CurrentPrincipal, db: DB, if_match: IfMatchHeader = None
) -> Response:
    """Changes the fields sent; `stages` is the whole new list (kept stages by id, new ones without)."""
    pipelines.require_manager(principal)
    sent = body.model_dump(include=body.model_fields_set - {"stages"})
    for field in ("name", "audience", "position", "is_default"):
        if field in sent and sent[field] is None:
            raise InvalidField(field, f"{field} cannot be cleared; send a value instead of null.", code="null")
    if "stages" in body.model_fields_set and body.stages is None:
        raise InvalidField("stages", "A pipeline always has stages; send the list instead of null.", code="null")
    if "description" in sent:
        sent["description"] = sent["description"] or None
    await ensure_default(db, principal)
    async with db.transaction() as conn:
        repository = PipelineRepository(conn, principal)
        current = await _found(repository, pipeline_id, for_update=True)
        check_version(if_match, current["version"])
        row, stages = await repository.update(current, sent, _stages(body))
    return _response(row, stages)


@router.delete("/{pipeline_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_pipeline(
    pipeline_id: uuid.UUID, principal: CurrentPrincipal, db: DB, if_match: IfMatchHeader = None
) -> Response:
    """Deletes a pipeline with its stages and playbooks; the default one cannot be (409)."""
    pipelines.require_manager(principal)
    await ensure_default(db, principal)
    async with db.transaction() as conn:
        repository = PipelineRepository(conn, principal)
        current = await _found(repository, pipeline_id, for_delete=True)
        check_version(if_match, current["version"])
        await repository.delete(current)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
