"""Factor sets of Table 7: PK 50, GP 50, New 50 and the XGBoost-selected Combine 50 (§4.4).

Combine 50: an XGBoost model is trained once on PK 50 + New 50 (100 factors) over the training
split only, and the 50 factors with the largest `weight` importance (how often a factor is
used to split a tree) are kept. The panel is cut at the end of the training split before any
factor value or label is computed, so validation and test data cannot influence the choice.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from nnafc.data.panel import Panel
from nnafc.factor import Factor
from nnafc.strategy.labels import build_features, make_labels, stack_rows
from nnafc.strategy.model import FactorModel

SELECTION_MODEL = {"max_depth": 5, "learning_rate": 0.1, "n_estimators": 200}  # fixed: no validation peek


def combine_importance(factors: Sequence[Factor], panel: Panel, train: slice, *, horizon: int = 5,
                       lag: int = 0, model: FactorModel | None = None, clip: float | None = 3.0,
                       kind: str = "weight") -> pd.Series:
    """XGBoost importance of each factor in one model fitted on the training split only (by
    default `SELECTION_MODEL` on every core this process may use: the fit does not depend on it)."""
    if not isinstance(train, slice) or train.start is None or train.stop is None:
        raise ValueError(f"train must be a slice with start and stop, got {train!r}")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    model = FactorModel(**SELECTION_MODEL, n_jobs=cores) if model is None else model
    if model.n_combinations != 1:
        raise ValueError("the selection model needs fixed hyper-parameters (a grid needs validation data)")
    cut = panel.slice_days(0, train.stop)  # nothing after the training split exists from here on
    features = build_features(factors, cut, train, clip)  # (D, N, F)
    X, y = stack_rows(features, make_labels(cut, train, horizon, lag=lag))
    model.fit(X, y, feature_names=[f.name for f in factors])
    return model.importance(kind)


def select_combine(factors_a: Sequence[Factor], factors_b: Sequence[Factor], panel: Panel, train: slice,
                   n: int = 50, **kwargs) -> list[Factor]:
    """The `n` factors of A + B with the largest training-split `weight` importance ("Combine 50", §4.4).

    Ties (e.g. factors never used, importance 0) keep the input order, A before B; the chosen
    factors are returned in input order.
    `kwargs` go to `combine_importance` (horizon, lag, model, clip, kind).
    """
    pool = list(factors_a) + list(factors_b)
    if not isinstance(n, int) or not 1 <= n <= len(pool):
        raise ValueError(f"n must be an integer in 1..{len(pool)} (the size of A + B), got {n!r}")
    importance = combine_importance(pool, panel, train, **kwargs)
    order = np.argsort(-importance.to_numpy(), kind="stable")[:n]
    return [pool[i] for i in sorted(order)]

