"""A factor tear sheet: how a set of factor values relates to the forward returns of the data.

The numbers alphalens' tear sheets report, computed on dense `(T, N)` arrays with
`nnafc.metrics`: daily IC and rank IC (mean, ICIR, t-stat), IC decay over horizons, quantile
mean forward returns and the top-minus-bottom (long-short) spread, turnover of the top and
bottom quantiles, factor autocorrelation and the correlation between factors.

Conventions (those of alphalens' `get_clean_factor_and_forward_returns` with `quantiles=q`,
so the two agree; `tests/test_tearsheet.py` checks it):

- the forward return on day t over h days is `close[t+h] / close[t] - 1` on adjusted closes
  (`nnafc.data.forward_returns`), NaN where either close is missing. Forward returns are the
  target only; they never enter a factor value;
- a (day, stock) pair counts when both the factor and the horizon's forward return are finite;
- quantiles are assigned per day over those pairs like `pd.qcut(x, q)` (linear quantile edges,
  right-closed bins, 1 = lowest); a day whose edges are not distinct (heavy ties) has none;
- quantile returns are means over stocks per day, summarised by their mean over days;
- turnover of a quantile on day t is the share of its stocks that were not in it on day t-1;
  autocorrelation is the rank IC of the factor with its own values `lag` days before.

t-statistics take days as independent; with h-day returns neighbouring days overlap, so read
them as upper bounds when h > 1.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from nnafc import metrics
from nnafc.data.panel import DataError, Panel
from nnafc.data.windows import forward_returns

DECAY_HORIZONS = (1, 2, 5, 10, 20)  # trading days; the chosen horizon is added


@dataclass(frozen=True)
class TearSheet:
    """Every table of the report; dates index the daily frames, factors their columns."""

    summary: pd.DataFrame  # one row per factor: IC, rank IC, ICIR, t-stat, spread, turnover, autocorr
    ic: pd.DataFrame  # (T, K) daily Pearson IC at the horizon
    rank_ic: pd.DataFrame  # (T, K) daily Spearman rank IC at the horizon
    ic_decay: pd.DataFrame  # (H, K) mean daily rank IC per horizon
    quantile_returns: pd.DataFrame  # (K, q) mean over days of the quantiles' mean forward return
    quantile_daily: dict[str, pd.DataFrame]  # factor -> (T, q) daily mean forward return per quantile
    long_short: pd.DataFrame  # (T, K) top minus bottom quantile's mean forward return
    turnover: pd.DataFrame  # (T, K) turnover of the top quantile
    autocorr: pd.DataFrame  # (T, K) rank IC of the factor with itself `lag` days before
    corr: pd.DataFrame  # (K, K) mean daily rank correlation between factors
    meta: dict = field(default_factory=dict)  # horizon, quantiles, days, rows matched / dropped


# --------------------------------------------------------------------------- per-day building blocks


def quantile_labels(values: np.ndarray, valid: np.ndarray, q: int = 5) -> np.ndarray:
    """`(T, N)` int8 quantile 0..q-1 of each valid entry within its day, -1 elsewhere.

    Same bins as `pd.qcut(day_values, q)`: edges at the 0, 1/q, ..., 1 linear quantiles, right
    closed; a day with repeated edges (or no valid entry) gets -1 throughout, as alphalens drops it.
    """
    if not isinstance(q, int | np.integer) or q < 2:
        raise ValueError(f"quantiles must be an integer >= 2, got {q!r}")
    x = np.where(valid, values, np.nan).astype(np.float64)  # (T, N)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN days
        edges = np.nanquantile(x, np.linspace(0.0, 1.0, q + 1), axis=1).T  # (T, q+1)
    ok_day = np.isfinite(edges).all(axis=1) & (np.diff(edges, axis=1) > 0).all(axis=1)  # (T,)
    inner = edges[:, 1:-1]  # (T, q-1)
    labels = (x[:, :, None] > inner[:, None, :]).sum(axis=-1)  # (T, N) edges strictly below x
    keep = np.isfinite(x) & ok_day[:, None]
    return np.where(keep, labels, -1).astype(np.int8)


def quantile_means(returns: np.ndarray, labels: np.ndarray, q: int) -> np.ndarray:
    """`(T, q)` mean of `returns` over each day's stocks in each quantile (NaN if empty)."""
    out = np.full((returns.shape[0], q), np.nan)
    r = returns.astype(np.float64)
    for k in range(q):
        inside = labels == k  # (T, N)
        count = inside.sum(axis=1)
        total = np.where(inside, r, 0.0).sum(axis=1)
        out[:, k] = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return out


