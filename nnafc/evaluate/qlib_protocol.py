"""Qlib's CSI 300 benchmark protocol (beyond the paper): our strategy measured the way Qlib's model
zoo is, with Qlib's published rows beside ours.

Qlib (`microsoft/qlib`, `examples/benchmarks`, commit `QLIB_COMMIT`) trains each model on CSI 300
from 2008-01-01 to 2014-12-31, validates on 2015-2016 and tests on 2017-01-01 .. 2020-08-01. The label
is `Ref($close, -2) / Ref($close, -1) - 1` (horizon 1, lag 1: `period_labels`); the portfolio is
TopkDropout (top 50, n_drop 5), dealt at the close, 0.05 % to buy and 0.15 % to sell, against
SH000300. Its report (`qlib.workflow.record_temp`, `qlib.contrib.evaluate.risk_analysis`): IC, ICIR,
Rank IC and Rank ICIR of the prediction against the label (daily correlations; ICIR = mean / std),
then the annualised return, information ratio and maximum drawdown of the daily excess return after
costs, accumulated by *sum* over 238 trading days a year.

Our model stays the paper's (§4.4: XGBoost classifying the top / bottom 30 % of the label, tuned on
validation AUC); only the data split, label, portfolio, costs and measures are Qlib's.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import yaml

from nnafc import metrics
from nnafc.data.panel import DataError, Panel
from nnafc.data.splits import WARMUP_DAYS, Split, calendar_windows
from nnafc.factor import Factor
from nnafc.params import ParamsError, repo_file, unknown_key
from nnafc.strategy.benchmarks import INDICES, benchmarks
from nnafc.strategy.model import FactorModel
from nnafc.strategy.pipeline import run_strategy
from nnafc.strategy.portfolio import EXECUTIONS

if TYPE_CHECKING:
    from nnafc.study import Study

QLIB_COMMIT = "d5379c520f66a39953bad76234a7019a72796fd0"  # microsoft/qlib, 2026-04-22
QLIB_SOURCE = f"https://github.com/microsoft/qlib/blob/{QLIB_COMMIT}/examples/benchmarks/README.md"
METRICS = ("IC", "ICIR", "Rank IC", "Rank ICIR", "annualized return", "information ratio", "max drawdown")
# "Results on CSI300" of QLIB_SOURCE (means over 20 seeds): the two gradient-boosted trees on Alpha158
# that the issue names, the best Alpha158 model by return and the best Alpha360 model by Rank IC.
QLIB_PUBLISHED = pd.DataFrame(
    [
        ["LightGBM", "Alpha158", 0.0448, 0.3660, 0.0469, 0.3877, 0.0901, 1.0164, -0.1038],
        ["XGBoost", "Alpha158", 0.0498, 0.3779, 0.0505, 0.4131, 0.0780, 0.9070, -0.1168],
        ["DoubleEnsemble", "Alpha158", 0.0521, 0.4223, 0.0502, 0.4117, 0.1158, 1.3432, -0.0920],
        ["HIST", "Alpha360", 0.0522, 0.3530, 0.0667, 0.4576, 0.0987, 1.3726, -0.0681],
    ],
    columns=["model", "dataset", *METRICS],
).set_index("model")


@dataclass(frozen=True)
class QlibProtocol:
    """Qlib's benchmark settings (`examples/benchmarks/*/workflow_config_*_Alpha158.yaml`)."""

    universe: str = "csi300"  # point-in-time CSI 300 membership
    train: tuple[str, str] = ("2008-01-01", "2014-12-31")  # starts at our data's first usable day
    valid: tuple[str, str] = ("2015-01-01", "2016-12-31")
    test: tuple[str, str] = ("2017-01-01", "2020-08-01")
    horizon: int = 1  # label Ref($close, -2) / Ref($close, -1) - 1
    lag: int = 1
    top_k: int = 50  # TopkDropout topk
    n_drop: int = 5
    rebalance: int = 1  # Qlib trades every day
    execution: str = "close"  # deal_price: close
    buy_cost: float = 0.0005  # open_cost
    sell_cost: float = 0.0015  # close_cost
    benchmark: str = "HS300"  # SH000300
    annualization: int = 238  # risk_analysis' trading days per year
    model: dict = field(default_factory=lambda: {"max_depth": [3, 5], "learning_rate": [0.1],
                                                 "n_estimators": [50, 100, 200, 300]})

    def __post_init__(self) -> None:
        wrong = self._wrong()
        if wrong:
            raise ParamsError(f"qlib protocol: {wrong}")

    def _wrong(self) -> str | None:
        """What is wrong with the settings (one line), None when nothing is."""
        for name in ("train", "valid", "test"):
            span = getattr(self, name)
            if len(span) != 2 or pd.Timestamp(span[0]) > pd.Timestamp(span[1]):
                return f"{name} must be [first day, last day], got {span!r}"
        t = [pd.Timestamp(d) for d in (*self.train, *self.valid, *self.test)]
        if not (t[1] < t[2] and t[3] < t[4]):
            return "train, valid and test must follow each other without overlap"
        for name in ("horizon", "top_k", "rebalance", "annualization"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                return f"{name} must be an integer >= 1, got {getattr(self, name)!r}"
        if not isinstance(self.lag, int) or self.lag < 0:
            return f"lag must be an integer >= 0, got {self.lag!r}"
        if not isinstance(self.n_drop, int) or not 0 <= self.n_drop <= self.top_k:
            return f"n_drop must be an integer in 0..top_k, got {self.n_drop!r}"
        for name, allowed in (("execution", EXECUTIONS), ("benchmark", INDICES)):
            if getattr(self, name) not in allowed:
                return f"{name} must be one of {list(allowed)}, got {getattr(self, name)!r}"
        if not isinstance(self.model, dict):
            return f"model must be a mapping of XGBoost settings (FactorModel), got {self.model!r}"
        try:
            FactorModel(**self.model)
        except (TypeError, ValueError) as err:
            return f"model: {err}"
        for name in ("buy_cost", "sell_cost"):
            if not 0 <= getattr(self, name) < 0.1:
                return f"{name} must be a fraction in [0, 0.1), got {getattr(self, name)!r}"
        return None


def load_protocol(path: str | os.PathLike) -> QlibProtocol:
    """A `QlibProtocol` from a YAML file (`yaml.safe_load`); ParamsError (one line) on a bad key or value."""
    file = repo_file(path)
    if not Path(file).is_file():
        raise ParamsError(f"qlib protocol file not found: {path}")
    try:
        raw = yaml.safe_load(Path(file).read_text()) or {}
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping of protocol settings")
    wrong = unknown_key("qlib protocol key", raw, [f.name for f in fields(QlibProtocol)])
    if wrong:
        raise ParamsError(f"{path}: {wrong}")
    try:
        spans = {k: tuple(str(d) for d in v) for k, v in raw.items() if k in ("train", "valid", "test")}
        return QlibProtocol(**{**raw, **spans})
    except (TypeError, ValueError) as err:
        raise ParamsError(f"{path}: {err}") from None


def protocol_split(panel: Panel, protocol: QlibProtocol) -> Split:
    """The protocol's train / valid / test days on `panel`. Training starts at the later of the
    protocol's first day and the panel's first day with `WARMUP_DAYS` of history (PK 50's windows).
    DataError when the panel does not hold the periods."""
    first_usable = panel.dates[min(WARMUP_DAYS, len(panel.dates) - 1)]
    train0 = max(pd.Timestamp(protocol.train[0]), first_usable)
    split = calendar_windows(panel, [(str(train0.date()), protocol.train[1], *protocol.test)])[0]
    if split is None:
        raise DataError(f"the panel ({panel.dates[0].date()} .. {panel.dates[-1].date()}) does not hold the "
                        f"protocol's train {protocol.train} and test {protocol.test} periods")
    valid = panel.dates[split.valid]
    if valid[0] < pd.Timestamp(protocol.valid[0]) - pd.Timedelta(days=7) or \
            valid[-1] > pd.Timestamp(protocol.valid[1]) + pd.Timedelta(days=7):
        raise DataError(f"the days between train and test ({valid[0].date()} .. {valid[-1].date()}) are not "
                        f"the protocol's valid period {protocol.valid}")
    return split


def risk_analysis(excess: pd.Series, annualization: int = 238) -> dict[str, float]:
    """`qlib.contrib.evaluate.risk_analysis(r, mode="sum")` of daily excess returns: mean x N, mean /
    std x sqrt(N), and the worst fall of the cumulative *sum*."""
    r = excess.dropna()
    curve = r.cumsum()
    return {"annualized return": float(r.mean() * annualization),
            "information ratio": float(r.mean() / r.std(ddof=1) * np.sqrt(annualization)),
            "max drawdown": float((curve - curve.cummax()).min())}


def protocol_sets(panel: Panel, protocol: QlibProtocol, pk: Sequence[Factor], study: Study | None = None,
                  device: str = "cpu") -> dict[str, list[Factor]]:
    """PK 50, and each Combine 50 whose networks `study` constructed on exactly the protocol's split
    (`Study.sets_for`): the 50 factors of PK + New that XGBoost uses most on the training days, for the
    protocol's label (`table7.table7_sets`). Sets without factors are left out."""
    from nnafc.evaluate.table7 import table7_sets

    split = protocol_split(panel, protocol)
    built = study.sets_for(split, panel, device) if study is not None else {}
    sets = table7_sets(panel, split, pk, built, horizon=protocol.horizon, lag=protocol.lag)
    return {name: factors for name, factors in sets.items() if factors}


def run_protocol(panel: Panel, sets: Mapping[str, Sequence[Factor]], protocol: QlibProtocol,
                 data: str | os.PathLike | None = None, seed: int = 0, n_jobs: int = 2) -> pd.DataFrame:
    """Each factor set through the §4.4 strategy under the protocol: one row of `METRICS` per set,
    plus turnover (two-sided, per year), factor count and the test days. The benchmark's returns
    come from `data`'s index closes (`strategy.benchmarks`), read on the test days only."""
    split = protocol_split(panel, protocol)
    test_days = panel.slice_days(split.test.start - 1, split.test.stop)
    index = benchmarks(test_days, data).returns[protocol.benchmark]
    rows = {}
    for name, factors in sets.items():
        result = run_strategy(
            list(factors), panel, split, horizon=protocol.horizon, lag=protocol.lag,
            model=FactorModel(**protocol.model, seed=seed, n_jobs=n_jobs), top_k=protocol.top_k,
            rebalance=protocol.rebalance, execution=protocol.execution, buy_cost=protocol.buy_cost,
            sell_cost=protocol.sell_cost, rule="dropout", n_drop=protocol.n_drop,
        )
        scores, _ = result.panel_scores(panel)
        excess = result.returns - index.reindex(result.returns.index)
        rows[name] = {**metrics.signal_ics(scores, panel, split.test, protocol.horizon, protocol.lag),
                      **risk_analysis(excess, protocol.annualization),
                      "turnover": float(result.turnover.mean() * 252), "factors": len(factors),
                      "test days": f"{result.dates[0].date()} .. {result.dates[-1].date()}"}
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "set"
    return out


def beside_qlib(ours: pd.DataFrame, published: pd.DataFrame = QLIB_PUBLISHED) -> pd.DataFrame:
    """Our rows (source "ours") above Qlib's published ones (source "Qlib <commit>"), `METRICS` columns."""
    kinds = ["PK factors" if name == "PK 50" else "PK + constructed factors" for name in ours.index]
    mine = ours[list(METRICS)].assign(source="ours", dataset=kinds)
    theirs = published[list(METRICS)].assign(source=f"Qlib {QLIB_COMMIT[:7]}", dataset=published["dataset"])
    return pd.concat([mine, theirs])[["source", "dataset", *METRICS]]


def protocol_facts(ours: pd.DataFrame, published: pd.DataFrame = QLIB_PUBLISHED) -> pd.DataFrame:
    """Per our set: of how many published rows it is above on Rank IC, annualised return and
    information ratio (and whether on all of them), and the best published value of each."""
    measures = ("Rank IC", "annualized return", "information ratio")
    rows = {}
    for name, row in ours.iterrows():
        rec = {}
        for m in measures:
            rec[f"above on {m}"] = int((row[m] > published[m]).sum())
            rec[f"best published {m}"] = float(published[m].max())
        rec["published rows"] = len(published)
        rec["above all on every measure"] = all(rec[f"above on {m}"] == len(published) for m in measures)
        rows[name] = rec
    return pd.DataFrame.from_dict(rows, orient="index")


def summary(ours: pd.DataFrame | None,
            published: pd.DataFrame = QLIB_PUBLISHED) -> dict[str, float | int | str]:
    """The numbers the chapter's prose quotes: PK 50's test days, Rank IC, return, information
    ratio and turnover, of how many published rows it is above on each measure, and each Combine 50
    row in a line. With no run (`ours` None): NaN, 0 and "not run" in their places."""
    out: dict[str, float | int | str] = {"rows": len(published), "commit": QLIB_COMMIT[:7]}
    pk = ours.loc["PK 50"] if ours is not None and "PK 50" in ours.index else None
    out["days"] = str(pk["test days"]) if pk is not None else "not run"
    for key, col in (("rank_ic", "Rank IC"), ("return", "annualized return"), ("ir", "information ratio"),
                     ("turnover", "turnover")):
        out[key] = float(pk[col]) if pk is not None else float("nan")
    facts = protocol_facts(ours, published) if pk is not None else None
    above = (("above_ric", "Rank IC"), ("above_ret", "annualized return"), ("above_ir", "information ratio"))
    for key, col in above:
        out[key] = int(facts.loc["PK 50", f"above on {col}"]) if facts is not None else 0
    combine = [r for r in (ours.index if ours is not None else []) if r.endswith("Combine 50")]
    out["combine"] = "; ".join(
        f"{r}: Rank IC {ours.loc[r, 'Rank IC']:.4f}, return {ours.loc[r, 'annualized return']:.1%}, "
        f"information ratio {ours.loc[r, 'information ratio']:.2f}" for r in combine
    ) or "none ran (no networks constructed on this split)"
    return out
