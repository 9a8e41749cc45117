"""Figures of the strategy chapter (Table 7): the only strategy module that imports matplotlib."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import pandas as pd

from nnafc.strategy.performance import excess_returns
from nnafc.strategy.portfolio import BacktestResult


def plot_cumulative_excess(results: Mapping[str, BacktestResult] | pd.DataFrame,
                           index_returns: pd.Series | None = None, ax=None, title: str | None = None):
    """Compounded excess return per factor set against the index (Table 7's excess curves).

    `results` is either backtests by name (then `index_returns` is required) or a DataFrame of
    daily excess returns, one column per factor set.
    """
    if isinstance(results, pd.DataFrame):
        excess = results
    else:
        if index_returns is None:
            raise ValueError("index_returns is needed to turn backtests into excess returns")
        excess = pd.DataFrame({name: excess_returns(res.returns, index_returns)
                               for name, res in results.items()})
    if ax is None:
        _, ax = plt.subplots()
    curves = (1.0 + excess).cumprod() - 1.0
    for name in curves:
        ax.plot(curves.index, 100 * curves[name], lw=1.5, label=name)
    ax.axhline(0, color="k", lw=0.8)
    bench = getattr(index_returns, "name", None) or "index"
    ax.set(xlabel="", ylabel="cumulative excess return (%)",
           title=title or f"Cumulative excess return vs {bench}")
    ax.legend(fontsize=8)
    return ax
