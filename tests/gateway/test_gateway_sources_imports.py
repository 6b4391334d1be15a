"""Sources and imports through GraphQL against the real leads service: admins manage inbound endpoints (their
credentials shown once), heads of sales read them, reps see none; imports are uploaded over REST and followed here.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from services.common.auth import Role
from services.common.testing import auth_headers, eventually, token_for

pytestmark = pytest.mark.usefixtures("database_url")

SOURCE_FIELDS = "id name channel mapping active inboundUrl hasSecret version"

CREATE_SOURCE = f"""
mutation Create($input: CreateSourceInput!) {{
  createSource(input: $input) {{ source {{ {SOURCE_FIELDS} }} secret token userErrors {{ field code message }} }}
}}
"""

UPDATE_SOURCE = f"""
mutation Update($input: UpdateSourceInput!) {{
  updateSource(input: $input) {{ source {{ {SOURCE_FIELDS} }} userErrors {{ field code message }} }}
}}
"""

ROTATE = """
mutation Rotate($input: RotateSourceSecretInput!) {
  rotateSourceSecret(input: $input) { source { id version } secret token userErrors { field code } }
}
"""

SOURCES = """
query Sources($first: Int, $after: String) {
  sources(first: $first, after: $after) { edges { node { id name } } pageInfo { hasNextPage endCursor } }
}
"""

SOURCE = f"query Source($id: ID!) {{ source(id: $id) {{ {SOURCE_FIELDS} }} }}"

IMPORT_FIELDS = """
  id status filename encoding delimiter mapping source channel ownerId tags totalRows rowsDone created merged rejected
  error createdBy createdAt startedAt finishedAt rejectedFileUrl
