"""One factor set -> one backtest: features, §4.4 labels, XGBoost tuned on validation, top-k portfolio.

The split is the paper's rolling window (§4.1): 250 training days, 30 validation days, 90 test
days. The model learns on training labels only, picks its hyper-parameters on the validation
split's labels, and scores test days from factor values up to each day.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from nnafc.data.panel import Panel
from nnafc.factor import Factor
from nnafc.strategy.labels import build_features, make_labels, stack_rows
from nnafc.strategy.model import FactorModel
from nnafc.strategy.portfolio import BacktestResult, backtest


def _check_split(split, n_days: int) -> None:
    for part in ("train", "valid", "test"):
        sl = getattr(split, part, None)
        if not isinstance(sl, slice):
            raise ValueError(f"split.{part} must be a slice of panel day positions, got {sl!r}")
    if not (split.train.stop <= split.valid.start and split.valid.stop <= split.test.start):
        raise ValueError(f"split parts overlap or are out of order: {split!r}")
    if split.test.stop > n_days or split.train.start < 0:
        raise ValueError(f"split {split!r} runs outside the panel's {n_days} days")


def fit_model(factors: Sequence[Factor], panel: Panel, split, *, horizon: int = 5, lag: int = 0,
              model: FactorModel | None = None, clip: float | None = 3.0,
              features: np.ndarray | None = None) -> FactorModel:
    """Fit `model` (default: `FactorModel()` and its grid) on the training split, tuned on validation.

    `features` may pass precomputed `build_features(factors, panel, slice(split.train.start,
    split.valid.stop or later))` to avoid recomputing factor values.
    """
    _check_split(split, panel.shape[0])
    model = FactorModel() if model is None else model
    first = split.train.start
    if features is None:
        features = build_features(factors, panel, slice(first, split.valid.stop), clip)  # (D, N, F)

    def rows(part: slice):
        x = features[part.start - first: part.stop - first]
        return stack_rows(x, make_labels(panel, part, horizon, lag=lag))

    X, y = rows(split.train)
    X_valid, y_valid = rows(split.valid) if split.valid.stop > split.valid.start else (None, None)
    return model.fit(X, y, X_valid, y_valid, feature_names=[f.name for f in factors])


def predict_scores(model: FactorModel, factors: Sequence[Factor], panel: Panel, days: slice,
                   clip: float | None = 3.0, features: np.ndarray | None = None) -> np.ndarray:
    """`(T, N)` P(top 30 %) on `days` (NaN elsewhere and outside the universe), from data up to each day.

    `features` may pass precomputed `build_features(factors, panel, days, clip)`.
    """
    start, stop, _ = days.indices(panel.shape[0])
    if features is None:
        features = build_features(factors, panel, days, clip)  # (D, N, F)
    if features.shape[:2] != (stop - start, panel.shape[1]):
        raise ValueError(f"features {features.shape} do not cover days {days!r}")
    scores = np.full(panel.shape, np.nan)  # (T, N)
    scores[start:stop] = model.predict_panel(features, panel.in_universe[start:stop])
    return scores


def run_strategy(factors: Sequence[Factor], panel: Panel, split, *, horizon: int = 5, lag: int = 0,
                 model: FactorModel | None = None, clip: float | None = 3.0, **backtest_kw) -> BacktestResult:
    """§4.4 strategy for one factor set: fit on train (+ validation grid), backtest over `split.test`.

    Scores exist from the day before the test split (the first signal) to its end; `backtest_kw`
    go to `backtest` (top_k, rebalance, execution, buy_cost, sell_cost, limit masks). The
    result's `params` record the factor names, chosen hyper-parameters and validation AUC.
    """
    _check_split(split, panel.shape[0])
    first = split.train.start
    features = build_features(factors, panel, slice(first, split.test.stop), clip)  # (D, N, F)
    fitted = fit_model(factors, panel, split, horizon=horizon, lag=lag, model=model, clip=clip,
                       features=features)
    scored = slice(split.test.start - 1, split.test.stop)
    scores = predict_scores(fitted, factors, panel, scored, clip,
                            features[scored.start - first: scored.stop - first])
    result = backtest(scores, panel, split.test, **backtest_kw)
    info = {"factors": [f.name for f in factors], "horizon": horizon, "lag": lag,
            "model": fitted.best_params_, "valid_auc": fitted.valid_auc_}
    return replace(result, params={**result.params, **info})
