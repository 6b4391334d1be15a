"""When an upstream fails: the field that needed it errors, the rest of the response still arrives, and
nothing internal leaks to the client.
"""

from __future__ import annotations

import logging

import pytest


async def test_leads_down_fails_only_the_lead_field(graphql, upstreams):
    upstreams.leads_down = True
    upstreams.add_lead(source="web")

    body = await graphql('{ lead(id: "0193a1f0-0000-7000-8000-00000000beef") { name } leadStats { total } }')

    assert body["data"] == {"lead": None, "leadStats": {"total": 1}}
    (error,) = body["errors"]
    assert error["message"] == "leads service unavailable"
    assert error["path"] == ["lead"]


async def test_reporting_down_fails_lead_stats_with_its_own_message(graphql, upstreams):
    upstreams.reporting_down = True

    body = await graphql("{ leadStats { total } leads(first: 1) { edges { node { id } } } }")

    assert body["data"]["leadStats"] is None
    assert body["data"]["leads"] == {"edges": []}  # the other root field still resolves
    assert body["errors"][0]["message"] == "reporting service unavailable"
    assert body["errors"][0]["path"] == ["leadStats"]


@pytest.mark.parametrize("status", [503, 504])
async def test_an_overloaded_upstream_reads_as_unavailable(graphql, upstreams, status):
    upstreams.leads_fail_with = status

    body = await graphql('mutation { createLead(input: {name: "Ann"}) { lead { id } } }')

    assert body["errors"][0]["message"] == "leads service unavailable"


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def test_an_unexpected_upstream_error_is_masked_and_logged_with_the_request_id(client, upstreams):
    upstreams.leads_fail_with = 500
    records = Records()
    logger = logging.getLogger("voronka.gateway")
    logger.addHandler(records)
    try:
        response = await client.post(
            "/graphql",
            json={"query": 'mutation { createLead(input: {name: "Ann"}) { lead { id } } }'},
            headers={"X-Request-ID": "req-500"},
        )
    finally:
        logger.removeHandler(records)

    body = response.json()
    assert body["errors"][0]["message"] == "Unexpected error."
    assert body["errors"][0]["path"] == ["createLead"]
    assert "10.0.3.7" not in response.text
    assert "500" not in body["errors"][0]["message"]
    (record,) = records.records
    assert record.request_id == "req-500"
    assert "10.0.3.7" in str(record.exc_info[1])


async def test_a_mistake_in_the_query_is_explained_not_masked(graphql):
    body = await graphql("{ leadStats { nope } }")

    assert "nope" in body["errors"][0]["message"]
