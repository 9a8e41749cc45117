"""Table 5 of the paper (§4.2): each scheme's factors traded alone over four windows.

The paper trains on one calendar year and tests on February-March of the next. Its schemes need
factors constructed for the window they trade, so `study_windows` places each paper window in
the factor study's nearest window (the last 250 training days, the study's validation days, a
test of the paper's length from the study's first test day). Each window is an independent
backtest starting from cash, as the paper's separate back-tests are.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from nnafc import paper
from nnafc.data.panel import Panel
from nnafc.data.splits import Split
from nnafc.evaluate.formatting import NOT_RUN, formatted
from nnafc.factor import Factor
from nnafc.strategy.benchmarks import Benchmarks
from nnafc.strategy.rolling import StrategyConfig, run_window

if TYPE_CHECKING:
    from nnafc.study import Study

TABLE5_SCHEMES = ("Only GP", "GP and NNAFC", "Only NNAFC")


def window_label(train_start: str, test_start: str, test_end: str) -> str:
    """The paper's Table 5 row label, e.g. "2015 -> 2016-02..03"."""
    return f"{train_start[:4]} -> {test_start[:7]}..{test_end[5:7]}"


def study_windows(
    study: Study,
    panel: Panel,
    windows: Sequence[tuple[str, str, str, str]] = paper.TABLE5_WINDOWS,
    n_train: int = 250,
    near_days: int = 45,
) -> dict[str, Split | None]:
    """Table 5's windows inside the factor study's, so that each scheme trades the factors the
    study constructed for that window (`Study.window_of`): for each of the paper's windows, the
    study window whose test starts within `near_days` calendar days of the paper's test start,
    cut to its last `n_train` training days (the paper's one year), its validation days, and as
    many calendar days of its test as the paper's test spans (February-March: two months). By the
    paper's row label; None for a paper window no study window is near. Study windows near no
    paper window follow, labelled the same way (ours only).
    """
    splits = study.windows()
    out: dict[str, Split | None] = {}
    matched, span = set(), pd.Timedelta(days=59)
    for tr0, _tr1, te0, te1 in windows:
        span = pd.Timestamp(te1) - pd.Timestamp(te0)
        first = pd.Timestamp(te0)
        gaps = {w: abs((s.dates()["test"][0] - first).days) for w, s in enumerate(splits)}
        w = min(gaps, key=gaps.get) if gaps else None
        ok = w is not None and gaps[w] <= near_days
        out[window_label(tr0, te0, te1)] = _inside(splits[w], panel, n_train, span) if ok else None
        matched |= {w} if ok else set()
    for w in sorted(set(range(len(splits))) - matched):  # ours only: no paper window is near
        split = _inside(splits[w], panel, n_train, span)
        if split is not None:
            d = split.dates()
            first, test = str(d["train"][0].date()), d["test"]
            out[window_label(first, str(test[0].date()), str(test[-1].date()))] = split
    return out


def _inside(window: Split, panel: Panel, n_train: int, length: pd.Timedelta) -> Split | None:
    """`window` (a study split) on `panel`: its last `n_train` training days, its validation days,
    its test days up to `length` after the first; None where `panel` lacks a day of it."""
    d = window.dates()
    valid = panel.dates.get_indexer(d["valid"])
    test_days = d["test"][d["test"] <= d["test"][0] + length]
    test = panel.dates.get_indexer(test_days)
    if (valid < 0).any() or (test < 0).any() or valid[0] < n_train or len(test) == 0:
        return None
    a, b = int(valid[0]), int(valid[-1]) + 1
    test_slice = slice(int(test[0]), int(test[-1]) + 1)
    return Split(slice(a - n_train, a), slice(a, b), test_slice, calendar=panel.dates)


def table5_sets(
    pk: Sequence[Factor], constructed: Mapping[str, Sequence[Factor]], net: str = "fcn"
) -> dict[str, list[Factor] | None]:
    """Table 5's schemes for one window (§4.2, FCN): Only GP, GP and NNAFC, Only NNAFC, and the PK set.

    "GP and NNAFC" are networks seeded by GP factors (the study's `<net>+gp`), "Only NNAFC" networks
    seeded by PK factors. Each scheme trades its own factors alone; PK 50 is traded beside them.
    """
    return {
        "Only GP": _or_none(constructed.get("gp")),
        "GP and NNAFC": _or_none(constructed.get(f"{net}+gp")),
        "Only NNAFC": _or_none(constructed.get(net)),
        "PK 50": list(pk),
    }


