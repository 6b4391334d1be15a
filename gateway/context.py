"""The typed context every resolver receives: who is calling, their clients and their DataLoaders.

`get_context` is the GraphQL router's context getter; it is also where the bearer token is verified.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import strawberry
from starlette.requests import HTTPConnection, Request
from strawberry.fastapi import BaseContext

from gateway.clients.base import Caller
from gateway.clients.pools import Clients, UpstreamPools
from gateway.loaders.distribution import (
    AssignmentRuleLoader,
    AssignmentsLoader,
    create_assignments_loader,
)
from gateway.loaders.leads import HistoryLoader, LeadLoader, create_history_loader, create_lead_loader
from gateway.loaders.one_by_one import create_one_by_one_loader
from gateway.loaders.qualification import QualificationLoader, create_qualification_loader
from gateway.loaders.roster import MemberLoader, TeamLoader
from gateway.loaders.scoring import ScoreLoader, create_score_loader
from services.common.auth import Principal, bearer_token, get_verifier
from services.common.observability import current_traceparent, request_id_var


@dataclass(frozen=True, slots=True)
class Loaders:
    lead: LeadLoader
    history: HistoryLoader
    qualification: QualificationLoader
    score: ScoreLoader
    member: MemberLoader
    team: TeamLoader
    assignments: AssignmentsLoader
    assignment_rule: AssignmentRuleLoader

    @classmethod
    def create(cls, clients: Clients) -> Loaders:
        return cls(
            lead=create_lead_loader(clients.leads),
            history=create_history_loader(clients.leads),
            qualification=create_qualification_loader(clients.qualification),
            score=create_score_loader(clients.scoring),
            member=create_one_by_one_loader(clients.members.get),
            team=create_one_by_one_loader(clients.teams.get),
            assignments=create_assignments_loader(clients.assignment_rules),
            assignment_rule=create_one_by_one_loader(clients.assignment_rules.get),
        )


class GatewayContext(BaseContext):
    def __init__(
        self,
        *,
        principal: Principal,
        token: str,
        request_id: str | None,
        clients: Clients,
        loaders: Loaders,
    ) -> None:
        super().__init__()
        self.principal = principal
        self.token = token
        self.request_id = request_id
        self.clients = clients
        self.loaders = loaders


Info = strawberry.Info[GatewayContext, None]


async def get_context(connection: HTTPConnection) -> GatewayContext | None:
    """The context of a POST /graphql, or 401 before any upstream is called.

    Only POST runs operations (queries over GET and websocket subprotocols are switched off in the app),
    so a GET, which can only load GraphiQL, gets no context and needs no token.
    """
    if not isinstance(connection, Request) or connection.method != "POST":
        return None
    token = bearer_token(connection)
    principal = await get_verifier(connection).verify(token)
    request_id = request_id_var.get()
    pools = cast(UpstreamPools, connection.app.state.upstreams)
    clients = pools.bind(Caller(token=token, request_id=request_id, traceparent=current_traceparent()))
    return GatewayContext(
        principal=principal,
        token=token,
        request_id=request_id,
        clients=clients,
        loaders=Loaders.create(clients),
    )
