"""Table 4's schemes on a small simulated market: all three read from a tiny factor study built on
it, measured on test days only; the inheritance measures on constructed cases."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from nnafc import metrics, paper
from nnafc.evaluate import schemes
from nnafc.simulate import simulate_market
from nnafc.study import Study, load_params

SIZES = {"n_train": 120, "n_valid": 20, "n_test": 40}
SEEDS = ["MA10", "RSI12"]


def tiny_study(panel, root, starts, n_gp=2, n_seeded=2, build=True):
    """A factor study on `panel` with the three schemes' families, built now (seconds) unless not `build`."""
    import yaml

    (root / "params").mkdir(parents=True, exist_ok=True)
    path = root / "params" / "study.yaml"
    path.write_text(yaml.safe_dump({
        "train_starts": starts, **SIZES, "zoo": str(root / "zoo"), "n_jobs": 1, "progress": False,
        "config": {"epochs": 2, "pretrain_epochs": 1},
        "families": {"gp": {"factors": n_gp, "gp": {"population": 24, "generations": 2}},
                     "fcn": {"factors": 2, "seeds": SEEDS}, "fcn+gp": {"factors": n_seeded}}}))
    study = Study(load_params(path), panel)
    if build:
        study.build(log=lambda _: None)
    return study


@pytest.fixture(scope="module")
def panel():
    return simulate_market(n_stocks=30, n_days=480, seed=5)


@pytest.fixture(scope="module")
def rolled(panel, tmp_path_factory):
    starts = [str(panel.dates[i].date()) for i in (schemes.LOOKBACK, schemes.LOOKBACK + SIZES["n_test"])]
    study = tiny_study(panel, tmp_path_factory.mktemp("study"), starts, build=False)
    return schemes.study_schemes(study, build=True), study, starts  # built by the schemes, as the chapter


def test_every_scheme_has_its_factors(rolled):
    run = rolled[0].last
    assert [len(run.factors[s]) for s in schemes.SCHEMES] == [2, 2, 2]
    assert all(f.origin == "gp" for f in run.factors["Only GP"])
    assert all(f.origin == "nnafc" for s in schemes.NNAFC_SCHEMES for f in run.factors[s])
    # GP and NNAFC factors were seeded by the GP formulas, in order; Only NNAFC by the PK spread
    gp_names = [f.name for f in run.factors["Only GP"]]
    assert [f.meta["seed_factor"] for f in run.factors["GP and NNAFC"]] == gp_names
    assert [f.meta["seed_factor"] for f in run.factors["Only NNAFC"]] == SEEDS
    assert [f.name for f in run.seeds["Only NNAFC"]] == SEEDS


def test_rolling_table_has_each_window_and_the_mean(rolled):
    rolling, _, starts = rolled
    table = rolling.table
    windows = list(rolling.runs)
    assert len(windows) == len(starts) == 2
    assert list(table.index.get_level_values(0).unique()) == [*windows, "mean"]
    assert np.isfinite(table[["IC", "ICIR", "diversity"]].to_numpy()).all()
    np.testing.assert_allclose(rolling.mean["IC"].to_numpy(),
                               (table.loc[windows[0], "IC"] + table.loc[windows[1], "IC"]).to_numpy() / 2)
    # Table 4's IC is the mean of the factors' test IC
    first = rolling.per_factor[rolling.per_factor["window"] == windows[0]]
    np.testing.assert_allclose(table.loc[windows[0], "IC"].to_numpy(),
                               first.groupby("scheme", sort=False)["test IC"].mean().to_numpy())
    assert set(rolling.formulas["window"]) == set(windows)
    facts = schemes.table4_facts(rolling, paper.TABLE4_SCHEMES)
    assert facts.attrs["n_windows"] == 2 and list(facts.index) == list(schemes.SCHEMES)
    np.testing.assert_allclose(facts["IC ours"], rolling.mean["IC"].reindex(facts.index))
    assert facts.loc["Only NNAFC", "IC rank paper"] == 2 and facts.loc["GP and NNAFC", "IC rank paper"] == 1
    per_window = table.drop(index="mean", level="window")["IC"].unstack("scheme")
    wins = int((per_window["Only NNAFC"] > per_window["Only GP"]).sum())
    assert facts.loc["Only NNAFC", "beats Only GP"] == wins
    assert facts.loc["Only NNAFC", "windows compared"] == 2
    assert np.isnan(facts.loc["Only GP", "beats Only GP"])
    same_order = schemes.ranked(facts["IC ours"]) == schemes.ranked(facts["IC paper"])
    assert facts.attrs["ic_order_agrees"] == same_order


