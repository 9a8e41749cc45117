"""§4.3, Table 6: the feature extractors compared on the factor study's windows.

Rows GP (Baseline), FCN (Vanilla), LeNet, ResNet (Spatial), LSTM, TCN, Transformer (Temporal): each
the study's family of that name (`params/study.yaml`), on the same windows and universe. A network
family's ICs are its factors' stored measurements (`Study.ic_table`: mean daily rank IC on the
validation and test days, and its seed factor's on the same days); GP formulas are measured the same
way from their values (`construct.measured_ics`: same stocks, same labels). Nothing is chosen on
test days; a family still being built reports the factors it has (`factors`, `windows`).

Diversity (Eq. 18-19) is measured from every factor's values on the test days
(`Study.test_values`), on equally many factors per family (`diversity_table`).

Beyond the paper: the spread over factors, validation against test IC (a family that shines on
its validation days and fades after overfits them), the share of factors that beat their own seed,
and a paired comparison with FCN and GP on the same windows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from nnafc import metrics, paper

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
                          "window": study.window_label(window),
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


def diversity_table(study: Study, families: Sequence[str] = FAMILIES, windows: Sequence[int] | None = None,
                    days: int = 20, seed: int = 0) -> pd.DataFrame:
    """Eq. 18-19 diversity per family and window: of the family's first `k` factors on `days` random
    test days (ranked per day, as Table 4), `k` the fewest any of the families has on that window.

    Diversity grows with the number of factors (points live in R^k), so families are compared on
    equally many: the first k members of every PK-seeded family share their seed factors (members
    are spread over the same seed list), GP's first k are its best formulas on validation. A
    window where a family has fewer than two factors is left out."""
    windows = range(len(study.windows())) if windows is None else windows
    families = [f for f in families if f in study.params.families]
    rows = []
    for w in windows:
        k = min((study.built(f, w) for f in families), default=0)
        if k < 2:
            continue
        for family in families:
            v = study.test_values(family, w, partial=True)[1]
            ranked = metrics.cross_sectional_ranks(v[:k])
            rows.append({"family": family, "window": study.window_label(w),
                         "factors": k, "diversity": metrics.diversity(ranked, days=days, seed=seed)})
    return pd.DataFrame(rows, columns=["family", "window", "factors", "diversity"])


def test_ic_table(study: Study, families: Sequence[str] = FAMILIES, windows: Sequence[int] | None = None
                  ) -> pd.DataFrame:
    """Per factor built on `windows` (default: every window): mean daily Pearson IC and rank IC
    on the window's test days and their ICIRs (mean / std over days), from the factor's test-day
    values (`Study.test_values`) against the §4.1 labels cut at the test period's end, over the
    point-in-time universe. Table 6's IC and ICIR columns."""
    from nnafc.data.windows import period_labels

    windows = range(len(study.windows())) if windows is None else windows
    rows = []
    for w in windows:
        test = study.windows()[w].test
        for family in [f for f in families if f in study.params.families and study.built(f, w)]:
            cfg = study.params.families[family].config
            labels = period_labels(study.panel["close"], test, cfg.horizon if cfg else 5)  # (D, N)
            mask = study.panel.in_universe[test]
            for i, v in enumerate(study.test_values(family, w, partial=True)[1]):
                pearson = metrics.ic_summary(metrics.ic(v, labels, mask))
                ranked = metrics.ic_summary(metrics.rank_ic(v, labels, mask))
                rows.append({"family": family, "window": study.window_label(w),
                             "factor": i, "IC": pearson.mean, "ICIR": pearson.icir,
                             "rank IC": ranked.mean, "rank ICIR": ranked.icir})
    return pd.DataFrame(rows, columns=["family", "window", "factor", "IC", "ICIR", "rank IC", "rank ICIR"])


