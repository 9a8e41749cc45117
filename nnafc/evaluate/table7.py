"""Table 7 of the paper (§4.4): the XGBoost strategy on PK 50, GP 50 and the Combine 50 sets.

Factor sets per window: PK 50 (or a prefix of it), and from the factor study (`nnafc.study`) the
factors constructed for exactly that window's split -- GP ("GP 50"), one set per network family --
combined with PK by
`strategy.select_combine` on the training split only. A set without constructed factors is a
"not run" row, never dropped and never filled from the paper. Beyond the paper: bootstrap
Sharpe intervals, a cost sensitivity, what each window chose.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from nnafc import metrics, paper
from nnafc.data.panel import Panel
from nnafc.data.splits import Split
from nnafc.evaluate.formatting import NOT_RUN, with_paper
from nnafc.factor import Factor
from nnafc.strategy import (
    bootstrap_mean,
    bootstrap_sharpe,
    cost_sensitivity,
    performance_table,
    select_combine,
)
from nnafc.strategy.benchmarks import INDICES, Benchmarks
from nnafc.strategy.rolling import RollingRun, StrategyConfig, run_rolling

if TYPE_CHECKING:
    from nnafc.study import Study

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
    constructed: Mapping[str, Sequence[Factor]],
    n_combine: int | None = None,
    horizon: int = 5,
    lag: int = 0,
) -> dict[str, list[Factor] | None]:
    """Table 7's rows for one window: PK 50, GP 50, GP Combine 50, <net> Combine 50 (None: not run).

    Combine sets are the `n_combine` (default: the PK set's size, 50) factors of PK + other with
    the largest XGBoost `weight` importance on this window's training split only (§4.4), for the
    strategy's label (`horizon`, `lag`).
    """
    n = len(pk) if n_combine is None else n_combine
    sets: dict[str, list[Factor] | None] = {"PK 50": list(pk)}
    gp = constructed.get("gp")
    sets["GP 50"] = list(gp) if gp else None
    others = [("GP Combine 50", gp)] + [(f"{fam} Combine 50", constructed.get(fam)) for fam in FAMILIES]
    for label, other in others:
        sets[label] = (
            select_combine(pk, other, panel, split.train, min(n, len(pk) + len(other)), horizon=horizon,
                           lag=lag)
            if other
            else None
        )
    return sets


def table7_sets_for(
    panel: Panel,
    pk: Sequence[Factor],
    study: Study | None,
    device: str = "cpu",
    n_combine: int | None = None,
    horizon: int = 5,
) -> Callable[[Split], dict]:
    """`split -> table7_sets(...)` with the study's factor sets for that split (`Study.sets_for`;
    none without a study), for `run_rolling`."""
    return lambda split: table7_sets(
        panel, split, pk, study.sets_for(split, panel, device) if study else {}, n_combine, horizon
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


def paired_table(
    runs: Mapping[str, RollingRun | None],
    against: Sequence[str] = ("PK 50", "GP Combine 50"),
    n_boot: int = 2000,
    block: int = 10,
    seed: int = 0,
) -> pd.DataFrame:
    """Each Combine 50 that ran against each set of `against` on the same days (a paired test):
    the annualised mean of the daily return difference -- the difference in excess return, since
    the benchmark cancels -- with its 95 % moving-block bootstrap interval, and a verdict: "ahead"
    (interval above 0), "behind" (below 0) or "undecided". The paper's claim is that every
    Combine 50 beats PK 50 and GP's Combine 50."""
    rows = []
    for name, run in runs.items():
        if run is None or not name.endswith("Combine 50"):
            continue
        for other in against:
            base = runs.get(other)
            if other == name or base is None:
                continue
            if not run.result.dates.equals(base.result.dates):
                raise ValueError(f"{name!r} and {other!r} were traded on different days: no paired test")
            diff = run.result.returns.to_numpy() - base.result.returns.to_numpy()
            mean, low, high = bootstrap_mean(diff, n_boot=n_boot, block=block, seed=seed)
            verdict = "ahead" if low > 0 else "behind" if high < 0 else "undecided"
            rows.append({"group": name, "against": other, "difference": mean, "low": low, "high": high,
                         "verdict": verdict, "days": len(diff)})
    columns = ["difference", "low", "high", "verdict", "days"]
    if not rows:
        return pd.DataFrame(columns=columns, index=pd.MultiIndex.from_tuples([], names=["group", "against"]))
    return pd.DataFrame(rows).set_index(["group", "against"])[columns]


