"""The stack as it runs in production: separate processes over real HTTP on a real PostgreSQL.

What a user of the API sees through the gateway, and what the event backbone promises when processes die:
every event reaches its consumer, and is applied there exactly once.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import orjson
from prometheus_client import REGISTRY
from standardwebhooks import Webhook

from services.cli.migrate import migrate
from services.common.auth import Role
from services.common.testing import auth_headers, eventually, token_for

CREATE_LEAD = """
mutation CreateLead($input: CreateLeadInput!) {
  createLead(input: $input) { lead { id name email source } userErrors { field code message } }
}
"""
LEAD = "query Lead($id: ID!) { lead(id: $id) { id name email source } }"
LEADS = """
query Leads($first: Int, $after: String) {
  leads(first: $first, after: $after) { edges { cursor node { id } } pageInfo { hasNextPage endCursor } }
}
"""
LEAD_STATS = "{ leadStats { total bySource { source count } } }"

FACTS = "SELECT count(*) FROM reporting.lead_facts"
INBOX = "SELECT count(*) FROM reporting.inbox"
DEAD_LETTERS = "SELECT count(*) FROM leads.dead_letters"
SUBSCRIPTION = """
SELECT s.position, s.attempts, s.last_error, s.lease_owner,
       (SELECT coalesce(max(position), 0) FROM leads.outbox) AS head
