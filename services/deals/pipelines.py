"""Pipelines and their stages: the queries (each scoped to the caller's workspace) and the writes, each
publishing its pipeline.* event in the transaction that makes the change.

A pipeline's stages are written as a whole: a change deletes the pipeline's stage rows and inserts the new list
(ids kept for the stages that stay), so positions and the won/completed marks stay unique per pipeline without
deferred constraints. Every change locks the pipeline row first, so two changes of one pipeline never interleave.
Removing a stage removes its playbook; a stage that deals are in cannot be removed, nor a pipeline that has deals
(409: move the deals first). The pipeline's row lock is what makes that check safe: opening a deal share-locks
the pipeline row (services.deals.opening.place).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg

from services.common.auth import Principal, Role
from services.common.db import Connection
from services.common.ids import new_id
from services.common.outbox import publish
from services.common.problems import Conflict, Forbidden, InvalidFields
from services.contracts.deals import (
    PipelineCreatedV1,
    PipelineDeletedV1,
    PipelineUpdatedV1,
    StageV1,
)
from services.deals import playbooks
from services.deals.stages import check_stage_list

PIPELINE_COLUMNS = (
    "workspace_id, id, name, description, audience, is_default, position, created_at, updated_at, version"
)
STAGE_FIELDS = (
    "name", "expected_result", "required_actions", "exit_criteria", "probability", "rotting_days", "phase",
    "is_won", "is_completed",
)
STAGE_COLUMNS = f"workspace_id, id, pipeline_id, position, {', '.join(STAGE_FIELDS)}, created_at, updated_at"
PIPELINE_FIELDS = ("name", "description", "audience", "position", "is_default")


def require_manager(principal: Principal) -> None:
    """Admins and heads of sales shape the sales process; reps and services only read it."""
    if principal.role not in (Role.admin, Role.head_of_sales):
        raise Forbidden("Only admins and heads of sales change pipelines and playbooks.")


def name_taken(name: str) -> Conflict:
    return Conflict(
        f"The workspace already has a pipeline named {name!r} (names are compared ignoring case).",
        errors=[{"field": "name", "code": "taken", "message": "Choose another name."}],
    )


def stage_values(stage: Mapping[str, Any] | asyncpg.Record) -> dict[str, Any]:
    """A stage's own fields (no id, position or times): what a change compares."""
    return {field: stage[field] for field in STAGE_FIELDS}


def snapshot(row: asyncpg.Record, stages: Sequence[asyncpg.Record]) -> dict[str, Any]:
    """A pipeline and its stages as the fields of its events."""
    values = {f: row[f] for f in ("workspace_id", "name", "description", "audience", "is_default", "position",
                                  "created_at", "updated_at")}
    return {
        **values, "pipeline_id": row["id"], "pipeline_version": row["version"],
        "stages": [StageV1(stage_id=s["id"], position=s["position"], **stage_values(s)) for s in stages],
    }


