"""§4.2, Table 4: Only GP / GP and NNAFC / Only NNAFC, built on the same split and compared out of sample.

- **Only GP**: the GP baseline's formulas (`nnafc.gp`), selected on validation rank IC.
- **GP and NNAFC**: each GP formula used as the seed of an NNAFC construction (pre-train the
  network on it, prune, train on rank IC).
- **Only NNAFC**: NNAFC constructions seeded by prior-knowledge factors (`nnafc.pk`).

Each window is measured on its own cut of the study's panel (`split_window`: 150 days of
history before training, the label horizon after the test days), so a window costs what it
needs, whatever the panel's length. GP and construction read only up to the end of validation;
the test days are read afterwards, to report. Nothing is chosen on test days: GP's formulas are
picked on validation, construction keeps its best validation epoch, and the PK seed factors are
the study's fixed spread over its seed list.

The factors come from the book's factor study (`nnafc.study`: its `gp`, `fcn+gp` and `fcn`
families, built once and committed); `study_run` cuts one window of it, `measure` measures it.

Also here: §3.1's argument that a GP child need not inherit its parent's IC (formulas 9 -> 10),
measured on the GP run's own parent -> child records against NNAFC's seed -> factor updates.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from nnafc import gp, metrics, pk
from nnafc.data import Panel, Split, split_window
from nnafc.factor import Factor, cached

if TYPE_CHECKING:
    from nnafc.study import Study

SCHEMES = ("Only GP", "GP and NNAFC", "Only NNAFC")
NNAFC_SCHEMES = SCHEMES[1:]
SCHEME_FAMILIES = {"Only GP": "gp", "GP and NNAFC": "fcn+gp", "Only NNAFC": "fcn"}  # the study's families
LOOKBACK = 150  # days of history kept before a window's training days: GP's 100-day warm-up,
#   the 30-day input windows and the PK seeds' longest windows (61 days) all fit
PAPER_FORMULAS = {  # §3.1's example of a GP edit: formula (9) -> formula (10)
    "(9)": "div(sub(high, low), volume)",
    "(10)": "div(sub(high, volume), volume)",
}


# ----------------------------------------------------------------------------- building


@dataclass
class SchemeRun:
    """One window's three schemes, on the window's own cut of the panel.

    `panel` / `split` are the cut and the split re-based onto it; `window` names the window
    (first training date). Factor values are memoised per factor (`values`) until `release`.
    """

    window: str
    panel: Panel
    split: Split
    factors: dict[str, list[Factor]]  # scheme -> its factors
    seeds: dict[str, list[Factor]]  # NNAFC scheme -> the seed of each of its factors, in order
    gp_result: gp.GPResult
    horizon: int = 5  # label horizon: the same for GP's fitness and NNAFC's training
    reused: int = 0  # constructed factors loaded from the zoo instead of trained
    seconds: dict[str, float] = field(default_factory=dict)  # "gp", "nnafc": wall time
    _values: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def values(self, factor: Factor) -> np.ndarray:
        """`(T, N)` values of a factor on the cut, computed once."""
        if factor.name not in self._values:
            self._values[factor.name] = factor.values(self.panel)
        return self._values[factor.name]

    def release(self) -> None:
        """Drop the memoised values (a window's measurements are done)."""
        self._values.clear()


def study_run(study: Study, window: int, build: bool = False,
              families: Mapping[str, str] = SCHEME_FAMILIES) -> SchemeRun:
    """One window's three schemes, read from the factor study (`nnafc.study`), on the window's own
    cut of the study's panel. `families` maps each scheme to the study family that holds it; "GP and
    NNAFC" factor i is seeded by the window's GP formula i, "Only NNAFC" by its PK seed factor.
    A missing factor is a LookupError naming the build command, unless `build`."""
    split = study.windows()[window]
    built_sets = {scheme: study.factor_set(families[scheme], window, build) for scheme in SCHEMES}
    gp_result = study.gp_result(window)  # after the sets: building them builds the GP search too
    horizon = study.params.families[families["Only NNAFC"]].config.horizon
    cut, cut_split = split_window(study.panel, split, lookback=LOOKBACK, horizon=horizon)
    factors = {scheme: cached(fs, cut, study.store)  # values kept on disk: later runs read them back
               for scheme, fs in built_sets.items()}
    seeds = {"GP and NNAFC": gp_result.factors[: len(factors["GP and NNAFC"])],
             "Only NNAFC": [pk.factor(f.meta["seed_factor"]) for f in factors["Only NNAFC"]]}
    built = sum(float(f.meta.get("seconds") or 0.0) for s in NNAFC_SCHEMES for f in factors[s])
    return SchemeRun(window=str(cut.dates[cut_split.train.start].date()), panel=cut, split=cut_split,
                     factors=factors, seeds=seeds, gp_result=gp_result, horizon=horizon,
                     reused=sum(len(factors[s]) for s in NNAFC_SCHEMES),
                     seconds={"gp": gp_result.seconds, "nnafc": built})


# ----------------------------------------------------------------------------- measuring


def value_corr(a: np.ndarray, b: np.ndarray, panel: Panel, days: slice) -> float:
    """Mean daily Spearman correlation of two factors' values on `days`: how alike they rank stocks."""
    daily = metrics.rank_ic(a[days], b[days], panel.in_universe[days])
    return metrics.mean_ic(daily)


def _label(factor: Factor) -> str:
    """A readable name: the infix of a GP formula, else the factor's name."""
    return str(factor.meta.get("infix", factor.name))


def factor_ics(run: SchemeRun) -> pd.DataFrame:
    """One row per factor: scheme, factor, seed, and rank IC mean on train / valid / test days,
    with the test days' ICIR -- every factor measured the same way, whatever built it."""
    rows = []
    for scheme in SCHEMES:
        seeds = run.seeds.get(scheme, [None] * len(run.factors[scheme]))
        for f, seed in zip(run.factors[scheme], seeds, strict=True):
            v = run.values(f)
            row = {"window": run.window, "scheme": scheme, "factor": _label(f),
                   "seed factor": _label(seed) if seed is not None else ""}
            for period in ("train", "valid", "test"):
                days = getattr(run.split, period)
                s = metrics.ic_summary(metrics.period_rank_ic(v, run.panel, days, run.horizon))
                row[f"{period} IC"] = s.mean
                if period == "test":
                    row["test ICIR"] = s.icir
            rows.append(row)
    return pd.DataFrame(rows)


def scheme_table(run: SchemeRun, per_factor: pd.DataFrame | None = None, diversity_days: int = 20,
                 seed: int = 0) -> pd.DataFrame:
    """Table 4 for one window: per scheme, the mean over its factors of the test days' rank IC
    and ICIR, and the diversity (Eq. 18-19) of its factors on `diversity_days` random test days."""
    per_factor = factor_ics(run) if per_factor is None else per_factor
    test = run.split.test
    rows = {}
    for scheme in SCHEMES:
        mine = per_factor[per_factor["scheme"] == scheme]
        factors = run.factors.get(scheme, [])
        ranked = [metrics.cross_sectional_ranks(run.values(f)[test]) for f in factors]
        days = min(diversity_days, test.stop - test.start)
        rows[scheme] = {
            "IC": float(mine["test IC"].mean()) if len(mine) else np.nan,
            "ICIR": float(mine["test ICIR"].mean()) if len(mine) else np.nan,
            "diversity": metrics.diversity(ranked, days=days, seed=seed) if len(ranked) > 1 else np.nan,
            "factors": len(factors),
        }
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "scheme"
    return table


# ----------------------------------------------------------------------------- inheritance (§3.1)


def _gp_values(formula: str, panel: Panel, days: slice, history: int) -> np.ndarray:
    """A formula's values on a cut of `days` with `history` days before (`(T, N)`, NaN elsewhere)."""
    start = max(0, days.start - history)
    out = np.full(panel.shape, np.nan, dtype=np.float32)
    out[start:days.stop] = gp.evaluate(formula, panel.slice_days(start, days.stop), dtype="float32")
    return out


def inheritance(run: SchemeRun, max_gp_pairs: int = 100, seed: int = 0) -> pd.DataFrame:
    """Parent -> child pairs of both kinds, measured on the training days.

    "GP child": a record of the GP run's lineage whose child differs from its parent (at most
    `max_gp_pairs`, drawn at random); parent and child IC are GP's own fitness. "NNAFC update":
    each constructed factor against its seed, ICs measured like `factor_ics`. For both,
    `value_corr` is the mean daily Spearman correlation of parent and child values: does the
    child still rank the stocks like its parent?
    """
    days, panel, history = run.split.train, run.panel, run.gp_result.config.history
    lineage = run.gp_result.lineage
    gp_pairs = lineage[lineage["changed"] & lineage["parent_ic"].notna()]
    if len(gp_pairs) > max_gp_pairs:
        gp_pairs = gp_pairs.sample(max_gp_pairs, random_state=seed).sort_index()
    rows = []
    memo: dict[str, np.ndarray] = {}
    for r in gp_pairs.itertuples():
        for formula in (r.parent, r.child):
            if formula not in memo:
                memo[formula] = _gp_values(formula, panel, days, history)
        corr = value_corr(memo[r.parent], memo[r.child], panel, days) if np.isfinite(r.child_ic) else np.nan
        rows.append({"window": run.window, "kind": "GP child", "operator": r.operator,
                     "parent": gp.to_infix(r.parent), "child": gp.to_infix(r.child),
                     "parent IC": r.parent_ic, "child IC": r.child_ic, "value corr": corr})
    for scheme in NNAFC_SCHEMES:
        for parent, child in zip(run.seeds[scheme], run.factors[scheme], strict=True):
            pv, cv = run.values(parent), run.values(child)
            rows.append({"window": run.window, "kind": "NNAFC update", "operator": scheme,
                         "parent": _label(parent), "child": child.name,
                         "parent IC": metrics.mean_ic(metrics.period_rank_ic(pv, panel, days, run.horizon)),
                         "child IC": metrics.mean_ic(metrics.period_rank_ic(cv, panel, days, run.horizon)),
                         "value corr": value_corr(pv, cv, panel, days)})
    return pd.DataFrame(rows, columns=["window", "kind", "operator", "parent", "child", "parent IC",
                                       "child IC", "value corr"])


def inheritance_summary(pairs: pd.DataFrame) -> pd.DataFrame:
    """Per kind of update: how many pairs, how the child's training IC follows the parent's.

    `ic_corr`: correlation of parent and child IC across pairs; `kept_share`: share of children
    whose IC is at least the parent's; `failed_share`: children with an undefined IC (a formula
    that no longer computes); `mean_change`: child minus parent IC; `value_corr`: median of the
    pairs' mean daily Spearman correlation of values.
    """
    rows = {}
    for kind, frame in pairs.groupby("kind", sort=True):
        ok = frame.dropna(subset=["parent IC", "child IC"])
        diff = ok["child IC"] - ok["parent IC"]
        rows[kind] = {
            "pairs": len(frame),
            "ic_corr": ok["parent IC"].corr(ok["child IC"]) if len(ok) > 2 else np.nan,
            "kept_share": float((diff >= 0).mean()) if len(ok) else np.nan,
            "failed_share": float(frame["child IC"].isna().mean()),
            "mean_change": float(diff.mean()) if len(ok) else np.nan,
            "value_corr": float(frame["value corr"].median()),
        }
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "update"
    return out


def gp_example(lineage: pd.DataFrame, top: float = 0.75) -> pd.DataFrame:
    """The run's own formula (9) -> (10): among mutations of a parent whose training IC is in the
    top `1 - top` of the parents, the one whose child lost the most IC (parent and child, infix).

    Empty when the run recorded no such mutation (e.g. no generation after the first).
    """
    cols = ["role", "formula", "infix", "train IC"]
    muts = lineage[lineage["changed"] & (lineage["operator"] == "mutation") & lineage["parent_ic"].notna()]
    if muts.empty:
        return pd.DataFrame(columns=cols)
    strong = muts[muts["parent_ic"] >= muts["parent_ic"].quantile(top)]
    if strong["child_ic"].notna().any():  # a child that still computes shows the point best
        strong = strong[strong["child_ic"].notna()]
    drop = strong["parent_ic"] - strong["child_ic"].fillna(-np.inf)
    r = strong.loc[drop.sort_values(ascending=False, kind="stable").index[0]]
    return pd.DataFrame([{"role": "parent", "formula": r["parent"], "infix": gp.to_infix(r["parent"]),
                          "train IC": r["parent_ic"]},
                         {"role": "child", "formula": r["child"], "infix": gp.to_infix(r["child"]),
                          "train IC": r["child_ic"]}], columns=cols)


def paper_formulas(run: SchemeRun) -> pd.DataFrame:
    """The paper's formulas (9) and (10) on this window: infix, rank IC on train / valid days,
    and the correlation of their values with formula (9)'s."""
    days, panel = run.split.train, run.panel
    values = {k: _gp_values(f, panel, slice(days.start, run.split.valid.stop), run.gp_result.config.history)
              for k, f in PAPER_FORMULAS.items()}
    rows = []
    for k, formula in PAPER_FORMULAS.items():
        v = values[k]
        rows.append({"formula": k, "infix": gp.to_infix(formula),
                     "train IC": metrics.mean_ic(metrics.period_rank_ic(v, panel, days, run.horizon)),
                     "valid IC": metrics.mean_ic(
                         metrics.period_rank_ic(v, panel, run.split.valid, run.horizon)),
                     "value corr with (9)": value_corr(values["(9)"], v, panel, days)})
    return pd.DataFrame(rows).set_index("formula")


# ----------------------------------------------------------------------------- rolling windows


@dataclass
class Rolling:
    """Table 4 over rolling windows: `table` (window, scheme) rows and their "mean", per-factor
    ICs, inheritance pairs, GP formulas and timings of every window, and the runs themselves."""

    table: pd.DataFrame
    per_factor: pd.DataFrame
    pairs: pd.DataFrame
    formulas: pd.DataFrame
    timings: pd.DataFrame
    runs: dict[str, SchemeRun]

    @property
    def last(self) -> SchemeRun:
        """The last window's run (for the examples shown in detail)."""
        return list(self.runs.values())[-1]

    @property
    def mean(self) -> pd.DataFrame:
        """Table 4 averaged over the windows (rows: schemes)."""
        return self.table.loc["mean"]


def study_schemes(study: Study, build: bool = False, diversity_days: int = 20, seed: int = 0,
                  max_gp_pairs: int = 100, families: Mapping[str, str] = SCHEME_FAMILIES) -> Rolling:
    """Table 4 on every window of the factor study (`study_run`, then `measure`)."""
    return measure((study_run(study, w, build, families) for w in range(len(study.windows()))),
                   diversity_days, seed, max_gp_pairs)


def measure(runs: Iterable[SchemeRun], diversity_days: int = 20, seed: int = 0,
            max_gp_pairs: int = 100) -> Rolling:
    """Measure each window's schemes out of sample (`factor_ics`, `scheme_table`, `inheritance`),
    one window at a time (its memoised values are released before the next is read)."""
    frames, per_factor, pairs, formulas, timings, kept = {}, [], [], [], [], {}
    for run in runs:
        t0 = time.perf_counter()
        ics = factor_ics(run)
        frames[run.window] = scheme_table(run, ics, diversity_days, seed)
        pairs.append(inheritance(run, max_gp_pairs, seed))
        per_factor.append(ics)
        gp_test = ics.loc[ics["scheme"] == "Only GP", "test IC"].to_numpy()  # same order as the GP table
        formulas.append(run.gp_result.table.iloc[:len(gp_test)].assign(window=run.window, test_ic=gp_test))
        timings.append({"window": run.window, "GP s": run.seconds["gp"], "NNAFC s": run.seconds["nnafc"],
                        "measure s": time.perf_counter() - t0, "from zoo": run.reused,
                        "constructed": sum(len(run.factors[s]) for s in NNAFC_SCHEMES) - run.reused})
        run.release()
        kept[run.window] = run
    table = pd.concat(frames, names=["window"])
    mean = table.groupby(level="scheme", sort=False).mean()
    table = pd.concat([table, pd.concat({"mean": mean}, names=["window"])])
    cols = ["window", "infix", "rpn", "train_ic", "valid_ic", "test_ic"]
    return Rolling(table=table, per_factor=pd.concat(per_factor, ignore_index=True),
                   pairs=pd.concat(pairs, ignore_index=True),
                   formulas=pd.concat(formulas, ignore_index=True)[cols],
                   timings=pd.DataFrame(timings).set_index("window"), runs=kept)


# ----------------------------------------------------------------------------- facts, plot


def _wins(table: pd.DataFrame, a: str, b: str, column: str = "IC") -> tuple[int, int]:
    """In how many windows scheme `a` has the higher `column` than `b`, of how many."""
    w = table.drop(index="mean", level="window")[column].unstack("scheme")
    ok = w[[a, b]].dropna()
    return int((ok[a] > ok[b]).sum()), len(ok)


def table4_facts(rolling: Rolling, paper_table: pd.DataFrame) -> pd.DataFrame:
    """What our Table 4 says against the paper's, as numbers (one row per scheme).

    Columns: mean test IC ours / paper and each one's rank (1 = highest), diversity ours / paper
    and ranks, the windows in which the scheme's test IC beats Only GP's (and of how many), and
    the standard deviation of the test IC across the scheme's factors (how noisy one factor is).
    `attrs`: n_windows, test_days (mean test days per window), ic_order_agrees, diversity_order_agrees.
    """
    mean = rolling.mean.reindex(list(SCHEMES))
    theirs = paper_table.reindex(list(SCHEMES))
    spread = rolling.per_factor.groupby("scheme")["test IC"].std()
    out = pd.DataFrame(index=pd.Index(list(SCHEMES), name="scheme"))
    out["IC ours"], out["IC paper"] = mean["IC"], theirs["IC"]
    out["IC rank ours"] = out["IC ours"].rank(ascending=False)
    out["IC rank paper"] = out["IC paper"].rank(ascending=False)
    out["diversity ours"], out["diversity paper"] = mean["diversity"], theirs["diversity"]
    out["diversity rank ours"] = out["diversity ours"].rank(ascending=False)
    out["diversity rank paper"] = out["diversity paper"].rank(ascending=False)
    wins = {s: _wins(rolling.table, s, "Only GP") for s in NNAFC_SCHEMES}
    out["beats Only GP"] = pd.Series({s: w[0] for s, w in wins.items()})
    out["windows compared"] = pd.Series({s: w[1] for s, w in wins.items()})
    out["test IC std over factors"] = spread.reindex(out.index)
    out.attrs.update(
        n_windows=len(rolling.runs),
        test_days=int(np.mean([r.split.test.stop - r.split.test.start for r in rolling.runs.values()])),
        ic_order_agrees=bool((out["IC rank ours"] == out["IC rank paper"]).all()),
        diversity_order_agrees=bool((out["diversity rank ours"] == out["diversity rank paper"]).all()),
    )
    return out


def ranked(values: pd.Series) -> str:
    """"A > B > C" from the highest value down (NaN last): an order to print beside numbers."""
    return " > ".join(values.sort_values(ascending=False, na_position="last").index.astype(str))


def plot_inheritance(pairs: pd.DataFrame, axes: Sequence | None = None) -> Sequence:
    """Left: child vs parent training IC for GP children and NNAFC updates (diagonal: no change);
    right: the distribution of parent-child value correlations. Returns the two axes."""
    import matplotlib.pyplot as plt  # plotting only here: the measurements do not need it

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    ax, bx = axes
    kinds = sorted(pairs["kind"].unique())
    for kind, marker in zip(kinds, "o^s", strict=False):
        sub = pairs[pairs["kind"] == kind]
        ax.scatter(sub["parent IC"], sub["child IC"], s=18, alpha=0.6, marker=marker, label=kind)
    both = pairs[["parent IC", "child IC"]].to_numpy(dtype=float)
    lo, hi = np.nanmin(both), np.nanmax(both)
    ax.plot([lo, hi], [lo, hi], color="grey", lw=1, ls="--")
    ax.set_xlabel("parent (seed) training IC")
    ax.set_ylabel("child training IC")
    ax.set_title("Does the child keep its parent's IC?")
    ax.legend()
    data = [pairs.loc[pairs["kind"] == k, "value corr"].dropna().to_numpy() for k in kinds]
    bx.boxplot(data, tick_labels=kinds)
    bx.axhline(0, color="grey", lw=1)
    bx.set_ylabel("value correlation (Spearman)")
    bx.set_title("How alike are their values?")
    return axes
