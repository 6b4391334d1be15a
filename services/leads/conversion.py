"""PLACEHOLDER interface — the conversion-model helper fills this module in (features, training, prediction).

The rest of the service uses only `load_active`, `Predictor.probability` and `Predictor.explain`."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from services.common.db import Connection
from services.leads.score_inputs import LeadInputs


@dataclass(frozen=True)
class Factor:
    feature: str  # e.g. "channel=referral"
    label: str  # in words, e.g. "Channel is referral"
    contribution: float  # its share of the log-odds: positive raises the probability


@dataclass(frozen=True)
class Predictor:
    id: uuid.UUID
    trained_at: datetime
    intercept: float
    coefficients: dict[str, float]

    def probability(self, inputs: LeadInputs, now: datetime) -> float:
        raise NotImplementedError

    def explain(self, inputs: LeadInputs, now: datetime, top: int = 5) -> list[Factor]:
        raise NotImplementedError


async def load_active(conn: Connection, workspace_id: uuid.UUID) -> Predictor | None:
    """The workspace's newest model if it is usable (state `active`); None: score by the rules alone."""
    return None
