"""The event backbone: outbox -> dispatcher -> signed delivery -> inbox, and what happens when parts fail."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import orjson

from services.common.auth import Role
from services.common.db import Database, service_dsn
from services.common.dispatcher import Dispatcher
from services.common.outbox import list_dead_letters, redrive_dead_letters
from services.common.settings import get_settings
from services.common.signing import DeliverySigner
from services.common.testing import ServedApp, events_in, eventually, token_for

BATCH = "application/cloudevents-batch+json"


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


async def test_a_signed_delivery_that_is_not_cloudevents_json_is_refused_and_nothing_applied(
    stack, admin_db, workspace
):
    await stack.start("reporting")
    signer = DeliverySigner(get_settings().events_secret.get_secret_value())
    body = orjson.dumps([lead_created(workspace, "Form")])
    async with httpx.AsyncClient(base_url=stack.url("reporting")) as client:
        response = await client.post(
            "/events", content=body, headers={**signer.headers(body), "content-type": "text/plain"}
        )
    assert response.status_code == 415
    assert response.headers["content-type"] == "application/problem+json"
    assert "text/plain" in response.json()["detail"]
    assert await lead_facts(admin_db) == 0


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
        # Once in structured mode (one event), then twice more in one batch.
        for body, media_type in ((orjson.dumps(event), "application/cloudevents+json"),
                                 (orjson.dumps([event, event]), "application/cloudevents-batch+json")):
            response = await client.post(
                "/events", content=body, headers={**signer.headers(body), "content-type": media_type}
            )
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
        self.delivered += [e["id"] for e in events_in(body)]
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


async def test_the_event_log_replays_from_a_cursor_with_a_type_filter(stack, admin_token, workspace, monkeypatch):
    # Only the events these leads make: the ScoringWorker's lead.scored would interleave with them.
    monkeypatch.setenv("VORONKA_WORKERS_DISABLED", '["ScoringWorker"]')
    get_settings.cache_clear()
    await stack.start("leads")
    await create_leads(stack, admin_token, 5)
    service = token_for(uuid.uuid4(), Role.service)
    async with stack.client("leads", service) as leads:
        async def whole_log():
            return (await leads.get("/events")).json()

        # The sequencer numbers committed outbox rows asynchronously: wait until all five are in the log.
        await eventually(whole_log, lambda p: len(p["events"]) == 5)
        page = (await leads.get("/events", params={"limit": 3, "types": "lead.created"})).json()
        assert len(page["events"]) == 3
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


async def test_a_replica_holding_the_lease_delivers_what_another_replica_sequenced(stack, admin_db, workspace):
    """Replica A positions the rows, replica B holds the subscriber's lease: B must hear of them at once,
    not at its next poll (an hour here)."""
    settings = get_settings().model_copy(update={"dispatcher_poll_seconds": 3600.0})
    databases = [Database(service_dsn(settings, "leads"), schema="leads") for _ in range(2)]
    for db in databases:
        await db.connect()
    a, b = (Dispatcher("leads", db, settings) for db in databases)
    try:
        await b.start()
        await eventually(
            lambda: admin_db.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN%leads_outbox%'"
            ),
            lambda n: n == 1,
        )
        lease = "SELECT lease_owner, position FROM leads.subscriptions WHERE subscriber = 'reporting'"
        await eventually(lambda: admin_db.fetchrow(lease), lambda row: row is not None and row[0] == b.owner)
        # Written without the commit's notification, so only A's sequencing can announce them.
        await admin_db.execute(
            """
            INSERT INTO leads.outbox (workspace_id, id, type, subject, event)
            SELECT $1, gen_random_uuid(), 'voronka.test.happened.v1', 's', '{}'::jsonb FROM generate_series(1, 3)
            """,
            workspace,
        )
        assert await a.sequence() == 3
        head = await admin_db.fetchval("SELECT max(position) FROM leads.outbox")
        await eventually(lambda: admin_db.fetchrow(lease), lambda row: row[1] == head)
    finally:
        await b.stop()
        for db in databases:
            await db.close()


def lead_created(workspace: uuid.UUID, name: str = "Lead") -> dict:
    return {
        "specversion": "1.0", "id": str(uuid.uuid4()), "source": "/voronka/leads",
        "type": "voronka.lead.created.v1", "time": "2026-11-24T10:00:00Z", "workspaceid": str(workspace),
        "data": {"lead_id": str(uuid.uuid4()), "workspace_id": str(workspace), "name": name, "source": "ads",
                 "created_by": str(uuid.uuid4()), "created_at": "2026-11-24T10:00:00Z"},
    }


async def test_a_delivery_signed_outside_the_configured_tolerance_is_refused_and_applies_nothing(
    stack, admin_db, workspace, monkeypatch
):
    # One minute: a delivery two minutes old would pass the library's fixed five-minute window.
    monkeypatch.setenv("VORONKA_EVENTS_TOLERANCE_SECONDS", "60")
    get_settings.cache_clear()
    await stack.start("reporting")
    signer = DeliverySigner(get_settings().events_secret.get_secret_value())
    now = datetime.now(UTC)
    async with httpx.AsyncClient(base_url=stack.url("reporting")) as client:
        answers = {}
        for label, at in (("stale", now - timedelta(minutes=2)), ("future", now + timedelta(minutes=2))):
            body = orjson.dumps([lead_created(workspace, label)])
            answers[label] = await client.post("/events", content=body, headers=signer.headers(body, at=at))
        assert await lead_facts(admin_db) == 0
        assert await admin_db.fetchval("SELECT count(*) FROM reporting.inbox") == 0
        body = orjson.dumps([lead_created(workspace, "recent")])
        half_a_minute_ago = {**signer.headers(body, at=now - timedelta(seconds=30)), "content-type": BATCH}
        recent = await client.post("/events", content=body, headers=half_a_minute_ago)
    assert {label: r.status_code for label, r in answers.items()} == {"stale": 401, "future": 401}
    assert "tolerance 60 s" in answers["stale"].json()["detail"]
    assert answers["future"].headers["content-type"] == "application/problem+json"
    assert recent.status_code == 200
    assert recent.json()["failure"] is None
    assert await lead_facts(admin_db) == 1


async def test_an_oversized_delivery_is_refused_with_413_before_it_is_read(stack, admin_db, workspace, monkeypatch):
    monkeypatch.setenv("VORONKA_EVENTS_MAX_BODY_BYTES", "4096")
    get_settings.cache_clear()
    await stack.start("reporting")
    signer = DeliverySigner(get_settings().events_secret.get_secret_value())
    body = orjson.dumps([lead_created(workspace, "x" * 5000)])

    async def chunks():
        for start in range(0, len(body), 1000):
            yield body[start:start + 1000]

    async with httpx.AsyncClient(base_url=stack.url("reporting")) as client:
        declared = await client.post("/events", content=body, headers=signer.headers(body))
        streamed = await client.post("/events", content=chunks(), headers=signer.headers(body))  # chunked
    for response in (declared, streamed):
        assert response.status_code == 413, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert "4096 bytes" in response.json()["detail"]
    assert "content-length" not in streamed.request.headers

    # A sender that announces a huge body is answered without sending any of it.
    reader, writer = await asyncio.open_connection("127.0.0.1", stack.ports["reporting"])
    try:
        writer.write(b"POST /events HTTP/1.1\r\nHost: reporting\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1073741824\r\n\r\n")
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), timeout=5)
    finally:
        writer.close()
    assert status_line.startswith(b"HTTP/1.1 413")
    assert await admin_db.fetchval("SELECT count(*) FROM reporting.inbox") == 0


async def test_the_dispatcher_sends_batches_the_consumer_accepts(stack, admin_token, admin_db, monkeypatch):
    """With a small body limit on both sides, every event still arrives, in several deliveries, none parked."""
    monkeypatch.setenv("VORONKA_EVENTS_MAX_BODY_BYTES", "2048")
    get_settings.cache_clear()
    await stack.start("leads")
    await create_leads(stack, admin_token, 12)
    assert await admin_db.fetchval("SELECT sum(octet_length(event::text)) FROM leads.outbox") > 3 * 2048
    await stack.start("reporting")
    await eventually(lambda: lead_facts(admin_db), lambda n: n == 12)
    assert await admin_db.fetchval("SELECT count(*) FROM leads.dead_letters") == 0


async def test_replay_refuses_cursors_and_filters_it_never_gave_out(stack):
    await stack.start("leads")
    async with stack.client("leads", token_for(uuid.uuid4(), Role.service)) as leads:
        answers = {
            params: await leads.get("/events", params=dict([params]))
            for params in (("after", "99999999999999999999"), ("after", "-1"), ("after", "1e3"),
                           ("after", "9" * 5000), ("types", "lead.created,\x00"), ("types", "lead created"))
        }
        last_possible = await leads.get("/events", params={"after": str(2**63 - 1)})
    for (field, _), response in answers.items():
        assert response.status_code == 422, (field, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert [e["field"] for e in response.json()["errors"]] == [field]
    assert last_possible.status_code == 200
    assert last_possible.json()["events"] == []


def gauge(metrics_text: str, name: str, subscriber: str = "reporting") -> float:
    prefix = f'{name}{{service="leads",subscriber="{subscriber}"}} '
    (line,) = [line for line in metrics_text.splitlines() if line.startswith(prefix)]
    return float(line.removeprefix(prefix))


async def test_metrics_show_the_backlog_while_a_consumer_is_down_and_clear_when_it_catches_up(
    stack, admin_token, monkeypatch
):
    # Only the events these leads make: the ScoringWorker's lead.scored would interleave with them.
    monkeypatch.setenv("VORONKA_WORKERS_DISABLED", '["ScoringWorker"]')
    get_settings.cache_clear()
    await stack.start("leads")
    await create_leads(stack, admin_token, 3)
    async with httpx.AsyncClient(base_url=stack.url("leads")) as leads:
        # Positions come from the sequencer a moment after commit.
        waiting = await eventually(
            lambda: leads.get("/metrics"), lambda r: gauge(r.text, "voronka_outbox_backlog") == 3
        )
        assert gauge(waiting.text, "voronka_outbox_lag_seconds") > 0
        await stack.start("reporting")
        caught_up = await eventually(
            lambda: leads.get("/metrics"), lambda r: gauge(r.text, "voronka_outbox_backlog") == 0
        )
    assert gauge(caught_up.text, "voronka_outbox_lag_seconds") == 0
    assert 'voronka_http_requests_total{method="POST",route="/v1/leads",service="leads",status="201"}' in caught_up.text


async def test_new_events_do_not_cut_short_the_back_off_from_a_consumer_that_is_down(
    stack, admin_db, admin_token, monkeypatch
):
    """During an outage every commit wakes the courier; it must sleep out its back-off instead of taking the
    lease again each time (an UPDATE per lead written, for nothing)."""
    monkeypatch.setenv("VORONKA_DISPATCHER_BACKOFF_BASE_SECONDS", "3")
    monkeypatch.setenv("VORONKA_DISPATCHER_BACKOFF_MAX_SECONDS", "3")
    get_settings.cache_clear()
    await admin_db.execute(
        """
        CREATE TABLE public.subscription_updates (n int NOT NULL);
        CREATE FUNCTION public.count_subscription_update() RETURNS trigger LANGUAGE plpgsql AS
            $$ BEGIN INSERT INTO public.subscription_updates VALUES (1); RETURN NEW; END $$;
        CREATE TRIGGER counted AFTER UPDATE ON leads.subscriptions
            FOR EACH ROW WHEN (NEW.subscriber = 'reporting') EXECUTE FUNCTION public.count_subscription_update();
        GRANT INSERT ON public.subscription_updates TO voronka_leads;
        """
    )
    await stack.start("leads")  # reporting stays down
    await create_leads(stack, admin_token, 1)
    await eventually(
        lambda: admin_db.fetchval("SELECT last_error FROM leads.subscriptions WHERE subscriber = 'reporting'"),
        lambda error: error is not None,
    )
    before = await admin_db.fetchval("SELECT count(*) FROM public.subscription_updates")
    await create_leads(stack, admin_token, 40)
    during = await admin_db.fetchval("SELECT count(*) FROM public.subscription_updates") - before
    # At most the back-off running out once or twice while the leads were written (1.5-3 s each).
    assert during <= 4
