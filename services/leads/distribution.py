"""Distribution: assignment rules decide who works a lead, and every decision is recorded with its reason.

A rule has a stage (`new`: leads to work, for hunters; `qualified`: for closers; `client`: won clients, for
farmers), conditions on the lead (among them its grade, computed when the decision is made), a pool (a team's
members whose role fits the stage, or listed members) and a method (round robin, weighted round robin, least
loaded, fixed). Rules of a stage are evaluated in `position` order; the first whose conditions match decides.
Members who are away, inactive, at capacity or (if the rule asks) outside their working hours are skipped; when
nobody in the pool can take the lead it is queued on the rule until someone frees up.

Exactly fair under concurrency: an `Assigner` locks the workspace's active rules (FOR UPDATE, in id order) before
it reads the round-robin state and the members' open leads, and holds the locks until its transaction commits.
So two replicas (two workers, or a worker and a qualify) take turns: the second reads what the first wrote.
"""

from __future__ import annotations

import uuid
import zoneinfo
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import asyncpg

from services.common.db import Connection
from services.common.ids import new_id
from services.common.outbox import cloud_event, publish_many
from services.contracts import LeadAssignedV1
from services.leads import assignment_queue, score_inputs, scoring, scoring_models
from services.leads.models import SCHEMA
from services.leads.normalize import lead_country
from services.leads.repository import COLUMNS as LEAD_COLUMNS
from services.leads.roster import WEEKDAYS, Area, MemberRole, MemberStatus, covers

# A lead, member or rule: a row as read, or the same as a mapping.
Row = Mapping[str, Any] | asyncpg.Record

OPEN_STATUSES = ("new", "working", "nurturing", "qualified")
# A farmer's load is the clients they own; everyone else's, their open leads.
CLIENT_STATUS = "converted"
RULE_COLUMNS = (
    "workspace_id, id, name, position, active, stage, conditions, method, team_id, member_ids, weights, "
    "only_working_hours, rr_last_member_id, rr_weights, created_at, updated_at, version"
)
CONDITIONS = ("channels", "source_ids", "tags", "countries", "territory_ids", "products", "grades")
GRADES = ("A", "B", "C", "D")


class Stage(StrEnum):
    new = "new"  # leads to work: hunters
    qualified = "qualified"  # qualified leads: closers
    client = "client"  # won clients (converted leads): farmers


class Method(StrEnum):
    round_robin = "round_robin"
    weighted_round_robin = "weighted_round_robin"
    least_loaded = "least_loaded"
    fixed = "fixed"


# Who a team's pool holds for each stage (heads of sales and admins only when a rule lists them by id).
ROLE_FOR_STAGE = {
    Stage.new: MemberRole.hunter.value,
    Stage.qualified: MemberRole.closer.value,
    Stage.client: MemberRole.farmer.value,
}

_METHOD_WORDS = {
    Method.round_robin: "round robin",
    Method.weighted_round_robin: "weighted round robin",
    Method.least_loaded: "least loaded",
    Method.fixed: "fixed owner",
}


def stage_of(lead: Row) -> Stage:
    """Which rules a lead is distributed by. A converted lead is a client: it is distributed only when a won
    deal hands it over (handoffs.client_to_farmer), or while it waits on a client rule's queue."""
    if lead["status"] == "qualified":
        return Stage.qualified
    if lead["status"] == CLIENT_STATUS:
        return Stage.client
    return Stage.new


# ------------------------------------------------------------------------------------------------ matching


def _custom_text(lead: Row, key: str) -> str | None:
    value = (lead["custom"] or {}).get(key)
    return str(value) if value not in (None, "") else None


def matches(
    conditions: Row,
    lead: Row,
    products: Sequence[str],
    territories: Mapping[uuid.UUID, Area],
    grade: str | None = None,
) -> bool:
    """Whether every condition list the rule gives matches the lead (a list not given matches anything). `grade`
    is the lead's grade now, computed by the caller only for a rule with a grades condition."""
    if (grades := conditions.get("grades")) and grade not in grades:
        return False
    if (channels := conditions.get("channels")) and lead["channel"] not in channels:
        return False
    if (sources := conditions.get("source_ids")) and str(lead["source_id"]) not in sources:
        return False
    if (tags := conditions.get("tags")):
        wanted = {t.casefold() for t in tags}
        if not any(t.casefold() in wanted for t in lead["tags"]):
            return False
    country = lead_country(lead)
    if (countries := conditions.get("countries")) and country not in countries:
        return False
    if (territory_ids := conditions.get("territory_ids")):
        place = {
            "country": country, "region": _custom_text(lead, "region"), "city": _custom_text(lead, "city"),
            "postal_code": _custom_text(lead, "postal_code"),
        }
        areas = [territories[uuid.UUID(t)] for t in territory_ids if uuid.UUID(t) in territories]
        if not any(covers(area, **place) for area in areas):
            return False
    wanted_products = conditions.get("products")
    return not wanted_products or bool(set(wanted_products) & set(products))


