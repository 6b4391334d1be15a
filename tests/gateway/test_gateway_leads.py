"""Leads through GraphQL: creating one, reading by id (batched) and paging through the list."""

from __future__ import annotations

import uuid

from gateway.pagination import PageCursor

CREATE = """
mutation Create($input: CreateLeadInput!) {
  createLead(input: $input) {
    lead { id name email company source status ownerId createdAt }
    userErrors { field code message }
  }
}
"""

LEADS = """
query Page($first: Int, $after: String) {
  leads(first: $first, after: $after) {
    edges { cursor node { id name } }
    pageInfo { hasNextPage endCursor }
  }
}
"""


async def test_create_lead_returns_the_new_lead(graphql, upstreams, token):
    new_lead = {"name": "Grace Hopper", "email": "grace@navy.mil", "source": "web"}
    body = await graphql(CREATE, {"input": new_lead})

    assert "errors" not in body
    payload = body["data"]["createLead"]
    assert payload["userErrors"] == []
    assert payload["lead"]["name"] == "Grace Hopper"
    assert payload["lead"]["email"] == "grace@navy.mil"
    assert payload["lead"]["status"] == "NEW"
    assert payload["lead"]["id"] == upstreams.leads[0]["id"]
    (call,) = upstreams.calls_to("POST", "/v1/leads")
    assert call.headers["authorization"] == f"Bearer {token}"


async def test_create_lead_forwards_the_request_id_upstream(client, upstreams):
    response = await client.post(
        "/graphql",
        json={"query": CREATE, "variables": {"input": {"name": "Grace"}}},
        headers={"X-Request-ID": "req-from-the-browser"},
    )

    assert response.headers["x-request-id"] == "req-from-the-browser"
    (call,) = upstreams.calls_to("POST", "/v1/leads")
    assert call.headers["x-request-id"] == "req-from-the-browser"


async def test_invalid_lead_comes_back_as_user_errors_naming_the_input_field(graphql, upstreams):
    body = await graphql(CREATE, {"input": {"name": "Grace", "email": "not-an-email"}})

    assert "errors" not in body
    payload = body["data"]["createLead"]
    assert payload["lead"] is None
    assert payload["userErrors"] == [
        {"field": ["input", "email"], "code": "value_error", "message": "Not an email address."}
    ]
    assert upstreams.leads == []


async def test_three_aliased_leads_are_fetched_in_one_upstream_call(graphql, upstreams):
    a, b, c = (upstreams.add_lead(name=name) for name in ("Ann", "Bob", "Cy"))

    body = await graphql(
        """
        query($a: ID!, $b: ID!, $c: ID!) {
          first: lead(id: $a) { name }
          second: lead(id: $b) { name }
          third: lead(id: $c) { name }
        }
        """,
        {"a": a["id"], "b": b["id"], "c": c["id"]},
    )

    assert body["data"] == {"first": {"name": "Ann"}, "second": {"name": "Bob"}, "third": {"name": "Cy"}}
    (call,) = upstreams.calls
    assert call.url.path == "/v1/leads"
    assert set(call.url.params["ids"].split(",")) == {a["id"], b["id"], c["id"]}


async def test_lead_of_another_workspace_or_a_malformed_id_reads_as_null(graphql, upstreams):
    theirs = upstreams.add_lead(uuid.uuid4(), name="Not yours")

    body = await graphql(
        'query($id: ID!) { theirs: lead(id: $id) { name } bogus: lead(id: "42") { name } }',
        {"id": theirs["id"]},
    )

    assert "errors" not in body
    assert body["data"] == {"theirs": None, "bogus": None}
    assert len(upstreams.calls) == 1  # the malformed id never goes upstream


async def test_paging_with_end_cursor_walks_every_lead_newest_first(graphql, upstreams):
    created = [upstreams.add_lead(name=f"lead {i}") for i in range(7)]

    seen: list[str] = []
    after = None
    pages = 0
    while True:
        body = await graphql(LEADS, {"first": 3, "after": after})
        connection = body["data"]["leads"]
        seen += [edge["node"]["name"] for edge in connection["edges"]]
        pages += 1
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]

    assert seen == [lead["name"] for lead in reversed(created)]
    assert pages == 3
    assert {call.url.params["limit"] for call in upstreams.calls} == {"3"}


async def test_paging_resumes_after_an_edge_in_the_middle_of_a_page(graphql, upstreams):
    created = [upstreams.add_lead(name=f"lead {i}") for i in range(6)]
    newest_first = [lead["name"] for lead in reversed(created)]

    first_page = (await graphql(LEADS, {"first": 4}))["data"]["leads"]
    second_edge = first_page["edges"][1]
    rest = (await graphql(LEADS, {"first": 10, "after": second_edge["cursor"]}))["data"]["leads"]

    assert [edge["node"]["name"] for edge in rest["edges"]] == newest_first[2:]
    assert rest["pageInfo"] == {"hasNextPage": False, "endCursor": rest["edges"][-1]["cursor"]}


async def test_asking_for_more_than_100_leads_is_an_error_naming_the_maximum(graphql, upstreams):
    body = await graphql(LEADS, {"first": 101})

    assert body["data"] == {"leads": None}
    assert body["errors"][0]["message"] == "first must be at most 100"
    assert body["errors"][0]["path"] == ["leads"]
    assert upstreams.calls == []


async def test_a_forged_cursor_is_an_error_not_a_crash(graphql, upstreams):
    body = await graphql(LEADS, {"first": 5, "after": "bm90LWEtY3Vyc29y"})

    assert body["errors"][0]["message"] == "after is not a valid cursor"
    assert upstreams.calls == []


async def test_a_cursor_the_leads_service_refuses_is_reported_as_invalid(graphql, upstreams):
    forged = PageCursor("not-an-upstream-cursor").encode()

    body = await graphql(LEADS, {"first": 5, "after": forged})

    assert body["errors"][0]["message"] == "after is not a valid cursor"


async def test_leads_without_arguments_asks_upstream_for_20(graphql, upstreams):
    await graphql("{ leads { edges { node { id } } } }")

    (call,) = upstreams.calls
    assert call.url.params["limit"] == "20"
    assert "cursor" not in call.url.params
