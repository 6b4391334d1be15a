"""Taking leads in: dedupe by email and phone, create or merge, and publish — in the caller's transaction.

Every way in (POST /v1/leads, :batch, inbound webhooks, CSV imports) ends here with items prepared by
`intake.validate_lead`, so one code path decides what is a new lead and what is a repeat of a known one.

Dedupe holds under concurrency without locks held across requests: `lead_identities` has one row per
(workspace, email or phone), and a new lead first *claims* its identities with INSERT ... ON CONFLICT DO
NOTHING. Two requests claiming the same email serialize on that unique key; the second waits until the first
commits, sees the conflict, and merges into the first's lead instead of creating a twin. Keys are claimed in
sorted order, so two batches never wait on each other in a cycle.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import asyncpg

from services.common.auth import Principal
from services.common.db import Connection
from services.common.ids import new_id
from services.common.outbox import cloud_event, event_rows, events_insert, publish_many, wake_dispatchers
from services.common.problems import Forbidden
from services.common.workers import notify
from services.contracts import LeadCreatedV1, LeadMergedV1
from services.leads import assignment_queue, score_store
from services.leads.models import SCHEMA
from services.leads.repository import COLUMNS
from services.leads.schemas import LeadCreate, Via

Key = tuple[str, str]  # ("email" | "phone", normalized value)

# Fields a repeat submission may fill on the known lead when the lead has none.
FILLABLE = ("email", "phone", "company", "position", "notes")


@dataclass(frozen=True)
class Captured:
    outcome: Literal["created", "merged"]
    lead: asyncpg.Record


def owner_for(principal: Principal, requested: uuid.UUID | None) -> uuid.UUID | None:
    """Who owns a lead the caller takes in. A rep's leads are their own; handing one to someone else is the
    head of sales' call."""
    if principal.sees_whole_workspace:
        return requested
    if requested not in (None, principal.user_id):
        message = "A rep can take in leads only for themselves."
        raise Forbidden(message, errors=[{"field": "owner_id", "code": "forbidden", "message": message}])
    return principal.user_id


def identity_keys(item: LeadCreate) -> list[Key]:
    keys: list[Key] = []
    if item.email:
        keys.append(("email", item.email))
    if item.phone:
        keys.append(("phone", item.phone))
    return keys


@dataclass
class _Group:
    """Items of one call that share an email or phone: they become (or join) one lead."""

    indexes: list[int]
    keys: list[Key] = field(default_factory=list)
    proposed_id: uuid.UUID = field(default_factory=new_id)
    target: uuid.UUID | None = None  # an existing lead they merge into


