"""Lead statistics through GraphQL, read from the reporting service."""

from __future__ import annotations


async def test_lead_stats_count_leads_by_source(graphql, upstreams, token):
    upstreams.add_lead(source="web")
    upstreams.add_lead(source="web")
    upstreams.add_lead(source=None)

    body = await graphql("{ leadStats { total bySource { source count } } }")

    assert body == {
        "data": {
            "leadStats": {
                "total": 3,
                "bySource": [{"source": "unknown", "count": 1}, {"source": "web", "count": 2}],
            }
        }
    }
    (call,) = upstreams.calls
    assert call.url.path == "/v1/stats/leads"
    assert call.headers["authorization"] == f"Bearer {token}"