def paired_facts(paired: pd.DataFrame, against: str = "PK 50") -> dict:
    """The paper's claim read off `paired_table`: of the network Combine 50 rows, how many are
    ahead of `against` by their point difference, and how many by their whole interval."""
    if paired.empty or against not in paired.index.get_level_values("against"):
        return {"rows": 0, "ahead point": 0, "ahead interval": 0, "behind interval": 0}
    t = paired.xs(against, level="against")
    t = t[[g != "GP Combine 50" for g in t.index]]
    return {"rows": len(t), "ahead point": int((t["difference"] > 0).sum()),
            "ahead interval": int((t["verdict"] == "ahead").sum()),
            "behind interval": int((t["verdict"] == "behind").sum())}


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


def rule_table(
    runs: Mapping[str, RollingRun | None],
    panel: Panel,
    bench: Benchmarks,
    benchmark: str = "ZZ500",
    n_drops: Sequence[int] = (1, 2, 5, 10),
    round_trip: float = 0.003,
) -> pd.DataFrame:
    """Each run set re-traded (same scores) under the paper's rule (equal value over the top k at
    every rebalance) and under Qlib's TopkDropout for each `n_drop`: turnover per year, annual
    excess return before and after a `round_trip` cost, and the excess Sharpe after it. Every
    variant is shown; none is chosen on these (test) days."""
    variants = [("topk", None)] + [("dropout", int(k)) for k in n_drops]
    rows = []
    for name, run in runs.items():
        if run is None:
            continue
        top_k = run.result.params.get("top_k", 50)
        for rule, n_drop in variants:
            if n_drop is not None and n_drop > top_k:
                continue
            extra = {"rule": rule} | ({"n_drop": n_drop} if n_drop is not None else {})
            t = cost_sensitivity(run.result, panel, bench.returns[benchmark], round_trips=(0.0, round_trip),
                                 **extra)
            rows.append({"group": name, "rule": "top k" if rule == "topk" else f"dropout {n_drop}",
                         "turnover": float(t["turnover"].iloc[0]),
                         "excess before costs": float(t["annual_excess"].iloc[0]),
                         "excess after costs": float(t["annual_excess"].iloc[1]),
                         "excess Sharpe after costs": float(t["excess_sharpe"].iloc[1])})
    return pd.DataFrame(rows).set_index(["group", "rule"]) if rows else pd.DataFrame()


def score_ic_table(runs: Mapping[str, RollingRun | None], panel: Panel, horizon: int = 5) -> pd.DataFrame:
    """Per set that ran: its XGBoost score's IC, ICIR, rank IC and rank ICIR (`metrics.signal_ics`)
    against the strategy's own label (the `horizon`-day return), over the stitched test days, with
    labels cut at the test period's end -- strategy and factor quality read together."""
    rows = {}
    for name, run in runs.items():
        if run is None:
            continue
        scores, days = run.result.panel_scores(panel)
        rows[name] = metrics.signal_ics(scores, panel, days, horizon)
    out = pd.DataFrame.from_dict(rows, orient="index", columns=["IC", "ICIR", "Rank IC", "Rank ICIR"])
    out.index.name = "group"
    return out


