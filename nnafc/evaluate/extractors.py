"""§4.3, Table 6: the feature extractors compared on the factor study's windows.

Rows GP (Baseline), FCN (Vanilla), LeNet, ResNet (Spatial), LSTM, TCN, Transformer (Temporal): each
the study's family of that name (`params/study.yaml`), on the same windows and universe. A network
family's ICs are its factors' stored measurements (`Study.ic_table`: mean daily rank IC on the
validation and test days, and its seed factor's on the same days); GP formulas are measured the same
way from their values (`construct.measured_ics`: same stocks, same labels). Nothing is chosen on
test days; a family still being built reports the factors it has (`factors`, `windows`).

Beyond the paper: the spread over factors, validation against test IC (a family that shines on
its validation days and fades after overfits them), the share of factors that beat their own seed,
and a paired comparison with FCN and GP on the same windows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from nnafc import paper

if TYPE_CHECKING:
    from nnafc.study import Study

TYPES = {"gp": "Baseline", "fcn": "Vanilla", "lenet": "Spatial", "resnet": "Spatial",
         "lstm": "Temporal", "tcn": "Temporal", "transformer": "Temporal"}  # the paper's Table 6
FAMILIES = tuple(TYPES)
COLUMNS = ["family", "type", "window", "factor", "seed factor", "valid IC", "test IC", "seed factor test IC",
           "seconds"]


def gp_table(study: Study, window: int, family: str = "gp", like: str = "fcn") -> pd.DataFrame:
    """One row per GP formula of a window: valid / test rank IC measured as the construction
    measures (`construct.measured_ics`, with family `like`'s horizon, window length and
    standardisation), and the search's seconds shared over its formulas."""
    from nnafc import construct

    formulas = study.factor_set(family, window)
    split = study.windows()[window]
    cfg = study.params.families[like].config
    ics = construct.measured_ics([f.values(study.panel) for f in formulas], study.panel, split, cfg=cfg)
    seconds = study.gp_result(window).seconds / max(len(formulas), 1)
    return pd.DataFrame([{"family": family, "type": TYPES.get(family, ""),
                          "window": str(study.panel.dates[split.train.start].date()),
                          "factor": str(f.meta.get("infix", f.name)), "seed factor": "",
                          "valid IC": ic["valid"], "test IC": ic["test"], "seed factor test IC": np.nan,
                          "seconds": seconds}
                         for f, ic in zip(formulas, ics, strict=True)], columns=COLUMNS)


def factor_table(study: Study, families: Sequence[str] = FAMILIES) -> pd.DataFrame:
    """One row per factor the study holds for `families` on every window (missing ones left out:
    `inventory()` says what is missing); a family the study does not define has no rows."""
    frames = []
    for family in families:
        if family not in study.params.families:
            continue
        if study.params.families[family].kind == "gp":
            for w in range(len(study.windows())):
                try:
                    frames.append(gp_table(study, w, family))
                except LookupError:
                    continue
            continue
        t = study.ic_table(family, partial=True)
        if len(t):
            frames.append(t.assign(family=family, type=TYPES.get(family, ""), factor=t["key"])[COLUMNS])
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)


def common_windows(factors: pd.DataFrame, families: Sequence[str] = FAMILIES) -> list[str]:
    """The windows on which every family with any factor has factors: where families compare on the
    same test days (the years differ a lot: a family built only on a weak year looks weak)."""
    present = [f for f in families if (factors["family"] == f).any()]
    by_family = [set(factors.loc[factors["family"] == f, "window"]) for f in present]
    return sorted(set.intersection(*by_family)) if by_family else []


def table6(factors: pd.DataFrame, families: Sequence[str] = FAMILIES) -> pd.DataFrame:
    """Our Table 6: per family, its factors and windows, mean validation and test rank IC, the spread
    of the test IC over factors, the drop from validation to test, the share of factors that beat
    their own seed on test, and construction seconds per factor and hours for 50 (one core each),
    with the paper's IC and hours (a 1080 Ti GPU) beside them."""
    rows = {}
    for family in families:
        g = factors[factors["family"] == family]
        seeded = g.dropna(subset=["seed factor test IC"])
        rows[family] = {
            "type": TYPES.get(family, ""), "factors": len(g), "windows": g["window"].nunique(),
            "valid IC": g["valid IC"].mean(), "test IC": g["test IC"].mean(),
            "test IC std": g["test IC"].std(ddof=1) if len(g) > 1 else np.nan,
            "valid - test": (g["valid IC"] - g["test IC"]).mean(),
            "beats seed": ((seeded["test IC"] > seeded["seed factor test IC"]).mean()
                           if len(seeded) else np.nan),
            "seconds per factor": g["seconds"].mean(), "hours for 50": g["seconds"].mean() * 50 / 3600,
        }
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "family"
    theirs = paper.TABLE6_EXTRACTORS.reindex(out.index)
    out["IC paper"], out["hours paper"] = theirs["IC"], theirs["hours"]
    return out


def paired(factors: pd.DataFrame, against: str, families: Sequence[str] = FAMILIES) -> pd.DataFrame:
    """Each family against `against` on the windows both have: the mean over windows of the
    difference in mean test IC, in how many of those windows the family is ahead, and a 95 %
    Student-t interval of the mean difference over windows (NaN with fewer than two windows)."""
    from scipy import stats

    mean = factors.groupby(["family", "window"])["test IC"].mean().unstack("window")
    rows = {}
    for family in families:
        if family == against or family not in mean.index or against not in mean.index:
            continue
        diff = (mean.loc[family] - mean.loc[against]).dropna()
        n = len(diff)
        half = stats.t.ppf(0.975, n - 1) * diff.std(ddof=1) / np.sqrt(n) if n > 1 else np.nan
        rows[family] = {"windows": len(diff), "mean difference": diff.mean() if len(diff) else np.nan,
                        "windows ahead": int((diff > 0).sum()), "low": diff.mean() - half,
                        "high": diff.mean() + half}
    out = pd.DataFrame.from_dict(rows, orient="index",
                                 columns=["windows", "mean difference", "windows ahead", "low", "high"])
    out.index.name = f"family vs {against}"
    return out