def table6(factors: pd.DataFrame, families: Sequence[str] = FAMILIES,
           diversity: pd.DataFrame | None = None, ics: pd.DataFrame | None = None) -> pd.DataFrame:
    """Our Table 6: per family, its factors and windows, mean validation and test rank IC, the spread
    of the test IC over factors, the drop from validation to test, the share of factors that beat
    their own seed on test, and construction seconds per factor and hours for 50 (one core each),
    with the paper's IC and hours (a 1080 Ti GPU) beside them; with `diversity` (`diversity_table`,
    on the same windows) the mean diversity over windows and the paper's (of 50 factors); with `ics`
    (`test_ic_table`) the mean over factors of their test-day Pearson IC and ICIR, and rank IC
    (over the whole universe) and rank ICIR ("test ICIR")."""
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
    if ics is not None:
        means = ics.groupby("family")[["IC", "ICIR", "rank IC", "rank ICIR"]].mean().reindex(out.index)
        out = out.join(means.rename(columns={"IC": "test Pearson IC", "ICIR": "test Pearson ICIR",
                                             "rank IC": "test rank IC, universe", "rank ICIR": "test ICIR"}))
    if diversity is not None:
        out["diversity"] = diversity.groupby("family")["diversity"].mean().reindex(out.index)
        out["diversity factors"] = diversity.groupby("family")["factors"].min().reindex(out.index)
        out["diversity paper"] = theirs["diversity"]
    return out


def paired(factors: pd.DataFrame, against: str, families: Sequence[str] = FAMILIES, n_boot: int = 2000,
           seed: int = 0) -> pd.DataFrame:
    """Each family against `against` on the windows both have: the mean over windows of the
    difference in mean test IC, in how many of those windows the family is ahead, a 95 %
    Student-t interval of the mean difference over windows (`low`, `high`; NaN with fewer than
    two windows) and a 95 % bootstrap interval over windows x factors (`boot low`, `boot high`:
    windows drawn with replacement, then each family's factors within each drawn window; with one
    window, the spread over factors alone)."""
    from scipy import stats

    mean = factors.groupby(["family", "window"])["test IC"].mean().unstack("window")
    rng = np.random.default_rng(seed)
    rows = {}
    for family in families:
        if family == against or family not in mean.index or against not in mean.index:
            continue
        diff = (mean.loc[family] - mean.loc[against]).dropna()
        n = len(diff)
        half = stats.t.ppf(0.975, n - 1) * diff.std(ddof=1) / np.sqrt(n) if n > 1 else np.nan
        boot = _boot_difference(factors, family, against, list(diff.index), n_boot, rng)
        rows[family] = {"windows": len(diff), "mean difference": diff.mean() if len(diff) else np.nan,
                        "windows ahead": int((diff > 0).sum()), "low": diff.mean() - half,
                        "high": diff.mean() + half,
                        "boot low": np.quantile(boot, 0.025) if boot.size else np.nan,
                        "boot high": np.quantile(boot, 0.975) if boot.size else np.nan}
    out = pd.DataFrame.from_dict(rows, orient="index", columns=["windows", "mean difference", "windows ahead",
                                                                "low", "high", "boot low", "boot high"])
    out.index.name = f"family vs {against}"
    return out


def _boot_difference(factors: pd.DataFrame, family: str, against: str, windows: list, n_boot: int,
                     rng: np.random.Generator) -> np.ndarray:
    """`n_boot` draws of the mean over windows of (family's mean test IC - against's), windows and
    then each family's factors within a window drawn with replacement. Empty without windows."""
    if not windows:
        return np.empty(0)

    def resampled(f: str, w: str) -> np.ndarray:  # (n_boot,) means of factors drawn with replacement
        ic = factors.loc[(factors["family"] == f) & (factors["window"] == w), "test IC"].to_numpy(float)
        return ic[rng.integers(0, len(ic), (n_boot, len(ic)))].mean(axis=1)

    per_window = np.stack([resampled(family, w) - resampled(against, w) for w in windows], axis=1)  # (B, W)
    pick = rng.integers(0, len(windows), (n_boot, len(windows)))
    return np.take_along_axis(per_window, pick, axis=1).mean(axis=1)
