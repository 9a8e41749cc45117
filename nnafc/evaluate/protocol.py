"""The construction protocol study: which way of constructing factors holds up on unseen years.

A factor whose validation IC is high but whose test IC fades was chosen on noise. Candidates
(construction settings) are compared on **selection windows** (training starts 2012-2015), whose
test days may inform the choice, and the winner is then **confirmed** on windows the choice never
saw (training starts 2016-2019, the study's windows), read once:

    table = protocol_run(panel, CANDIDATES, SELECTION_STARTS, seeds, zoo="runs/protocol/zoo")
    selection_table(table)            # per candidate: valid IC, test IC, test / valid, cost; chosen
    best_pk_baseline(panel, split)    # the bar: the best PK 50 factor (with its sign) on train + valid

Every factor is one `nnafc.runner` job in a zoo, so a long study resumes where it stopped.
Candidates not here yet (each needs a construction feature first): averaging K networks into one
factor, dropout, the residual form (a correction to the seed factor's rank), seeding with the PK
factor best on the training days, and the decorrelation term of Eq. 7 (it needs a factor pool).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from nnafc import metrics
from nnafc.data import Panel, Split
from nnafc.evaluate.quality import quality_run

SELECTION_STARTS = ("2012-01-01", "2013-01-01", "2014-01-01", "2015-01-01")  # choose here
CONFIRMATION_STARTS = ("2016-01-01", "2017-01-01", "2018-01-01", "2019-01-01")  # report here, once
SIZES = {"n_train": 250, "n_valid": 30, "n_test": 90}  # §4.1


@dataclass(frozen=True)
class Candidate:
    """One construction protocol: ConstructConfig overrides and split-size overrides."""

    config: dict = field(default_factory=dict)
    sizes: dict = field(default_factory=dict)  # n_train / n_valid / n_test (a departure from §4.1)


CANDIDATES: dict[str, Candidate] = {
    "defaults": Candidate(),
    "lr 1e-3": Candidate({"lr": 1e-3}),
    "10 epochs": Candidate({"epochs": 10}),
    "weight decay 0.01": Candidate({"weight_decay": 0.01}),
    "smoothed choice (3 epochs)": Candidate({"valid_smoothing": 3}),
    "half the stocks per step": Candidate({"stock_fraction": 0.5}),
    "soft-rank loss": Candidate({"loss": "softrank"}),
    "10-day label": Candidate({"horizon": 10}),
    "60 validation days": Candidate(sizes={"n_valid": 60}),
    "500 training days": Candidate(sizes={"n_train": 500}),
}


def protocol_run(panel: Panel, candidates: Mapping[str, Candidate], train_starts: Sequence[str],
                 seeds: Sequence[str], net: str = "fcn", base: dict | None = None,
                 zoo: str | Path = "zoo", init_seeds: Sequence[int] = (0,), n_jobs: int = 1,
                 progress: bool = True) -> pd.DataFrame:
    """Construct (or load) every candidate's factors on every window; one row per factor.

    The rows are `quality_run`'s (window, seed factor, init seed, train / valid / test IC, seconds)
    with the candidate's name first; `window` is the §4.1 window's first training day for every
    candidate. A candidate with a longer training or validation split starts that much earlier,
    so that every candidate is tested on the same days. `base`: ConstructConfig overrides shared
    by every candidate.
    """
    frames = []
    for name, cand in candidates.items():
        cfg = {**(base or {}), **cand.config}
        sizes = {**SIZES, **cand.sizes}
        starts = _aligned_starts(panel, train_starts, sizes)
        table = quality_run(panel, seeds, list(starts), net, cfg, zoo=zoo, init_seeds=init_seeds,
                            n_jobs=n_jobs, progress=progress, **sizes)
        table["window"] = table["window"].map(starts)
        frames.append(table.assign(candidate=name))
    out = pd.concat(frames, ignore_index=True)
    return out[["candidate", *[c for c in out.columns if c != "candidate"]]]


def _aligned_starts(panel: Panel, train_starts: Sequence[str], sizes: Mapping[str, int]) -> dict[str, str]:
    """{first training day of the candidate: the §4.1 window's} so that the test days coincide."""
    extra = sizes["n_train"] + sizes["n_valid"] - SIZES["n_train"] - SIZES["n_valid"]
    out = {}
    for start in train_starts:
        j = int(panel.dates.searchsorted(pd.Timestamp(start)))  # the window's first training day
        if not 0 <= j - extra < len(panel.dates) or j >= len(panel.dates):
            raise ValueError(f"a {sizes['n_train']}/{sizes['n_valid']}-day split tested where the window "
                             f"from {start} is needs {extra} more trading days before it")
        out[str(panel.dates[j - extra].date())] = str(panel.dates[j].date())
    return out


def selection_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per candidate, over its factors: mean valid and test IC, test / valid (how much survives),
    the share of factors whose test IC beats their seed factor's, seconds per factor, and which
    candidate is chosen: the highest mean test IC of the selection windows (never a confirmation
    window's)."""
    g = table.groupby("candidate", sort=False)
    out = pd.DataFrame({
        "factors": g.size(),
        "valid IC": g["valid IC"].mean(),
        "test IC": g["test IC"].mean(),
        "test IC std": g["test IC"].std(),
        "beats seed factor": g.apply(lambda f: float((f["test IC"] > f["seed factor test IC"]).mean()),
                                     include_groups=False),
        "seconds per factor": g["seconds"].mean(),
    })
    out["test / valid"] = out["test IC"] / out["valid IC"]
    out["chosen"] = out.index == out["test IC"].idxmax()
    return out


def best_pk_baseline(panel: Panel, split: Split, horizon: int = 5, factors: Sequence | None = None) -> dict:
    """The bar any construction must clear: the PK 50 factor with the highest |mean rank IC| on the
    window's training + validation days, traded with that sign; its test IC measured after the choice.

    Returns name, sign, the choice's train + valid IC (signed) and the test IC (signed).
    """
    from nnafc import pk

    chosen_on = slice(split.train.start, split.valid.stop)
    best = (None, 0.0, -np.inf, None)
    for f in factors if factors is not None else pk.pk50():
        values = f.values(panel)  # (T, N) causal
        ic = metrics.mean_ic(metrics.period_rank_ic(values, panel, chosen_on, horizon))
        if np.isfinite(ic) and abs(ic) > best[2]:
            best = (f.name, float(np.sign(ic)), abs(ic), values)
    name, sign, ic, values = best
    if name is None:
        raise ValueError("no PK factor has a defined rank IC on the training and validation days")
    test = metrics.mean_ic(metrics.period_rank_ic(values, panel, split.test, horizon))
    return {"factor": name, "sign": sign, "train+valid IC": ic, "test IC": sign * test}