# ------------------------------------------------------------------------------------------------ deciding


def _is_farmer(member: Row) -> bool:
    return bool(member["role"] == MemberRole.farmer.value)


def _load_words(member: Row) -> str:
    return "clients" if _is_farmer(member) else "open leads"


@dataclass
class Decision:
    """What a rule decided for one lead: the member (None: queued) and why, in words. `method_words` (the
    method and pool) and `skipped_words` are the reason's parts, for a caller that words its own."""

    rule: asyncpg.Record
    member: asyncpg.Record | None
    reason: str
    skipped: list[dict[str, str]] = field(default_factory=list)
    method_words: str = ""
    skipped_words: str = ""


def within_working_hours(member: Row, now: datetime) -> tuple[bool, str]:
    """Whether `now` is inside the member's working hours in their time zone, and their local time."""
    local = now.astimezone(zoneinfo.ZoneInfo(member["time_zone"]))
    day, clock = WEEKDAYS[local.weekday()], local.strftime("%H:%M")
    inside = any(start <= clock < end for start, end in member["working_hours"].get(day, []))
    return inside, f"{day} {clock} {member['time_zone']}"


@dataclass(frozen=True)
class _Outcome:
    lead: asyncpg.Record
    decision: Decision | None
    assigned_by: uuid.UUID | None
    missed_by: uuid.UUID | None


