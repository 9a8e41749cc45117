"""Tables 5 and 7 of the paper (§4.2, §4.4) from `nnafc.strategy`, with the paper's numbers beside ours.

The book's strategy chapters are thin narratives over these functions. What lives here:

- **factor sets per window**: PK 50 (or a prefix of it), and from a zoo directory the factors
  constructed for exactly that window's split — GP ("GP 50"), one set per network family
  ("New 50") — combined with PK by `strategy.select_combine` on the training split only;
- **rolling backtests**: each window fits its own XGBoost (hyper-parameters chosen on that
  window's validation days), scores its own test days, and the scores of consecutive windows
  are stitched into **one** continuous backtest, so the portfolio and its costs carry over
  from one window to the next instead of being liquidated and rebought;
- **tables**: Table 7 and Table 5 in the paper's row / column labels, so `paper.beside` aligns
  them; a factor set without constructed factors is a "not run" row, never dropped and never
  filled from the paper; bootstrap intervals and a cost sensitivity beyond the paper;
- **index returns**: ZZ500 / HS300 from the data directory, or — without real data — the
  equal-weight mean return of the panel's stocks, labelled as such.

Computation only: plots are `nnafc.strategy.plots`. Paper numbers enter only as `paper` columns.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from nnafc import paper
from nnafc.data.indices import index_returns
from nnafc.data.locate import data_dir
from nnafc.data.panel import DataError, Panel
from nnafc.data.splits import Split
from nnafc.factor import Factor
from nnafc.strategy import (
    FactorModel,
    backtest,
    bootstrap_sharpe,
    cost_sensitivity,
    performance_table,
    run_strategy,
    select_combine,
)
from nnafc.strategy.performance import INDEX_CODES, annual_return, max_drawdown, sharpe_ratio
from nnafc.strategy.portfolio import BUY_COST, SELL_COST, BacktestResult

NOT_RUN = "not run"
FAMILIES = ("fcn", "lenet", "resnet", "lstm", "tcn", "transformer")  # Table 7's networks, paper order
TABLE7_ROWS = tuple(paper.TABLE7_STRATEGY.index)  # ZZ500, HS300, PK 50, GP 50, GP Combine 50, <net> ...
TABLE7_COLUMNS = tuple(paper.TABLE7_STRATEGY.columns)  # revenue, max_drawdown, sharpe
TABLE5_SCHEMES = ("Only GP", "GP and NNAFC", "Only NNAFC")
INDICES = tuple(INDEX_CODES)  # ("ZZ500", "HS300")
INDEX_FILE = "indices_2010_2020.parquet"
WARMUP_DAYS = 65  # history before the first training day: PK 50's longest window is 61 days


# ----------------------------------------------------------------------------- factors


class _Cached:
    """A factor's compute that keeps its values on one panel (and serves any day-prefix of it).

    Every window and every factor set reads the same PK values; recomputing them on the full
    panel per window would dominate the chapter's run time. A prefix (`panel.slice_days(0, k)`,
    what `select_combine` cuts the panel to) gets the first k rows: factor values at day t use
    data up to t only (the `Factor` contract), so they are the same on the prefix.
    """

    def __init__(self, factor: Factor, panel: Panel, values: np.ndarray | None = None) -> None:
        self.factor, self.panel, self._values = factor, panel, values

    def __call__(self, panel: Panel) -> np.ndarray:
        if panel is self.panel or _is_prefix(panel, self.panel):
            if self._values is None:
                self._values = self.factor.values(self.panel)  # (T, N) float32
            return self._values[: len(panel.dates)]
        return self.factor.values(panel)


def _is_prefix(panel: Panel, ref: Panel) -> bool:
    n = len(panel.dates)
    return (
        0 < n <= len(ref.dates)
        and panel.instruments.equals(ref.instruments)
        and panel.dates.equals(ref.dates[:n])
        and np.may_share_memory(panel["close"], ref["close"])
    )


def cached(factors: Sequence[Factor], panel: Panel) -> list[Factor]:
    """The same factors, their values computed once on `panel` (lazily) and reused."""
    return [Factor(f.name, f.origin, _Cached(f, panel), f.meta) for f in factors]


def pk_set(n: int | None = None) -> list[Factor]:
    """PK 50, or its first `n` factors (a smoke run's subset; the table still labels the row PK 50)."""
    from nnafc.pk import pk50

    factors = pk50()
    if n is None:
        return factors
    if not isinstance(n, int) or not 1 <= n <= len(factors):
        raise ValueError(f"pk_factors must be None or an integer in 1..{len(factors)}, got {n!r}")
    return factors[:n]


# ----------------------------------------------------------------------------- windows


def _window(panel: Panel, train_start: int, n_train: int, n_valid: int, test_stop: int) -> Split:
    a, b = train_start + n_train, train_start + n_train + n_valid
    return Split(slice(train_start, a), slice(a, b), slice(b, test_stop), calendar=panel.dates)


def test_windows(
    panel: Panel, test_start: str, test_end: str, n_train: int = 250, n_valid: int = 30, n_test: int = 90
) -> list[Split]:
    """Rolling train / valid / test windows whose test periods tile `[test_start, test_end]` (§4.1).

    Each window trains on the `n_train` days and validates on the `n_valid` days just before
    its test days; the next window rolls forward by `n_test` days. The last test period may be
    shorter than `n_test` so that the whole span is covered. On a simulated panel whose dates
    do not hold the span, the same number of test days is placed at the end of the panel
    (calendar dates of a simulated market mean nothing). A remainder shorter than `n_valid`
    days is added to the last window instead of fitting a model for a handful of days.
    """
    if min(n_train, n_test) < 1 or n_valid < 1:
        raise ValueError(f"need n_train, n_valid, n_test >= 1, got {n_train}, {n_valid}, {n_test}")
    dates = panel.dates
    first = int(dates.searchsorted(pd.Timestamp(test_start)))
    stop = int(dates.searchsorted(pd.Timestamp(test_end), side="right"))
    history = WARMUP_DAYS + n_train + n_valid
    if stop - first < 1 or first < history:
        if not panel.simulated:
            raise DataError(
                f"test span {test_start}..{test_end} needs {history} trading days of data before it and "
                f"some inside it; the panel holds {dates[0].date()}..{dates[-1].date()}"
            )
        span = max(stop - first, len(pd.bdate_range(test_start, test_end)), 1)
        stop = len(dates)
        first = max(history, stop - span)
        if stop - first < 1:
            raise DataError(f"the simulated panel has {len(dates)} days: too short for {history} + test days")
    starts = list(range(first, stop, n_test))
    if len(starts) > 1 and stop - starts[-1] < n_valid:
        starts.pop()  # a remainder shorter than the validation split joins the last window
    ends = [*starts[1:], stop]
    return [
        _window(panel, a - n_train - n_valid, n_train, n_valid, b) for a, b in zip(starts, ends, strict=True)
    ]


def windows_frame(splits: Sequence[Split]) -> pd.DataFrame:
    """First and last date and length of each window's train / valid / test periods, one row per window."""
    rows = []
    for split in splits:
        row = {}
        for part, dates in split.dates().items():
            row[(part, "from")], row[(part, "to")] = dates[0].date(), dates[-1].date()
            row[(part, "days")] = len(dates)
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame.columns = pd.MultiIndex.from_tuples(frame.columns)
    frame.index = pd.RangeIndex(1, len(rows) + 1, name="window")
    return frame


def window_label(train_start: str, test_start: str, test_end: str) -> str:
    """The paper's Table 5 row label, e.g. "2015 -> 2016-02..03"."""
    return f"{train_start[:4]} -> {test_start[:7]}..{test_end[5:7]}"


def table5_windows(
    panel: Panel,
    windows: Sequence[tuple[str, str, str, str]] = paper.TABLE5_WINDOWS,
) -> dict[str, Split | None]:
    """Table 5's windows as splits: train = the training year, valid = the days up to the test months.

    The paper trains on a calendar year and tests on February-March of the next, saying
    nothing of January: we use those days as the validation split that chooses the XGBoost
    hyper-parameters, so no test day informs any choice. A window outside the data is None
    (shown "not run"); on a simulated panel every window is moved by whole years so that the
    last one ends inside the panel.
    """
    shift = 0
    if panel.simulated and windows:
        last_end = pd.Timestamp(max(w[3] for w in windows))
        while last_end + pd.DateOffset(years=shift) > panel.dates[-1]:
            shift -= 1
    out: dict[str, Split | None] = {}
    for w in windows:
        label = window_label(*w[:1], *w[2:])
        tr0, tr1, te0, te1 = (pd.Timestamp(d) + pd.DateOffset(years=shift) for d in w)
        d = panel.dates
        a = int(d.searchsorted(tr0))
        b = int(d.searchsorted(tr1, side="right"))
        c = int(d.searchsorted(te0))
        e = int(d.searchsorted(te1, side="right"))
        ok = (
            a >= WARMUP_DAYS
            and b > a
            and c > b
            and e > c
            and e <= len(d)
            and d[-1] >= te1 - pd.Timedelta(days=7)
        )
        out[label] = Split(slice(a, b), slice(b, c), slice(c, e), calendar=d) if ok else None
    return out


# ----------------------------------------------------------------------------- index returns


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
    """ZZ500 and HS300 daily returns on `panel.dates`, or the equal-weight fallback without an index file.

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


def closest_years(by_year: pd.DataFrame) -> pd.Series:
    """Distance of each year's (ZZ500, HS300) annual returns to the paper's index rows, closest first."""
    target = paper.TABLE7_STRATEGY.loc[list(INDICES), "revenue"]
    ours = pd.DataFrame({k: by_year[(k, "revenue")] for k in INDICES})
    return np.sqrt(((ours - target) ** 2).sum(axis=1)).sort_values().rename("distance")


# ----------------------------------------------------------------------------- the zoo


def _family(meta: dict) -> str | None:
    """Which Table 5/7 set a stored factor belongs to: "gp", a network name, or "<net>+gp"."""
    if meta.get("origin") == "gp":
        return "gp"
    net = (meta.get("config") or {}).get("net") or (meta.get("net") or {}).get("name")
    if net is None:
        return None
    return f"{net}+gp" if meta.get("seed_origin") == "gp" else str(net)


def _split_dates(split: Split, dates: pd.DatetimeIndex) -> dict[str, list[str]]:
    return {k: [str(v[0].date()), str(v[-1].date())] if len(v) else [] for k, v in split.dates(dates).items()}


def _zoo_metas(root: Path) -> list[tuple[Path, dict]]:
    out = []
    for meta_path in sorted(root.glob("*/meta.json")):
        if meta_path.parent.name.startswith("."):
            continue
        try:
            out.append((meta_path.parent, json.loads(meta_path.read_text())))
        except (OSError, ValueError):
            continue
    return out


def zoo_inventory(root: str | Path | None) -> pd.DataFrame:
    """Constructed factors found in a zoo directory: count per family, universe and test period."""
    cols = ["family", "universe", "simulated", "train", "test", "factors"]
    if root is None or not Path(root).is_dir():
        return pd.DataFrame(columns=cols)
    rows = []
    for _, meta in _zoo_metas(Path(root)):
        split = meta.get("split") or {}
        rows.append(
            {
                "family": _family(meta),
                "universe": meta.get("universe"),
                "simulated": bool(meta.get("simulated")),
                "train": " .. ".join(split.get("train") or []),
                "test": " .. ".join(split.get("test") or []),
            }
        )
    if not rows:
        return pd.DataFrame(columns=cols)
    frame = pd.DataFrame(rows)
    return frame.groupby(cols[:-1], dropna=False).size().rename("factors").reset_index()


def _zoo_factor(path: Path, meta: dict, panel: Panel, device: str) -> Factor:
    """A stored factor on `panel`: its stored values when present (no network run), else its net."""
    name = str(meta.get("name") or path.name)
    values_file = path / "values.parquet"
    if values_file.is_file():
        long = pd.read_parquet(values_file, columns=["datetime", "instrument", "value"])
        t = panel.dates.get_indexer(pd.DatetimeIndex(long["datetime"]))
        n = panel.instruments.get_indexer(long["instrument"].astype(str))
        keep = (t >= 0) & (n >= 0)
        values = np.full(panel.shape, np.nan, dtype=np.float32)  # (T, N), NaN outside the split
        values[t[keep], n[keep]] = long["value"].to_numpy(np.float32)[keep]
        stub = Factor(name, str(meta.get("origin", "nnafc")), lambda p: values, meta)
        return Factor(name, stub.origin, _Cached(stub, panel, values), meta)
    from nnafc.zoo import Zoo  # lazily: the zoo pulls in construct and torch nets

    factor = Zoo(path.parent).load(path.name, device=device)
    return cached([factor], panel)[0]


def zoo_sets(
    root: str | Path | None, panel: Panel, split: Split, device: str = "cpu"
) -> dict[str, list[Factor]]:
    """Factors of a zoo directory constructed for exactly `split` on this panel's universe, by family.

    A factor counts only when its stored train / valid / test dates equal the window's and it
    was built on the same universe and the same kind of data (real or simulated): a factor
    constructed on another window would have seen this window's test days, or none of its
    training days. Families: "gp", a network ("fcn", ...) seeded by PK, "<net>+gp" seeded by GP.
    """
    if root is None or not Path(root).is_dir():
        return {}
    want = _split_dates(split, panel.dates)
    sets: dict[str, list[Factor]] = {}
    for path, meta in _zoo_metas(Path(root)):
        fam = _family(meta)
        if fam is None or meta.get("split") != want:
            continue
        if meta.get("universe") != panel.universe or bool(meta.get("simulated")) != panel.simulated:
            continue
        sets.setdefault(fam, []).append(_zoo_factor(path, meta, panel, device))
    for factors in sets.values():  # unique names: build_features refuses duplicates
        seen: dict[str, int] = {}
        for i, f in enumerate(factors):
            k = seen[f.name] = seen.get(f.name, 0) + 1
            if k > 1:
                factors[i] = Factor(f"{f.name}~{k}", f.origin, f.compute, f.meta)
    return sets


# ----------------------------------------------------------------------------- factor sets per window


def table7_sets(
    panel: Panel,
    split: Split,
    pk: Sequence[Factor],
    zoo: Mapping[str, Sequence[Factor]],
    n_combine: int | None = None,
    horizon: int = 5,
) -> dict[str, list[Factor] | None]:
    """Table 7's rows for one window: PK 50, GP 50, GP Combine 50, <net> Combine 50 (None: not run).

    Combine sets are the `n_combine` (default: the PK set's size, 50) factors of PK + other with
    the largest XGBoost `weight` importance on this window's training split only (§4.4).
    """
    n = len(pk) if n_combine is None else n_combine
    sets: dict[str, list[Factor] | None] = {"PK 50": list(pk)}
    gp = zoo.get("gp")
    sets["GP 50"] = list(gp) if gp else None
    for label, other in [("GP Combine 50", gp)] + [(f"{fam} Combine 50", zoo.get(fam)) for fam in FAMILIES]:
        sets[label] = (
            select_combine(pk, other, panel, split.train, min(n, len(pk) + len(other)), horizon=horizon)
            if other
            else None
        )
    return sets


def table5_sets(
    pk: Sequence[Factor], zoo: Mapping[str, Sequence[Factor]], net: str = "fcn"
) -> dict[str, list[Factor] | None]:
    """Table 5's schemes for one window (§4.2, FCN): Only GP, GP and NNAFC, Only NNAFC, and the PK set.

    "GP and NNAFC" are networks seeded by GP factors (`<net>+gp` in the zoo), "Only NNAFC" networks
    seeded by PK factors. Each scheme trades its own factors alone; PK 50 is run as a stand-in.
    """
    return {
        "Only GP": _or_none(zoo.get("gp")),
        "GP and NNAFC": _or_none(zoo.get(f"{net}+gp")),
        "Only NNAFC": _or_none(zoo.get(net)),
        "PK 50": list(pk),
    }


def table7_sets_for(
    panel: Panel,
    pk: Sequence[Factor],
    zoo: str | Path | None,
    device: str = "cpu",
    n_combine: int | None = None,
    horizon: int = 5,
) -> Callable[[Split], dict]:
    """`split -> table7_sets(...)` with the zoo's factors for that split (for `run_rolling`)."""
    return lambda split: table7_sets(
        panel, split, pk, zoo_sets(zoo, panel, split, device), n_combine, horizon
    )


def table5_sets_for(
    panel: Panel, pk: Sequence[Factor], zoo: str | Path | None, device: str = "cpu", net: str = "fcn"
) -> Callable[[Split], dict]:
    """`split -> table5_sets(...)` with the zoo's factors for that split (for `table5`)."""
    return lambda split: table5_sets(pk, zoo_sets(zoo, panel, split, device), net)


def _or_none(factors: Sequence[Factor] | None) -> list[Factor] | None:
    return list(factors) if factors else None


# ----------------------------------------------------------------------------- running


@dataclass(frozen=True)
class StrategyConfig:
    """What every backtest of a chapter shares; hyper-parameter grids are chosen on validation only."""

    top_k: int = 50  # stocks held, equal weight (§4.4)
    rebalance: int = 5  # trading days between signals (the 5-day label horizon, §4.1)
    horizon: int = 5  # label horizon in trading days
    round_trip_cost: float = BUY_COST + SELL_COST  # the paper's 0.3 %, split 1 : 2 buy : sell
    model: dict = field(default_factory=dict)  # FactorModel keyword arguments (grids allowed)

    def backtest_kw(self) -> dict:
        share = BUY_COST / (BUY_COST + SELL_COST)
        return {
            "top_k": self.top_k,
            "rebalance": self.rebalance,
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


# ----------------------------------------------------------------------------- Table 7


def table7(
    runs: Mapping[str, RollingRun | None], bench: Benchmarks, benchmark: str = "ZZ500"
) -> pd.DataFrame:
    """Our Table 7 in the paper's rows, plus "not run" rows for every set without factors.

    `revenue`, `max_drawdown`, `sharpe` follow the paper's text: for a strategy, the annualised
    excess return over `benchmark`, the max drawdown of the excess curve and the Sharpe of the
    daily excess return; for an index row, its own annualised return, drawdown and Sharpe. The
    strategy's absolute statistics are kept too (`abs_*`), with turnover and the factor count.
    """
    done = {name: run.result for name, run in runs.items() if run is not None}
    ordered = [r for r in TABLE7_ROWS if r in runs or r in INDICES] + [
        r for r in runs if r not in TABLE7_ROWS
    ]
    cols = [*TABLE7_COLUMNS, "abs_revenue", "abs_max_drawdown", "abs_sharpe", "turnover", "factors", "status"]
    out = pd.DataFrame(index=pd.Index(ordered, name="group"), columns=cols, dtype=object)
    if done:
        perf = performance_table(done, bench.returns, benchmark=benchmark)
        for name in INDICES:
            out.loc[name, ["revenue", "max_drawdown", "sharpe"]] = perf.loc[
                name, ["annual_return", "max_drawdown", "sharpe"]
            ].to_numpy()
            out.loc[name, "status"] = "index (stand-in)" if bench.simulated else "index"
        for name in done:
            row = perf.loc[name]
            out.loc[name, list(TABLE7_COLUMNS)] = [
                row["annual_excess"],
                row["excess_max_drawdown"],
                row["excess_sharpe"],
            ]
            out.loc[name, ["abs_revenue", "abs_max_drawdown", "abs_sharpe", "turnover"]] = [
                row["annual_return"],
                row["max_drawdown"],
                row["sharpe"],
                row["turnover"],
            ]
            out.loc[name, "factors"] = int(runs[name].windows["factors"].iloc[0])
            out.loc[name, "status"] = "run"
    for name, run in runs.items():
        if run is None:
            out.loc[name, "status"] = NOT_RUN
    numeric = [c for c in cols if c != "status"]
    out[numeric] = out[numeric].astype(np.float64)
    out.attrs["benchmark"] = benchmark
    return out


def with_paper(ours: pd.DataFrame, theirs: pd.DataFrame) -> pd.DataFrame:
    """`paper.beside` plus our `status` column (run / not run / index): a NaN ours never reads as a number."""
    table = paper.beside(ours, theirs)
    if "status" in ours:
        table["status"] = ours["status"].reindex(table.index).fillna(NOT_RUN)
    return table


def table7_vs_paper(ours: pd.DataFrame) -> pd.DataFrame:
    return with_paper(ours[list(TABLE7_COLUMNS) + ["status"]], paper.TABLE7_STRATEGY)


def formatted(
    table: pd.DataFrame, percent: Sequence[str] = ("revenue", "max_drawdown", "return"), digits: int = 3
) -> pd.DataFrame:
    """Strings for display: percentages for return / drawdown columns, "not run" for a set we did not run.

    A column is a percentage when its name contains one of `percent` (and not "sharpe"); `factors`
    columns are counts. A missing *paper* value shows as "—"; a missing *ours* in a "not run" row
    as "not run".
    """
    status = table["status"] if "status" in table else pd.Series("", index=table.index)
    out = pd.DataFrame(index=table.index)
    for col in table.columns:
        if col == "status":
            out[col] = table[col]
            continue
        is_pct = any(p in col for p in percent) and "sharpe" not in col
        is_ours = not col.endswith("paper")
        cells = []
        for row, v in zip(table.index, table[col], strict=True):
            if isinstance(v, str):
                cells.append(v)
            elif pd.isna(v):
                cells.append(NOT_RUN if is_ours and status.get(row) == NOT_RUN else "—")
            elif col.startswith("factors"):
                cells.append(str(int(v)))
            else:
                cells.append(f"{100 * v:.1f} %" if is_pct else f"{v:.{digits}f}")
        out[col] = cells
    return out


def sharpe_intervals(
    runs: Mapping[str, RollingRun | None],
    bench: Benchmarks,
    benchmark: str = "ZZ500",
    n_boot: int = 2000,
    block: int = 10,
    seed: int = 0,
) -> pd.DataFrame:
    """95 % moving-block bootstrap intervals of each set's excess Sharpe, with the paper's Sharpe beside.

    The paper reports point Sharpe ratios only; over two years of daily returns the interval is
    wide, which is what decides whether "ours differs from the paper" means anything.
    """
    rows = {}
    for name, run in runs.items():
        if run is None:
            rows[name] = {"status": NOT_RUN}
            continue
        excess = run.result.returns - bench.returns[benchmark].reindex(run.result.dates)
        s, lo, hi = bootstrap_sharpe(excess.to_numpy(), n_boot=n_boot, block=block, seed=seed)
        rows[name] = {"sharpe": s, "low": lo, "high": hi, "status": "run"}
    table = pd.DataFrame.from_dict(rows, orient="index").reindex(columns=["sharpe", "low", "high", "status"])
    table.index.name = "group"
    table["sharpe paper"] = paper.TABLE7_STRATEGY["sharpe"].reindex(table.index)
    ok = table["sharpe"].notna() & table["sharpe paper"].notna()
    inside = (table["low"] <= table["sharpe paper"]) & (table["sharpe paper"] <= table["high"])
    table["paper inside"] = np.where(ok, np.where(inside, "yes", "no"), "—")
    return table[["sharpe", "low", "high", "sharpe paper", "paper inside", "status"]]


def cost_table(
    runs: Mapping[str, RollingRun | None],
    panel: Panel,
    bench: Benchmarks,
    benchmark: str = "ZZ500",
    round_trips: Sequence[float] = (0.0, 0.0015, 0.003),
) -> pd.DataFrame:
    """Each run set re-traded (same scores) at several round-trip costs: returns and excess Sharpe.

    Columns are (statistic, cost); turnover does not depend on the cost, so it is shown once.
    """
    pieces, turnover = {}, {}
    for name, run in runs.items():
        if run is None:
            continue
        t = cost_sensitivity(run.result, panel, bench.returns[benchmark], round_trips=round_trips)
        pieces[name] = t[["annual_return", "annual_excess", "excess_sharpe"]]
        turnover[name] = float(t["turnover"].iloc[0])
    if not pieces:
        return pd.DataFrame()
    wide = pd.concat({k: v.stack() for k, v in pieces.items()}, axis=1).T  # rows: set; cols: (cost, stat)
    wide.columns = pd.MultiIndex.from_tuples(
        [(stat, f"{100 * cost:.2f} %") for cost, stat in wide.columns], names=["statistic", "round trip"]
    )
    wide = wide.sort_index(axis=1, level=0, sort_remaining=False)
    wide[("turnover", "per year")] = pd.Series(turnover)
    wide.index.name = "group"
    return wide


def windows_table(runs: Mapping[str, RollingRun | None]) -> pd.DataFrame:
    """What each window chose on its validation days, per run set (hyper-parameters, AUC, window return)."""
    frames = {name: run.windows for name, run in runs.items() if run is not None}
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, names=["group", "window"])


def excess_frame(
    runs: Mapping[str, RollingRun | None], bench: Benchmarks, benchmark: str = "ZZ500"
) -> pd.DataFrame:
    """Daily excess returns over `benchmark`, one column per run set (for `plot_cumulative_excess`)."""
    idx = bench.returns[benchmark]
    return pd.DataFrame(
        {
            name: run.result.returns - idx.reindex(run.result.dates)
            for name, run in runs.items()
            if run is not None
        }
    )


# ----------------------------------------------------------------------------- Table 5


def table5(
    panel: Panel,
    splits: Mapping[str, Split | None],
    sets_for: Callable[[Split], Mapping[str, Sequence | None]],
    bench: Benchmarks,
    cfg: StrategyConfig,
    index: str = "ZZ500",
) -> pd.DataFrame:
    """Table 5: each scheme's absolute return over each window's test months, and the index's.

    Rows are the paper's window labels; a window outside the data, or a scheme without
    constructed factors for it, is NaN with its `status`. Each window is an independent
    backtest starting from cash, as the paper's separate back-tests are.
    """
    rows, status = {}, {}
    for label, split in splits.items():
        if split is None:
            rows[label], status[label] = {}, "window outside the data"
            continue
        results = run_window(panel, split, sets_for(split), cfg)
        row = {
            name: (np.nan if res is None else float(np.prod(1.0 + res.returns.to_numpy()) - 1.0))
            for name, res in results.items()
        }
        idx = bench.returns[index].iloc[split.test]
        row[index] = float(np.prod(1.0 + idx.to_numpy()) - 1.0)
        row["test days"] = (
            f"{panel.dates[split.test.start].date()} .. {panel.dates[split.test.stop - 1].date()}"
        )
        missing = [name for name, res in results.items() if res is None]
        rows[label] = row
        status[label] = "run" if not missing else f"{NOT_RUN}: {', '.join(missing)}"
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = paper.TABLE5_RETURNS.index.name
    out["status"] = pd.Series(status)
    return out


def table5_vs_paper(ours: pd.DataFrame, stand_in: str = "PK 50") -> pd.DataFrame:
    """Paper beside ours for the three schemes and ZZ500, then our stand-in set (ours only)."""
    table = paper.beside(ours, paper.TABLE5_RETURNS)
    order = list(paper.TABLE5_RETURNS.index) + [r for r in table.index if r not in paper.TABLE5_RETURNS.index]
    table = table.reindex(order)
    if stand_in in ours:
        table[f"{stand_in} ours"] = ours[stand_in]
    table["status"] = ours["status"].reindex(table.index).fillna(f"{NOT_RUN}: window not selected")
    return table


def table5_display(table: pd.DataFrame) -> pd.DataFrame:
    """`formatted` for Table 5: a scheme with no factors reads "not run" even where other sets ran."""
    out = formatted(table, percent=("ours", "paper"))
    for col in table.columns:
        if col.endswith(" ours"):
            scheme = col[: -len(" ours")]
            miss = table[col].isna()
            whole_row = [("window" in str(s)) for s in table.loc[miss, "status"]]  # window not run at all
            out.loc[miss, col] = [
                NOT_RUN if whole or scheme in str(s) else "—"
                for whole, s in zip(whole_row, table.loc[miss, "status"], strict=True)
            ]
    return out


# ----------------------------------------------------------------------------- the computed commentary


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def table7_commentary(
    ours: pd.DataFrame,
    intervals: pd.DataFrame | None,
    period: str,
    universe: str,
    round_trip_cost: float,
    bench: Benchmarks,
    n_pk: int,
    simulated: bool = False,
) -> str:
    """A paragraph computed from the tables: how ours compare with the paper, and why they may differ.

    `simulated`: the panel is the simulated market; the paragraph then says the comparison means nothing.
    """
    P = paper.TABLE7_STRATEGY
    bm = ours.attrs.get("benchmark", "ZZ500")
    parts = []
    idx_txt = ", ".join(
        f"{k} {_pct(ours.loc[k, 'revenue'])} a year (paper {_pct(P.loc[k, 'revenue'])})"
        for k in INDICES
        if k in ours.index and np.isfinite(ours.loc[k, "revenue"])
    )
    if idx_txt:
        parts.append(
            f"Over our test period ({period}) the benchmarks returned {idx_txt}"
            + (" — here a stand-in: the equal-weight mean of the panel's stocks." if bench.simulated else ".")
        )
    ran = [r for r in ours.index if ours.loc[r, "status"] == "run"]
    for r in ran:
        o, p = ours.loc[r], P.loc[r] if r in P.index else None
        txt = (
            f"**{r}** earned {_pct(o['revenue'])} a year over {bm} (excess Sharpe {o['sharpe']:.2f}, "
            f"excess drawdown {_pct(o['max_drawdown'])}; {_pct(o['abs_revenue'])} a year in absolute terms)"
        )
        if p is not None:
            gap = o["revenue"] - p["revenue"]
            txt += (
                f", {abs(100 * gap):.1f} points {'above' if gap > 0 else 'below'} the paper's "
                f"{_pct(p['revenue'])} (Sharpe {p['sharpe']:.2f})"
            )
        if (
            intervals is not None
            and r in intervals.index
            and intervals.loc[r, "paper inside"] in ("yes", "no")
        ):
            iv = intervals.loc[r]
            txt += (
                f"; the paper's Sharpe lies {'inside' if iv['paper inside'] == 'yes' else 'outside'} our "
                f"95 % bootstrap interval [{iv['low']:.2f}, {iv['high']:.2f}]"
            )
        parts.append(txt + ".")
    if "PK 50" in ran and n_pk != 50:
        parts.append(f'Our "PK 50" row trades only the first {n_pk} PK factors (a reduced run).')
    not_run = [r for r in ours.index if ours.loc[r, "status"] == NOT_RUN]
    if not_run:
        parts.append(
            f"{len(not_run)} of the paper's rows are **not run** ({', '.join(not_run)}): the zoo holds "
            "no constructed factors for them on these windows, and we do not fill them in."
        )
    if simulated:
        parts.append(
            "These numbers come from the **simulated market**: they show that the pipeline runs end to "
            "end, and say nothing about the paper's claims; do not compare them with the paper's columns."
        )
        return "\n\n".join(parts)
    parts.append(
        f"Why ours may differ: the paper does not date its Table 7, so its period is not ours ({period}); "
        f"the universe here is {universe!r} with our own tradability rules (suspensions, price limits at "
        f"execution); costs are a {_pct(round_trip_cost)} round trip split 1 : 2 between buying and selling, "
        'our reading of its "0.3 % commission"; the paper does not list its 50 prior-knowledge factors, '
        "so our PK 50 is our own choice; and our data is the public qlib A-share set, not the paper's "
        "vendor data."
    )
    return "\n\n".join(parts)


def _windows(n: int) -> str:
    return f"{n} window" + ("" if n == 1 else "s")


def table5_commentary(
    ours: pd.DataFrame, stand_in: str = "PK 50", index: str = "ZZ500", simulated: bool = False
) -> str:
    """What Table 5 shows: schemes not run are said so; the stand-in is compared with the index."""
    schemes_run = [s for s in TABLE5_SCHEMES if s in ours and ours[s].notna().any()]
    missing = [s for s in TABLE5_SCHEMES if s not in schemes_run]
    done = ours.dropna(subset=[index]) if index in ours else ours.iloc[:0]  # no window run: no column
    parts = []
    if missing:
        parts.append(
            f"**{stand_in} in place of {' / '.join(missing)}: not run.** No factors constructed for "
            "these windows were found in the zoo, so the scheme columns are empty and the "
            f"{stand_in} strategy stands in to show the windows and the backtest run."
        )
    if stand_in in done and len(done):
        beat = int((done[stand_in] > done[index]).sum())
        parts.append(
            f"Over the {_windows(len(done))} run, {stand_in} beat {index} in {beat} of {len(done)} "
            f"(mean test-period return {_pct(done[stand_in].mean())} against {_pct(done[index].mean())})."
        )
    for s in schemes_run:
        d = done.dropna(subset=[s])
        parts.append(f"{s} beat {index} in {int((d[s] > d[index]).sum())} of {_windows(len(d))}.")
    theirs = paper.TABLE5_RETURNS[index].reindex(done.index).dropna()
    if simulated:
        parts.append("These windows ran on the **simulated market**: they test the code, not the paper.")
    elif len(theirs):
        gap = (done.loc[theirs.index, index] - theirs).abs()
        parts.append(
            f"Our {index} return over the same months differs from the paper's by up to "
            f"{100 * gap.max():.1f} points ({gap.idxmax()}): the paper's exact test days or index "
            "series are not ours, which alone moves every column of its table."
        )
    return " ".join(parts)
