"""Table 4's schemes on a small simulated market: all three built, measured on test days only."""

import numpy as np
import pytest

from nnafc.data import make_split
from nnafc.evaluate import schemes
from nnafc.simulate import simulate_market


@pytest.fixture(scope="module")
def run_and_split():
    panel = simulate_market(n_stocks=40, n_days=520, seed=4)
    split = make_split(panel.dates, panel.dates[120], n_train=150, n_valid=30, n_test=60)
    run = schemes.run_schemes(panel, split, n_factors=2, gp_cfg={"population": 30, "generations": 1},
                              construct_cfg={"epochs": 2, "pretrain_epochs": 1})
    return panel, split, run


def test_every_scheme_has_its_factors(run_and_split):
    _, _, run = run_and_split
    assert [len(run.factors[s]) for s in schemes.SCHEMES] == [2, 2, 2]
    assert all(f.origin == "gp" for f in run.factors["Only GP"])
    assert all(f.origin == "nnafc" for f in run.factors["GP and NNAFC"] + run.factors["Only NNAFC"])
    # GP and NNAFC factors were seeded by the GP formulas, in order
    assert [f.meta["seed"] for f in run.factors["GP and NNAFC"]] == [f.name for f in run.factors["Only GP"]]


def test_scheme_table_measures_test_days(run_and_split):
    panel, split, run = run_and_split
    table = schemes.scheme_table(run, panel, split)
    assert list(table.index) == list(schemes.SCHEMES)
    assert np.isfinite(table[["IC", "ICIR", "diversity"]].to_numpy()).all()
    # corrupting the test days' prices changes the measured IC: it is an out-of-sample number
    moved = panel.fields["close"].copy()
    moved[split.test] = moved[split.test][:, np.random.default_rng(0).permutation(moved.shape[1])]
    from dataclasses import replace

    shuffled = replace(panel, fields={**panel.fields, "close": moved})
    assert not np.allclose(schemes.scheme_table(run, shuffled, split)["IC"], table["IC"])


def test_inheritance_tables(run_and_split):
    _, _, run = run_and_split
    summary = schemes.inheritance_summary(run)
    assert list(summary.index) == ["GP child vs parent", "NNAFC factor vs seed"]
    assert summary.loc["NNAFC factor vs seed", "n"] == 4
    assert len(schemes.nnafc_inheritance(run)) == 4


def test_rolling_table_has_each_window_and_the_mean():
    panel = simulate_market(n_stocks=30, n_days=500, seed=5)
    starts = [str(panel.dates[120].date()), str(panel.dates[180].date())]
    table, runs = schemes.rolling_scheme_table(
        panel, starts, n_factors=2, gp_cfg={"population": 20, "generations": 1},
        construct_cfg={"epochs": 1, "pretrain_epochs": 1}, n_train=120, n_valid=20, n_test=40,
    )
    assert set(runs) == set(starts)
    assert list(table.index.get_level_values(0).unique()) == [*starts, "mean"]
    np.testing.assert_allclose(table.loc["mean", "IC"].to_numpy(),
                               (table.loc[starts[0], "IC"] + table.loc[starts[1], "IC"]).to_numpy() / 2)