"""


@pytest.fixture
def admin(workspace: uuid.UUID) -> str:
    return token_for(workspace, Role.admin)


async def create_source(gateway: Any, token: str, **fields: Any) -> dict[str, Any]:
    payload = (await gateway.graphql(token, CREATE_SOURCE, input=fields))["createSource"]
    assert payload["userErrors"] == [], payload["userErrors"]
    return payload


async def test_a_new_source_shows_its_credentials_once_and_is_listed_without_them(live_gateway, admin):
    created = await create_source(
        live_gateway, admin, name="Website form", channel="WEB_FORM", mapping={"email": "contact.mail"}
    )
    await create_source(live_gateway, admin, name="Partner feed", channel="PARTNER", active=False)

    source = created["source"]
    assert created["secret"].startswith("whsec_")
    assert len(created["token"]) >= 32
    assert source["inboundUrl"] == f"/v1/inbound/{source['id']}"
    assert (source["name"], source["channel"], source["active"], source["hasSecret"]) == (
        "Website form", "WEB_FORM", True, True
    )
    assert source["mapping"] == {"email": "contact.mail"}
    assert (await live_gateway.graphql(admin, SOURCE, id=source["id"]))["source"] == source
    page = (await live_gateway.graphql(admin, SOURCES, first=1))["sources"]
    assert [edge["node"]["name"] for edge in page["edges"]] == ["Website form"]
    rest = (await live_gateway.graphql(admin, SOURCES, first=5, after=page["pageInfo"]["endCursor"]))["sources"]
    assert [edge["node"]["name"] for edge in rest["edges"]] == ["Partner feed"]
    assert (await live_gateway.graphql(admin, SOURCE, id=str(uuid.uuid4()))) == {"source": None}


async def test_a_duplicate_name_or_a_bad_mapping_is_a_user_error_on_that_field(live_gateway, admin):
    await create_source(live_gateway, admin, name="Website form", channel="WEB_FORM")

    taken = await live_gateway.graphql(admin, CREATE_SOURCE, input={"name": "Website form", "channel": "ADS"})
    bad = await live_gateway.graphql(
        admin, CREATE_SOURCE, input={"name": "Ads", "channel": "ADS", "mapping": {"utm.nope": "x", "email": 5}}
    )

    assert taken["createSource"]["source"] is None
    assert taken["createSource"]["secret"] is None
    assert [(e["field"], e["code"]) for e in taken["createSource"]["userErrors"]] == [(["input", "name"], "CONFLICT")]
    assert {(tuple(e["field"]), e["code"]) for e in bad["createSource"]["userErrors"]} == {
        (("input", "mapping", "utm.nope"), "unknown_target"),
        (("input", "mapping", "email"), "invalid_path"),
    }


async def test_updating_a_source_needs_the_version_read_and_rotating_retires_the_old_token(live_gateway, admin):
    created = await create_source(live_gateway, admin, name="Website form", channel="WEB_FORM")
    source_id = created["source"]["id"]

    renamed = await live_gateway.graphql(
        admin, UPDATE_SOURCE, input={"id": source_id, "version": 1, "name": "Site form", "active": False}
    )
    stale = await live_gateway.graphql(admin, UPDATE_SOURCE, input={"id": source_id, "version": 1, "name": "X"})
    cleared = await live_gateway.graphql(admin, UPDATE_SOURCE, input={"id": source_id, "name": None})
    rotated = await live_gateway.graphql(admin, ROTATE, input={"id": source_id})
    missing = await live_gateway.graphql(admin, ROTATE, input={"id": "not-an-id"})

    assert renamed["updateSource"]["userErrors"] == []
    assert (renamed["updateSource"]["source"]["name"], renamed["updateSource"]["source"]["active"]) == (
        "Site form", False
    )
    assert [(e["field"], e["code"]) for e in stale["updateSource"]["userErrors"]] == [
        (["input", "version"], "STALE_VERSION")
    ]
    assert [(e["field"], e["code"]) for e in cleared["updateSource"]["userErrors"]] == [(["input", "name"], "null")]
    payload = rotated["rotateSourceSecret"]
    assert payload["userErrors"] == []
    assert payload["secret"].startswith("whsec_")
    assert payload["secret"] != created["secret"]
    assert payload["token"] != created["token"]
    assert [(e["field"], e["code"]) for e in missing["rotateSourceSecret"]["userErrors"]] == [
        (["input", "id"], "NOT_FOUND")
    ]


async def test_heads_of_sales_read_sources_reps_see_none_and_only_admins_change_them(live_gateway, workspace, admin):
    created = await create_source(live_gateway, admin, name="Website form", channel="WEB_FORM")
    head = token_for(workspace, Role.head_of_sales)
    rep = token_for(workspace, Role.rep)

    read_by_head = await live_gateway.graphql(head, SOURCES)
    listed_for_rep = await live_gateway.run(rep, "{ sources { edges { node { id } } } leadSettings { version } }")
    one_for_rep = await live_gateway.run(rep, SOURCE, id=created["source"]["id"])
    created_by_head = await live_gateway.graphql(head, CREATE_SOURCE, input={"name": "Ads", "channel": "ADS"})

    assert [edge["node"]["name"] for edge in read_by_head["sources"]["edges"]] == ["Website form"]
    # The rep's other fields still resolve; the refused one says why.
    assert listed_for_rep["data"]["sources"] is None
    assert listed_for_rep["data"]["leadSettings"] is not None
    (error,) = listed_for_rep["errors"]
    assert error["path"] == ["sources"]
    assert "heads of sales" in error["message"]
    assert one_for_rep["data"] == {"source": None}
    assert one_for_rep["errors"][0]["path"] == ["source"]
    assert [(e["field"], e["code"]) for e in created_by_head["createSource"]["userErrors"]] == [
        (["input"], "FORBIDDEN")
    ]


async def upload(leads_url: str, token: str, content: bytes, **options: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=leads_url, headers=auth_headers(token), timeout=10) as leads:
        response = await leads.post(
            "/v1/imports", files={"file": ("leads.csv", content, "text/csv")}, data=options
        )
    assert response.status_code == 202, response.text
    accepted: dict[str, Any] = response.json()
    return accepted


async def test_an_import_uploaded_over_rest_is_followed_to_the_end_through_graphql(live_gateway, workspace, admin):
    content = (
        b"name,email,phone\r\n"
        b"Ivan Petrov,ivan@example.com,+74951234567\r\n"
        b"Ivan Again,IVAN@example.com,\r\n"
        b"Nobody,not-an-email,\r\n"
    )
    accepted = await upload(live_gateway.leads_url, admin, content, source="Expo 2026", channel="event", tags="expo")
    query = f"query Import($id: ID!) {{ import(id: $id) {{ {IMPORT_FIELDS} }} }}"

    async def probe() -> dict[str, Any]:
        data: dict[str, Any] = (await live_gateway.graphql(admin, query, id=accepted["id"]))["import"]
        return data

    job = await eventually(probe, lambda job: job["status"] in ("DONE", "FAILED"), timeout=30)

    assert job["status"] == "DONE", job
    assert (job["totalRows"], job["rowsDone"], job["created"], job["merged"], job["rejected"]) == (3, 3, 1, 1, 1)
    assert (job["source"], job["channel"], job["tags"]) == ("Expo 2026", "EVENT", ["expo"])
    assert job["filename"] == "leads.csv"
    assert job["rejectedFileUrl"] == f"/v1/imports/{accepted['id']}/rejections.csv"
    assert job["finishedAt"] is not None
    listed = (await live_gateway.graphql(admin, "{ imports(first: 5) { edges { node { id status } } } }"))["imports"]
    assert listed["edges"] == [{"node": {"id": accepted["id"], "status": "DONE"}}]
    # A rep sees only the imports they uploaded.
    rep = token_for(workspace, Role.rep)
    assert (await live_gateway.graphql(rep, query, id=accepted["id"])) == {"import": None}
    assert (await live_gateway.graphql(rep, "{ imports { edges { node { id } } } }"))["imports"]["edges"] == []
