"""CSV imports: upload, background progress, created vs merged counts, the rejections file, limits, access, and a
run that resumes after its worker died without losing or repeating a row."""
# ruff: noqa: RUF001  (Cyrillic files are what Russian sales teams import)

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import orjson
import pytest

from services.common.auth import Role
from services.common.db import Database, service_dsn
from services.common.settings import get_settings
from services.common.testing import eventually, token_for
from services.leads import capture as capture_module
from services.leads.import_worker import LOCK_SPACE, ImportWorker

pytestmark = pytest.mark.usefixtures("database_url")


def csv_bytes(rows: list[list[str]], delimiter: str = ",", encoding: str = "utf-8") -> bytes:
    return "".join(delimiter.join(row) + "\r\n" for row in rows).encode(encoding)


async def upload(
    client: httpx.AsyncClient, content: bytes, filename: str = "leads.csv", headers: dict[str, str] | None = None,
    **options: Any,
) -> httpx.Response:
    data = {k: orjson.dumps(v).decode() if k == "mapping" else v for k, v in options.items()}
    return await client.post(
        "/v1/imports", files={"file": (filename, content, "text/csv")}, data=data, headers=headers or {}
    )


async def finished(client: httpx.AsyncClient, import_id: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any]:
        response = await client.get(f"/v1/imports/{import_id}")
        assert response.status_code == 200, response.text
        return response.json()

    return await eventually(probe, lambda body: body["status"] in ("done", "failed"), timeout=30)