def _group(items: Sequence[LeadCreate]) -> list[_Group]:
    """Union of items sharing any key, in order of first appearance."""
    parent = list(range(len(items)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first_with: dict[Key, int] = {}
    for i, item in enumerate(items):
        for key in identity_keys(item):
            if key in first_with:
                a, b = find(first_with[key]), find(i)
                if a != b:
                    parent[max(a, b)] = min(a, b)
            else:
                first_with[key] = i
    groups: dict[int, _Group] = {}
    for i in range(len(items)):
        group = groups.setdefault(find(i), _Group(indexes=[]))
        group.indexes.append(i)
    for group in groups.values():
        seen: dict[Key, None] = {}
        for i in group.indexes:
            for key in identity_keys(items[i]):
                seen.setdefault(key, None)
        group.keys = list(seen)
    return sorted(groups.values(), key=lambda g: g.indexes[0])


async def capture(
    conn: Connection,
    principal: Principal,
    items: Sequence[LeadCreate],
    *,
    via: Via,
    origin_ids: Sequence[uuid.UUID | None] | None = None,
) -> list[Captured]:
    """Creates each item as a lead, or merges it into the lead that already has its email or phone.

    Runs inside the caller's transaction; results are in item order. Items that share an email or phone
    within the call collapse into one lead (the first creates it, the rest merge). `origin_ids[i]` is the
    inbound request or import item i came from, kept on its touch.
    """
    if not items:
        return []
    workspace = principal.workspace_id
    owners = [owner_for(principal, item.owner_id) for item in items]
    origins = list(origin_ids) if origin_ids is not None else [None] * len(items)
    now = datetime.now(UTC)
    groups = _group(items)

    await _claim(conn, workspace, groups)

    new_groups = [g for g in groups if g.target is None]
    merge_groups = [g for g in groups if g.target is not None]
    creating = {g.indexes[0]: g.proposed_id for g in new_groups}

    # Merges: into the known leads, and into the leads this call creates for the items that repeat them.
    targets: dict[int, uuid.UUID] = {}
    for g in merge_groups:
        assert g.target is not None
        for i in g.indexes:
            targets[i] = g.target
    for g in new_groups:
        for i in g.indexes[1:]:
            targets[i] = g.proposed_id
    lead_of: dict[int, uuid.UUID] = {i: lead_id for i, lead_id in creating.items()} | targets
    touches = _touch_rows(items, lead_of, origins)

    # The touches go in with the new leads (one statement), or on their own when every item was known.
    created_rows = await _insert_leads(conn, principal, items, owners, creating, now, via, touches)
    if not creating:
        await _add_touches(conn, workspace, via, now, touches)
    merged_rows, filled = await _merge_into(conn, workspace, items, targets, now)

    # A lead created and then repeated within the call: the merged state is the one to answer with.
    rows = {**created_rows, **merged_rows}
    events = []
    results: list[Captured] = []
    for i, item in enumerate(items):
        lead_id = lead_of[i]
        row = rows[lead_id]
        if i in creating:
            results.append(Captured("created", row))  # its lead.created went in with the lead
        else:
            results.append(Captured("merged", row))
            events.append(_merged_event(row, item, via, filled.get(i, []), principal.user_id, now))
    await publish_many(conn, SCHEMA, events)
    # A lead a repeat merged into needs a new score (a touch, maybe new fields); new ones were queued as inserted.
    await score_store.enqueue(conn, workspace, list(merged_rows))
    return results


async def _claim(conn: Connection, workspace: uuid.UUID, groups: list[_Group]) -> None:
    """Claims each group's keys for its proposed lead; groups whose keys are taken get the owner as target."""
    claims = sorted((key, g.proposed_id) for g in groups for key in g.keys)
    if not claims:
        return
    claimed = await conn.fetch(
        f"""
        INSERT INTO {SCHEMA}.lead_identities (workspace_id, kind, value, lead_id)
        SELECT $1, kind, value, lead_id FROM unnest($2::text[], $3::text[], $4::uuid[]) AS c(kind, value, lead_id)
        ORDER BY kind, value
        ON CONFLICT DO NOTHING
        RETURNING kind, value
        """,
        workspace, [k[0] for k, _ in claims], [k[1] for k, _ in claims], [lead for _, lead in claims],
    )
    won = {(r["kind"], r["value"]) for r in claimed}
    lost = [key for key, _ in claims if key not in won]
    if not lost:
        return
    # Committed before our insert looked (it waited for them): visible now, under READ COMMITTED.
    owners = {
        (r["kind"], r["value"]): r["lead_id"]
        for r in await conn.fetch(
            f"""
            SELECT kind, value, lead_id FROM {SCHEMA}.lead_identities
            WHERE workspace_id = $1 AND (kind, value) IN (SELECT * FROM unnest($2::text[], $3::text[]))
            """,
            workspace, [k[0] for k in lost], [k[1] for k in lost],
        )
    }
    repoint: list[tuple[str, str, uuid.UUID]] = []
    for g in groups:
        known = [owners[k] for k in g.keys if k in owners]
        if not known:
            continue
        # Several known leads match (one by email, another by phone): the oldest takes the touch.
        g.target = min(known)
        repoint.extend((k[0], k[1], g.target) for k in g.keys if k in won)
    if repoint:
        # Keys this call claimed for a lead it will not create now belong to the lead it merges into.
        await conn.execute(
            f"""
            UPDATE {SCHEMA}.lead_identities i SET lead_id = r.lead_id
            FROM unnest($2::text[], $3::text[], $4::uuid[]) AS r(kind, value, lead_id)
            WHERE i.workspace_id = $1 AND i.kind = r.kind AND i.value = r.value
            """,
            workspace, [r[0] for r in repoint], [r[1] for r in repoint], [r[2] for r in repoint],
        )


def _lead_values(item: LeadCreate) -> dict[str, Any]:
    return {
        "name": item.name, "email": item.email, "phone": item.phone, "company": item.company,
        "position": item.position, "notes": item.notes, "tags": item.tags, "custom": item.custom,
        "source": item.source, "source_id": str(item.source_id) if item.source_id else None,
        "channel": item.channel.value if item.channel else None, "utm": item.utm.compact(),
    }


async def _insert_leads(
    conn: Connection,
    principal: Principal,
    items: Sequence[LeadCreate],
    owners: Sequence[uuid.UUID | None],
    creating: dict[int, uuid.UUID],
    now: datetime,
    via: Via,
    touches: list[dict[str, Any]],
) -> dict[uuid.UUID, asyncpg.Record]:
    if not creating:
        return {}
    rows = [
        {**_lead_values(items[i]), "id": str(lead_id), "owner_id": str(owners[i]) if owners[i] else None}
        for i, lead_id in creating.items()
    ]
    events = [_created_event(row, principal, via, now) for row in rows]
    # One statement: the leads, their touches, their lead.created events, their places in the score queue and the
    # dispatchers' wake-up.
    inserted = await conn.fetch(
        f"""
        WITH touches AS ({_INSERT_TOUCHES}), events AS ({events_insert(SCHEMA, 7)}), queued AS (
            INSERT INTO {SCHEMA}.score_queue (workspace_id, lead_id)
            SELECT $1, id FROM jsonb_to_recordset($6::jsonb) AS q(id uuid) ORDER BY id
            ON CONFLICT DO NOTHING
        ), added AS (
            INSERT INTO {SCHEMA}.leads (
                workspace_id, id, name, email, phone, company, position, notes, tags, custom, source, source_id,
                channel, utm, owner_id, assignment_state, created_by, created_at, updated_at, status_changed_at
            )
            SELECT $1, id, name, email, phone, company, position, notes, coalesce(tags, '{{}}'),
                   coalesce(custom, '{{}}'), source, source_id, channel, coalesce(utm, '{{}}'), owner_id,
                   CASE WHEN owner_id IS NOT NULL THEN 'assigned' WHEN distributed.has_rules THEN 'pending'
                        ELSE 'unmatched' END, $5, $3, $3, $3
            FROM jsonb_to_recordset($6::jsonb) AS r(
                id uuid, name text, email text, phone text, company text, position text, notes text, tags text[],
                custom jsonb, source text, source_id uuid, channel text, utm jsonb, owner_id uuid
            ), (
                -- Without an active rule for new leads nothing could assign them: they stay unmatched, and the
                -- assignment worker is spared a second write of each lead.
                SELECT EXISTS (
                    SELECT FROM {SCHEMA}.assignment_rules
                    WHERE workspace_id = $1 AND stage = 'new' AND active
                ) AS has_rules
            ) AS distributed
            RETURNING {COLUMNS}
        )
        SELECT added.* FROM added, (SELECT {wake_dispatchers(SCHEMA)}) AS woken
        """,
        principal.workspace_id, via.value, now, touches, principal.user_id, rows, event_rows(events),
    )
    # Their first stored score: the ScoringWorker takes them once this commits.
    await notify(conn, score_store.CHANNEL)
    if any(r["assignment_state"] == "pending" for r in inserted):
        # Nobody owns some of them and rules may: the AssignmentWorker distributes them once this commits.
        await notify(conn, assignment_queue.CHANNEL)
    return {r["id"]: r for r in inserted}


async def _merge_into(
    conn: Connection,
    workspace: uuid.UUID,
    items: Sequence[LeadCreate],
    targets: dict[int, uuid.UUID],
    now: datetime,
) -> tuple[dict[uuid.UUID, asyncpg.Record], dict[int, list[str]]]:
    """Adds repeat submissions to their leads: fills the fields the lead lacks, unites tags and custom values.
    Returns the updated leads and, per item, the fields it filled."""
    if not targets:
        return {}, {}
    lead_ids = sorted(set(targets.values()))
    current = {
        r["id"]: r
        for r in await conn.fetch(
            f"SELECT {COLUMNS} FROM {SCHEMA}.leads WHERE workspace_id = $1 AND id = ANY($2::uuid[]) "
            "ORDER BY id FOR UPDATE",
            workspace, lead_ids,
        )
    }
    updates: dict[uuid.UUID, dict[str, Any]] = {}
    filled: dict[int, list[str]] = {}
    for i in sorted(targets):
        lead_id = targets[i]
        state = updates.setdefault(
            lead_id,
            {
                **{f: current[lead_id][f] for f in FILLABLE},
                "tags": list(current[lead_id]["tags"]),
                "custom": dict(current[lead_id]["custom"]),
            },
        )
        item = items[i]
        took = []
        for f in FILLABLE:
            value = getattr(item, f)
            if value and not state[f]:
                state[f] = value
                took.append(f)
        new_tags = [t for t in item.tags if t not in state["tags"]]
        if new_tags:
            state["tags"].extend(new_tags)
            took.append("tags")
        new_custom = {k: v for k, v in item.custom.items() if k not in state["custom"]}
        if new_custom:
            state["custom"].update(new_custom)
            took.append("custom")
        filled[i] = took
    rows = [{"id": str(lead_id), **state} for lead_id, state in updates.items()]
    updated = await conn.fetch(
        f"""
        UPDATE {SCHEMA}.leads l SET
            email = r.email, phone = r.phone, company = r.company, position = r.position, notes = r.notes,
            tags = r.tags, custom = r.custom, updated_at = $2, version = l.version + 1
        FROM jsonb_to_recordset($3::jsonb) AS r(
            id uuid, email text, phone text, company text, position text, notes text, tags text[], custom jsonb
        )
        WHERE l.workspace_id = $1 AND l.id = r.id
        RETURNING {", ".join(f"l.{c.strip()}" for c in COLUMNS.split(","))}
        """,
        workspace, now, rows,
    )
    # An email or phone a merge filled in becomes a key of that lead too (unless another lead has it).
    new_keys = sorted(
        {
            (f, str(updates[targets[i]][f]), targets[i])
            for i, took in filled.items()
            for f in took
            if f in ("email", "phone")
        }
    )
    if new_keys:
        await conn.execute(
            f"""
            INSERT INTO {SCHEMA}.lead_identities (workspace_id, kind, value, lead_id)
            SELECT $1, kind, value, lead_id FROM unnest($2::text[], $3::text[], $4::uuid[]) AS c(kind, value, lead_id)
            ORDER BY kind, value
            ON CONFLICT DO NOTHING
            """,
            workspace, [k[0] for k in new_keys], [k[1] for k in new_keys], [k[2] for k in new_keys],
        )
    return {r["id"]: r for r in updated}, filled


def _touch_rows(
    items: Sequence[LeadCreate], lead_of: dict[int, uuid.UUID], origins: Sequence[uuid.UUID | None]
) -> list[dict[str, Any]]:
    """One touch per item: where it came from, and what it brought (the audit of where each value came from)."""
    rows = []
    for i, item in enumerate(items):
        values = _lead_values(item)
        data = {
            k: v for k, v in values.items()
            if k not in ("source", "source_id", "channel", "utm") and v not in (None, [], {})
        }
        rows.append(
            {
                "id": str(new_id()), "lead_id": str(lead_of[i]), "source": item.source,
                "source_id": values["source_id"], "channel": values["channel"], "utm": values["utm"],
                "data": data, "origin_id": str(origins[i]) if origins[i] else None,
            }
        )
    return rows


# Inserts the touches ($1 workspace, $2 via, $3 time, $4 rows); also a CTE of the new leads' insert.
_INSERT_TOUCHES = f"""
    INSERT INTO {SCHEMA}.lead_touches (
        workspace_id, id, lead_id, via, source, source_id, channel, utm, data, origin_id, touched_at
    )
    SELECT $1, id, lead_id, $2, source, source_id, channel, utm, data, origin_id, $3
    FROM jsonb_to_recordset($4::jsonb) AS r(
        id uuid, lead_id uuid, source text, source_id uuid, channel text, utm jsonb, data jsonb, origin_id uuid
    )
"""


async def _add_touches(
    conn: Connection, workspace: uuid.UUID, via: Via, now: datetime, touches: list[dict[str, Any]]
) -> None:
    await conn.execute(_INSERT_TOUCHES, workspace, via.value, now, touches)


def _created_event(values: dict[str, Any], principal: Principal, via: Via, now: datetime) -> dict[str, Any]:
    """lead.created from the values being inserted (a new lead's status, owner and times are known)."""
    payload = LeadCreatedV1(
        lead_id=values["id"], workspace_id=principal.workspace_id, name=values["name"], email=values["email"],
        phone=values["phone"], company=values["company"], position=values["position"], source=values["source"],
        source_id=values["source_id"], channel=values["channel"], utm=values["utm"], tags=values["tags"],
        custom=values["custom"], status="new", via=via.value, owner_id=values["owner_id"],
        created_by=principal.user_id, created_at=now,
    )
    return cloud_event(payload, workspace_id=principal.workspace_id, subject=values["id"])


def _merged_event(
    lead: asyncpg.Record, item: LeadCreate, via: Via, filled: list[str], by: uuid.UUID, now: datetime
) -> dict[str, Any]:
    payload = LeadMergedV1(
        lead_id=lead["id"], workspace_id=lead["workspace_id"], how="auto", via=via.value, source=item.source,
        source_id=item.source_id, channel=item.channel.value if item.channel else None, utm=item.utm.compact(),
        filled=filled, owner_id=lead["owner_id"], merged_by=by, merged_at=now,
    )
    return cloud_event(payload, workspace_id=lead["workspace_id"], subject=lead["id"])