class Assigner:
    """Decides and records assignments for one workspace inside the caller's transaction.

    `await Assigner.load(conn, workspace_id)` locks the workspace's active rules, then reads the roster and the
    members' loads; `load_grades` reads what grading the leads needs, when a rule matches on grades; `decide`
    picks (keeping the turn and the counts in memory), `save` writes the leads, the records, the rules'
    round-robin state and the lead.assigned events."""

    def __init__(self, conn: Connection, workspace_id: uuid.UUID) -> None:
        self.conn = conn
        self.workspace_id = workspace_id
        self.rules: list[asyncpg.Record] = []
        self.members: dict[uuid.UUID, asyncpg.Record] = {}
        self.team_names: dict[uuid.UUID, str] = {}
        self.territories: dict[uuid.UUID, Area] = {}
        # Each member's load: clients (converted leads) they own for a farmer, open leads for anyone else.
        self.open: dict[uuid.UUID, int] = {}
        self._turns: dict[uuid.UUID, uuid.UUID | None] = {}
        self._weights: dict[uuid.UUID, dict[str, int]] = {}
        self._changed_rules: set[uuid.UUID] = set()
        self._outcomes: list[_Outcome] = []
        self._model: scoring.Model | None = None
        self._inputs: dict[uuid.UUID, score_inputs.LeadInputs] = {}
        self._grades: dict[uuid.UUID, str | None] = {}
        self.now = datetime.now(UTC)

    @classmethod
    async def load(cls, conn: Connection, workspace_id: uuid.UUID) -> Assigner:
        assigner = cls(conn, workspace_id)
        await assigner._load()
        return assigner

    async def _load(self) -> None:
        rows = await self.conn.fetch(
            f"""
            SELECT {RULE_COLUMNS} FROM leads.assignment_rules WHERE workspace_id = $1 AND active
            ORDER BY id FOR UPDATE
            """,
            self.workspace_id,
        )
        if not rows:
            return
        self.rules = sorted(rows, key=lambda r: (r["position"], r["id"]))
        for rule in self.rules:
            self._turns[rule["id"]] = rule["rr_last_member_id"]
            self._weights[rule["id"]] = {k: int(v) for k, v in rule["rr_weights"].items()}
        # Read after the rules are locked: these are the counts the previous holder of the locks left.
        self.members = {
            m["id"]: m
            for m in await self.conn.fetch(
                """
                SELECT id, name, role, team_id, status, capacity, time_zone, working_hours FROM leads.members
                WHERE workspace_id = $1 ORDER BY id
                """,
                self.workspace_id,
            )
        }
        self.team_names = {
            t["id"]: t["name"]
            for t in await self.conn.fetch(
                "SELECT id, name FROM leads.teams WHERE workspace_id = $1", self.workspace_id
            )
        }
        if any(r["conditions"].get("territory_ids") for r in self.rules):
            self.territories = {
                t["id"]: Area.from_row(t)
                for t in await self.conn.fetch(
                    "SELECT id, countries, regions, cities, postal_prefixes FROM leads.territories "
                    "WHERE workspace_id = $1",
                    self.workspace_id,
                )
            }
        # Loads are counted only for whom they matter: every member when a rule balances load, else the members
        # with a capacity. Counting is a scan of their open leads (a farmer's: clients) on every worker step.
        if any(r["method"] == "least_loaded" for r in self.rules):
            counted = list(self.members.values())
        else:
            counted = [m for m in self.members.values() if m["capacity"] is not None]
        if not counted:
            return
        farmers = [m["id"] for m in counted if _is_farmer(m)]
        others = [m["id"] for m in counted if not _is_farmer(m)]
        self.open = {
            r["owner_id"]: r["load"]
            for r in await self.conn.fetch(
                """
                SELECT owner_id, count(*) AS load FROM leads.leads
                WHERE workspace_id = $1 AND (
                    (owner_id = ANY($2::uuid[]) AND status = ANY($3::text[]))
                    OR (owner_id = ANY($4::uuid[]) AND status = $5))
                GROUP BY owner_id
                """,
                self.workspace_id, others, list(OPEN_STATUSES), farmers, CLIENT_STATUS,
            )
        }

    async def load_grades(self, leads: Iterable[Row]) -> None:
        """Reads the scoring model and the inputs of those of `leads` whose stage has a rule matching on grades
        (nothing at all when no active rule does), so `decide` can grade them. Computed here and now, not read
        from stored scores: a lead just taken in has none yet."""
        stages = {r["stage"] for r in self.rules if r["conditions"].get("grades")}
        ids = [lead["id"] for lead in leads if stage_of(lead).value in stages]
        if not ids:
            return
        if self._model is None:
            self._model = await scoring_models.load(self.conn, self.workspace_id)
        self._inputs |= await score_inputs.load(self.conn, self.workspace_id, ids)

    def grade_of(self, lead_id: uuid.UUID) -> str | None:
        """The lead's grade now (None: its inputs were not loaded), computed once per assigner."""
        if lead_id not in self._grades:
            inputs = self._inputs.get(lead_id)
            if inputs is None or self._model is None:
                self._grades[lead_id] = None
            else:
                score = scoring.compute(inputs.facts, inputs.touches, self._model, self.now)
                self._grades[lead_id] = score.grade
        return self._grades[lead_id]

    # ---- deciding

    def decide(
        self, lead: Row, products: Sequence[str] = (), exclude: Mapping[uuid.UUID, str] | None = None
    ) -> Decision | None:
        """The decision of the first rule of the lead's stage that matches it; None when none does. `exclude`:
        members who must not get this lead, each with why: listed in the decision's `skipped`, but left out of its
        words, since the caller explains them in its own."""
        stage = stage_of(lead)
        for rule in self.rules:
            if rule["stage"] != stage.value:
                continue
            grade = self.grade_of(lead["id"]) if rule["conditions"].get("grades") else None
            if matches(rule["conditions"], lead, products, self.territories, grade):
                return self._pick(rule, stage, grade, exclude or {})
        return None

    def _pool(self, rule: Row, stage: Stage) -> tuple[list[asyncpg.Record], str]:
        if rule["team_id"] is not None:
            role = ROLE_FOR_STAGE[stage]
            pool = [m for m in self.members.values() if m["team_id"] == rule["team_id"] and m["role"] == role]
            return pool, f"team {self.team_names.get(rule['team_id'], rule['team_id'])}"
        pool = [self.members[m] for m in rule["member_ids"] or [] if m in self.members]
        return pool, "the rule's members"

    def _why_not(self, member: Row, rule: Row, exclude: Mapping[uuid.UUID, str]) -> str | None:
        """Why the member cannot take a lead now; None when they can."""
        if member["id"] in exclude:
            return exclude[member["id"]]
        if member["status"] == MemberStatus.inactive.value:
            return "inactive"
        if member["status"] == MemberStatus.away.value:
            return "away"
        capacity, load = member["capacity"], self.open.get(member["id"], 0)
        if capacity is not None and load >= capacity:
            return f"at capacity ({load} of {capacity} {_load_words(member)})"
        if rule["only_working_hours"]:
            inside, local = within_working_hours(member, self.now)
            if not inside:
                return f"outside working hours ({local})"
        return None

    def _pick(
        self, rule: asyncpg.Record, stage: Stage, grade: str | None, exclude: Mapping[uuid.UUID, str]
    ) -> Decision:
        method = Method(rule["method"])
        pool, pool_name = self._pool(rule, stage)
        why_not = {m["id"]: self._why_not(m, rule, exclude) for m in pool}
        skipped = [{"member_id": str(m["id"]), "why": why_not[m["id"]] or ""} for m in pool if why_not[m["id"]]]
        available = [m for m in pool if why_not[m["id"]] is None]
        # The grade is said when it is why this rule matched.
        for_grade = f" for a grade {grade} lead" if grade is not None else ""
        words = f"{_METHOD_WORDS[method]} in {pool_name}{for_grade}"
        # Members the caller excluded are in `skipped` but not in the words: the caller says why in its own.
        skipped_words = "".join(
            f"; {self.members[uuid.UUID(s['member_id'])]['name']} skipped: {s['why']}"
            for s in skipped if uuid.UUID(s["member_id"]) not in exclude
        )
        if not available:
            nobody = "nobody in it" if pool else "it has nobody"
            return Decision(
                rule, None, f"{words}: {nobody} can take the lead now, so it waits{skipped_words}", skipped,
                words, skipped_words,
            )
        if method is Method.round_robin:
            chosen, why = self._round_robin(rule, pool, available)
        elif method is Method.weighted_round_robin:
            chosen, why = self._weighted(rule, available)
        elif method is Method.least_loaded:
            chosen, why = self._least_loaded(available)
        else:
            chosen, why = available[0], ""
            words = f"fixed owner{for_grade}"
        self.open[chosen["id"]] = self.open.get(chosen["id"], 0) + 1
        said = f"{words}: {chosen['name']}" + (f" {why}" if why else "")
        return Decision(rule, chosen, f"{said}{skipped_words}", skipped, words, skipped_words)

    def _round_robin(
        self, rule: asyncpg.Record, pool: list[asyncpg.Record], available: list[asyncpg.Record]
    ) -> tuple[asyncpg.Record, str]:
        ids = [m["id"] for m in pool]
        last = self._turns[rule["id"]]
        start = ids.index(last) + 1 if last in ids else 0
        free = {m["id"] for m in available}
        chosen = next(pool[(start + i) % len(pool)] for i in range(len(pool)) if ids[(start + i) % len(pool)] in free)
        self._turns[rule["id"]] = chosen["id"]
        self._changed_rules.add(rule["id"])
        return chosen, "was next"

    def _weighted(self, rule: asyncpg.Record, available: list[asyncpg.Record]) -> tuple[asyncpg.Record, str]:
        """Smooth weighted round robin (as nginx does it): each turn every available member gains their weight,
        the one with the most takes the lead and gives back the sum. Over any run each gets their share, spread
        out rather than in bursts."""
        weights = {str(m["id"]): int(rule["weights"].get(str(m["id"]), 1)) for m in available}
        current = self._weights[rule["id"]]
        for key, weight in weights.items():
            current[key] = current.get(key, 0) + weight
        best = max(available, key=lambda m: current[str(m["id"])])  # max keeps the first of equals: pool order
        current[str(best["id"])] -= sum(weights.values())
        self._changed_rules.add(rule["id"])
        weight = weights[str(best["id"])]
        return best, f"was due by weight ({weight} of {sum(weights.values())})"

    def _least_loaded(self, available: list[asyncpg.Record]) -> tuple[asyncpg.Record, str]:
        """Fewest open leads relative to capacity. A member without a capacity is measured against the largest
        capacity in the pool (plain open counts when nobody has one)."""
        largest = max((m["capacity"] for m in available if m["capacity"]), default=1)

        def load(m: asyncpg.Record) -> tuple[float, int]:
            open_leads = self.open.get(m["id"], 0)
            return open_leads / (m["capacity"] or largest), open_leads

        chosen = min(available, key=load)  # min keeps the first of equals: pool order
        capacity = chosen["capacity"] if chosen["capacity"] is not None else "no limit"
        words = _load_words(chosen)
        return chosen, f"had the fewest {words} ({self.open.get(chosen['id'], 0)} of {capacity})"

    # ---- recording

    def record(
        self,
        lead: asyncpg.Record,
        decision: Decision | None,
        assigned_by: uuid.UUID | None = None,
        missed_by: uuid.UUID | None = None,
    ) -> None:
        """Keeps the decision for `save` (None: no rule matched). `missed_by`: the lead is taken from this member
        because they missed its first-contact deadline (said in lead.assigned)."""
        self._outcomes.append(_Outcome(lead, decision, assigned_by, missed_by))

    async def save(self) -> dict[uuid.UUID, asyncpg.Record]:
        """Writes every recorded decision: the leads (owner, state), the assignment records, the rules'
        round-robin state and lead.assigned for each lead that got an owner. Returns the leads after."""
        outcomes, self._outcomes = self._outcomes, []
        if not outcomes:
            return {}
        leads, records, events = [], [], []
        room_for: set[uuid.UUID] = set()
        for outcome in outcomes:
            lead, decision, by = outcome.lead, outcome.decision, outcome.assigned_by
            stage = stage_of(lead)
            if decision is None:
                # No rule for it: a lead that has an owner keeps them (a qualified lead, its hunter).
                state = "unmatched" if lead["owner_id"] is None else "assigned"
                leads.append({"id": str(lead["id"]), "state": state, "rule_id": None, "owner_id": None})
                continue
            rule, member = decision.rule, decision.member
            owner = member["id"] if member is not None else None
            leads.append({
                "id": str(lead["id"]), "state": "assigned" if owner else "queued", "rule_id": str(rule["id"]),
                "owner_id": str(owner) if owner else None,
            })
            if owner is None and lead["assignment_rule_id"] == rule["id"]:
                continue  # still waiting on the same rule: recorded when it was first queued
            records.append({
                "id": str(new_id()), "lead_id": str(lead["id"]), "member_id": str(owner) if owner else None,
                "previous_owner_id": str(lead["owner_id"]) if lead["owner_id"] else None, "rule_id": str(rule["id"]),
                "stage": stage.value, "method": rule["method"], "reason": decision.reason, "skipped": decision.skipped,
                "assigned_by": str(by) if by else None,
            })
            if owner is not None:
                if frees_capacity(lead, owner):
                    room_for.add(lead["owner_id"])
                events.append(cloud_event(
                    LeadAssignedV1(
                        lead_id=lead["id"], workspace_id=self.workspace_id, owner_id=owner,
                        previous_owner_id=lead["owner_id"], stage=stage.value, rule_id=rule["id"],
                        method=rule["method"], reason=decision.reason, assigned_at=self.now, assigned_by=by,
                        missed_by=outcome.missed_by,
                    ),
                    workspace_id=self.workspace_id, subject=lead["id"],
                ))
        # Before the leads are written, so the ones this save queues are not sent straight back.
        for member_id in sorted(room_for):
            await assignment_queue.room_freed(self.conn, self.workspace_id, member_id)
        updated = await self.conn.fetch(
            f"""
            UPDATE leads.leads l SET
                assignment_state = r.state,
                assignment_rule_id = r.rule_id,
                -- A closer taking a qualified lead over: the hunter stays on the lead.
                hunter_id = CASE WHEN r.owner_id IS NOT NULL AND l.status = 'qualified' AND l.hunter_id IS NULL
                                 THEN l.owner_id ELSE l.hunter_id END,
                owner_id = coalesce(r.owner_id, l.owner_id),
                version = l.version + (r.owner_id IS NOT NULL)::int,
                updated_at = CASE WHEN r.owner_id IS NOT NULL THEN $2 ELSE l.updated_at END
            FROM jsonb_to_recordset($3::jsonb) AS r(id uuid, state text, rule_id uuid, owner_id uuid)
            WHERE l.workspace_id = $1 AND l.id = r.id
            RETURNING l.{", l.".join(c.strip() for c in LEAD_COLUMNS.split(","))}
            """,
            self.workspace_id, self.now, leads,
        )
        if records:
            await insert_records(self.conn, self.workspace_id, self.now, records)
        for rule_id in sorted(self._changed_rules):
            await self.conn.execute(
                "UPDATE leads.assignment_rules SET rr_last_member_id = $3, rr_weights = $4 "
                "WHERE workspace_id = $1 AND id = $2",
                self.workspace_id, rule_id, self._turns[rule_id], self._weights[rule_id],
            )
        self._changed_rules.clear()
        await publish_many(self.conn, SCHEMA, events)
        return {r["id"]: r for r in updated}


