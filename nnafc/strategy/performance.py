"""Strategy performance as Table 7 reports it: annualised (excess) return, max drawdown, Sharpe.

Table 7 reads: "the excess return is the annualized excess return of the long portfolio vs. the
index; the max drawdown is the worst loss of the excess return from its peak; the Sharpe ratio is
the annually adjusted excess return divided by a certain level of risk". Here the daily excess
return is `r_portfolio - r_index`; it is compounded into the excess curve whose annualised return,
max drawdown and Sharpe are reported, next to the same statistics of the absolute returns.
Conventions match empyrical: 252 periods a year, Sharpe = mean / std (ddof=1) * sqrt(252) with a
zero risk-free rate, annual return = geometric. Drawdowns are reported as positive fractions.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from nnafc.data.panel import DataError, Panel
from nnafc.strategy.portfolio import BUY_COST, SELL_COST, BacktestResult

PERIODS = 252  # trading days a year
INDEX_CODES = {"ZZ500": "SH000905", "HS300": "SH000300"}  # the two benchmarks of Table 7


def _values(returns) -> np.ndarray:
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim != 1:
        raise ValueError(f"returns must be one daily series, got shape {r.shape}")
    return r


def annual_return(returns, periods: int = PERIODS) -> float:
    """Geometric annualised return: prod(1 + r) ** (periods / n) - 1."""
    r = _values(returns)
    if r.size == 0:
        return float("nan")
    return float(np.prod(1.0 + r) ** (periods / r.size) - 1.0)


def sharpe_ratio(returns, periods: int = PERIODS) -> float:
    """mean / std (ddof=1) * sqrt(periods), risk-free rate 0."""
    r = _values(returns)
    if r.size < 2:
        return float("nan")
    std = r.std(ddof=1)
    return float(r.mean() / std * np.sqrt(periods)) if std > 0 else float("nan")


def max_drawdown(returns) -> float:
    """Worst fall of the compounded curve from its running peak (starting value 1), as a positive fraction."""
    r = _values(returns)
    if r.size == 0:
        return float("nan")
    curve = np.concatenate([[1.0], np.cumprod(1.0 + r)])
    return float(-(curve / np.maximum.accumulate(curve) - 1.0).min())


def excess_returns(returns: pd.Series, index_returns: pd.Series) -> pd.Series:
    """Daily `r_portfolio - r_index` over the portfolio's dates; DataError if the index misses a date."""
    idx = index_returns.reindex(returns.index)
    if idx.isna().any():
        missing = returns.index[idx.isna().to_numpy()]
        raise DataError(f"index returns missing on {len(missing)} portfolio dates, first {missing[0].date()}")
    return (returns - idx).rename("excess")


def summarize(returns: pd.Series, index_returns: pd.Series | None = None,
              result: BacktestResult | None = None) -> dict[str, float]:
    """Table 7 statistics of one daily return series (+ turnover and holdings of its backtest)."""
    row = {
        "total_return": float(np.prod(1.0 + _values(returns)) - 1.0),  # over the period, as Table 5
        "annual_return": annual_return(returns),
        "max_drawdown": max_drawdown(returns),
        "sharpe": sharpe_ratio(returns),
    }
    if index_returns is not None:
        excess = excess_returns(returns, index_returns)
        row |= {
            "annual_excess": annual_return(excess),
            "excess_max_drawdown": max_drawdown(excess),
            "excess_sharpe": sharpe_ratio(excess),
        }
    if result is not None:
        row |= {
            "turnover": float(result.turnover.sum() / len(result.turnover) * PERIODS),
            "costs": float(result.costs.sum() / len(result.costs) * PERIODS),
            "avg_holdings": float(result.n_holdings.mean()),
        }
    return row


def performance_table(results: Mapping[str, BacktestResult],
                      index_returns: pd.Series | Mapping[str, pd.Series],
                      benchmark: str | None = None) -> pd.DataFrame:
    """Table 7: one row per index (absolute statistics) and per backtest (absolute + excess vs `benchmark`).

    `index_returns` is one series (named by its `.name`) or a mapping name -> series, e.g.
    `{"ZZ500": ..., "HS300": ...}`; excess returns are taken against `benchmark` (default: the
    first). Index rows are restricted to the backtests' dates. `turnover` and `costs` are
    annualised (two-sided turnover per year, costs per year as a fraction of value).
    """
    if not results:
        raise ValueError("results is empty")
    if isinstance(index_returns, pd.Series):
        index_returns = {str(index_returns.name or "index"): index_returns}
    if not index_returns:
        raise ValueError("need at least one index return series")
    benchmark = next(iter(index_returns)) if benchmark is None else benchmark
    if benchmark not in index_returns:
        raise ValueError(f"benchmark {benchmark!r} is not one of {list(index_returns)}")
    dates = next(iter(results.values())).returns.index
    for name, res in results.items():
        if not res.returns.index.equals(dates):
            raise ValueError(f"backtest {name!r} covers other dates than {next(iter(results))!r}")
    rows = {}
    for name, series in index_returns.items():
        aligned = series.reindex(dates)
        if aligned.isna().any():
            raise DataError(f"index {name!r} has no return on {int(aligned.isna().sum())} backtest dates")
        rows[name] = summarize(aligned)
    for name, res in results.items():
        rows[name] = summarize(res.returns, index_returns[benchmark], res)
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.attrs["benchmark"] = benchmark
    return table