def table5_sets_for(
    panel: Panel, pk: Sequence[Factor], study: Study | None, device: str = "cpu", net: str = "fcn"
) -> Callable[[Split], dict]:
    """`split -> table5_sets(...)` with the study's factor sets for that split (`Study.sets_for`;
    none without a study), for `table5`."""
    return lambda split: table5_sets(pk, study.sets_for(split, panel, device) if study else {}, net)


def _or_none(factors: Sequence[Factor] | None) -> list[Factor] | None:
    return list(factors) if factors else None


def table5(
    panel: Panel,
    splits: Mapping[str, Split | None],
    sets_for: Callable[[Split], Mapping[str, Sequence | None]],
    bench: Benchmarks,
    cfg: StrategyConfig,
    index: str = "ZZ500",
) -> pd.DataFrame:
    """Table 5: each scheme's absolute return over each window's test months, and the index's.

    Rows are the paper's window labels; a window without a split (None: no study window), or a scheme without
    constructed factors for it, is NaN with its `status`. Each window is an independent
    backtest starting from cash, as the paper's separate back-tests are.
    """
    rows, status = {}, {}
    for label, split in splits.items():
        if split is None:
            rows[label], status[label] = {}, "no study window"
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


def table5_vs_paper(ours: pd.DataFrame, extra: str = "PK 50") -> pd.DataFrame:
    """Paper beside ours for the three schemes and ZZ500, then our extra set `extra` (ours only)."""
    table = paper.beside(ours, paper.TABLE5_RETURNS)
    order = list(paper.TABLE5_RETURNS.index) + [r for r in table.index if r not in paper.TABLE5_RETURNS.index]
    table = table.reindex(order)
    if extra in ours:
        table[f"{extra} ours"] = ours[extra]
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


def table5_facts(ours: pd.DataFrame, index: str = "ZZ500") -> pd.DataFrame:
    """Per factor set traded in Table 5 (schemes and the extra PK set): in how many windows it beat
    `index`, of how many; in how many it beat Only GP, of the windows both ran (the paper: Only
    NNAFC always does); its mean test-period return beside the index's on the same windows.

    Empty (no rows) when no window ran. `attrs`: schemes_not_run (schemes without factors in every
    window), index_gap_max (largest |our index return - the paper's| over the windows both have,
    NaN if none) and its window.
    """
    cols = [c for c in ours.columns if c not in (index, "status", "test days")]
    done = ours.dropna(subset=[index]) if index in ours else ours.iloc[0:0]
    rows = {}
    for c in cols:
        d = done.dropna(subset=[c])
        if len(d):
            gp = d.dropna(subset=["Only GP"]) if "Only GP" in d and c != "Only GP" else d.iloc[0:0]
            rows[c] = {f"beats {index}": int((d[c] > d[index]).sum()), "windows": len(d),
                       "beats Only GP": int((gp[c] > gp["Only GP"]).sum()) if len(gp) else np.nan,
                       "windows with Only GP": len(gp),
                       "mean return": float(d[c].mean()), f"{index} mean return": float(d[index].mean())}
    out = pd.DataFrame.from_dict(rows, orient="index", columns=[
        f"beats {index}", "windows", "beats Only GP", "windows with Only GP", "mean return",
        f"{index} mean return"])
    out.index.name = "set"
    theirs = paper.TABLE5_RETURNS[index].reindex(done.index).dropna() if index in paper.TABLE5_RETURNS else []
    gap = (done.loc[theirs.index, index] - theirs).abs() if len(theirs) else pd.Series(dtype=float)
    out.attrs.update(
        schemes_not_run=[s for s in TABLE5_SCHEMES if s not in rows],
        index_gap_max=float(gap.max()) if len(gap) else float("nan"),
        index_gap_window=str(gap.idxmax()) if len(gap) else "",
    )
    return out