FROM leads.subscriptions s WHERE s.subscriber = 'reporting'
"""


# -- factories and probes -----------------------------------------------------------------------------


async def graphql(
    gateway: httpx.AsyncClient, token: str | None, query: str, **variables: Any
) -> httpx.Response:
    headers = auth_headers(token) if token else {}
    return await gateway.post("/graphql", json={"query": query, "variables": variables}, headers=headers)


async def graphql_data(gateway: httpx.AsyncClient, token: str, query: str, **variables: Any) -> dict[str, Any]:
    response = await graphql(gateway, token, query, **variables)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


async def create_leads(
    base_url: str, token: str, count: int, *, source: str = "web_form", concurrency: int = 16
) -> list[str]:
    """Creates `count` leads through the leads REST API, a few at a time; returns their ids."""
    limit = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=base_url, headers=auth_headers(token), timeout=10) as client:

        async def one(i: int) -> str:
            async with limit:
                response = await client.post("/v1/leads", json={"name": f"Lead {i}", "source": source})
            assert response.status_code == 201, response.text
            return str(response.json()["id"])

        return list(await asyncio.gather(*(one(i) for i in range(count))))


def events_applied(outcome: str) -> float:
    """What the in-process reporting app counted so far with this outcome ("applied", "duplicate")."""
    value = REGISTRY.get_sample_value("voronka_events_applied_total", {"service": "reporting", "outcome": outcome})
    return value or 0.0


async def event_ids_of_leads(admin_db: asyncpg.Connection, lead_ids: set[str]) -> list[str]:
    rows = await admin_db.fetch(
        "SELECT id FROM leads.outbox WHERE type = 'voronka.lead.created.v1' AND subject = ANY($1::text[])",
        sorted(lead_ids),
    )
    return [str(row["id"]) for row in rows]


def lease_holder_pid(subscription: asyncpg.Record) -> int | None:
    owner: str | None = subscription["lease_owner"]  # "<hostname>:<pid>:<hex>"
    return int(owner.rsplit(":", 2)[1]) if owner else None


# -- through the gateway --------------------------------------------------------------------------------


async def test_slice_from_graphql_to_the_funnel(full_stack, workspace, admin_db):
    token = token_for(workspace, Role.admin)
    async with httpx.AsyncClient(base_url=full_stack.gateway_url, timeout=10) as gateway:
        created = []
        for name, email, source in (("Ada", "ada@example.com", "web_form"), ("Bob", "bob@example.com", "referral")):
            data = await graphql_data(
                gateway, token, CREATE_LEAD, input={"name": name, "email": email, "source": source}
            )
            assert data["createLead"]["userErrors"] == []
            created.append(data["createLead"]["lead"])
        ada, bob = created
        assert ada == {"id": ada["id"], "name": "Ada", "email": "ada@example.com", "source": "web_form"}

        # The funnel is counted by reporting from lead.created events: leads -> outbox -> reporting.
        stats = await eventually(
            lambda: graphql_data(gateway, token, LEAD_STATS), lambda d: d["leadStats"]["total"] == 2
        )
        by_source = {row["source"]: row["count"] for row in stats["leadStats"]["bySource"]}
        assert by_source == {"web_form": 1, "referral": 1}

        assert (await graphql_data(gateway, token, LEAD, id=ada["id"]))["lead"] == ada

        # Newest first, one per page, following endCursor.
        first = (await graphql_data(gateway, token, LEADS, first=1))["leads"]
        assert [edge["node"]["id"] for edge in first["edges"]] == [bob["id"]]
        assert first["pageInfo"]["hasNextPage"] is True
        second = (await graphql_data(gateway, token, LEADS, first=1, after=first["pageInfo"]["endCursor"]))["leads"]
        assert [edge["node"]["id"] for edge in second["edges"]] == [ada["id"]]
        assert second["pageInfo"]["hasNextPage"] is False

        invalid = await graphql_data(gateway, token, CREATE_LEAD, input={"name": "Eve", "email": "not-an-email"})
        assert invalid["createLead"]["lead"] is None
        assert [error["field"] for error in invalid["createLead"]["userErrors"]] == [["input", "email"]]
        assert len((await graphql_data(gateway, token, LEADS, first=10))["leads"]["edges"]) == 2

        anonymous = await graphql(gateway, None, LEAD_STATS)
        assert anonymous.status_code == 401
        assert anonymous.headers["x-request-id"]

        traced = await gateway.post(
            "/graphql", json={"query": LEAD_STATS}, headers={**auth_headers(token), "X-Request-ID": "e2e-trace-1"}
        )
        assert traced.headers["x-request-id"] == "e2e-trace-1"

        # The browser's trace runs through the gateway and the leads service into the event it published.
        trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
        carol = await gateway.post(
            "/graphql",
            json={"query": CREATE_LEAD, "variables": {"input": {"name": "Carol"}}},
            headers={**auth_headers(token), "traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"},
        )
        carol_id = carol.json()["data"]["createLead"]["lead"]["id"]
        event_trace = await admin_db.fetchval(
            "SELECT event->>'traceparent' FROM leads.outbox WHERE subject = $1", carol_id
        )
        assert event_trace.split("-")[1] == trace_id

        # A retry after a lost answer, with the same key, gets the same lead back; reusing the key for
        # another lead is an error on that input field.
        keyed = {"name": "Dan", "source": "web_form", "idempotencyKey": "form-7f3a"}
        first_try = await graphql_data(gateway, token, CREATE_LEAD, input=keyed)
        retry = await graphql_data(gateway, token, CREATE_LEAD, input=keyed)
        assert retry["createLead"]["lead"] == first_try["createLead"]["lead"]
        misuse = await graphql_data(gateway, token, CREATE_LEAD, input={**keyed, "name": "Not Dan"})
        assert misuse["createLead"]["lead"] is None
        assert [e["field"] for e in misuse["createLead"]["userErrors"]] == [["input", "idempotencyKey"]]
        assert await admin_db.fetchval("SELECT count(*) FROM leads.leads WHERE name = 'Dan'") == 1
        untraced = await graphql(gateway, token, LEAD_STATS)
        assert untraced.headers["x-request-id"] not in ("", "e2e-trace-1")

        stranger = token_for(uuid.uuid4(), Role.admin)
        assert (await graphql_data(gateway, stranger, LEAD, id=ada["id"]))["lead"] is None
        assert (await graphql_data(gateway, stranger, LEAD_STATS))["leadStats"] == {"total": 0, "bySource": []}
        assert (await graphql_data(gateway, stranger, LEADS, first=10))["leads"]["edges"] == []


async def test_stats_go_dark_alone_while_reporting_is_down_and_catch_up_when_it_is_back(
    launcher, workspace
):
    token = token_for(workspace, Role.admin)
    await launcher.start("leads")
    await launcher.start("gateway")
    async with httpx.AsyncClient(base_url=launcher.url("gateway"), timeout=10) as gateway:
        created = await graphql_data(gateway, token, CREATE_LEAD, input={"name": "Ada", "source": "web_form"})
        lead_id = created["createLead"]["lead"]["id"]

        both = "{ leadStats { total } leads(first: 5) { edges { node { id } } } }"
        response = await graphql(gateway, token, both)
        assert response.status_code == 200
        body = response.json()
        assert body["data"]["leadStats"] is None
        assert [(e["path"], e["message"]) for e in body["errors"]] == [
            (["leadStats"], "reporting service unavailable")
        ]
        assert [edge["node"]["id"] for edge in body["data"]["leads"]["edges"]] == [lead_id]

        # The lead.created event waited in the outbox; the funnel counts it once reporting is back.
        await launcher.start("reporting")
        stats = await eventually(
            lambda: graphql(gateway, token, LEAD_STATS),
            lambda r: ((r.json().get("data") or {}).get("leadStats") or {}).get("total") == 1,
        )
        assert stats.json() == {"data": {"leadStats": {"total": 1, "bySource": [{"source": "web_form", "count": 1}]}}}


async def test_a_service_started_before_migrations_is_alive_but_not_ready_until_migrated(
    unmigrated_launcher, admin_token
):
    # Deploys start the service and the migration job side by side: until the schema is there the process
    # must stay up and say "not ready" (so it gets no traffic), not crash.
    leads = await unmigrated_launcher.start("leads")
    async with httpx.AsyncClient(base_url=leads.url, timeout=10) as client:
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/readyz")).status_code == 503

        await asyncio.to_thread(migrate, unmigrated_launcher.database_url)

        await eventually(lambda: client.get("/readyz"), lambda r: r.status_code == 200)
        response = await client.post("/v1/leads", json={"name": "Ada"}, headers=auth_headers(admin_token))
        assert response.status_code == 201, response.text


# -- the event backbone when processes come and go --------------------------------------------------------


async def test_consumer_down_while_500_events_are_produced(launcher, admin_db, admin_token):
    # Only the events these leads make: the ScoringWorker's lead.scored would add to the positions counted.
    launcher.env["VORONKA_WORKERS_DISABLED"] = '["ScoringWorker"]'
    await launcher.start("leads")
    reporting = await launcher.start("reporting")
    leads_url = launcher.url("leads")
    await create_leads(leads_url, admin_token, 1)
    await eventually(lambda: admin_db.fetchval(FACTS), lambda n: n == 1)

    await launcher.stop(reporting)
    await create_leads(leads_url, admin_token, 500)
    # The dispatcher finds reporting gone and backs off; the events are fine, so no attempt counts against them.
    down = await eventually(lambda: admin_db.fetchrow(SUBSCRIPTION), lambda s: s["last_error"] is not None)
    assert down["attempts"] == 0
    assert down["position"] == 1
    assert await admin_db.fetchval(FACTS) == 1

    await launcher.start("reporting")
    await eventually(lambda: admin_db.fetchval(FACTS), lambda n: n == 501, timeout=30)
    assert await admin_db.fetchval(INBOX) == 501
    assert await admin_db.fetchval(DEAD_LETTERS) == 0
    caught_up = await eventually(lambda: admin_db.fetchrow(SUBSCRIPTION), lambda s: s["position"] == s["head"])
    assert caught_up["last_error"] is None
    async with httpx.AsyncClient(base_url=launcher.url("reporting"), headers=auth_headers(admin_token)) as client:
        assert (await client.get("/v1/stats/leads")).json() == {
            "total": 501, "by_source": [{"source": "web_form", "count": 501}]
        }


async def test_dispatcher_killed_mid_delivery_redelivers_and_the_consumer_applies_once(
    launcher, watched_reporting, admin_db, admin_token
):
    # Only the events these leads make: the ScoringWorker's lead.scored would add to the positions counted.
    launcher.env["VORONKA_WORKERS_DISABLED"] = '["ScoringWorker"]'
    leads = await launcher.start("leads")
    ids = await create_leads(launcher.url("leads"), admin_token, 20)
    # Every event positioned before the consumer appears, so they all travel in its first delivery.
    await eventually(
        lambda: admin_db.fetchval("SELECT count(*) FROM leads.outbox WHERE position IS NOT NULL"),
        lambda n: n == 20,
    )
    events = await event_ids_of_leads(admin_db, set(ids))
    applied_before, duplicates_before = events_applied("applied"), events_applied("duplicate")

    consumer = await watched_reporting(hold_first_delivery=True)
    held = await consumer.wait_until_held()
    assert sorted(held) == sorted(events)
    # The consumer committed the batch; the producer has not heard back, so its cursor has not moved.
    assert (await admin_db.fetchval(FACTS), await admin_db.fetchval(INBOX)) == (20, 20)
    subscription = await admin_db.fetchrow(SUBSCRIPTION)
    assert subscription["position"] == 0
    assert lease_holder_pid(subscription) == leads.pid

    await launcher.kill(leads)
    consumer.release()
    # SIGKILL ran no shutdown hook: the dead process still holds the lease until it runs out.
    assert lease_holder_pid(await admin_db.fetchrow(SUBSCRIPTION)) == leads.pid

    replacement = await launcher.start("leads")
    subscription = await eventually(
        lambda: admin_db.fetchrow(SUBSCRIPTION), lambda s: s["position"] == s["head"] == 20, timeout=20
    )
    assert lease_holder_pid(subscription) == replacement.pid
    # Each at least twice (a slow machine may see the replacement retry a delivery that timed out).
    delivered = consumer.times_delivered()
    assert set(delivered) == set(events)
    assert all(times >= 2 for times in delivered.values()), delivered
    # Redelivered, and absorbed by the inbox: each event applied once, each second copy seen as a duplicate.
    assert events_applied("applied") - applied_before == 20
    assert events_applied("duplicate") - duplicates_before == sum(delivered.values()) - 20
    assert (await admin_db.fetchval(FACTS), await admin_db.fetchval(INBOX)) == (20, 20)
    assert await admin_db.fetchval(DEAD_LETTERS) == 0


async def test_two_leads_replicas_share_one_outbox_without_double_delivery(
    launcher, watched_reporting, admin_db, admin_token
):
    consumer = await watched_reporting()
    replicas = [await launcher.start("leads", name="leads-a"), await launcher.start_replica("leads", "leads-b")]
    ids: list[str] = []
    for _ in range(4):
        rounds = await asyncio.gather(*(create_leads(replica.url, admin_token, 5) for replica in replicas))
        ids += [event_id for batch in rounds for event_id in batch]

    await eventually(lambda: admin_db.fetchval(FACTS), lambda n: n == 40)
    subscription = await eventually(lambda: admin_db.fetchrow(SUBSCRIPTION), lambda s: s["position"] == s["head"])
    lead_ids = set(ids)
    delivered = consumer.times_delivered()
    assert set(delivered) == set(await event_ids_of_leads(admin_db, lead_ids))
    assert set(delivered.values()) == {1}

    holder = next(r for r in replicas if r.pid == lease_holder_pid(subscription))
    survivor = next(r for r in replicas if r is not holder)
    await launcher.kill(holder)
    more = await create_leads(survivor.url, admin_token, 10)

    await eventually(lambda: admin_db.fetchval(FACTS), lambda n: n == 50, timeout=20)
    subscription = await eventually(lambda: admin_db.fetchrow(SUBSCRIPTION), lambda s: s["position"] == s["head"])
    assert lease_holder_pid(subscription) == survivor.pid
    delivered = consumer.times_delivered()
    assert set(delivered) == set(await event_ids_of_leads(admin_db, lead_ids | set(more)))
    assert set(delivered.values()) == {1}
    assert (await admin_db.fetchval(INBOX), await admin_db.fetchval(DEAD_LETTERS)) == (50, 0)


async def test_a_signed_webhook_from_a_marketing_tool_becomes_a_lead_that_reporting_counts(
    full_stack, workspace, admin_db
):
    """The whole intake path across processes: a form service signs a POST, the leads service stores it,
    its worker maps it into a lead, the outbox delivers lead.created, reporting counts it."""
    token = token_for(workspace, Role.admin)
    leads_url = full_stack.urls["leads"]
    async with httpx.AsyncClient(base_url=leads_url, headers=auth_headers(token), timeout=10) as leads, \
            httpx.AsyncClient(base_url=leads_url, timeout=10) as form_service, \
            httpx.AsyncClient(base_url=full_stack.gateway_url, timeout=10) as gateway:
        source = (await leads.post("/v1/sources", json={
            "name": "Typeform: demo request", "channel": "marketing_tool",
            "mapping": {
                "name": "form_response.answers[field.ref=name].text",
                "email": "form_response.answers[field.ref=email].email",
                "utm.campaign": "form_response.hidden.utm_campaign",
            },
        })).json()
        body = orjson.dumps({"form_response": {
            "hidden": {"utm_campaign": "black-friday"},
            "answers": [
                {"type": "text", "text": "Ada Lovelace", "field": {"ref": "name"}},
                {"type": "email", "email": "Ada@Example.com", "field": {"ref": "email"}},
            ],
        }})
        sent_at = datetime.now(UTC)
        response = await form_service.post(source["inbound_url"], content=body, headers={
            "content-type": "application/json", "webhook-id": "msg_e2e_1",
            "webhook-timestamp": str(int(sent_at.timestamp())),
            "webhook-signature": Webhook(source["secret"]).sign("msg_e2e_1", sent_at, body.decode()),
        })
        assert response.status_code == 202, response.text

        found = await eventually(
            lambda: leads.get("/v1/leads", params={"q": "lovelace"}), lambda r: len(r.json()["items"]) == 1
        )
        lead = found.json()["items"][0]
        assert (lead["email"], lead["channel"], lead["source"]) == (
            "ada@example.com", "marketing_tool", "Typeform: demo request"
        )
        assert lead["utm"] == {"campaign": "black-friday"}
        stats = await eventually(
            lambda: graphql_data(gateway, token, LEAD_STATS), lambda d: d["leadStats"]["total"] == 1
        )
        assert stats["leadStats"]["bySource"] == [{"source": "Typeform: demo request", "count": 1}]