async def all_leads(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await client.get("/v1/leads", params={"limit": 200})
    assert response.status_code == 200, response.text
    return response.json()["items"]


def accounted_for(job: dict[str, Any]) -> bool:
    return job["created"] + job["merged"] + job["rejected"] == job["total_rows"] == job["rows_done"]


async def test_a_cp1251_file_with_semicolons_imports_with_e164_phones_and_the_uploads_defaults(leads):
    settings = await leads.patch("/v1/lead-settings", json={
        "default_region": "RU",
        "custom_fields": [{"key": "budget", "label": "Бюджет", "type": "number"}],
    })
    assert settings.status_code == 200, settings.text
    content = csv_bytes([
        ["ФИО", "Телефон", "E-mail", "Бюджет", "utm_source"],
        ["Иван Петров", "8 (916) 123-45-67", "ivan@example.com", "150000", "yandex"],
        ["Мария Сидорова", "+7 903 765-43-21", "", "", ""],
        ["Пётр Смирнов", "", "petr@example.ru", "2500.50", "google"],
    ], delimiter=";", encoding="cp1251")

    response = await upload(
        leads, content, filename="выставка.csv",
        mapping={"name": "ФИО", "phone": "Телефон", "email": "E-mail", "utm.source": "utm_source",
                 "custom.budget": "Бюджет"},
        source="Выставка 2026", channel="event", tags="выставка, холодные",
    )

    assert response.status_code == 202, response.text
    accepted = response.json()
    assert response.headers["location"] == f"/v1/imports/{accepted['id']}"
    assert accepted["status"] == "pending"
    assert (accepted["encoding"], accepted["delimiter"], accepted["total_rows"]) == ("cp1251", ";", 3)
    assert accepted["filename"] == "выставка.csv"
    job = await finished(leads, accepted["id"])
    assert job["status"] == "done", job
    assert (job["created"], job["merged"], job["rejected"], job["rows_done"]) == (3, 0, 0, 3)
    assert job["started_at"] is not None
    assert job["finished_at"] is not None
    assert job["error"] is None
    assert job["rejected_file_url"] is None

    by_name = {lead["name"]: lead for lead in await all_leads(leads)}
    assert set(by_name) == {"Иван Петров", "Мария Сидорова", "Пётр Смирнов"}
    ivan = by_name["Иван Петров"]
    assert ivan["phone"] == "+79161234567"
    assert by_name["Мария Сидорова"]["phone"] == "+79037654321"
    assert ivan["email"] == "ivan@example.com"
    assert (ivan["source"], ivan["channel"]) == ("Выставка 2026", "event")
    assert ivan["tags"] == ["выставка", "холодные"]
    assert ivan["utm"] == {"source": "yandex"}
    assert ivan["custom"] == {"budget": 150000}
    assert by_name["Пётр Смирнов"]["custom"] == {"budget": "2500.5"}
    history = (await leads.get(f"/v1/leads/{ivan['id']}/history")).json()
    [touch] = history["touches"]
    assert (touch["via"], touch["origin_id"]) == ("import", accepted["id"])


async def test_duplicates_inside_the_file_and_a_known_lead_count_as_merged(leads):
    known = await leads.post("/v1/leads", json={"name": "Known Lead", "email": "known@example.com"})
    assert known.status_code == 201, known.text
    content = csv_bytes([
        ["Name", "Email", "Phone", "Company"],
        ["Anna Ivanova", "anna@example.com", "", ""],
        ["Boris Orlov", "", "+7 916 111-22-33", ""],
        ["Anna I.", "ANNA@example.com", "", "Acme"],  # the same email, other spelling: merges into Anna
        ["K. Lead", "known@example.com", "", "Known Co"],  # a lead the workspace already has
        ["Boris", "boris@example.com", "+79161112233", ""],  # Boris's phone: merges, and adds his email
    ])

    response = await upload(leads, content)

    assert response.status_code == 202, response.text
    job = await finished(leads, response.json()["id"])
    assert (job["status"], job["created"], job["merged"], job["rejected"]) == ("done", 2, 3, 0)
    assert accounted_for(job)
    by_name = {lead["name"]: lead for lead in await all_leads(leads)}
    assert set(by_name) == {"Known Lead", "Anna Ivanova", "Boris Orlov"}
    assert by_name["Anna Ivanova"]["company"] == "Acme"
    assert by_name["Known Lead"]["company"] == "Known Co"
    assert by_name["Boris Orlov"]["email"] == "boris@example.com"


async def test_bad_rows_are_rejected_with_reasons_and_every_row_is_accounted_for(leads):
    content = csv_bytes([
        ["Имя", "Почта", "Телефон", "Компания"],
        ["Good One", "good1@example.com", "", ""],
        ["Bad Email", "not-an-email", "", ""],
        ["", "", "", "Only A Company"],
        ["Too", "many@example.com", "", "Cells", "spilled over"],
        ["Good Two", "good2@example.com", "", "ООО \"Ромашка\", Москва"],
    ])
    # The last row's company has a comma and quotes: written as CSV quotes it.
    content = content.replace('ООО "Ромашка", Москва'.encode(), '"ООО ""Ромашка"", Москва"'.encode())

    response = await upload(leads, content, filename="march.csv")

    assert response.status_code == 202, response.text
    import_id = response.json()["id"]
    job = await finished(leads, import_id)
    assert (job["status"], job["created"], job["merged"], job["rejected"], job["total_rows"]) == ("done", 2, 0, 3, 5)
    assert accounted_for(job)
    assert job["rejected_file_url"] == f"/v1/imports/{import_id}/rejections.csv"
    assert {lead["company"] for lead in await all_leads(leads)} == {None, 'ООО "Ромашка", Москва'}

    download = await leads.get(job["rejected_file_url"])
    assert download.status_code == 200
    assert download.headers["content-type"].startswith("text/csv")
    disposition = download.headers["content-disposition"]
    assert disposition.startswith("attachment;")
    assert "march-rejections.csv" in disposition
    assert download.content.startswith(b"\xef\xbb\xbf")  # Excel reads Cyrillic as UTF-8 with the BOM
    lines = download.content.decode("utf-8-sig").split("\r\n")
    assert lines[0] == "Имя,Почта,Телефон,Компания,rejection_reason"
    assert lines[1].startswith("Bad Email,not-an-email,,,email: ")
    assert lines[2] == ',,,Only A Company,"name: A lead needs a name, an email or a phone."'
    assert lines[3].startswith("Too,many@example.com,,Cells,spilled over,row: This row has 5 cells")
    assert lines[4:] == [""]

    page = await leads.get(f"/v1/imports/{import_id}/rejections", params={"limit": 2})
    assert page.status_code == 200
    first = page.json()
    assert [(r["row_number"], [e["field"] for e in r["errors"]]) for r in first["items"]] == [
        (3, ["email"]), (4, ["name"]),
    ]
    assert first["items"][0]["raw"] == ["Bad Email", "not-an-email", "", ""]
    rest = (await leads.get(f"/v1/imports/{import_id}/rejections",
                            params={"limit": 2, "cursor": first["next_cursor"]})).json()
    assert [r["row_number"] for r in rest["items"]] == [5]
    assert rest["next_cursor"] is None
    assert rest["items"][0]["errors"][0]["code"] == "cell_count"


async def test_a_csv_body_with_options_in_the_query_imports_too(leads):
    content = csv_bytes([["email", "name"], ["a@example.com", "A"], ["b@example.com", "B"]], delimiter="\t")

    response = await leads.post(
        "/v1/imports", content=content, headers={"Content-Type": "text/csv"},
        params={"delimiter": "tab", "source": "script", "tags": "nightly", "filename": "nightly.tsv"},
    )

    assert response.status_code == 202, response.text
    assert (response.json()["delimiter"], response.json()["filename"]) == ("tab", "nightly.tsv")
    job = await finished(leads, response.json()["id"])
    assert (job["status"], job["created"]) == ("done", 2)
    assert {(lead["source"], lead["channel"], tuple(lead["tags"])) for lead in await all_leads(leads)} == {
        ("script", "cold_list", ("nightly",))
    }


async def test_a_retried_upload_with_the_same_key_creates_one_import(leads, admin_db):
    content = csv_bytes([["name", "email"], ["Ann", "ann@example.com"]])
    key = {"Idempotency-Key": "upload-1"}

    first = await upload(leads, content, headers=key, source="fair")
    retry = await upload(leads, content, headers=key, source="fair")
    other_file = await upload(leads, content + b"Bob,bob@example.com\r\n", headers=key, source="fair")

    assert first.status_code == retry.status_code == 202
    assert retry.json()["id"] == first.json()["id"]
    assert retry.headers["idempotent-replayed"] == "true"
    assert other_file.status_code == 422
    assert other_file.json()["errors"][0]["field"] == "Idempotency-Key"
    assert await admin_db.fetchval("SELECT count(*) FROM leads.imports") == 1


async def test_a_file_over_the_size_limit_is_refused_with_413(stack, admin_token, monkeypatch):
    monkeypatch.setenv("VORONKA_IMPORT_MAX_BYTES", "1000")
    get_settings.cache_clear()
    await stack.start("leads")
    content = csv_bytes([["name", "email"]] + [[f"Lead {i}", f"lead{i}@example.com"] for i in range(50)])
    assert len(content) > 1000

    async with stack.client("leads", admin_token) as client:
        as_form = await upload(client, content)
        as_body = await client.post("/v1/imports", content=content, headers={"Content-Type": "text/csv"})
        small = await upload(client, content[:500].rsplit(b"\r\n", 1)[0] + b"\r\n")

    for response in (as_form, as_body):
        assert response.status_code == 413, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"].endswith("/payload-too-large")
    assert small.status_code == 202, small.text


@pytest.mark.parametrize(
    ("options", "content", "field", "code"),
    [
        ({"mapping": "{not json"}, None, "mapping", "json_invalid"),
        ({"mapping": {"salary": "Зарплата"}}, None, "mapping.salary", "unknown_target"),
        ({"mapping": {"phone": "Телефон"}}, None, "mapping.phone", "missing_column"),
        ({"encoding": "koi8-r"}, None, "encoding", "literal_error"),
        ({"channel": "carrier_pigeon"}, None, "channel", "enum"),
        ({"encoding": "utf-8"}, "Имя,Почта\r\nИван,ivan@example.com\r\n".encode("cp1251"), "file", "undecodable"),
        ({}, b"\r\n\r\n", "file", "no_header"),
        ({"colour": "blue"}, None, "colour", "extra_forbidden"),
    ],
)
async def test_a_bad_mapping_option_or_file_is_refused_naming_the_field(leads, admin_db, options, content, field,
                                                                        code):
    data = content if content is not None else csv_bytes([["Имя", "Почта"], ["Иван", "ivan@example.com"]])
    fields = {k: v if isinstance(v, str) else orjson.dumps(v).decode() for k, v in options.items()}

    response = await leads.post("/v1/imports", files={"file": ("x.csv", data, "text/csv")}, data=fields)

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert [(e["field"], e["code"]) for e in response.json()["errors"]] == [(field, code)]
    assert await admin_db.fetchval("SELECT count(*) FROM leads.imports") == 0


async def test_an_upload_without_a_file_or_of_another_type_is_refused(leads):
    no_file = await leads.post("/v1/imports", data={"source": "x"}, files={"other": ("x", b"", "text/plain")})
    as_json = await leads.post("/v1/imports", json={"file": "name\nAnn"})

    assert no_file.status_code == 422
    assert {e["field"] for e in no_file.json()["errors"]} == {"other", "file"}
    assert as_json.status_code == 415


async def test_another_workspaces_import_is_not_found(leads, stack):
    response = await upload(leads, csv_bytes([["name"], ["Ann"]]))
    import_id = response.json()["id"]
    stranger = token_for(uuid.uuid4(), Role.admin)

    async with stack.client("leads", stranger) as other:
        assert (await other.get(f"/v1/imports/{import_id}")).status_code == 404
        assert (await other.get(f"/v1/imports/{import_id}/rejections")).status_code == 404
        assert (await other.get(f"/v1/imports/{import_id}/rejections.csv")).status_code == 404
        assert (await other.get("/v1/imports")).json()["items"] == []


async def test_a_rep_imports_leads_of_their_own_and_sees_only_their_own_imports(leads, stack, workspace):
    anna, boris = uuid.uuid4(), uuid.uuid4()
    async with (
        stack.client("leads", token_for(workspace, Role.rep, anna)) as as_anna,
        stack.client("leads", token_for(workspace, Role.rep, boris)) as as_boris,
    ):
        mine = await upload(as_anna, csv_bytes([["name", "email"], ["Ann", "ann@example.com"]]))
        theirs = await upload(as_boris, csv_bytes([["name", "email"], ["Bob", "bob@example.com"]]))
        for_boris = await upload(as_anna, csv_bytes([["name"], ["Cat"]]), owner_id=str(boris))
        assert mine.status_code == theirs.status_code == 202
        assert for_boris.status_code == 403
        await finished(as_anna, mine.json()["id"])

        assert [i["id"] for i in (await as_anna.get("/v1/imports")).json()["items"]] == [mine.json()["id"]]
        assert (await as_anna.get(f"/v1/imports/{theirs.json()['id']}")).status_code == 404
        [ann] = await all_leads(as_anna)
        assert ann["owner_id"] == str(anna)
    listed = (await leads.get("/v1/imports", params={"limit": 1})).json()
    assert [i["id"] for i in listed["items"]] == [theirs.json()["id"]]  # newest first
    rest = (await leads.get("/v1/imports", params={"limit": 1, "cursor": listed["next_cursor"]})).json()
    assert [i["id"] for i in rest["items"]] == [mine.json()["id"]]
    assert rest["next_cursor"] is None


async def test_an_import_whose_worker_died_is_resumed_after_its_last_chunk_without_duplicates(
    stack, admin_token, admin_db, monkeypatch
):
    # The service only takes uploads here; the test runs the workers itself.
    monkeypatch.setenv("VORONKA_WORKERS_ENABLED", "false")
    get_settings.cache_clear()
    await stack.start("leads")
    rows = [["name", "email"]] + [[f"Lead {i}", f"lead{i}@example.com"] for i in range(7)] + [["", ""], ["x", "bad"]]
    async with stack.client("leads", admin_token) as client:
        response = await upload(client, csv_bytes(rows))
    assert response.status_code == 202, response.text
    import_id = uuid.UUID(response.json()["id"])

    real_capture = capture_module.capture
    calls = 0
    stuck = asyncio.Event()

    async def capture_that_hangs_in_the_second_chunk(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            stuck.set()
            await asyncio.Event().wait()  # the worker's process is about to die here
        return await real_capture(*args, **kwargs)

    monkeypatch.setattr(capture_module, "capture", capture_that_hangs_in_the_second_chunk)
    db = Database(service_dsn(get_settings(), "leads"), schema="leads")
    await db.connect()
    # The second checks its rows in a thread: both ways of checking run here.
    first, second = ImportWorker(db, chunk_rows=3), ImportWorker(db, chunk_rows=3, check_in="thread")
    try:
        dying = asyncio.create_task(first.step())
        await asyncio.wait_for(stuck.wait(), 10)
        progress = await admin_db.fetchrow("SELECT status, rows_done FROM leads.imports WHERE id = $1", import_id)
        assert (progress["status"], progress["rows_done"]) == ("running", 3)
        # While the first worker lives, nobody else touches its import.
        assert await second.step() == 0

        # The first worker's process dies: its connections go (the lock's first), its open chunk rolls back.
        holders = await admin_db.fetch(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = $1", LOCK_SPACE
        )
        assert len(holders) == 1
        await admin_db.execute("SELECT pg_terminate_backend($1)", holders[0]["pid"])
        dying.cancel()
        with pytest.raises(asyncio.CancelledError):
            await dying

        assert await second.drain() > 0
    finally:
        await first.stop()
        await second.stop()
        await db.close()

    job = await admin_db.fetchrow("SELECT * FROM leads.imports WHERE id = $1", import_id)
    assert (job["status"], job["total_rows"], job["rows_done"]) == ("done", 8, 8)
    assert (job["created"], job["merged"], job["rejected"]) == (7, 0, 1)
    assert await admin_db.fetchval("SELECT count(*) FROM leads.leads") == 7
    assert await admin_db.fetchval("SELECT count(*) FROM leads.lead_touches WHERE origin_id = $1", import_id) == 7
    assert await admin_db.fetchval("SELECT count(*) FROM leads.outbox WHERE type LIKE '%lead.created%'") == 7
    assert [r["row_number"] for r in await admin_db.fetch("SELECT row_number FROM leads.import_rejections")] == [10]


async def test_a_file_that_cannot_be_read_any_more_fails_the_import_with_the_reason(
    stack, admin_token, admin_db, monkeypatch
):
    monkeypatch.setenv("VORONKA_WORKERS_ENABLED", "false")
    get_settings.cache_clear()
    await stack.start("leads")
    async with stack.client("leads", admin_token) as client:
        response = await upload(client, csv_bytes([["name"], ["Ann"]]), encoding="utf-8")
        import_id = response.json()["id"]
        # Damaged behind the service's back: no longer UTF-8.
        await admin_db.execute("UPDATE leads.imports SET content = $1 WHERE id = $2",
                               "name\r\nАнна\r\n".encode("cp1251"), uuid.UUID(import_id))
        db = Database(service_dsn(get_settings(), "leads"), schema="leads")
        await db.connect()
        worker = ImportWorker(db, check_in="thread")
        try:
            await worker.drain()
        finally:
            await worker.stop()
            await db.close()

        job = (await client.get(f"/v1/imports/{import_id}")).json()
    assert job["status"] == "failed"
    assert "not UTF-8" in job["error"]
    assert job["finished_at"] is not None
    assert job["rows_done"] == 0
