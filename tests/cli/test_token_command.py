"""`voronka token`: prints only a token, which the services accept for the given workspace, role and user."""

from __future__ import annotations

import uuid

import pytest
from click.testing import CliRunner

from services.cli.main import cli
from services.common.auth import Principal, Role, TokenVerifier
from services.common.ids import workspace_id_from
from services.common.settings import get_settings


def run_token(*args: str) -> str:
    result = CliRunner().invoke(cli, ["token", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


async def verify(token: str) -> Principal:
    return await TokenVerifier(get_settings()).verify(token)


async def test_token_is_accepted_for_the_named_workspace_and_role() -> None:
    output = run_token("--workspace", "acme", "--role", "head_of_sales")

    # Only the token and a newline, so TOKEN=$(voronka token ...) works.
    assert output.count("\n") == 1
    principal = await verify(output.strip())
    assert principal.workspace_id == workspace_id_from("acme")
    assert principal.role is Role.head_of_sales


async def test_a_workspace_uuid_is_used_as_is() -> None:
    workspace = uuid.uuid4()
    principal = await verify(run_token("--workspace", str(workspace), "--role", "rep").strip())
    assert principal.workspace_id == workspace


async def test_a_named_user_is_the_same_user_every_time() -> None:
    first = await verify(run_token("--workspace", "acme", "--role", "rep", "--user", "maria").strip())
    second = await verify(run_token("--workspace", "acme", "--role", "rep", "--user", "Maria").strip())
    other = await verify(run_token("--workspace", "acme", "--role", "rep", "--user", "ivan").strip())

    assert first.user_id == second.user_id
    assert first.user_id != other.user_id


async def test_a_user_uuid_is_used_as_is() -> None:
    user = uuid.uuid4()
    principal = await verify(run_token("--workspace", "acme", "--role", "admin", "--user", str(user)).strip())
    assert principal.user_id == user


async def test_without_user_each_workspace_role_pair_has_one_stable_user() -> None:
    rep = await verify(run_token("--workspace", "acme", "--role", "rep").strip())
    rep_again = await verify(run_token("--workspace", "acme", "--role", "rep").strip())
    admin = await verify(run_token("--workspace", "acme", "--role", "admin").strip())

    assert rep.user_id == rep_again.user_id
    assert rep.user_id != admin.user_id


def test_the_service_role_is_not_issued_to_people() -> None:
    result = CliRunner().invoke(cli, ["token", "--workspace", "acme", "--role", "service"])
    assert result.exit_code == 2
    assert "service" in result.output


def test_workspace_is_required() -> None:
    result = CliRunner().invoke(cli, ["token", "--role", "rep"])
    assert result.exit_code == 2


@pytest.mark.parametrize("role", ["admin", "head_of_sales", "rep"])
async def test_every_people_role_can_be_issued(role: str) -> None:
    principal = await verify(run_token("--workspace", "acme", "--role", role).strip())
    assert principal.role == Role(role)
