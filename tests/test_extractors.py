"""Table 6 (`nnafc.evaluate.extractors`): per-family summaries, same-window comparisons and the
paper's claims, on constructed factor tables with known answers; the factor table read from a tiny
study on real data lives in test_study.py."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nnafc import headline
from nnafc.evaluate import extractors
from nnafc.headline import FAILS, HOLDS, NOT_RUN, PARTLY


def _factors() -> pd.DataFrame:
    rows = []
    ic = {"gp": {"w1": [0.02, 0.04], "w2": [0.06, 0.08]},
          "fcn": {"w1": [0.10, 0.12], "w2": [0.14, 0.16]},
          "lstm": {"w1": [0.01, 0.03]}}  # built on the weak window only
    for family, windows in ic.items():
        for window, values in windows.items():
            for i, v in enumerate(values):
                rows.append({"family": family, "type": extractors.TYPES[family], "window": window,
                             "factor": f"{family}{i}", "seed factor": "" if family == "gp" else "MA10",
                             "valid IC": v + 0.02, "test IC": v,
                             "seed factor test IC": np.nan if family == "gp" else 0.05, "seconds": 100.0})
    return pd.DataFrame(rows, columns=extractors.COLUMNS)


def test_table6_summarises_each_family() -> None:
    t = extractors.table6(_factors(), ["gp", "fcn", "lstm", "tcn"])
    assert t.loc["fcn", "factors"] == 4 and t.loc["fcn", "windows"] == 2
    assert t.loc["fcn", "test IC"] == pytest.approx(0.13)
    assert t.loc["fcn", "valid - test"] == pytest.approx(0.02)
    assert t.loc["fcn", "beats seed"] == 1.0 and t.loc["lstm", "beats seed"] == 0.0
    assert np.isnan(t.loc["gp", "beats seed"])  # formulas have no seed
    assert t.loc["fcn", "hours for 50"] == pytest.approx(100 * 50 / 3600)
    assert t.loc["tcn", "factors"] == 0 and np.isnan(t.loc["tcn", "test IC"])
    assert t.loc["lstm", "IC paper"] == 0.170 and t.loc["lstm", "type"] == "Temporal"


def test_families_compare_on_the_windows_they_share() -> None:
    factors = _factors()
    assert extractors.common_windows(factors, ["gp", "fcn", "lstm", "tcn"]) == ["w1"]
    pairs = extractors.paired(factors, "gp", ["gp", "fcn", "lstm"])
    assert pairs.loc["fcn", "windows"] == 2 and pairs.loc["fcn", "windows ahead"] == 2
    assert pairs.loc["fcn", "mean difference"] == pytest.approx(0.08)
    assert pairs.loc["fcn", "low"] == pytest.approx(0.08) == pairs.loc["fcn", "high"]  # the same gap twice
    assert pairs.loc["lstm", "windows"] == 1 and pairs.loc["lstm", "mean difference"] == pytest.approx(-0.01)
    assert np.isnan(pairs.loc["lstm", "low"])  # one window: no t interval
    # the bootstrap over windows x factors: gaps of 0.06 .. 0.10 between single factors of a window
    assert 0.05 <= pairs.loc["fcn", "boot low"] < 0.08 < pairs.loc["fcn", "boot high"] <= 0.11
    assert pairs.loc["lstm", "boot low"] < -0.01 < pairs.loc["lstm", "boot high"]  # over factors alone
    assert pairs.loc["lstm", "boot low"] >= -0.04 and pairs.loc["lstm", "boot high"] <= 0.02


def test_table6_claims() -> None:
    factors = _factors()
    same = extractors.table6(factors[factors["window"].isin(["w1"])], ["gp", "fcn", "lstm", "tcn"])
    claims = {c.claim: c for c in headline.table6_claims(same)}
    assert claims["Table 6: test IC of fcn"].verdict == HOLDS  # 0.11 against 0.124: within 25 %
    assert claims["Table 6: test IC of tcn"].verdict == NOT_RUN
    beat = next(c for k, c in claims.items() if "beats GP" in k)
    assert beat.ours == 0.5 and beat.verdict == PARTLY  # fcn above GP, lstm below
    lead = next(c for k, c in claims.items() if "LSTM" in k)
    assert lead.ours == pytest.approx(0.02 - 0.11) and lead.verdict == FAILS
    assert all(c.verdict != HOLDS or c.ours is not None for c in claims.values())
    simple = next(c for k, c in claims.items() if "simpler" in k)
    assert simple.verdict == NOT_RUN  # no pair of the same type among gp, fcn, lstm (tcn not built)


def test_diversity_joins_table6_and_its_claims_read_it() -> None:
    factors = _factors()
    div = pd.DataFrame({"family": ["gp", "fcn", "lstm"], "window": ["w1"] * 3, "factors": [2, 2, 2],
                        "diversity": [0.5, 0.3, 0.6]})
    same = extractors.table6(factors[factors["window"].isin(["w1"])], ["gp", "fcn", "lstm", "tcn"], div)
    assert same.loc["lstm", "diversity"] == 0.6 and same.loc["lstm", "diversity factors"] == 2
    assert np.isnan(same.loc["tcn", "diversity"]) and same.loc["fcn", "diversity paper"] == 22.151
    claims = {c.claim: c for c in headline.table6_claims(same)}
    beat = next(c for k, c in claims.items() if "diversity" in k and "beats GP" in k)
    assert beat.ours == 0.5 and beat.verdict == PARTLY  # lstm above GP, fcn below
    temporal = next(c for k, c in claims.items() if "temporal" in k)
    assert temporal.ours == pytest.approx(0.6 - 0.3) and temporal.verdict == HOLDS  # the paper's way