def _block_sample(r: np.ndarray, n_boot: int, block: int, alpha: float, seed: int) -> np.ndarray:
    """`(n_boot, n)` moving-block bootstrap resamples of the daily series `r`."""
    n = r.size
    if n < 2 or not 1 <= block <= n:
        raise ValueError(f"need >= 2 returns and 1 <= block <= {n}, got n={n}, block={block}")
    if not 0 < alpha < 1 or n_boot < 1:
        raise ValueError(f"need 0 < alpha < 1 and n_boot >= 1, got alpha={alpha}, n_boot={n_boot}")
    rng = np.random.default_rng(seed)
    n_blocks = -(-n // block)
    starts = rng.integers(0, n - block + 1, size=(n_boot, n_blocks))  # (B, n_blocks)
    idx = (starts[:, :, None] + np.arange(block)).reshape(n_boot, -1)[:, :n]  # (B, n)
    return r[idx]


def bootstrap_sharpe(returns, n_boot: int = 2000, block: int = 10, alpha: float = 0.05,
                     seed: int = 0, periods: int = PERIODS) -> tuple[float, float, float]:
    """Sharpe ratio and its (1 - alpha) moving-block bootstrap interval: (sharpe, low, high).

    Blocks of `block` consecutive days keep the short-range autocorrelation of daily returns;
    a 90-day test split gives a wide interval, which is the point of reporting it.
    """
    r = _values(returns)
    sample = _block_sample(r, n_boot, block, alpha, seed)
    std = sample.std(axis=1, ddof=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        sharpe = sample.mean(axis=1) / std * np.sqrt(periods)
    low, high = np.nanquantile(sharpe, [alpha / 2, 1 - alpha / 2])
    return sharpe_ratio(r, periods), float(low), float(high)


def bootstrap_mean(returns, n_boot: int = 2000, block: int = 10, alpha: float = 0.05,
                   seed: int = 0, periods: int = PERIODS) -> tuple[float, float, float]:
    """Annualised mean (`periods` x the daily mean) and its (1 - alpha) moving-block bootstrap
    interval: (mean, low, high). For a difference of two strategies' daily returns on the same
    days (a paired test: what the market did on those days cancels)."""
    r = _values(returns)
    means = _block_sample(r, n_boot, block, alpha, seed).mean(axis=1) * periods
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(r.mean() * periods), float(low), float(high)


def cost_sensitivity(result: BacktestResult, panel: Panel, index_returns: pd.Series | None = None,
                     round_trips: Sequence[float] = (0.0, 0.0015, 0.003), **overrides) -> pd.DataFrame:
    """Re-run one backtest at several round-trip costs (default 0 %, 0.15 %, 0.3 %), one row each.

    Each round trip keeps the default buy : sell split (1 : 2, the sale carrying stamp duty);
    `overrides` are other backtest parameters to change (e.g. explicit limit masks).
    """
    if "buy_cost" in overrides or "sell_cost" in overrides:
        raise ValueError("cost_sensitivity sets buy_cost / sell_cost itself: pass round_trips instead")
    share = BUY_COST / (BUY_COST + SELL_COST)
    rows = {}
    for total in round_trips:
        if not 0 <= total < 0.1:
            raise ValueError(f"round-trip cost must be in [0, 0.1), got {total}")
        res = result.rerun(panel, buy_cost=total * share, sell_cost=total * (1 - share), **overrides)
        rows[total] = summarize(res.returns, index_returns, res)
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "round_trip_cost"
    return table


def load_index_returns(path: str | os.PathLike, code: str,
                       dates: pd.DatetimeIndex | None = None) -> pd.Series:
    """Daily close-to-close returns of index `code` (e.g. "SH000905" = ZZ500, or the alias "ZZ500").

    Read from a long-format parquet (datetime, instrument, close); returns on `dates` when given
    (DataError if the index has no close on one of them, or on the day before the first).
    """
    code = INDEX_CODES.get(code, code).upper()
    try:
        frame = pd.read_parquet(path, columns=["datetime", "instrument", "close"],
                                filters=[("instrument", "==", code)])
    except FileNotFoundError:
        raise DataError(f"index file not found: {path}") from None
    if frame.empty:
        raise DataError(f"index {code!r} not found in {path}")
    close = frame.set_index(pd.DatetimeIndex(frame["datetime"]))["close"].astype(np.float64).sort_index()
    returns = close.pct_change().rename(code)
    returns.index.name = None
    if dates is None:
        return returns.iloc[1:]
    dates = pd.DatetimeIndex(dates)
    out = returns.reindex(dates)
    if out.isna().any():
        bad = dates[out.isna().to_numpy()]
        raise DataError(f"index {code} has no return on {len(bad)} of the dates, first {bad[0].date()}")
    return out


