"""The event backbone: outbox -> dispatcher -> signed delivery -> inbox, and what happens when parts fail."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx
import orjson

from services.common.auth import Role
from services.common.db import Database, service_dsn
from services.common.dispatcher import Dispatcher
from services.common.outbox import list_dead_letters, redrive_dead_letters
from services.common.settings import get_settings
from services.common.signing import DeliverySigner
from services.common.testing import ServedApp, eventually, token_for


async def lead_facts(admin_db) -> int:
    return await admin_db.fetchval("SELECT count(*) FROM reporting.lead_facts")


async def create_leads(stack, token: str, count: int, source: str = "web_form") -> list[str]:
    async with stack.client("leads", token) as leads:
        ids = []
        for i in range(count):
            response = await leads.post("/v1/leads", json={"name": f"Lead {i}", "source": source})
            assert response.status_code == 201, response.text
            ids.append(response.json()["id"])
        return ids


async def test_a_created_lead_is_counted_by_reporting(stack, admin_token):
    await stack.start("leads", "reporting")
    await create_leads(stack, admin_token, 2, source="web_form")
    await create_leads(stack, admin_token, 1, source="cold_list")
    async with stack.client("reporting", admin_token) as reporting:
        stats = await eventually(
            lambda: reporting.get("/v1/stats/leads"), lambda r: r.json()["total"] == 3
        )
    assert stats.json()["by_source"] == [
        {"source": "web_form", "count": 2},
        {"source": "cold_list", "count": 1},
    ]


async def test_events_produced_while_the_consumer_is_down_all_arrive_once_it_is_back(stack, admin_token, admin_db):
    await stack.start("leads")
    await create_leads(stack, admin_token, 500)
    assert await lead_facts(admin_db) == 0
    await stack.start("reporting")
    await eventually(lambda: lead_facts(admin_db), lambda n: n == 500, timeout=30)
    assert await admin_db.fetchval("SELECT count(*) FROM reporting.inbox") == 500
    assert await admin_db.fetchval("SELECT count(*) FROM leads.dead_letters") == 0


async def test_a_delivery_with_a_forged_signature_is_rejected_and_changes_nothing(stack, admin_db, workspace):
    await stack.start("reporting")
    event = {
        "specversion": "1.0", "id": str(uuid.uuid4()), "source": "/voronka/leads",
        "type": "voronka.lead.created.v1", "time": "2026-11-24T10:00:00Z", "workspaceid": str(workspace),
        "data": {"lead_id": str(uuid.uuid4()), "workspace_id": str(workspace), "name": "Forged",
                 "created_by": str(uuid.uuid4()), "created_at": "2026-11-24T10:00:00Z"},
    }
    body = orjson.dumps([event])
    forger = DeliverySigner("whsec_" + "Zm9yZ2VkLXNlY3JldC1mb3JnZWQtc2VjcmV0")
    async with httpx.AsyncClient(base_url=stack.url("reporting")) as client:
        forged = await client.post("/events", content=body, headers=forger.headers(body))
        unsigned = await client.post("/events", content=body)
        genuine = DeliverySigner(get_settings().events_secret.get_secret_value()).headers(body)
        tampered = await client.post("/events", content=body.replace(b"Forged", b"Forgex"), headers=genuine)
    assert forged.status_code == unsigned.status_code == tampered.status_code == 401
    assert forged.headers["content-type"] == "application/problem+json"
    assert await lead_facts(admin_db) == 0
    assert await admin_db.fetchval("SELECT count(*) FROM reporting.inbox") == 0


async def test_redelivered_events_are_applied_once(stack, admin_db, workspace):
    await stack.start("reporting")
    lead_id = uuid.uuid4()
    event = {
        "specversion": "1.0", "id": str(uuid.uuid4()), "source": "/voronka/leads",
        "type": "voronka.lead.created.v1", "time": "2026-11-24T10:00:00Z", "workspaceid": str(workspace),
        "data": {"lead_id": str(lead_id), "workspace_id": str(workspace), "name": "Twice", "source": "ads",
                 "created_by": str(uuid.uuid4()), "created_at": "2026-11-24T10:00:00Z"},
    }
    signer = DeliverySigner(get_settings().events_secret.get_secret_value())
    async with httpx.AsyncClient(base_url=stack.url("reporting")) as client:
        for body in (orjson.dumps([event]), orjson.dumps([event, event])):
            response = await client.post("/events", content=body, headers=signer.headers(body))
            assert response.status_code == 200
            assert response.json()["failure"] is None
    assert await lead_facts(admin_db) == 1
    token = token_for(workspace, Role.admin)
    async with stack.client("reporting", token) as reporting:
        assert (await reporting.get("/v1/stats/leads")).json()["total"] == 1


async def test_a_rejected_event_is_parked_as_a_dead_letter_and_redrive_delivers_it(
    stack, admin_token, admin_db, workspace
):
    await stack.start("leads", "reporting")
    # An event reporting cannot apply (its payload lacks required fields), between two good ones.
    await create_leads(stack, admin_token, 1)
    await admin_db.execute(
        """
        INSERT INTO leads.outbox (workspace_id, id, type, subject, event)
        VALUES ($1, $2, 'voronka.lead.created.v1', 'x', $3::jsonb)
        """,
        workspace, bad_id := uuid.uuid4(),
        orjson.dumps({"specversion": "1.0", "id": str(bad_id), "source": "/voronka/leads",
                      "type": "voronka.lead.created.v1", "time": "2026-11-24T10:00:00Z",
                      "workspaceid": str(workspace), "data": {"name": "no ids"}}).decode(),
    )
    await admin_db.execute("SELECT pg_notify('leads_outbox', '')")
    await create_leads(stack, admin_token, 1)
    await eventually(lambda: lead_facts(admin_db), lambda n: n == 2)
    dead = await eventually(lambda: list_dead_letters(admin_db, "leads"), lambda rows: len(rows) == 1)
    assert dead[0]["event_id"] == bad_id
    assert dead[0]["attempts"] == 3
    assert "lead_id" in dead[0]["error"]

    # The producer fixes the payload (as a new release of the consumer would accept it), then redrives.
    lead_id = uuid.uuid4()
    await admin_db.execute(
        "UPDATE leads.outbox SET event = jsonb_set(event, '{data}', $2::jsonb) WHERE id = $1",
        bad_id,
        orjson.dumps({"lead_id": str(lead_id), "workspace_id": str(workspace), "name": "fixed",
                      "created_by": str(uuid.uuid4()), "created_at": "2026-11-24T10:00:00Z"}).decode(),
    )
    assert await redrive_dead_letters(admin_db, "leads", None) == 1
    await eventually(lambda: lead_facts(admin_db), lambda n: n == 3)
    await eventually(lambda: list_dead_letters(admin_db, "leads"), lambda rows: rows == [])


class RecordingConsumer:
    """Wraps a consumer app and records the event ids of every delivery it receives."""

    def __init__(self, app) -> None:
        self.app = app
        self.delivered: list[str] = []

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] != "/events" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        self.delivered += [e["id"] for e in orjson.loads(body)]
        sent = False

        async def replay():
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


async def test_two_dispatchers_on_one_outbox_never_deliver_an_event_twice(stack, admin_token, admin_db, monkeypatch):
    from services.reporting.app import create_app as reporting_app

    consumer = RecordingConsumer(reporting_app())
    served = await ServedApp(consumer, stack.ports["reporting"]).start()
    monkeypatch.setenv("VORONKA_DISPATCHER_ENABLED", "false")
    get_settings.cache_clear()
    await stack.start("leads")  # serves the API only; the two dispatchers below deliver
    settings = get_settings()
    databases = [Database(service_dsn(settings, "leads"), schema="leads") for _ in range(2)]
    dispatchers = []
    try:
        for db in databases:
            await db.connect()
            dispatchers.append(Dispatcher("leads", db, settings))
        await asyncio.gather(*(d.start() for d in dispatchers))
        ids = await create_leads(stack, admin_token, 300)
        await eventually(lambda: lead_facts(admin_db), lambda n: n == 300, timeout=30)
    finally:
        for d in dispatchers:
            await d.stop()
        for db in databases:
            await db.close()
        await served.stop()
    assert len(consumer.delivered) == len(set(consumer.delivered)) == 300
    assert len(ids) == 300


async def test_the_event_log_replays_from_a_cursor_with_a_type_filter(stack, admin_token, workspace):
    await stack.start("leads")
    await create_leads(stack, admin_token, 5)
    service = token_for(uuid.uuid4(), Role.service)
    async with stack.client("leads", service) as leads:
        async def first_page():
            return (await leads.get("/events", params={"limit": 3, "types": "lead.created"})).json()

        page = await eventually(first_page, lambda p: len(p["events"]) == 3)
        rest = (await leads.get("/events", params={"after": page["next_cursor"]})).json()
        events = page["events"] + rest["events"]
        assert [e["type"] for e in events] == ["voronka.lead.created.v1"] * 5
        assert len({e["id"] for e in events}) == 5
        assert all(e["workspaceid"] == str(workspace) and e["traceparent"] for e in events)
        none = (await leads.get("/events", params={"types": "deal.won"})).json()
        assert none["events"] == []
    async with stack.client("leads", token_for(workspace, Role.rep)) as rep:
        assert (await rep.get("/events")).status_code == 403
    async with stack.client("leads", token_for(uuid.uuid4(), Role.admin)) as other_admin:
        other = (await other_admin.get("/events")).json()
        assert other["events"] == []


async def test_a_late_commit_is_not_skipped_by_the_log(stack, database_url, workspace):
    """An event that commits after a later one still lands after the reader's cursor, never behind it."""
    await stack.start("leads")
    insert = """
        INSERT INTO leads.outbox (workspace_id, id, type, subject, event)
        VALUES ($1, $2::uuid, 'voronka.test.happened.v1', 's', jsonb_build_object('id', $2::uuid))
    """
    early_id, late_id = uuid.uuid4(), uuid.uuid4()
    slow, fast = await asyncpg.connect(database_url), await asyncpg.connect(database_url)
    try:
        slow_tx = slow.transaction()
        await slow_tx.start()
        await slow.execute(insert, workspace, late_id)  # its seq comes first, its commit last
        await fast.execute(insert, workspace, early_id)
        await fast.execute("SELECT pg_notify('leads_outbox', '')")
        async with stack.client("leads", token_for(uuid.uuid4(), Role.service)) as leads:
            page = await eventually(lambda: leads.get("/events"), lambda r: len(r.json()["events"]) == 1)
            cursor = page.json()["next_cursor"]
            await slow_tx.commit()
            await fast.execute("SELECT pg_notify('leads_outbox', '')")
            after = await eventually(
                lambda: leads.get("/events", params={"after": cursor}), lambda r: len(r.json()["events"]) == 1
            )
    finally:
        await slow.close()
        await fast.close()
    assert page.json()["events"][0]["id"] == str(early_id)
    assert after.json()["events"][0]["id"] == str(late_id)
