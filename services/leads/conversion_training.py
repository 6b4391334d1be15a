"""Training a workspace's probability-of-conversion model from its own history: which leads' deals were won.

Examples are the leads with a known outcome: won (a deal of the lead was won) or not (every deal of it was lost,
or it was disqualified without a deal). Features are conversion.categories / measures, with activity counted
only up to the moment the outcome began (the lead's conversion, disqualification or first decided deal): what
happens after it is a consequence of the outcome, not a sign of it. The model is an L2 logistic regression;
its quality comes from stratified 5-fold cross-validated predictions, so it is measured on leads it did not
see. `train` is CPU work on plain values (run it in a thread); `load_examples` and `save` talk to the database.
"""

from __future__ import annotations

import math
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import numpy as np
import sklearn
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import Pipeline, make_pipeline

from services.common.db import Connection
from services.common.ids import new_id
from services.leads import conversion, rescoring, score_inputs, scoring_models
from services.leads.score_inputs import LeadInputs

State = Literal["active", "insufficient_history", "no_signal"]

# Logistic regression with a few dozen features needs ~10-20 examples of the rarer class per feature it can
# learn; 20 of each class in 100 gives 5-fold cross-validation at least 4 of each class in every held-out fold
# and an AUC estimate within about ±0.15 (two standard errors): the least that tells a real signal from luck.
MIN_EXAMPLES = 100
MIN_PER_CLASS = 20
# Below this cross-validated AUC the probability would reorder leads barely better than chance, and a shown
# number invites trust it has not earned. The AUC must also be clearly above 0.5 for its sample size.
MIN_AUC = 0.6
# A category seen in fewer training examples folds into `<attribute>=(rare)`: a weight from 1-4 leads is noise.
MIN_CATEGORY_EXAMPLES = 5
# A custom field with more distinct values than this (free text, ids, amounts) is left out: it would be all
# rare categories.
MAX_CUSTOM_VALUES = 20
FOLDS = 5
# L2 strength (scikit-learn's C: smaller is stronger). 1.0 keeps weights of rare-ish categories modest
# without flattening a real signal; the probabilities stay close to calibrated (reported, not assumed).
C = 1.0
BUCKETS = 10


@dataclass(frozen=True)
class Example:
    inputs: LeadInputs
    # Activity up to this moment counts: when the outcome began.
    until: datetime
    won: bool


@dataclass(frozen=True)
class Training:
    state: State
    reason: str
    examples: int
    positives: int
    auc: float | None = None
    brier: float | None = None
    calibration: list[dict[str, Any]] = field(default_factory=list)
    intercept: float = 0.0
    coefficients: dict[str, float] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)


async def load_examples(conn: Connection, workspace_id: uuid.UUID) -> list[Example]:
    """The workspace's leads with a known outcome. An outcome recorded against a lead later merged into another
    counts for the lead it was merged into."""
    rows = await conn.fetch(
        """
        WITH outcomes AS (
            SELECT coalesce(l.merged_into_id, o.lead_id) AS lead_id, bool_or(o.outcome = 'won') AS won,
                   min(o.decided_at) AS decided_at
            FROM leads.lead_outcomes o
            LEFT JOIN leads.leads l ON l.workspace_id = o.workspace_id AND l.id = o.lead_id
            WHERE o.workspace_id = $1
            GROUP BY 1
        )
        SELECT l.id, coalesce(o.won, false) AS won,
               least(o.decided_at,
                     CASE WHEN l.status IN ('converted', 'disqualified') THEN l.status_changed_at END) AS until
        FROM leads.leads l LEFT JOIN outcomes o ON o.lead_id = l.id
        WHERE l.workspace_id = $1 AND l.status <> 'merged' AND (o.lead_id IS NOT NULL OR l.status = 'disqualified')
        """,
        workspace_id,
    )
    inputs = await score_inputs.load(conn, workspace_id, [row["id"] for row in rows])
    return [Example(inputs[row["id"]], row["until"], row["won"]) for row in rows if row["id"] in inputs]


def vocabulary(examples: Sequence[Example]) -> frozenset[str]:
    """The categories the model gets a weight for: those seen in enough examples, and the rare bucket of each
    attribute that has rarer ones. Label-blind, so computing it over every example leaks no outcome."""
    seen = Counter((a, v) for e in examples for a, v in conversion.categories(e.inputs))
    values_of = Counter(a for a, _ in seen)
    known: set[str] = set()
    for (attribute, value), count in seen.items():
        if attribute.startswith("custom.") and values_of[attribute] > MAX_CUSTOM_VALUES:
            continue
        known.add(f"{attribute}={value}" if count >= MIN_CATEGORY_EXAMPLES else f"{attribute}={conversion.RARE}")
    return frozenset(known)


def rows_of(examples: Sequence[Example], known: frozenset[str]) -> list[dict[str, float]]:
    return [
        conversion.fold(conversion.categories(e.inputs), conversion.measures(e.inputs, e.until), known)
        for e in examples
    ]


def estimator() -> Pipeline:
    return make_pipeline(
        DictVectorizer(sparse=True), LogisticRegression(C=C, l1_ratio=0.0, max_iter=1000)  # l1_ratio 0: pure L2
    )