async def insert_records(
    conn: Connection, workspace_id: uuid.UUID, at: datetime, records: list[dict[str, Any]]
) -> None:
    await conn.execute(
        """
        INSERT INTO leads.lead_assignments (
            workspace_id, id, lead_id, member_id, previous_owner_id, rule_id, stage, method, reason, skipped,
            assigned_at, assigned_by
        )
        SELECT $1, id, lead_id, member_id, previous_owner_id, rule_id, stage, method, reason,
               coalesce(skipped, '[]'), $2, assigned_by
        FROM jsonb_to_recordset($3::jsonb) AS r(
            id uuid, lead_id uuid, member_id uuid, previous_owner_id uuid, rule_id uuid, stage text, method text,
            reason text, skipped jsonb, assigned_by uuid
        )
        """,
        workspace_id, at, records,
    )


async def qualification_products(
    conn: Connection, workspace_id: uuid.UUID, lead_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[str]]:
    rows = await conn.fetch(
        "SELECT lead_id, products FROM leads.lead_qualifications WHERE workspace_id = $1 AND lead_id = ANY($2::uuid[])",
        workspace_id, list(lead_ids),
    )
    return {r["lead_id"]: list(r["products"]) for r in rows}


async def assign_now(
    conn: Connection, lead: asyncpg.Record, products: Sequence[str] = ()
) -> tuple[asyncpg.Record, Decision | None]:
    """Distributes one locked lead by its stage's rules in the caller's transaction (qualify does this for the
    closer, a won deal for the farmer). Returns the lead after, and the decision (None: no rule matched)."""
    assigner = await Assigner.load(conn, lead["workspace_id"])
    await assigner.load_grades([lead])
    decision = assigner.decide(lead, products)
    assigner.record(lead, decision)
    saved = await assigner.save()
    return saved[lead["id"]], decision


