"""The construction quality study: many constructed factors on rolling windows, test rank IC.

§4.2 reports one number per network (Table 6: FCN 0.124, mean IC of its factors out of
sample). Here it is measured per window and per seed factor, so the spread is visible:

    table = quality_run(panel, pk.names(table1_only=True), ["2016-01-01", "2017-01-01"], zoo=...)
    quality_summary(table)          # per window: mean / spread of test IC, vs the seeds' own

Every (window, seed factor, init seed) is one `nnafc.runner` job: factors already in the zoo
are loaded, not trained again (the protocol study builds its candidates so). The book's quality
section reads the factor study instead (`Study.ic_table`, its rows made by `meta_row` as here).
Construction reads nothing after a window's validation days; the test ICs stored with each
factor are only measured.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from nnafc import construct
from nnafc.data import Panel, make_split

AIM = 0.10  # the quality aim for the mean test rank IC (the paper's FCN: 0.124)


def quality_jobs(panel: Panel, seeds: Sequence[str], train_starts: Sequence[str], net: str = "fcn",
                 cfg: construct.ConstructConfig | dict | None = None, init_seeds: Sequence[int] = (0,),
                 n_train: int = 250, n_valid: int = 30, n_test: int = 90) -> list:
    """One runner job per (window, init seed, seed factor), windows in order (as `nnafc construct`)."""
    from nnafc.runner import Job

    base = replace(construct.as_config(cfg), net=net)
    jobs = []
    for start in train_starts:
        split = make_split(panel.dates, start, n_train=n_train, n_valid=n_valid, n_test=n_test)
        for init in init_seeds:
            jobs += [Job(seed, net, split, replace(base, seed=int(init))) for seed in seeds]
    return jobs


def quality_run(panel: Panel, seeds: Sequence[str], train_starts: Sequence[str], net: str = "fcn",
                cfg: construct.ConstructConfig | dict | None = None, zoo: str | Path = "zoo",
                init_seeds: Sequence[int] = (0,), n_jobs: int = 1, progress: bool = True,
                **sizes: int) -> pd.DataFrame:
    """Construct (or load from `zoo`) every factor of the study; one row per factor.

    Columns: window (first training day), seed factor, init seed, the seed factor's and the constructed
    factor's rank IC on train / valid / test, the epoch chosen on validation, seconds, and
    whether it came from the zoo. A job that fails after its retry raises `RunError`.
    """
    from nnafc.runner import run_jobs
    from nnafc.zoo import Zoo

    jobs = quality_jobs(panel, seeds, train_starts, net, cfg, init_seeds, **sizes)
    store = Zoo(zoo)
    result = run_jobs(jobs, panel, store, n_jobs=n_jobs, progress=progress)
    rows = [{**meta_row(store.meta(o.key)), "from zoo": o.status == "skipped", "key": o.key}
            for o in result.outcomes]
    return pd.DataFrame(rows)


def meta_row(meta: dict) -> dict:
    """One factor's row of a quality table, from its stored metadata (`nnafc.zoo`): window (first
    training day), seed factor, init seed, the seed factor's and the constructed factor's rank IC on
    train / valid / test, the epoch chosen on validation, and its construction seconds."""
    ic = meta["ic"]
    return {"window": meta["split"]["train"][0], "seed factor": meta["seed_factor"],
            "init seed": meta["config"]["seed"],
            **{f"seed factor {part} IC": ic["seed_factor"][part] for part in ("train", "valid", "test")},
            **{f"{part} IC": ic["constructed"][part] for part in ("train", "valid", "test")},
            "best epoch": meta["training"]["best_epoch"], "seconds": meta["seconds"]}


def quality_summary(table: pd.DataFrame, aim: float = AIM) -> pd.DataFrame:
    """Per window and over all windows: the test rank IC's mean and spread, against the seeds.

    `std` / `min` / `max` are over the window's factors (seed factors x init seeds); `beats seed factor`
    is the share of factors whose test IC exceeds their own seed factor's on the same days, and
    `beats |seed factor|` the share that also beats the seed traded the other way round (many seeds,
    e.g. MACD, are reversal signals with a negative IC).
    """
    def stats(g: pd.DataFrame) -> pd.Series:
        test = g["test IC"]
        return pd.Series({
            "factors": len(g), "test IC": test.mean(), "std": test.std(ddof=1) if len(g) > 1 else np.nan,
            "min": test.min(), "max": test.max(), "seed factor test IC": g["seed factor test IC"].mean(),
            "beats seed factor": (test > g["seed factor test IC"]).mean(),
            "beats |seed factor|": (test > g["seed factor test IC"].abs()).mean(),
            "valid IC": g["valid IC"].mean(),
        })

    per_window = table.groupby("window", sort=True)[list(table.columns)].apply(stats)
    overall = stats(table).rename("all windows")
    out = pd.concat([per_window, overall.to_frame().T])
    out["factors"] = out["factors"].astype(int)
    out[f"≥ {aim:g}"] = out["test IC"] >= aim
    return out


def by_seed(table: pd.DataFrame) -> pd.DataFrame:
    """Test IC per seed factor (rows) and window (columns), with the mean over windows of the
    constructed factor and of the seed itself: which prior knowledge leads to good factors."""
    ic = table.groupby(["seed factor", "window"])["test IC"].mean().unstack("window")
    seed_ic = table.groupby("seed factor")["seed factor test IC"].mean()
    out = ic.assign(mean=ic.mean(axis=1), **{"seed's own": seed_ic})
    return out.sort_values("mean", ascending=False)
