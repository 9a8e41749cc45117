"""The benchmarks of Tables 5 and 7: ZZ500 / HS300 daily returns on a panel's dates.

Real index closes come from the data directory; without them (simulated market, or data
without indices) both are the equal-weight mean return of the panel's stocks, labelled as such.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from nnafc.data.indices import index_returns
from nnafc.data.locate import data_dir
from nnafc.data.panel import Panel
from nnafc.strategy.performance import (
    INDEX_CODES,
    annual_return,
    max_drawdown,
    sharpe_ratio,
)

INDICES = tuple(INDEX_CODES)  # ("ZZ500", "HS300")


@dataclass(frozen=True)
class Benchmarks:
    """Daily index returns on the panel's dates, and where they come from (printed with the tables)."""

    returns: dict[str, pd.Series]  # "ZZ500" / "HS300" -> (T,) daily returns on panel.dates
    source: str  # one sentence
    simulated: bool


def equal_weight_returns(panel: Panel) -> pd.Series:
    """Close-to-close mean return of the universe's stocks traded on both days (the fallback index)."""
    close = panel["close"].astype(np.float64)  # (T, N)
    r = np.full(close.shape, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        r[1:] = close[1:] / close[:-1] - 1.0
    ok = np.zeros(close.shape, dtype=bool)
    ok[1:] = panel.in_universe[:-1] & panel.traded[1:] & np.isfinite(r[1:])
    n = ok.sum(axis=1)
    mean = np.where(n > 0, np.where(ok, r, 0.0).sum(axis=1) / np.maximum(n, 1), 0.0)
    mean[0] = 0.0
    return pd.Series(mean, index=panel.dates, name="equal-weight")


def benchmarks(panel: Panel, data: str | None = None) -> Benchmarks:
    """ZZ500 and HS300 daily returns on `panel.dates`, or the equal-weight fallback without index closes.

    Real index closes come from the data's indices (`nnafc.data.indices`: a qlib directory's own,
    or the `indices` file of a data directory). Without them (simulated market, or data without
    indices) both rows are the panel's equal-weight mean return, and `source` says so: they are
    then a stand-in, not the indices.
    """
    root = None if panel.simulated else data_dir(data)
    found = None if root is None else index_returns(root, INDEX_CODES, panel.dates)
    if found is not None:
        rets = {name: found[name].rename(name) for name in INDICES}
        name = Path(found.attrs["source"]).name
        return Benchmarks(rets, f"index closes from `{name}` ({', '.join(INDEX_CODES.values())})", False)
    ew = equal_weight_returns(panel)
    why = "the market is simulated" if panel.simulated else "no index closes in the data"
    return Benchmarks(
        {name: ew.rename(name) for name in INDICES},
        f"**not the real indices**: {why}, so both index rows are the equal-weight mean daily return "
        f"of the panel's {panel.universe} stocks",
        True,
    )


def index_by_year(bench: Benchmarks, start: str | None = None, end: str | None = None) -> pd.DataFrame:
    """Annualised return, max drawdown and Sharpe of each index per calendar year (rows) — for
    judging which period the paper's index rows (which it does not date) could come from."""
    rows = {}
    for name, r in bench.returns.items():
        r = r.loc[start:end]
        for year, ry in r.groupby(r.index.year):
            if len(ry) > 200:  # full years only: a partial year's annualised return misleads
                rows[(int(year), name)] = {
                    "revenue": annual_return(ry),
                    "max_drawdown": max_drawdown(ry),
                    "sharpe": sharpe_ratio(ry),
                }
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index = pd.MultiIndex.from_tuples(table.index, names=["year", "index"])
    return table.unstack("index").swaplevel(axis=1).sort_index(axis=1, level=0, sort_remaining=False)