def frees_capacity(lead: Row, new_owner: uuid.UUID | None) -> bool:
    """Whether giving the lead to `new_owner` lowers someone's load: an open lead, or a client (a farmer's load),
    leaving its owner. A client leaving its closer frees nothing, but that is one needless requeue per won deal."""
    return (
        lead["status"] in (*OPEN_STATUSES, CLIENT_STATUS)
        and lead["owner_id"] is not None
        and new_owner != lead["owner_id"]
    )


async def record_manual(
    conn: Connection, lead: asyncpg.Record, new_owner: uuid.UUID | None, by: uuid.UUID, at: datetime
) -> None:
    """A head of sales changed the lead's owner by hand: recorded (method manual) and announced (lead.assigned).
    The former owner has room for a lead waiting in a queue now."""
    if frees_capacity(lead, new_owner):
        await assignment_queue.room_freed(conn, lead["workspace_id"], lead["owner_id"])
    stage = stage_of(lead)
    name = await conn.fetchval(
        "SELECT name FROM leads.members WHERE workspace_id = $1 AND id = $2", lead["workspace_id"], new_owner
    ) if new_owner else None
    reason = f"assigned by hand to {name or new_owner}" if new_owner else "owner removed by hand"
    await insert_records(conn, lead["workspace_id"], at, [{
        "id": str(new_id()), "lead_id": str(lead["id"]), "member_id": str(new_owner) if new_owner else None,
        "previous_owner_id": str(lead["owner_id"]) if lead["owner_id"] else None, "rule_id": None,
        "stage": stage.value, "method": "manual", "reason": reason, "skipped": [], "assigned_by": str(by),
    }])
    await publish_many(conn, SCHEMA, [cloud_event(
        LeadAssignedV1(
            lead_id=lead["id"], workspace_id=lead["workspace_id"], owner_id=new_owner,
            previous_owner_id=lead["owner_id"], stage=stage.value, rule_id=None, method="manual", reason=reason,
            assigned_at=at, assigned_by=by,
        ),
        workspace_id=lead["workspace_id"], subject=lead["id"],
    )])


ASSIGNMENT_COLUMNS = (
    "id, lead_id, member_id, previous_owner_id, rule_id, stage, method, reason, skipped, assigned_at, assigned_by"
)


async def history(conn: Connection, workspace_id: uuid.UUID, lead_id: uuid.UUID) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        f"SELECT {ASSIGNMENT_COLUMNS} FROM leads.lead_assignments WHERE workspace_id = $1 AND lead_id = $2 ORDER BY id",
        workspace_id, lead_id,
    )
    return rows
