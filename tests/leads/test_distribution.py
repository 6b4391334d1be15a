"""Distribution: assignment rules hand leads to the team fairly, skip who cannot take them, queue what nobody can,
give qualified leads to closers, and record every decision with its reason."""

from __future__ import annotations

import asyncio
import json
import uuid
import zoneinfo
from collections import Counter
from datetime import UTC, datetime

import httpx
import pytest

from services.common.auth import Role
from services.common.db import Database, service_dsn
from services.common.settings import get_settings
from services.common.testing import token_for
from services.leads.assignment_worker import AssignmentWorker

pytestmark = pytest.mark.usefixtures("database_url")

ALL_WEEK = {day: [["00:00", "24:00"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


async def drain(db: Database) -> int:
    return await AssignmentWorker(db).drain()


async def created(client: httpx.AsyncClient, path: str, body: dict) -> dict:
    response = await client.post(path, json=body)
    assert response.status_code == 201, response.text
    return response.json()


async def member(client: httpx.AsyncClient, name: str, role: str = "hunter", **fields) -> dict:
    body = {"id": str(uuid.uuid4()), "name": name, "role": role, "working_hours": ALL_WEEK, **fields}
    return await created(client, "/v1/members", body)


async def team(client: httpx.AsyncClient, name: str, *members: tuple[str, str]) -> tuple[dict, list[dict]]:
    """A team and its members, (name, role) each, in id order (the order round robin takes them in)."""
    made = await created(client, "/v1/teams", {"name": name})
    ids = sorted(str(uuid.uuid4()) for _ in members)
    people = [
        await member(client, who, role, team_id=made["id"], id=member_id)
        for (who, role), member_id in zip(members, ids, strict=True)
    ]
    return made, people


async def rule(client: httpx.AsyncClient, **fields) -> dict:
    return await created(client, "/v1/assignment-rules", {"name": "Rule", "stage": "new", **fields})


async def leads(client: httpx.AsyncClient, *items: dict) -> list[dict]:
    response = await client.post("/v1/leads:batch", json={"items": list(items)})
    assert response.status_code == 200, response.text
    ids = [item["lead_id"] for item in response.json()["items"]]
    return [(await client.get(f"/v1/leads/{lead_id}")).json() for lead_id in ids]


async def lead(client: httpx.AsyncClient, lead_id: str) -> dict:
    response = await client.get(f"/v1/leads/{lead_id}")
    assert response.status_code == 200, response.text
    return response.json()


async def assignments(client: httpx.AsyncClient, lead_id: str) -> list[dict]:
    response = await client.get(f"/v1/leads/{lead_id}/assignments")
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def events(admin_db, name: str) -> list[dict]:
    rows = await admin_db.fetch("SELECT event FROM leads.outbox WHERE type = $1 ORDER BY seq", f"voronka.{name}.v1")
    return [json.loads(r["event"])["data"] for r in rows]


def fields_named(response: httpx.Response) -> list[str]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return [e["field"] for e in response.json()["errors"]]


def zone_where_now_is(inside: bool) -> str:
    """An Etc/GMT zone whose local time now is inside 09:00-18:00 (or well outside it), an hour from either edge."""
    now = datetime.now(UTC)
    for offset in range(-12, 15):
        name = f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}" if offset else "UTC"
        hour = now.astimezone(zoneinfo.ZoneInfo(name)).hour
        if (10 <= hour < 17) if inside else (hour < 8 or hour >= 19):
            return name
    raise AssertionError("no such zone")


# ---- methods ------------------------------------------------------------------------------------------------


async def test_round_robin_gives_the_team_s_hunters_turns_and_says_why(admin, leads_db, admin_db):
    inbound, [anna, boris, carl] = await team(
        admin, "Inbound", ("Anna", "hunter"), ("Boris", "hunter"), ("Carl", "hunter")
    )
    # Neither a closer nor a head of sales of the team takes new leads.
    await member(admin, "Clara", "closer", team_id=inbound["id"])
    await member(admin, "Hugo", "head_of_sales", team_id=inbound["id"])
    made = await rule(admin, name="Inbound", method="round_robin", team_id=inbound["id"])
    taken = await leads(admin, *({"name": f"Lead {i}"} for i in range(6)))
    assert all(t["assignment_state"] == "pending" and t["owner_id"] is None for t in taken)

    assert await drain(leads_db) == 6

    owners = [(await lead(admin, t["id"]))["owner_id"] for t in taken]
    assert owners == [anna["id"], boris["id"], carl["id"]] * 2
    first = await lead(admin, taken[0]["id"])
    assert (first["assignment_state"], first["assignment_rule_id"], first["version"]) == ("assigned", made["id"], 2)
    [record] = await assignments(admin, taken[1]["id"])
    assert record["member_id"] == boris["id"]
    assert (record["rule_id"], record["stage"], record["method"]) == (made["id"], "new", "round_robin")
    assert record["reason"] == "round robin in team Inbound: Boris was next"
    assert (record["assigned_by"], record["previous_owner_id"]) == (None, None)
    announced = await events(admin_db, "lead.assigned")
    assert [e["owner_id"] for e in announced] == owners
    assert announced[1]["reason"] == record["reason"]
    assert (announced[1]["stage"], announced[1]["method"], announced[1]["assigned_by"]) == ("new", "round_robin", None)


async def test_weighted_round_robin_shares_leads_by_weight_spread_out(admin, leads_db):
    _, [anna, boris] = await team(admin, "Inbound", ("Anna", "hunter"), ("Boris", "hunter"))
    await rule(
        admin, method="weighted_round_robin", member_ids=[anna["id"], boris["id"]],
        weights={anna["id"]: 3, boris["id"]: 1},
    )
    taken = await leads(admin, *({"name": f"Lead {i}"} for i in range(8)))

    await drain(leads_db)

    owners = [(await lead(admin, t["id"]))["owner_id"] for t in taken]
    a, b = anna["id"], boris["id"]
    # Smooth: Boris's turn comes between Anna's, not after all of them.
    assert owners == [a, a, b, a] * 2
    [record] = await assignments(admin, taken[2]["id"])
    assert record["reason"] == "weighted round robin in the rule's members: Boris was due by weight (1 of 4)"


async def test_least_loaded_gives_the_lead_to_whoever_has_fewest_open_leads_for_their_capacity(admin, leads_db):
    anna = await member(admin, "Anna", capacity=10)
    boris = await member(admin, "Boris", capacity=4)
    # Anna has 4 open leads of 10 (40%), Boris 1 of 4 (25%), and a closed one that does not count.
    await leads(admin, *({"name": f"Anna's {i}", "owner_id": anna["id"]} for i in range(4)))
    [_, boris_closed] = await leads(
        admin, {"name": "Boris's", "owner_id": boris["id"]}, {"name": "Boris's closed", "owner_id": boris["id"]}
    )
    moved = await admin.post(
        f"/v1/leads/{boris_closed['id']}/status", json={"status": "disqualified", "reason": "spam"}
    )
    assert moved.status_code == 200, moved.text
    await rule(admin, method="least_loaded", member_ids=[anna["id"], boris["id"]])
    taken = await leads(admin, *({"name": f"Lead {i}"} for i in range(3)))

    await drain(leads_db)

    owners = [(await lead(admin, t["id"]))["owner_id"] for t in taken]
    # Boris 1/4 -> 2/4 (50%) -> Anna 4/10 (40%) -> Anna 5/10 = Boris 2/4: the tie goes to fewer open leads.
    assert owners == [boris["id"], anna["id"], boris["id"]]
    [record] = await assignments(admin, taken[0]["id"])
    assert record["reason"] == "least loaded in the rule's members: Boris had the fewest open leads (1 of 4)"


async def test_a_fixed_rule_gives_every_matching_lead_to_its_one_member(admin, leads_db):
    vera = await member(admin, "Vera")
    await rule(admin, method="fixed", member_ids=[vera["id"]], conditions={"channels": ["partner"]})
    [partner, other] = await leads(admin, {"name": "P", "channel": "partner"}, {"name": "O", "channel": "ads"})

    await drain(leads_db)

    assert (await lead(admin, partner["id"]))["owner_id"] == vera["id"]
    assert (await assignments(admin, partner["id"]))[0]["reason"] == "fixed owner: Vera"
    untouched = await lead(admin, other["id"])
    assert (untouched["owner_id"], untouched["assignment_state"]) == (None, "unmatched")
    assert await assignments(admin, other["id"]) == []
    unassigned = (await admin.get("/v1/leads", params={"unassigned": "true"})).json()["items"]
    assert [item["id"] for item in unassigned] == [other["id"]]


async def test_a_lead_taken_in_with_an_owner_is_not_distributed(admin, leads_db):
    anna, boris = await member(admin, "Anna"), await member(admin, "Boris")
    await rule(admin, method="fixed", member_ids=[anna["id"]])
    [owned] = await leads(admin, {"name": "Owned", "owner_id": boris["id"]})
    assert owned["assignment_state"] == "assigned"

    assert await drain(leads_db) == 0

    assert (await lead(admin, owned["id"]))["owner_id"] == boris["id"]


# ---- conditions ---------------------------------------------------------------------------------------------


async def test_the_first_rule_whose_conditions_match_decides(admin, leads_db):
    ads, web, german, dach, rest = [await member(admin, name) for name in ("Ads", "Web", "German", "Dach", "Rest")]
    source = await created(admin, "/v1/sources", {"name": "Site form", "channel": "web_form", "mapping": {}})
    territory = await created(
        admin, "/v1/territories", {"name": "Bavaria", "countries": ["DE"], "regions": ["Bayern"]}
    )
    await rule(admin, position=0, method="fixed", member_ids=[ads["id"]], conditions={"channels": ["ads"]})
    await rule(
        admin, position=1, method="fixed", member_ids=[web["id"]],
        conditions={"source_ids": [source["id"]], "tags": ["VIP"]},
    )
    await rule(
        admin, position=2, method="fixed", member_ids=[dach["id"]], conditions={"territory_ids": [territory["id"]]}
    )
    await rule(admin, position=3, method="fixed", member_ids=[german["id"]], conditions={"countries": ["de"]})
    await rule(admin, position=4, method="fixed", member_ids=[rest["id"]])
    taken = await leads(
        admin,
        {"name": "Ads", "channel": "ads", "phone": "+4930123456"},
        {"name": "Web VIP", "source_id": source["id"], "channel": "web_form", "tags": ["vip"]},
        {"name": "Web", "source_id": source["id"], "channel": "web_form"},
        {"name": "Munich", "phone": "+498912345678", "custom": {}},
        {"name": "Berlin by phone", "phone": "+4930123457"},
        {"name": "Russian phone", "phone": "+79161234567"},
    )

    await drain(leads_db)

    owners = [(await lead(admin, t["id"]))["owner_id"] for t in taken]
    # Munich's phone is German but its region is unknown: not in the Bavaria territory, but in Germany.
    assert owners == [ads["id"], web["id"], rest["id"], german["id"], german["id"], rest["id"]]


async def test_a_territory_covers_a_lead_by_its_country_and_custom_region_city_and_postal_code(admin, leads_db):
    ok = await admin.patch("/v1/lead-settings", json={"custom_fields": [
        {"key": "region", "label": "Region", "type": "text"},
        {"key": "country", "label": "Country", "type": "text"},
    ]})
    assert ok.status_code == 200, ok.text
    dach = await member(admin, "Dach")
    rest = await member(admin, "Rest")
    territory = await created(
        admin, "/v1/territories", {"name": "Bavaria", "countries": ["DE"], "regions": ["Bayern"]}
    )
    await rule(admin, method="fixed", member_ids=[dach["id"]], conditions={"territory_ids": [territory["id"]]})
    await rule(admin, method="fixed", member_ids=[rest["id"]])
    taken = await leads(
        admin,
        {"name": "Munich", "phone": "+498912345678", "custom": {"region": " bayern "}},
        {"name": "Said German", "custom": {"country": "de", "region": "Bayern"}},
        {"name": "Austrian phone", "phone": "+43123456789", "custom": {"region": "Bayern"}},
    )

    await drain(leads_db)

    owners = [(await lead(admin, t["id"]))["owner_id"] for t in taken]
    assert owners == [dach["id"], dach["id"], rest["id"]]


async def test_a_grade_condition_routes_a_leads_to_one_team_and_the_rest_to_another(admin, leads_db, admin_db):
    # Grade A is a score of 75 or more: a lead with a company scores 80, any other 0 (engagement counts nothing).
    model = await admin.patch("/v1/scoring-model", json={
        "fit_rules": [{"label": "Has a company", "attribute": "company", "op": "exists", "value": None, "points": 80}],
        "engagement_rules": [],
    })
    assert model.status_code == 200, model.text
    stars, [alice, anton] = await team(admin, "Stars", ("Alice", "hunter"), ("Anton", "hunter"))
    rest, [bob] = await team(admin, "Rest", ("Bob", "hunter"))
    closer, top_closer = await member(admin, "Cora", "closer"), await member(admin, "Tom", "closer")
    best = await rule(admin, method="round_robin", team_id=stars["id"], conditions={"grades": ["a"]})
    assert best["conditions"] == {"grades": ["A"]}
    await rule(admin, method="round_robin", team_id=rest["id"])
    await rule(admin, stage="qualified", method="fixed", member_ids=[top_closer["id"]],
               conditions={"grades": ["A", "B"]})
    await rule(admin, stage="qualified", method="fixed", member_ids=[closer["id"]])
    taken = await leads(
        admin, {"name": "Big", "company": "Acme"}, {"name": "Small"}, {"name": "Also big", "company": "Initech"},
        {"name": "Tiny"},
    )

    await drain(leads_db)

    owners = [(await lead(admin, t["id"]))["owner_id"] for t in taken]
    assert owners == [alice["id"], bob["id"], anton["id"], bob["id"]]
    [record] = await assignments(admin, taken[0]["id"])
    assert record["reason"] == "round robin in team Stars for a grade A lead: Alice was next"
    [other] = await assignments(admin, taken[1]["id"])
    assert other["reason"] == "round robin in team Rest: Bob was next"

    # Qualifying grades the lead at that moment too: the big one goes to the closer for A and B leads.
    for item, expected in ((taken[0], top_closer), (taken[1], closer)):
        response = await admin.post(
            f"/v1/leads/{item['id']}/qualify", json={"budget": {"amount": "100", "currency": "EUR"}, "need": "Calls"}
        )
        assert response.status_code == 200, response.text
        assert response.json()["lead"]["owner_id"] == expected["id"]
    handed = [e for e in await events(admin_db, "lead.assigned") if e["stage"] == "qualified"]
    assert handed[0]["reason"] == "fixed owner for a grade A lead: Tom"


# ---- who is skipped, and the queue --------------------------------------------------------------------------


async def test_away_inactive_full_and_off_hours_members_are_skipped_and_named(admin, leads_db):
    anna = await member(admin, "Anna", status="away")
    boris = await member(admin, "Boris", status="inactive")
    carl = await member(admin, "Carl", capacity=1)
    await leads(admin, {"name": "Carl's", "owner_id": carl["id"]})
    dora = await member(
        admin, "Dora", time_zone=zone_where_now_is(inside=False),
        working_hours={d: [["09:00", "18:00"]] for d in ALL_WEEK},
    )
    eva = await member(
        admin, "Eva", time_zone=zone_where_now_is(inside=True),
        working_hours={d: [["09:00", "18:00"]] for d in ALL_WEEK},
    )
    pool = [anna["id"], boris["id"], carl["id"], dora["id"], eva["id"]]
    await rule(admin, method="round_robin", member_ids=pool, only_working_hours=True)
    [taken] = await leads(admin, {"name": "Lead"})

    await drain(leads_db)

    assert (await lead(admin, taken["id"]))["owner_id"] == eva["id"]
    [record] = await assignments(admin, taken["id"])
    assert [(s["member_id"], s["why"].split(" (")[0]) for s in record["skipped"]] == [
        (anna["id"], "away"), (boris["id"], "inactive"), (carl["id"], "at capacity"),
        (dora["id"], "outside working hours"),
    ]
    assert record["reason"].startswith(
        "round robin in the rule's members: Eva was next; Anna skipped: away; Boris skipped: inactive; "
        "Carl skipped: at capacity (1 of 1 open leads); Dora skipped: outside working hours ("
    )


async def test_a_lead_nobody_can_take_waits_and_goes_to_whoever_comes_back(admin, leads_db, admin_db):
    inbound, [anna] = await team(admin, "Inbound", ("Anna", "hunter"))
    made = await rule(admin, method="round_robin", team_id=inbound["id"])
    away = await admin.patch(f"/v1/members/{anna['id']}", json={"status": "away"})
    assert away.status_code == 200
    [taken] = await leads(admin, {"name": "Lead"})

    await drain(leads_db)

    waiting = await lead(admin, taken["id"])
    assert (waiting["owner_id"], waiting["assignment_state"], waiting["assignment_rule_id"]) == (
        None, "queued", made["id"]
    )
    [queued] = await assignments(admin, taken["id"])
    assert queued["member_id"] is None
    assert queued["reason"] == (
        "round robin in team Inbound: nobody in it can take the lead now, so it waits; Anna skipped: away"
    )
    # Trying again while nobody is back records nothing new.
    await drain(leads_db)
    assert len(await assignments(admin, taken["id"])) == 1

    back = await admin.patch(f"/v1/members/{anna['id']}", json={"status": "active"})
    assert back.status_code == 200
    await drain(leads_db)

    assigned = await lead(admin, taken["id"])
    assert (assigned["owner_id"], assigned["assignment_state"]) == (anna["id"], "assigned")
    history = await assignments(admin, taken["id"])
    assert [h["member_id"] for h in history] == [None, anna["id"]]
    assert [e["lead_id"] for e in await events(admin_db, "lead.assigned")] == [taken["id"]]


async def test_a_member_at_capacity_who_closes_a_lead_gets_the_queued_one_at_once(admin, leads_db):
    anna = await member(admin, "Anna", capacity=1)
    await rule(admin, method="fixed", member_ids=[anna["id"]])
    [hers] = await leads(admin, {"name": "Hers", "owner_id": anna["id"]})
    [waiting] = await leads(admin, {"name": "Waiting"})
    await drain(leads_db)
    assert (await lead(admin, waiting["id"]))["assignment_state"] == "queued"

    closed = await admin.post(f"/v1/leads/{hers['id']}/status", json={"status": "disqualified", "reason": "spam"})

    assert closed.status_code == 200, closed.text
    # Sent back to the worker in the same transaction (not at the next minute's retry)...
    assert (await lead(admin, waiting["id"]))["assignment_state"] == "pending"
    await drain(leads_db)
    taken = await lead(admin, waiting["id"])
    assert (taken["owner_id"], taken["assignment_state"]) == (anna["id"], "assigned")


async def test_a_lead_handed_to_someone_else_frees_room_and_a_closed_queued_lead_leaves_the_queue(admin, leads_db):
    anna, boris = await member(admin, "Anna", capacity=1), await member(admin, "Boris", capacity=1)
    await rule(admin, method="fixed", member_ids=[anna["id"]])
    [hers] = await leads(admin, {"name": "Hers", "owner_id": anna["id"]})
    [first, second] = await leads(admin, {"name": "First"}, {"name": "Second"})
    await drain(leads_db)

    moved = await admin.patch(f"/v1/leads/{hers['id']}", json={"owner_id": boris["id"]})
    assert moved.status_code == 200, moved.text
    assert [(await lead(admin, t["id"]))["assignment_state"] for t in (first, second)] == ["pending", "pending"]
    # A queued lead closed meanwhile waits for nobody any more.
    dropped = await admin.post(f"/v1/leads/{second['id']}/status", json={"status": "disqualified", "reason": "spam"})
    assert dropped.status_code == 200, dropped.text
    assert dropped.json()["assignment_state"] == "unmatched"
    await drain(leads_db)

    assert (await lead(admin, first["id"]))["owner_id"] == anna["id"]
    assert (await lead(admin, second["id"]))["owner_id"] is None


# ---- qualified leads go to closers --------------------------------------------------------------------------


async def test_qualifying_hands_the_lead_to_a_closer_by_its_products(admin, leads_db, admin_db):
    hunter = await member(admin, "Hank")
    voip = await member(admin, "Vic", "closer")
    crm = await member(admin, "Cora", "closer")
    await rule(admin, stage="qualified", method="fixed", member_ids=[voip["id"]], conditions={"products": ["voip"]})
    await rule(admin, stage="qualified", method="fixed", member_ids=[crm["id"]])
    [taken] = await leads(admin, {"name": "Ivan", "owner_id": hunter["id"]})

    response = await admin.post(
        f"/v1/leads/{taken['id']}/qualify",
        json={"budget": {"amount": "100", "currency": "EUR"}, "need": "Calls", "products": ["voip"]},
    )

    assert response.status_code == 200, response.text
    qualified = response.json()["lead"]
    assert (qualified["owner_id"], qualified["hunter_id"], qualified["status"]) == (
        voip["id"], hunter["id"], "qualified"
    )
    assert response.headers["etag"] == f'"{qualified["version"]}"'
    [event] = await events(admin_db, "lead.qualified")
    assert (event["owner_id"], event["closer_id"]) == (hunter["id"], voip["id"])
    [assigned] = await events(admin_db, "lead.assigned")
    assert (assigned["stage"], assigned["owner_id"], assigned["previous_owner_id"]) == (
        "qualified", voip["id"], hunter["id"]
    )
    [record] = await assignments(admin, taken["id"])
    assert (record["stage"], record["member_id"], record["previous_owner_id"]) == (
        "qualified", voip["id"], hunter["id"]
    )


async def test_a_qualified_lead_waits_for_a_closer_with_its_hunter(admin, leads_db, admin_db):
    hunter = await member(admin, "Hank")
    closer = await member(admin, "Cora", "closer", status="away")
    await rule(admin, stage="qualified", method="fixed", member_ids=[closer["id"]])
    [taken] = await leads(admin, {"name": "Ivan", "owner_id": hunter["id"]})

    response = await admin.post(
        f"/v1/leads/{taken['id']}/qualify", json={"budget": {"amount": "100", "currency": "EUR"}, "need": "Calls"}
    )

    assert response.status_code == 200, response.text
    waiting = response.json()["lead"]
    assert (waiting["owner_id"], waiting["assignment_state"]) == (hunter["id"], "queued")
    [event] = await events(admin_db, "lead.qualified")
    assert (event["owner_id"], event["closer_id"]) == (hunter["id"], None)

    await admin.patch(f"/v1/members/{closer['id']}", json={"status": "active"})
    await drain(leads_db)

    handed = await lead(admin, taken["id"])
    assert (handed["owner_id"], handed["hunter_id"], handed["assignment_state"]) == (
        closer["id"], hunter["id"], "assigned"
    )
    [assigned] = await events(admin_db, "lead.assigned")
    assert (assigned["stage"], assigned["owner_id"], assigned["previous_owner_id"]) == (
        "qualified", closer["id"], hunter["id"]
    )


# ---- by hand ------------------------------------------------------------------------------------------------


async def test_a_head_of_sales_reassigning_a_lead_is_recorded_and_announced(
    stack, admin, workspace, leads_db, admin_db
):
    anna, boris = await member(admin, "Anna"), await member(admin, "Boris")
    await rule(admin, method="fixed", member_ids=[anna["id"]])
    [taken] = await leads(admin, {"name": "Lead"})
    await drain(leads_db)
    head_id = uuid.uuid4()
    async with stack.client("leads", token_for(workspace, Role.head_of_sales, head_id)) as head:
        response = await head.patch(f"/v1/leads/{taken['id']}", json={"owner_id": boris["id"]})

    assert response.status_code == 200, response.text
    history = await assignments(admin, taken["id"])
    assert [(h["method"], h["member_id"]) for h in history] == [("fixed", anna["id"]), ("manual", boris["id"])]
    manual = history[1]
    assert (manual["previous_owner_id"], manual["assigned_by"], manual["rule_id"]) == (anna["id"], str(head_id), None)
    assert manual["reason"] == "assigned by hand to Boris"
    by_hand = (await events(admin_db, "lead.assigned"))[-1]
    assert (by_hand["method"], by_hand["owner_id"], by_hand["previous_owner_id"], by_hand["assigned_by"]) == (
        "manual", boris["id"], anna["id"], str(head_id)
    )
    [updated] = await events(admin_db, "lead.updated")
    assert (updated["owner_id"], updated["previous_owner_id"]) == (boris["id"], anna["id"])


# ---- fairness under concurrency -----------------------------------------------------------------------------


async def test_two_workers_on_two_pools_split_a_thousand_leads_exactly_evenly(admin, admin_db, database_url):
    inbound, people = await team(admin, "Inbound", *((f"Rep {i}", "hunter") for i in range(4)))
    await rule(admin, method="round_robin", team_id=inbound["id"])
    response = await admin.post("/v1/leads:batch", json={"items": [{"name": f"Lead {i}"} for i in range(1000)]})
    assert response.json()["created"] == 1000
    pools = [Database(service_dsn(get_settings(), "leads"), schema="leads") for _ in range(2)]
    for pool in pools:
        await pool.connect()
    try:
        taken = await asyncio.gather(*(AssignmentWorker(pool).drain() for pool in pools))
    finally:
        for pool in pools:
            await pool.close()

    assert sum(taken) == 1000
    assert min(taken) > 0  # both took batches, waiting on each other for the rule's lock
    counts = Counter(
        r["owner_id"] for r in await admin_db.fetch("SELECT owner_id FROM leads.leads WHERE owner_id IS NOT NULL")
    )
    assert sorted(counts.values()) == [250] * 4
    assert {str(k) for k in counts} == {p["id"] for p in people}
    assert await admin_db.fetchval("SELECT count(*) FROM leads.lead_assignments") == 1000


# ---- the rules themselves -----------------------------------------------------------------------------------


async def test_rules_are_listed_in_order_changed_with_if_match_and_deleted(admin):
    anna = await member(admin, "Anna")
    second = await rule(admin, name="Second", position=5, method="fixed", member_ids=[anna["id"]])
    first = await rule(admin, name="First", position=1, method="fixed", member_ids=[anna["id"]])
    default = await rule(admin, name="Last", method="fixed", member_ids=[anna["id"]])
    assert default["position"] == 6

    page = (await admin.get("/v1/assignment-rules", params={"limit": 2})).json()
    assert [r["name"] for r in page["items"]] == ["First", "Second"]
    rest = (await admin.get("/v1/assignment-rules", params={"cursor": page["next_cursor"]})).json()
    assert [r["name"] for r in rest["items"]] == ["Last"]

    stale = await admin.patch(f"/v1/assignment-rules/{first['id']}", json={"position": 9}, headers={"If-Match": '"0"'})
    assert stale.status_code == 412
    moved = await admin.patch(f"/v1/assignment-rules/{first['id']}", json={"position": 9}, headers={"If-Match": '"1"'})
    assert moved.status_code == 200, moved.text
    assert moved.headers["etag"] == '"2"'
    listed = (await admin.get("/v1/assignment-rules")).json()["items"]
    assert [r["name"] for r in listed] == ["Second", "Last", "First"]

    gone = await admin.delete(f"/v1/assignment-rules/{second['id']}")
    assert gone.status_code == 204
    assert (await admin.get(f"/v1/assignment-rules/{second['id']}")).status_code == 404


async def test_a_rule_that_does_not_fit_is_refused_naming_the_field(admin, workspace, stack):
    anna = await member(admin, "Anna")
    cases = [
        ({"method": "round_robin"}, ["team_id"]),
        ({"method": "round_robin", "team_id": str(uuid.uuid4()), "member_ids": [anna["id"]]}, ["team_id", "team_id"]),
        ({"method": "fixed", "member_ids": [anna["id"], str(uuid.uuid4())]}, ["member_ids", "member_ids[1]"]),
        ({"method": "fixed", "member_ids": [anna["id"]], "conditions": {"countries": ["DE", "XX"]}},
         ["conditions.countries[1]"]),
        ({"method": "fixed", "member_ids": [anna["id"]], "conditions": {"products": ["crm"]}},
         ["conditions.products"]),
        ({"method": "fixed", "member_ids": [anna["id"]], "conditions": {"territory_ids": [str(uuid.uuid4())]}},
         ["conditions.territory_ids[0]"]),
        ({"method": "round_robin", "member_ids": [anna["id"]], "weights": {anna["id"]: 2}}, ["weights"]),
        ({"method": "sometimes", "member_ids": [anna["id"]]}, ["method"]),
        ({"method": "fixed", "member_ids": [anna["id"]], "conditions": {"colour": ["red"]}}, ["conditions.colour"]),
        ({"method": "fixed", "member_ids": [anna["id"]], "conditions": {"grades": ["b", "E", "AA"]}},
         ["conditions.grades[1]", "conditions.grades[2]"]),
        ({"method": "fixed", "member_ids": [anna["id"]], "conditions": {"grades": [1]}}, ["conditions.grades[0]"]),
        ({"method": "fixed", "member_ids": [anna["id"]], "stage": "farm"}, ["stage"]),
    ]
    for body, fields in cases:
        response = await admin.post("/v1/assignment-rules", json={"name": "R", "stage": "new", **body})
        assert sorted(fields_named(response)) == sorted(fields), (body, response.text)

    # Products are known for a client (from its qualification) as for a qualified lead.
    client_rule = {
        "method": "fixed", "member_ids": [anna["id"]], "conditions": {"products": ["crm"], "grades": [" c "]},
    }
    accepted = await admin.post("/v1/assignment-rules", json={"name": "R", "stage": "client", **client_rule})
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["conditions"] == {"products": ["crm"], "grades": ["C"]}

    async with stack.client("leads", token_for(workspace, Role.rep)) as rep:
        refused = await rep.post(
            "/v1/assignment-rules", json={"name": "R", "stage": "new", "method": "fixed", "member_ids": [anna["id"]]}
        )
        assert refused.status_code == 403
        assert (await rep.get("/v1/assignment-rules")).status_code == 200


async def test_another_workspace_s_rules_and_assignments_are_not_found(admin, stack, workspace, leads_db):
    anna = await member(admin, "Anna")
    made = await rule(admin, method="fixed", member_ids=[anna["id"]])
    [taken] = await leads(admin, {"name": "Lead"})
    await drain(leads_db)
    # In the workspace, the rep who got the lead reads its assignments; another rep does not see the lead.
    async with stack.client("leads", token_for(workspace, Role.rep, uuid.UUID(anna["id"]))) as owner:
        assert [a["member_id"] for a in await assignments(owner, taken["id"])] == [anna["id"]]
    async with stack.client("leads", token_for(workspace, Role.rep)) as other_rep:
        assert (await other_rep.get(f"/v1/leads/{taken['id']}/assignments")).status_code == 404
    other_workspace = uuid.uuid4()
    async with stack.client("leads", token_for(other_workspace, Role.admin)) as other:
        assert (await other.get(f"/v1/assignment-rules/{made['id']}")).status_code == 404
        assert (await other.get("/v1/assignment-rules")).json()["items"] == []
        assert (await other.get(f"/v1/leads/{taken['id']}/assignments")).status_code == 404
        # Their leads do not go to our members, and our member is not theirs to name in a rule.
        naming_ours = {"name": "R", "stage": "new", "method": "fixed", "member_ids": [anna["id"]]}
        assert fields_named(await other.post("/v1/assignment-rules", json=naming_ours)) == ["member_ids[0]"]
        [theirs] = await leads(other, {"name": "Theirs"})
        await drain(leads_db)
        assert (await lead(other, theirs["id"]))["assignment_state"] == "unmatched"
