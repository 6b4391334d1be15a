"""The gateway's GraphQL schema, assembled from the per-domain modules in `gateway.types`.

`python -m gateway.schema > schema.graphql` regenerates the SDL checked in at the repository root.
"""

from __future__ import annotations

import logging
import sys

import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaskErrors
from strawberry.types import ExecutionContext

from gateway.errors import PublicError
from gateway.types.conversion import ConversionMutation, ConversionQuery
from gateway.types.distribution import DistributionMutation, DistributionQuery
from gateway.types.imports import ImportsQuery
from gateway.types.lead_settings import LeadSettingsMutation, LeadSettingsQuery
from gateway.types.leads import LeadsMutation, LeadsQuery
from gateway.types.pipelines import PipelinesQuery
from gateway.types.qualification import QualificationMutation
from gateway.types.roster import RosterMutation, RosterQuery
from gateway.types.scoring import ScoringMutation, ScoringQuery
from gateway.types.sources import SourcesMutation, SourcesQuery
from gateway.types.stats import StatsQuery
from services.common.observability import request_id_var

log = logging.getLogger("voronka.gateway")


@strawberry.type
class Query(
    LeadsQuery,
    LeadSettingsQuery,
    SourcesQuery,
    ImportsQuery,
    RosterQuery,
    DistributionQuery,
    StatsQuery,
    ScoringQuery,
    ConversionQuery,
    PipelinesQuery,
):
    pass


@strawberry.type
class Mutation(
    LeadsMutation,
    QualificationMutation,
    LeadSettingsMutation,
    SourcesMutation,
    RosterMutation,
    DistributionMutation,
    ScoringMutation,
    ConversionMutation,
):
    pass


def is_unexpected(error: GraphQLError) -> bool:
    """True for errors whose message may carry internal detail: everything a resolver raised except
    `PublicError`s. Errors without an original exception describe the client's own document.
    """
    original = error.original_error
    return original is not None and not isinstance(original, PublicError | GraphQLError)


class GatewaySchema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # Runs before MaskErrors rewrites the messages, so the log keeps what the client will not see.
        for error in errors:
            if is_unexpected(error):
                log.error(
                    "graphql field failed",
                    exc_info=error.original_error,
                    extra={
                        "graphql_path": error.path,
                        "operation": execution_context.operation_name if execution_context else None,
                        "request_id": request_id_var.get(),
                    },
                )


class MaskUnexpectedErrors(MaskErrors):
    """Replaces the message of unexpected errors with "Unexpected error."; public ones pass through."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=is_unexpected)


schema = GatewaySchema(query=Query, mutation=Mutation, extensions=[MaskUnexpectedErrors])


def sdl() -> str:
    """The schema as SDL, exactly as `strawberry export-schema` writes it."""
    return schema.as_str() + "\n"


if __name__ == "__main__":
    sys.stdout.write(sdl())