def test_table4_reads_the_test_days(rolled):
    run = rolled[0].last
    table = schemes.scheme_table(run)
    moved = run.panel.fields["close"].copy()
    test = run.split.test
    moved[test] = moved[test][:, np.random.default_rng(0).permutation(moved.shape[1])]
    shuffled = replace(run, panel=replace(run.panel, fields={**run.panel.fields, "close": moved}), _values={})
    assert not np.allclose(schemes.scheme_table(shuffled)["IC"], table["IC"])
    # ...and only them: prices after the last validation day do not move the training / validation ICs
    before, after = schemes.factor_ics(run), schemes.factor_ics(shuffled)
    gp_rows = before["scheme"] == "Only GP"  # formulas: values read only past prices
    pd.testing.assert_frame_equal(before.loc[gp_rows, ["train IC", "valid IC"]],
                                  after.loc[gp_rows, ["train IC", "valid IC"]])


def test_the_study_is_read_not_built_again(rolled):
    rolling, study, _ = rolled
    keys = sorted(study.zoo.keys())
    again = schemes.study_schemes(study)  # build=False: reads the zoo only
    assert sorted(study.zoo.keys()) == keys
    assert (again.timings["from zoo"] == 4).all() and (again.timings["constructed"] == 0).all()
    pd.testing.assert_frame_equal(again.table, rolling.table)
    assert (again.timings["GP s"] > 0).all() and (again.timings["NNAFC s"] > 0).all()


def test_inheritance_pairs_and_summary(rolled):
    pairs = rolled[0].pairs
    assert set(pairs["kind"]) == {"GP child", "NNAFC update"}
    assert (pairs["kind"] == "NNAFC update").sum() == 8  # 2 windows x 2 schemes x 2 factors
    assert pairs.loc[pairs["kind"] == "GP child", "parent"].ne(pairs["child"]).all()
    summary = schemes.inheritance_summary(pairs)
    assert list(summary.index) == ["GP child", "NNAFC update"]
    assert summary.loc["NNAFC update", "pairs"] == 8


def test_inheritance_summary_on_constructed_pairs():
    pairs = pd.DataFrame({
        "kind": ["a"] * 4 + ["b"] * 3,
        "parent IC": [0.1, 0.2, 0.3, 0.4, 0.1, 0.2, 0.3],
        "child IC": [0.11, 0.21, 0.31, np.nan, 0.0, 0.3, -0.1],
        "value corr": [0.9, 0.8, 0.7, np.nan, 0.1, 0.2, 0.3],
    })
    s = schemes.inheritance_summary(pairs)
    assert s.loc["a", "ic_corr"] == pytest.approx(1.0)
    assert s.loc["a", "kept_share"] == 1.0 and s.loc["a", "failed_share"] == 0.25
    assert s.loc["a", "value_corr"] == pytest.approx(0.8)
    assert s.loc["b", "kept_share"] == pytest.approx(1 / 3)
    assert s.loc["b", "mean_change"] == pytest.approx((-0.1 + 0.1 - 0.4) / 3)


def test_gp_example_is_the_strong_parent_whose_mutation_lost_most():
    lineage = pd.DataFrame({
        "operator": ["mutation", "mutation", "crossover", "mutation"],
        "parent": ["div(sub(high, low), volume)", "neg(close)", "neg(open)", "neg(low)"],
        "parent_ic": [0.08, 0.09, 0.10, 0.01],
        "child": ["div(sub(high, volume), volume)", "neg(high)", "neg(high)", "neg(open)"],
        "child_ic": [-0.02, 0.085, -0.5, -0.5],
        "changed": [True, True, True, True],
    })
    ex = schemes.gp_example(lineage, top=0.5)  # parents 0.08 and 0.09 are the strong mutations
    assert ex["infix"].tolist() == ["(high - low) / volume", "(high - volume) / volume"]
    assert ex["train IC"].tolist() == [0.08, -0.02]
    assert schemes.gp_example(lineage.assign(operator="crossover")).empty


def test_value_corr_and_period_ic_on_known_values(panel):
    days = slice(200, 260)
    close = panel["close"]
    assert schemes.value_corr(close, close * 2 + 1, panel, days) == pytest.approx(1.0)
    assert schemes.value_corr(close, -close, panel, days) == pytest.approx(-1.0)
    # the label of a period never reads a price after its last day
    moved = close.copy()
    moved[days.stop:] *= np.random.default_rng(1).uniform(0.5, 2, moved[days.stop:].shape)
    other = replace(panel, fields={**panel.fields, "close": moved})
    same = metrics.period_rank_ic(close, panel, days), metrics.period_rank_ic(close, other, days)
    np.testing.assert_array_equal(*same)


def test_fewer_nnafc_factors_than_gp_formulas(panel, tmp_path):
    study = tiny_study(panel, tmp_path, [str(panel.dates[schemes.LOOKBACK].date())], n_gp=3, n_seeded=1)
    run = schemes.study_run(study, 0)
    assert [len(run.factors[s]) for s in schemes.SCHEMES] == [len(run.gp_result.factors), 1, 2]
    best_gp = run.factors["Only GP"][0].name
    assert run.factors["GP and NNAFC"][0].meta["seed_factor"] == best_gp


def test_ranked_orders_high_to_low():
    assert schemes.ranked(pd.Series({"a": 0.1, "b": np.nan, "c": 0.3})) == "c > a > b"
