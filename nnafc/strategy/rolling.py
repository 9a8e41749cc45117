"""Rolling backtests (§4.1, §4.4): each window fits its own XGBoost (hyper-parameters chosen on that
window's validation days) and scores its own test days; consecutive windows' scores are stitched
into **one** continuous backtest, so the portfolio and its costs carry over from one window to the
next instead of being liquidated and rebought.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from nnafc.data.panel import Panel
from nnafc.data.splits import Split
from nnafc.factor import Factor
from nnafc.strategy.model import FactorModel
from nnafc.strategy.pipeline import run_strategy
from nnafc.strategy.portfolio import BUY_COST, SELL_COST, BacktestResult, backtest


@dataclass(frozen=True)
class StrategyConfig:
    """What every backtest of a chapter shares; hyper-parameter grids are chosen on validation only."""

    top_k: int = 50  # stocks held, equal weight (§4.4)
    rebalance: int = 5  # trading days between signals (the 5-day label horizon, §4.1)
    horizon: int = 5  # label horizon in trading days
    round_trip_cost: float = BUY_COST + SELL_COST  # the paper's 0.3 %, split 1 : 2 buy : sell
    model: dict = field(default_factory=dict)  # FactorModel keyword arguments (grids allowed)
    rule: str = "topk"  # "topk": equal value over the top k per rebalance (§4.4); "dropout": TopkDropout
    n_drop: int = 5  # "dropout": stocks replaced at most per rebalance

    def backtest_kw(self) -> dict:
        share = BUY_COST / (BUY_COST + SELL_COST)
        return {
            "top_k": self.top_k,
            "rebalance": self.rebalance,
            "rule": self.rule,
            "n_drop": self.n_drop,
            "buy_cost": self.round_trip_cost * share,
            "sell_cost": self.round_trip_cost * (1 - share),
        }

    def new_model(self) -> FactorModel:
        return FactorModel(**self.model)


@dataclass(frozen=True)
class RollingRun:
    """One factor set over consecutive windows: one continuous backtest and what each window chose."""

    name: str
    result: BacktestResult  # over all test days, portfolio carried across windows
    windows: pd.DataFrame  # one row per window: test dates, factors, chosen hyper-parameters, validation AUC


def run_window(
    panel: Panel, split: Split, sets: Mapping[str, Sequence[Factor] | None], cfg: StrategyConfig
) -> dict[str, BacktestResult | None]:
    """Fit and backtest every set of one window (a fresh model each, tuned on the window's validation)."""
    return {
        name: None
        if factors is None
        else run_strategy(
            factors, panel, split, horizon=cfg.horizon, model=cfg.new_model(), **cfg.backtest_kw()
        )
        for name, factors in sets.items()
    }


def run_rolling(
    panel: Panel,
    splits: Sequence[Split],
    sets_for: Callable[[Split], Mapping[str, Sequence | None]],
    cfg: StrategyConfig,
    progress: Callable[[str], None] | None = None,
) -> dict[str, RollingRun | None]:
    """Every set over every window, stitched into one backtest per set; None for a set missing in a window.

    Window k's model scores its own test days (and the signal day before them); the next window
    overwrites the shared boundary day with its own, later-trained score. The stitched scores are
    traded by one `backtest`, so positions and costs run on across windows.
    """
    if not splits:
        raise ValueError("need at least one window")
    for prev, nxt in zip(splits, splits[1:], strict=False):
        if nxt.test.start != prev.test.stop:
            raise ValueError("windows' test periods must follow each other without gap or overlap")
    per_window: list[dict[str, BacktestResult | None]] = []
    for k, split in enumerate(splits):
        if progress is not None:
            progress(f"window {k + 1}/{len(splits)}: {split!r}")
        per_window.append(run_window(panel, split, sets_for(split), cfg))
    names = list(per_window[0])
    days = slice(splits[0].test.start, splits[-1].test.stop)
    runs: dict[str, RollingRun | None] = {}
    for name in names:
        results = [w.get(name) for w in per_window]
        if any(r is None for r in results):
            runs[name] = None
            continue
        scores = np.full(panel.shape, np.nan)  # (T, N)
        for split, res in zip(splits, results, strict=True):
            scores[split.test.start - 1 : split.test.stop] = res.scores
        stitched = backtest(scores, panel, days, **cfg.backtest_kw())
        rows = [
            {
                "test_start": s.dates()["test"][0].date(),
                "test_end": s.dates()["test"][-1].date(),
                "factors": len(r.params["factors"]),
                **r.params["model"],
                "valid_auc": r.params["valid_auc"],
                "window_return": float(np.prod(1.0 + r.returns.to_numpy()) - 1.0),
            }
            for s, r in zip(splits, results, strict=True)
        ]
        runs[name] = RollingRun(name, stitched, pd.DataFrame(rows))
    return runs
