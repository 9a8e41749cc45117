"""§4.2, Table 4: Only GP / GP and NNAFC / Only NNAFC, built on the same split and compared out of sample.

- Only GP: the GP baseline's factors (`nnafc.gp`), selected on validation.
- GP and NNAFC: each GP factor used as the seed of an NNAFC construction (pre-train on it, prune,
  train on rank IC).
- Only NNAFC: NNAFC constructions seeded by prior-knowledge factors (`nnafc.pk`).

Construction and selection read the panel only up to the end of validation; the test days are
read afterwards, to report.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch

from nnafc import construct, gp, metrics, pk
from nnafc.data import Panel, Split, forward_returns, make_split
from nnafc.factor import Factor
from nnafc.ops import average_ranks

SCHEMES = ("Only GP", "GP and NNAFC", "Only NNAFC")


@dataclass
class SchemeRun:
    factors: dict[str, list[Factor]]  # scheme -> its factors
    gp_result: gp.GPResult
    seeds: dict[str, list[Factor]]  # the seed of each NNAFC factor, per NNAFC scheme


def run_schemes(panel: Panel, split: Split, n_factors: int = 10, gp_cfg: dict | None = None,
                construct_cfg: dict | None = None, pk_seeds: list[str] | None = None,
                net: str = "fcn") -> SchemeRun:
    """Run the three schemes of §4.2 on one split (FCN, as the paper's Table 4)."""
    gp_result = gp.run_gp(panel, split, gp.GPConfig.from_dict({**(gp_cfg or {}), "n_factors": n_factors}))
    gp_factors = gp_result.factors[:n_factors]
    names = pk_seeds or list(pk.PK50)[:: max(1, len(pk.PK50) // n_factors)]  # spread over the families
    pk_factors = [pk.factor(name) for name in names[:n_factors]]
    cfg = construct.as_config(construct_cfg)
    build = [construct.construct_factor(f, net, panel, split, replace(cfg, seed=cfg.seed + i))
             for i, f in enumerate(gp_factors + pk_factors)]
    return SchemeRun(
        factors={"Only GP": gp_factors, "GP and NNAFC": build[: len(gp_factors)],
                 "Only NNAFC": build[len(gp_factors):]},
        gp_result=gp_result,
        seeds={"GP and NNAFC": gp_factors, "Only NNAFC": pk_factors},
    )


def _test_ic(values: np.ndarray, panel: Panel, days: slice, horizon: int) -> np.ndarray:
    fwd = forward_returns(panel["close"], horizon, last_day=days.stop - 1)[days]
    return metrics.rank_ic(values[days], fwd, panel.in_universe[days])


def scheme_table(run: SchemeRun, panel: Panel, split: Split, horizon: int = 5, diversity_days: int = 20,
                 seed: int = 0) -> pd.DataFrame:
    """Table 4: per scheme, the mean over its factors of the test-split rank IC and ICIR, and the
    diversity (Eq. 18-19, on cross-sectional ranks) of its factors on `diversity_days` random test days."""
    rows = {}
    for scheme in SCHEMES:
        factors = run.factors.get(scheme, [])
        if not factors:
            rows[scheme] = {"IC": np.nan, "ICIR": np.nan, "diversity": np.nan, "factors": 0}
            continue
        values = [f.values(panel) for f in factors]
        summaries = [metrics.ic_summary(_test_ic(v, panel, split.test, horizon)) for v in values]
        # Eq. 18 asks for normalised values: cross-sectional ranks, so a formula's heavy tails
        # (common in raw GP output) do not dominate its softmax
        test_values = [average_ranks(torch.from_numpy(v[split.test].astype(np.float64))).numpy()
                       for v in values]
        days = min(diversity_days, split.test.stop - split.test.start)
        rows[scheme] = {
            "IC": float(np.nanmean([s.mean for s in summaries])),
            "ICIR": float(np.nanmean([s.icir for s in summaries])),
            "diversity": metrics.diversity(test_values, days=days, seed=seed) if len(values) > 1 else np.nan,
            "factors": len(values),
        }
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "scheme"
    return table


def nnafc_inheritance(run: SchemeRun) -> pd.DataFrame:
    """How much an NNAFC update keeps of its seed: seed vs constructed rank IC (training and
    validation, from the construction's record) per constructed factor."""
    rows = []
    for scheme in ("GP and NNAFC", "Only NNAFC"):
        for seed, made in zip(run.seeds[scheme], run.factors[scheme], strict=True):
            ic = made.meta["ic"]
            rows.append({
                "scheme": scheme, "seed": seed.meta.get("infix", seed.name),
                "seed train IC": ic["seed"]["train"], "constructed train IC": ic["constructed"]["train"],
                "seed valid IC": ic["seed"]["valid"], "constructed valid IC": ic["constructed"]["valid"],
            })
    return pd.DataFrame(rows)


def inheritance_summary(run: SchemeRun) -> pd.DataFrame:
    """GP children vs NNAFC updates: correlation of parent/seed IC with child/constructed IC
    (training days) and the share whose IC fell."""
    gp_side = gp.inheritance(run.gp_result.lineage).loc[["all"], ["n", "ic_corr", "worse_share"]]
    gp_side.index = ["GP child vs parent"]
    nn = nnafc_inheritance(run)
    before, after = nn["seed train IC"], nn["constructed train IC"]
    nn_side = pd.DataFrame({"n": [len(nn)], "ic_corr": [before.corr(after) if len(nn) > 2 else np.nan],
                            "worse_share": [float((after < before).mean()) if len(nn) else np.nan]},
                           index=["NNAFC factor vs seed"])
    return pd.concat([gp_side, nn_side])


def rolling_scheme_table(panel: Panel, train_starts: list[str], n_factors: int = 10,
                         gp_cfg: dict | None = None, construct_cfg: dict | None = None,
                         **sizes: int) -> tuple[pd.DataFrame, dict]:
    """Table 4 on rolling 250/30/90-day windows: one row per (window, scheme) and their mean.

    Returns the table (index: window start or "mean", scheme) and the runs by window start.
    """
    frames, runs = {}, {}
    for start in train_starts:
        split = make_split(panel.dates, start, **sizes)
        runs[start] = run = run_schemes(panel, split, n_factors, gp_cfg, construct_cfg)
        frames[str(split.dates()["train"][0].date())] = scheme_table(run, panel, split)
    table = pd.concat(frames, names=["train start"])
    mean = table.groupby(level="scheme", sort=False).mean()
    table = pd.concat([table, pd.concat({"mean": mean}, names=["train start"])])
    return table, runs
