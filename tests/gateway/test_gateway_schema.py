"""The checked-in schema.graphql is what the code serves, so clients can trust it and diffs show changes."""

from __future__ import annotations

from pathlib import Path

from gateway.schema import sdl

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schema.graphql"


def test_schema_file_matches_the_code():
    assert SCHEMA_FILE.read_text(encoding="utf-8") == sdl(), (
        "schema.graphql is stale: run `.venv/bin/python -m gateway.schema > schema.graphql`"
    )