def rule_kw(label: str) -> dict:
    """`rule_table`'s row label as backtest parameters: "top k" -> rule "topk", "dropout 5" -> rule
    "dropout" with n_drop 5."""
    if label == "top k":
        return {"rule": "topk"}
    kind, _, n = label.partition(" ")
    if kind != "dropout" or not n.isdigit():
        raise ValueError(f"not a rule of rule_table: {label!r}")
    return {"rule": "dropout", "n_drop": int(n)}


def select_rule(
    panel: Panel,
    splits: Sequence[Split],
    pk: Sequence[Factor],
    cfg: StrategyConfig,
    bench: Benchmarks,
    benchmark: str = "ZZ500",
    n_drops: Sequence[int] = (1, 2, 5, 10),
    round_trip: float = 0.003,
) -> tuple[str, pd.DataFrame]:
    """Choose the portfolio rule on selection windows (beyond the paper): the PK set's scores on
    `splits` -- windows whose test days all precede the days the rule is then reported on --
    re-traded under every rule of `rule_table`; the one with the best excess return after costs
    (`chosen_rule`), and the table it was chosen from."""
    runs = run_rolling(panel, splits, lambda _split: {"PK 50": list(pk)}, cfg)
    rules = rule_table(runs, panel, bench, benchmark, n_drops, round_trip)
    return chosen_rule(rules), rules


def chosen_rule(rules: pd.DataFrame, group: str = "PK 50", by: str = "excess after costs") -> str:
    """The rule (`rule_table` row label) with the highest `by` for `group` in a rule table measured
    on *selection* days -- never on the days the chosen rule is then reported on."""
    if group not in rules.index.get_level_values("group"):
        raise ValueError(f"{group!r} was not traded on the selection days")
    return str(rules.loc[group, by].idxmax())


def rule_vs_paper(rules: pd.DataFrame, chosen: str) -> pd.DataFrame:
    """Per set of a test-period `rule_table`: the paper's rule ("top k") beside the `chosen` one."""
    if rules.empty:
        return pd.DataFrame()
    return pd.concat({"paper's rule": rules.xs("top k", level="rule"),
                      f"chosen: {chosen}": rules.xs(chosen, level="rule")}, axis=1)


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


def table7_facts(ours: pd.DataFrame, intervals: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per strategy row that ran: ours against the paper's, as numbers.

    Columns: excess return, excess Sharpe and excess drawdown, ours and the paper's; the gap in
    excess return (ours - paper); whether the paper's Sharpe lies inside our bootstrap interval
    ("yes" / "no" / "—"); the absolute annual return. `attrs`: benchmark, not_run (row names
    without factors), index_returns (ours and the paper's annual return per index row).
    """
    theirs = paper.TABLE7_STRATEGY
    ran = [r for r in ours.index if ours.loc[r, "status"] == "run"]
    out = pd.DataFrame(index=pd.Index(ran, name="group"))
    out["revenue ours"] = ours.loc[ran, "revenue"].astype(float)
    out["revenue paper"] = theirs["revenue"].reindex(ran)
    out["revenue gap"] = out["revenue ours"] - out["revenue paper"]
    out["sharpe ours"] = ours.loc[ran, "sharpe"].astype(float)
    out["sharpe paper"] = theirs["sharpe"].reindex(ran)
    out["max_drawdown ours"] = ours.loc[ran, "max_drawdown"].astype(float)
    out["abs_revenue ours"] = ours.loc[ran, "abs_revenue"].astype(float)
    inside = intervals["paper inside"].reindex(ran) if intervals is not None else None
    out["paper sharpe inside our interval"] = inside.fillna("—") if inside is not None else "—"
    idx = [k for k in INDICES if k in ours.index and np.isfinite(ours.loc[k, "revenue"])]
    out.attrs.update(
        benchmark=ours.attrs.get("benchmark", "ZZ500"),
        not_run=[r for r in ours.index if ours.loc[r, "status"] == NOT_RUN],
        index_returns={k: (float(ours.loc[k, "revenue"]), float(theirs.loc[k, "revenue"])) for k in idx},
    )
    return out
