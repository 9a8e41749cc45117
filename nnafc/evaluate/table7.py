"""Table 7 of the paper (§4.4): the XGBoost strategy on PK 50, GP 50 and the Combine 50 sets.

Factor sets per window: PK 50 (or a prefix of it), and from a zoo the factors constructed for
exactly that window's split -- GP ("GP 50"), one set per network family -- combined with PK by
`strategy.select_combine` on the training split only. A set without constructed factors is a
"not run" row, never dropped and never filled from the paper. Beyond the paper: bootstrap
Sharpe intervals, a cost sensitivity, what each window chose.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from nnafc import paper
from nnafc.data.panel import Panel
from nnafc.data.splits import Split
from nnafc.evaluate.formatting import NOT_RUN, with_paper
from nnafc.factor import Factor
from nnafc.strategy import bootstrap_sharpe, cost_sensitivity, performance_table, select_combine
from nnafc.strategy.benchmarks import INDICES, Benchmarks
from nnafc.strategy.rolling import RollingRun
from nnafc.zoo import zoo_sets

FAMILIES = ("fcn", "lenet", "resnet", "lstm", "tcn", "transformer")  # Table 7's networks, paper order
TABLE7_ROWS = tuple(paper.TABLE7_STRATEGY.index)  # ZZ500, HS300, PK 50, GP 50, GP Combine 50, <net> ...
TABLE7_COLUMNS = tuple(paper.TABLE7_STRATEGY.columns)  # revenue, max_drawdown, sharpe


def pk_set(n: int | None = None) -> list[Factor]:
    """PK 50, or its first `n` factors (a smoke run's subset; the table still labels the row PK 50)."""
    from nnafc.pk import pk50

    factors = pk50()
    if n is None:
        return factors
    if not isinstance(n, int) or not 1 <= n <= len(factors):
        raise ValueError(f"pk_factors must be None or an integer in 1..{len(factors)}, got {n!r}")
    return factors[:n]


def closest_years(by_year: pd.DataFrame) -> pd.Series:
    """Distance of each year's (ZZ500, HS300) annual returns to the paper's index rows, closest first."""
    target = paper.TABLE7_STRATEGY.loc[list(INDICES), "revenue"]
    ours = pd.DataFrame({k: by_year[(k, "revenue")] for k in INDICES})
    return np.sqrt(((ours - target) ** 2).sum(axis=1)).sort_values().rename("distance")


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


def table7_vs_paper(ours: pd.DataFrame) -> pd.DataFrame:
    return with_paper(ours[list(TABLE7_COLUMNS) + ["status"]], paper.TABLE7_STRATEGY)


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