def turnover(labels: np.ndarray, k: int) -> np.ndarray:
    """`(T,)` share of quantile k's stocks on day t that were not in it on day t-1 (NaN on day 0)."""
    inside = labels == k  # (T, N)
    out = np.full(labels.shape[0], np.nan)
    size = inside[1:].sum(axis=1)
    new = (inside[1:] & ~inside[:-1]).sum(axis=1)
    out[1:] = np.where(size > 0, new / np.maximum(size, 1), np.nan)
    return out


def autocorrelation(values: np.ndarray, lag: int = 1) -> np.ndarray:
    """`(T,)` rank IC of the factor on day t with its values on day t-lag (NaN the first lag days)."""
    out = np.full(values.shape[0], np.nan)
    if values.shape[0] > lag:
        out[lag:] = metrics.rank_ic(values[lag:], values[:-lag])
    return out


# --------------------------------------------------------------------------- the sheet


def tearsheet_arrays(values: dict[str, np.ndarray], close: np.ndarray, dates: pd.DatetimeIndex,
                     horizon: int = 5, quantiles: int = 5, lag: int = 1,
                     decay: tuple[int, ...] = DECAY_HORIZONS) -> TearSheet:
    """The tear sheet of `{name: (T, N) factor}` against forward returns of `close` `(T, N)`.

    Days past the end of `close` have no forward return: the last `horizon` days carry no IC.
    """
    if not values:
        raise ValueError("no factors to evaluate")
    if not isinstance(horizon, int | np.integer) or horizon < 1:
        raise ValueError(f"horizon must be a positive integer, got {horizon!r}")
    horizons = tuple(sorted({*decay, int(horizon)}))
    fwd = {h: forward_returns(close, h) for h in horizons}  # (T, N) each: targets only
    r = fwd[horizon]
    idx = pd.DatetimeIndex(dates, name="datetime")
    names = list(values)
    ic, ric, ls, turn, auto, rows, qmeans, qdaily, dec = {}, {}, {}, {}, {}, {}, {}, {}, {}
    for name, f in values.items():
        ic[name] = metrics.ic(f, r)
        ric[name] = metrics.rank_ic(f, r)
        dec[name] = [_mean(metrics.rank_ic(f, fwd[h])) for h in horizons]
        labels = quantile_labels(f, np.isfinite(f) & np.isfinite(r), quantiles)
        daily = quantile_means(r, labels, quantiles)  # (T, q)
        qdaily[name] = pd.DataFrame(daily, index=idx,
                                    columns=pd.RangeIndex(1, quantiles + 1, name="quantile"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            qmeans[name] = np.nanmean(daily, axis=0)
        ls[name] = daily[:, -1] - daily[:, 0]
        turn[name] = turnover(labels, quantiles - 1)
        auto[name] = autocorrelation(f, lag)
        s_ic, s_ric, s_ls = (metrics.ic_summary(x) for x in (ic[name], ric[name], ls[name]))
        rows[name] = {
            "IC mean": s_ic.mean, "IC ICIR": s_ic.icir,
            "rank IC mean": s_ric.mean, "rank IC std": s_ric.std, "rank ICIR": s_ric.icir,
            "rank IC t-stat": s_ric.t_stat, "rank IC > 0": s_ric.positive, "days": s_ric.n_days,
            "bottom q return": qmeans[name][0], "top q return": qmeans[name][-1],
            "long-short": s_ls.mean, "long-short t-stat": s_ls.t_stat,
            "top q turnover": _mean(turn[name]), "autocorr": _mean(auto[name]),
        }
    corr = pd.DataFrame(np.eye(len(names)), index=names, columns=names)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            corr.loc[a, b] = corr.loc[b, a] = _mean(metrics.rank_ic(values[a], values[b]))
    frame = lambda d: pd.DataFrame(d, index=idx)  # noqa: E731
    summary = pd.DataFrame.from_dict(rows, orient="index")
    summary.index.name = "factor"
    return TearSheet(
        summary=summary, ic=frame(ic), rank_ic=frame(ric),
        ic_decay=pd.DataFrame(dec, index=pd.Index(horizons, name="horizon")),
        quantile_returns=pd.DataFrame(qmeans, index=pd.RangeIndex(1, quantiles + 1, name="quantile")).T,
        quantile_daily=qdaily, long_short=frame(ls), turnover=frame(turn), autocorr=frame(auto),
        corr=corr, meta={"horizon": int(horizon), "quantiles": int(quantiles), "lag": lag,
                         "first_date": str(idx[0].date()), "last_date": str(idx[-1].date())},
    )


def _mean(x: np.ndarray) -> float:
    """Mean over the finite entries; NaN when there is none."""
    x = np.asarray(x, dtype=np.float64)
    return float(x[np.isfinite(x)].mean()) if np.isfinite(x).any() else float("nan")


def align(frame: pd.DataFrame, panel: Panel) -> tuple[dict[str, np.ndarray], dict]:
    """The long factor frame as `{name: (T, N)}` on the panel's grid, and what did not match."""
    dates = frame.index.get_level_values("datetime")
    inst = frame.index.get_level_values("instrument")
    t = panel.dates.get_indexer(dates)
    n = panel.instruments.get_indexer(inst)
    ok = (t >= 0) & (n >= 0)
    if not ok.any():
        raise DataError("no factor row matches a (date, instrument) of the data: check instrument codes "
                        f"(factors: {inst[0]!r}..., data: {panel.instruments[0]!r}...) and dates")
    out = {}
    for col in frame.columns:
        dense = np.full(panel.shape, np.nan, dtype=np.float64)  # (T, N)
        dense[t[ok], n[ok]] = frame[col].to_numpy(dtype=np.float64)[ok]
        out[str(col)] = dense
    unmatched = {"rows": int(len(frame)), "rows_unmatched": int((~ok).sum()),
                 "instruments_unmatched": int(len(set(inst[n < 0])))}
    return out, unmatched


def tearsheet(frame: pd.DataFrame, data: str | os.PathLike | None, horizon: int = 5, quantiles: int = 5,
              universe: str = "all", lag: int = 1, decay: tuple[int, ...] = DECAY_HORIZONS) -> TearSheet:
    """The tear sheet of a `(datetime, instrument)` factor frame against prices read from `data`.

    Prices are read from the frame's first date to `max(horizons)` trading days after its last
    (or the end of the data); `universe` only picks which file of a data directory serves them.
    """
    from nnafc.apply import data_span
    from nnafc.data import load_panel
    from nnafc.data.locate import data_dir, source_for
    from nnafc.export import as_factor_frame

    frame = as_factor_frame(frame)
    if not isinstance(horizon, int | np.integer) or horizon < 1:
        raise ValueError(f"horizon must be a positive integer, got {horizon!r}")
    quantile_labels(np.zeros((1, 2)), np.zeros((1, 2), bool), quantiles)  # checks q before reading data
    root = data_dir(data)
    if root is None:
        raise ValueError("no data: give --data PATH or set NNAFC_DATA")
    source = source_for(root, universe)
    first, last, _ = data_span(source)
    dates = frame.index.get_level_values("datetime")
    lo, hi = dates.min(), dates.max()
    if lo < first or hi > last:
        raise DataError(f"factor dates {lo.date()}..{hi.date()} fall outside the data "
                        f"{source.name} ({first.date()}..{last.date()})")
    reach = max(*decay, horizon)
    end = min(last, hi + pd.Timedelta(days=int(reach * 1.6) + 20))
    panel = load_panel(source, start=lo, end=end, universe="all", min_history=0)
    values, unmatched = align(frame, panel)
    sheet = tearsheet_arrays(values, panel["close"], panel.dates, horizon, quantiles, lag, decay)
    keep = panel.dates <= hi  # days after the factor's last day only served forward returns
    trim = lambda d: d.loc[keep]  # noqa: E731
    return TearSheet(
        summary=sheet.summary, ic=trim(sheet.ic), rank_ic=trim(sheet.rank_ic), ic_decay=sheet.ic_decay,
        quantile_returns=sheet.quantile_returns,
        quantile_daily={k: trim(v) for k, v in sheet.quantile_daily.items()},
        long_short=trim(sheet.long_short), turnover=trim(sheet.turnover), autocorr=trim(sheet.autocorr),
        corr=sheet.corr, meta={**sheet.meta, "last_date": str(hi.date()), "data": str(source), **unmatched},
    )