class PipelineRepository:
    """A workspace's pipelines: everyone in the workspace reads them, so rows are scoped by workspace alone."""

    def __init__(self, conn: Connection, principal: Principal) -> None:
        self.conn = conn
        self.principal = principal
        self.workspace_id = principal.workspace_id

    async def get(
        self, pipeline_id: uuid.UUID, *, for_update: bool = False, for_delete: bool = False
    ) -> asyncpg.Record | None:
        lock = " FOR UPDATE" if for_delete else " FOR NO KEY UPDATE" if for_update else ""
        row: asyncpg.Record | None = await self.conn.fetchrow(
            f"SELECT {PIPELINE_COLUMNS} FROM deals.pipelines WHERE workspace_id = $1 AND id = $2{lock}",
            self.workspace_id, pipeline_id,
        )
        return row

    async def page(self, limit: int, after: uuid.UUID | None) -> list[asyncpg.Record]:
        """Oldest first (ids are UUIDv7), keyset-paginated on the primary key."""
        rows: list[asyncpg.Record] = await self.conn.fetch(
            f"""
            SELECT {PIPELINE_COLUMNS} FROM deals.pipelines
            WHERE workspace_id = $1 AND ($2::uuid IS NULL OR id > $2)
            ORDER BY id LIMIT $3
            """,
            self.workspace_id, after, limit,
        )
        return rows

    async def stages(self, pipeline_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[asyncpg.Record]]:
        """The stages of each pipeline, in order."""
        rows = await self.conn.fetch(
            f"""
            SELECT {STAGE_COLUMNS} FROM deals.stages WHERE workspace_id = $1 AND pipeline_id = ANY($2::uuid[])
            ORDER BY pipeline_id, position
            """,
            self.workspace_id, list(pipeline_ids),
        )
        found: dict[uuid.UUID, list[asyncpg.Record]] = {pipeline_id: [] for pipeline_id in pipeline_ids}
        for row in rows:
            found[row["pipeline_id"]].append(row)
        return found

    async def stage(self, pipeline_id: uuid.UUID, stage_id: uuid.UUID) -> asyncpg.Record | None:
        row: asyncpg.Record | None = await self.conn.fetchrow(
            f"SELECT {STAGE_COLUMNS} FROM deals.stages WHERE workspace_id = $1 AND id = $2 AND pipeline_id = $3",
            self.workspace_id, stage_id, pipeline_id,
        )
        return row

    async def add(
        self, values: Mapping[str, Any], stages: Sequence[Mapping[str, Any]], *, created_by: uuid.UUID | None
    ) -> tuple[asyncpg.Record, list[asyncpg.Record]] | None:
        """A new pipeline with its stages; publishes pipeline.created. None when a unique index refused it: a
        taken name, or (for `is_default`) a default the workspace already has."""
        check_stage_list(stages)
        if any(stage.get("id") is not None for stage in stages):
            raise InvalidFields([
                {"field": f"stages[{i}].id", "code": "unknown_stage",
                 "message": "A new pipeline's stages get new ids: leave id out."}
                for i, stage in enumerate(stages) if stage.get("id") is not None
            ])
        position = values.get("position")
        if position is None:
            position = await self.conn.fetchval(
                "SELECT coalesce(max(position) + 1, 0) FROM deals.pipelines WHERE workspace_id = $1",
                self.workspace_id,
            )
        row: asyncpg.Record | None = await self.conn.fetchrow(
            f"""
            INSERT INTO deals.pipelines (workspace_id, id, name, description, audience, is_default, position)
            VALUES ($1, $2, $3, $4, $5, $6, $7)
            ON CONFLICT DO NOTHING
            RETURNING {PIPELINE_COLUMNS}
            """,
            self.workspace_id, new_id(), values["name"], values.get("description"), values.get("audience", []),
            values.get("is_default", False), position,
        )
        if row is None:
            return None
        stage_rows = await self._write_stages(row["id"], [{**s, "id": new_id()} for s in stages], {})
        await publish(
            self.conn, PipelineCreatedV1(**snapshot(row, stage_rows), created_by=created_by),
            workspace_id=self.workspace_id, subject=row["id"],
        )
        return row, stage_rows

    async def update(
        self,
        current: asyncpg.Record,
        values: Mapping[str, Any],
        stages: Sequence[Mapping[str, Any]] | None,
    ) -> tuple[asyncpg.Record, list[asyncpg.Record]]:
        """Applies `values` and, when given, the new stage list to a pipeline the caller has locked; unchanged
        (same version, no event) when nothing differs. Publishes pipeline.updated, and for the old default
        when this one becomes the default."""
        old_stages = (await self.stages([current["id"]]))[current["id"]]
        changed = {f: v for f, v in values.items() if v != current[f]}
        new_stages: list[dict[str, Any]] | None = None
        removed: list[uuid.UUID] = []
        if stages is not None:
            new_stages = self._keep_ids(stages, old_stages)
            kept = {s["id"] for s in new_stages}
            removed = [s["id"] for s in old_stages if s["id"] not in kept]
            before = [(s["id"], stage_values(s)) for s in old_stages]
            after = [(s["id"], stage_values(s)) for s in new_stages]
            if before == after:
                new_stages = None
        if not changed and new_stages is None:
            return current, old_stages
        if removed:
            await self._refuse_if_deals(current["id"], removed)
        if changed.get("is_default"):
            await self._demote_default(current["id"])
        assignments = ", ".join(f"{name} = ${i}" for i, name in enumerate(changed, start=3))
        try:
            row: asyncpg.Record | None = await self.conn.fetchrow(
                f"""
                UPDATE deals.pipelines SET {assignments}{", " if assignments else ""}updated_at = now(),
                    version = version + 1
                WHERE workspace_id = $1 AND id = $2
                RETURNING {PIPELINE_COLUMNS}
                """,
                self.workspace_id, current["id"], *changed.values(),
            )
        except asyncpg.UniqueViolationError as exc:
            raise name_taken(changed.get("name", current["name"])) from exc
        assert row is not None  # the caller holds the row lock
        stage_rows = old_stages
        if new_stages is not None:
            stage_rows = await self._write_stages(row["id"], new_stages, {s["id"]: s for s in old_stages})
            await playbooks.delete_for_stages(self.conn, self.workspace_id, removed)
        await publish(
            self.conn,
            PipelineUpdatedV1(
                **snapshot(row, stage_rows),
                changed=sorted([*changed, *(["stages"] if new_stages is not None else [])]),
                removed_stage_ids=removed, updated_by=self.principal.user_id,
            ),
            workspace_id=self.workspace_id, subject=row["id"],
        )
        return row, stage_rows

    async def delete(self, pipeline: asyncpg.Record) -> None:
        """Deletes a locked pipeline that is not the default, with its stages and playbooks."""
        if pipeline["is_default"]:
            raise Conflict(
                "The default pipeline cannot be deleted: make another pipeline the default first "
                "(PATCH it with is_default: true).",
                errors=[{"field": "is_default", "code": "default_pipeline",
                         "message": "This is the workspace's default pipeline."}],
            )
        await self._refuse_if_deals(pipeline["id"], None)
        stage_ids = await self.conn.fetch(
            "DELETE FROM deals.stages WHERE workspace_id = $1 AND pipeline_id = $2 RETURNING id",
            self.workspace_id, pipeline["id"],
        )
        await playbooks.delete_for_stages(self.conn, self.workspace_id, [r["id"] for r in stage_ids])
        await self.conn.execute(
            "DELETE FROM deals.pipelines WHERE workspace_id = $1 AND id = $2", self.workspace_id, pipeline["id"]
        )
        await publish(
            self.conn,
            PipelineDeletedV1(
                pipeline_id=pipeline["id"], workspace_id=self.workspace_id, name=pipeline["name"],
                deleted_by=self.principal.user_id, deleted_at=datetime.now(UTC),
            ),
            workspace_id=self.workspace_id, subject=pipeline["id"],
        )

    async def _refuse_if_deals(self, pipeline_id: uuid.UUID, stage_ids: list[uuid.UUID] | None) -> None:
        """409 when deals are in the pipeline (stage_ids None) or in one of these of its stages."""
        count = await self.conn.fetchval(
            """
            SELECT count(*) FROM deals.deals
            WHERE workspace_id = $1 AND pipeline_id = $2 AND ($3::uuid[] IS NULL OR stage_id = ANY($3::uuid[]))
            """,
            self.workspace_id, pipeline_id, stage_ids,
        )
        if count:
            where = "in the stages this change removes" if stage_ids is not None else "in this pipeline"
            raise Conflict(
                f"{count} deal(s) are {where}; move them to another stage first.",
                errors=[{"field": "stages", "code": "stage_has_deals", "message": f"{count} deal(s) {where}."}],
            )

    def _keep_ids(
        self, stages: Sequence[Mapping[str, Any]], old_stages: Sequence[asyncpg.Record]
    ) -> list[dict[str, Any]]:
        """The new stage list with an id for each stage: the one sent (which must be one of the pipeline's
        stages, once) or a new one. Checks the list's rules too."""
        check_stage_list(stages)
        known = {s["id"] for s in old_stages}
        errors: list[dict[str, str]] = []
        seen: set[uuid.UUID] = set()
        for i, stage in enumerate(stages):
            stage_id = stage.get("id")
            if stage_id is None:
                continue
            if stage_id not in known:
                errors.append({"field": f"stages[{i}].id", "code": "unknown_stage",
                               "message": f"The pipeline has no stage {stage_id}; leave id out to add a stage."})
            elif stage_id in seen:
                errors.append({"field": f"stages[{i}].id", "code": "duplicate_stage",
                               "message": "This stage is already in the list."})
            seen.add(stage_id)
        if errors:
            raise InvalidFields(errors)
        return [{**stage, "id": stage.get("id") or new_id()} for stage in stages]

    async def _write_stages(
        self, pipeline_id: uuid.UUID, stages: Sequence[Mapping[str, Any]], old: Mapping[uuid.UUID, asyncpg.Record]
    ) -> list[asyncpg.Record]:
        """Replaces the pipeline's stage rows with `stages` (each with its id), in order; a kept stage keeps
        its created_at, and its updated_at unless it changed."""
        await self.conn.execute(
            "DELETE FROM deals.stages WHERE workspace_id = $1 AND pipeline_id = $2", self.workspace_id, pipeline_id
        )
        now = datetime.now(UTC)
        params = []
        for position, stage in enumerate(stages):
            before = old.get(stage["id"])
            same = before is not None and stage_values(before) == stage_values(stage) and before["position"] == position
            created_at = before["created_at"] if before is not None else now
            updated_at = before["updated_at"] if same and before is not None else now
            params.append((
                self.workspace_id, stage["id"], pipeline_id, position, *(stage[f] for f in STAGE_FIELDS),
                created_at, updated_at,
            ))
        placeholders = ", ".join(f"${i}" for i in range(1, len(STAGE_FIELDS) + 7))
        await self.conn.executemany(f"INSERT INTO deals.stages ({STAGE_COLUMNS}) VALUES ({placeholders})", params)
        return (await self.stages([pipeline_id]))[pipeline_id]

    async def _demote_default(self, pipeline_id: uuid.UUID) -> None:
        """The workspace's current default stops being it (this pipeline becomes it); publishes its update."""
        old = await self.conn.fetchrow(
            f"""
            UPDATE deals.pipelines SET is_default = false, updated_at = now(), version = version + 1
            WHERE workspace_id = $1 AND is_default AND id <> $2
            RETURNING {PIPELINE_COLUMNS}
            """,
            self.workspace_id, pipeline_id,
        )
        if old is not None:
            old_stages = (await self.stages([old["id"]]))[old["id"]]
            await publish(
                self.conn,
                PipelineUpdatedV1(
                    **snapshot(old, old_stages), changed=["is_default"], updated_by=self.principal.user_id
                ),
                workspace_id=self.workspace_id, subject=old["id"],
            )
