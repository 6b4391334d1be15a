"""The one rule that scopes rows to a caller: their workspace, and for a rep only what they own.

Every repository builds its WHERE clause from `visible_to`, so no query can forget the workspace.
"""

from __future__ import annotations

from typing import Any

from services.common.auth import Principal


def visible_to(principal: Principal, first_param: int, *, owner_column: str = "owner_id") -> tuple[str, list[Any]]:
    """A SQL condition and its arguments, numbered from `$first_param`: the caller's workspace and, for a rep,
    only rows whose `owner_column` is the rep."""
    owner = None if principal.sees_whole_workspace else principal.user_id
    ws, owner_param = f"${first_param}", f"${first_param + 1}"
    clause = f"workspace_id = {ws} AND ({owner_param}::uuid IS NULL OR {owner_column} = {owner_param})"
    return clause, [principal.workspace_id, owner]