def auc_standard_error(auc: float, positives: int, negatives: int) -> float:
    """Hanley & McNeil (1982): the standard error of an AUC measured on this many positives and negatives."""
    q1 = auc / (2 - auc)
    q2 = 2 * auc * auc / (1 + auc)
    variance = (auc * (1 - auc) + (positives - 1) * (q1 - auc * auc) + (negatives - 1) * (q2 - auc * auc)) / (
        positives * negatives
    )
    return math.sqrt(max(variance, 0.0))


def calibration(predicted: Sequence[float], won: Sequence[bool]) -> list[dict[str, Any]]:
    """Held-out predictions in BUCKETS equal-width buckets [from, to) (the last includes 1.0): the mean
    predicted probability and the observed share of won leads in each; both null for an empty bucket."""
    sums = [0.0] * BUCKETS
    wins = [0] * BUCKETS
    counts = [0] * BUCKETS
    for p, w in zip(predicted, won, strict=True):
        i = min(int(p * BUCKETS), BUCKETS - 1)
        sums[i] += p
        wins[i] += w
        counts[i] += 1
    return [
        {
            "from": i / BUCKETS, "to": (i + 1) / BUCKETS,
            "predicted": sums[i] / counts[i] if counts[i] else None,
            "observed": wins[i] / counts[i] if counts[i] else None,
            "count": counts[i],
        }
        for i in range(BUCKETS)
    ]


def train(examples: Sequence[Example]) -> Training:
    """Trains and judges a model on the examples. CPU-bound (~0.5 s for 10,000 examples): call it in a thread."""
    started = time.perf_counter()
    y = np.array([e.won for e in examples], dtype=bool)
    n, positives = len(examples), int(y.sum())
    negatives = n - positives
    params: dict[str, Any] = {
        "method": "logistic_regression", "penalty": "l2", "C": C, "folds": FOLDS,
        "min_category_examples": MIN_CATEGORY_EXAMPLES, "max_custom_values": MAX_CUSTOM_VALUES,
        "activity_until": "conversion, disqualification or first decided deal", "sklearn": sklearn.__version__,
    }
    if n < MIN_EXAMPLES or min(positives, negatives) < MIN_PER_CLASS:
        reason = (
            f"{n} leads have a known outcome ({positives} won, {negatives} not); the model needs at least "
            f"{MIN_EXAMPLES}, with at least {MIN_PER_CLASS} won and {MIN_PER_CLASS} not. Until then leads are "
            "scored by the rules alone."
        )
        return Training("insufficient_history", reason, n, positives, params=params)

    known = vocabulary(examples)
    rows = rows_of(examples, known)
    if not any(rows):
        reason = f"None of the {n} leads with a known outcome has anything to learn from (no attributes, no activity)."
        return Training("no_signal", reason, n, positives, params=params)
    folds = StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=0)
    held_out = cross_val_predict(estimator(), rows, y, cv=folds, method="predict_proba")[:, 1]
    auc = float(roc_auc_score(y, held_out))
    brier = float(brier_score_loss(y, held_out))
    margin = 2 * auc_standard_error(auc, positives, negatives)
    final = estimator().fit(rows, y)
    vectorizer: DictVectorizer = final.named_steps["dictvectorizer"]
    regression: LogisticRegression = final.named_steps["logisticregression"]
    coefficients = {
        str(name): float(weight)
        for name, weight in zip(vectorizer.get_feature_names_out(), regression.coef_[0], strict=True)
    }
    params |= {"features": len(coefficients), "auc_margin": margin, "brier": brier,
               "seconds": round(time.perf_counter() - started, 3)}
    quality = f"Cross-validated AUC {auc:.2f} (±{margin:.2f}) on {n} leads ({positives} won)"
    if auc < MIN_AUC:
        state: State = "no_signal"
        reason = f"{quality}: below {MIN_AUC}, barely better than chance. Leads are scored by the rules alone."
    elif auc - margin <= 0.5:
        state = "no_signal"
        reason = (
            f"{quality}: not clearly better than chance with this much history. Leads are scored by the rules alone."
        )
    else:
        state = "active"
        reason = f"{quality}: the probability of conversion is shown beside the rule score."
    return Training(
        state, reason, n, positives, auc=auc, brier=brier, calibration=calibration(held_out.tolist(), y.tolist()),
        intercept=float(regression.intercept_[0]), coefficients=coefficients, params=params,
    )


async def save(
    conn: Connection, workspace_id: uuid.UUID, training: Training, trained_by: uuid.UUID | None
) -> uuid.UUID:
    """Stores the training as the workspace's newest model. When it becomes active, or replaces an active one,
    starts a rescoring so the stored probabilities follow (or are cleared)."""
    previous = await conn.fetchval(
        "SELECT state FROM leads.conversion_models WHERE workspace_id = $1 ORDER BY id DESC LIMIT 1", workspace_id
    )
    model_id = new_id()
    await conn.execute(
        """
        INSERT INTO leads.conversion_models (workspace_id, id, state, reason, examples, positives, auc, calibration,
                                            intercept, coefficients, params, trained_by)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
        """,
        workspace_id, model_id, training.state, training.reason, training.examples, training.positives,
        training.auc, training.calibration, training.intercept, training.coefficients, training.params, trained_by,
    )
    if training.state == "active" or previous == "active":
        rules = await scoring_models.load(conn, workspace_id)
        await rescoring.start(
            conn, workspace_id, reason="conversion_model_trained", model_version=rules.version, created_by=trained_by
        )
    return model_id
