"""GP baseline (§3.1): planted signal found, same values as nnafc.ops, robust fitness,
determinism, no look-ahead, RPN / infix round trips, correlation filter, config and serialisation."""

from __future__ import annotations

import pickle
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from nnafc import gp, ops
from nnafc.data import forward_returns, make_split
from nnafc.metrics import rank_ic
from nnafc.simulate import simulate_market

SMALL = {"population": 60, "generations": 5, "n_factors": 5, "hof_size": 25, "seed": 0}
SMALL_HORIZON = gp.GPConfig().horizon


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One torch thread: the cores are shared, and GP evaluates many small ops."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def market():
    """A simulated market with the planted signals of `nnafc.simulate` and a 180/40-day split."""
    panel = simulate_market(n_stocks=150, n_days=300, seed=1)
    split = make_split(panel.dates, panel.dates[60], n_train=180, n_valid=40, n_test=0)
    return panel, split


@pytest.fixture(scope="module")
def run(market):
    panel, split = market
    return gp.run_gp(panel, split, SMALL)


def _tensors(panel, dtype=torch.float64):
    return {k: torch.as_tensor(panel[k]).to(dtype) for k in gp.INPUTS}


# --------------------------------------------------------------------------- search


# the planted signals of `nnafc.simulate`, written as GP formulas (rank-equivalent to the truth)
PLANTED = {
    "reversal_5d": "neg(div(close, delay(close, 5)))",
    "abnormal_volume": "neg(log(div(volume, ts_mean(volume, 20))))",
    "ma20_distance_u": "abs(sub(div(close, ts_mean(close, 20)), div(close, close)))",
}


def test_planted_signal_is_found(market, run):
    panel, split = market
    truth = panel.meta["truth"]
    assert set(truth) == set(PLANTED)  # the simulator still plants what this test looks for
    assert "delay(close, 5)" in truth["reversal_5d"]["formula"]
    assert "ts_mean(volume, 20)" in truth["abnormal_volume"]["formula"]
    planted = {k: gp.train_ic(f, panel, split, SMALL) for k, f in PLANTED.items()}
    assert min(planted.values()) > 0.03  # each signal is there to be found
    best = run.evaluated["train_ic"].max()
    assert best >= 0.85 * max(planted.values()), (best, planted)  # its IC is (nearly) reached
    assert best > run.history["best"].iloc[0]  # the search beats every random initial tree
    # and what it found is a planted signal: a top formula ranks stocks like one of them
    block = gp.fitness.train_block(panel, split, gp.as_config(SMALL))
    ranks = {f: ops.cs_rank(block.evaluator(f)[block.rows]).double() for f in PLANTED.values()}
    top = run.evaluated.nlargest(5, "train_ic")["formula"]
    corr = max(gp.selection.max_abs_corr(ops.cs_rank(block.evaluator(f)[block.rows]).double(),
                                         list(ranks.values())) for f in top)
    assert corr > 0.5, corr
    assert len(run.factors) == SMALL["n_factors"]
    assert run.table["valid_ic"].is_monotonic_decreasing  # ranked by validation IC


def test_gp_values_equal_direct_ops(market):
    panel, _ = market
    f = _tensors(panel)
    formula = "sub(ts_corr(cs_rank(close), ts_mean(volume, 5), 10), div(delta(high, 3), ts_std(low, 20)))"
    direct = ops.sub(ops.ts_corr(ops.cs_rank(f["close"]), ops.ts_mean(f["volume"], 5), 10),
                     ops.div(ops.delta(f["high"], 3), ops.ts_std(f["low"], 20)))
    via_gp = gp.Evaluator(f, cache_mb=0)(formula)
    torch.testing.assert_close(via_gp, direct, rtol=0, atol=0, equal_nan=True)
    assert torch.isfinite(direct).float().mean() > 0.5  # not a comparison of two NaN panels

    cached = gp.Evaluator(f, cache_mb=64)
    cached("ts_corr(cs_rank(close), ts_mean(volume, 5), 10)")  # warm the shared subtree
    torch.testing.assert_close(cached(formula), direct, rtol=0, atol=0, equal_nan=True)
    assert cached.hits >= 1

    factor = gp.factor_from_formula(formula)
    np.testing.assert_array_equal(factor.values(panel), direct.to(torch.float32).numpy())


def test_degenerate_trees_get_worst_fitness(market):
    panel, split = market
    for formula in ("div(close, sub(close, close))",  # division by zero everywhere
                    "log(neg(volume))",  # log of negatives
                    "ts_corr(close, close, 5)",  # constant 1: no cross-sectional spread
                    "ts_std(close, 1)",  # invalid window: ops raise, fitness does not
                    "sign(volume)"):  # constant +1
        assert gp.train_ic(formula, panel, split) == gp.WORST, formula
    assert np.isfinite(gp.train_ic("div(sub(high, low), volume)", panel, split))  # formula (9)


def test_fitness_ic_equals_metrics_rank_ic(market):
    panel, split = market
    cfg = gp.as_config(SMALL)
    block = gp.fitness.train_block(panel, split, cfg)
    for formula in ("neg(div(close, delay(close, 5)))",  # full coverage: label ranks reused
                    "log(delta(close, 1))",  # NaN on about half the stocks: label ranks redone
                    "sign(delta(close, 1))",  # heavy ties
                    "ts_mean(volume, 20)"):  # NaN through suspensions
        v = block.evaluator(formula)[block.rows]
        expected = rank_ic(v, block.labels, block.mask)
        torch.testing.assert_close(gp.daily_rank_ic(v, block), expected, rtol=0, atol=1e-12, equal_nan=True)
        assert torch.isfinite(expected).sum() > 100


def test_same_seed_same_run(market, run):
    panel, split = market
    again = gp.run_gp(panel, split, SMALL)
    pd.testing.assert_frame_equal(again.evaluated, run.evaluated)
    pd.testing.assert_frame_equal(again.hall_of_fame, run.hall_of_fame)
    assert [f.meta["formula"] for f in again.factors] == [f.meta["formula"] for f in run.factors]
    other = gp.run_gp(panel, split, {**SMALL, "seed": 1})
    assert list(other.evaluated["formula"]) != list(run.evaluated["formula"])


def test_cache_does_not_change_results(market, run):
    panel, split = market
    uncached = gp.run_gp(panel, split, {**SMALL, "cache_mb": 0})
    pd.testing.assert_frame_equal(uncached.evaluated, run.evaluated)
    assert uncached.cache["hits"] == 0 and run.cache["hits"] > 0


def test_no_lookahead_after_training(market, run):
    panel, split = market
    rng = np.random.default_rng(0)
    after = slice(split.train.stop, None)
    fields = {k: v.copy() for k, v in panel.fields.items()}
    scale = rng.uniform(0.5, 2.0, size=fields["close"][after].shape).astype(np.float32)
    for k in ("open", "high", "low", "close", "volume"):
        fields[k][after] *= scale  # corrupt every price and volume after the last training day
    corrupted = replace(panel, fields=fields)
    other = gp.run_gp(corrupted, split, SMALL)
    pd.testing.assert_frame_equal(other.evaluated, run.evaluated)  # every training fitness unchanged
    assert not np.allclose(other.hall_of_fame["valid_ic"], run.hall_of_fame["valid_ic"], equal_nan=True)


# --------------------------------------------------------------------------- formulas


@pytest.mark.parametrize("formula, infix, rpn", [
    ("div(sub(high, low), volume)", "(high - low) / volume", "high low sub volume div"),  # (9)
    ("div(sub(high, volume), volume)", "(high - volume) / volume", "high volume sub volume div"),  # (10)
    ("sub(close, sub(open, low))", "close - (open - low)", "close open low sub sub"),
    ("mul(add(open, close), neg(ts_mean(volume, 20)))", "(open + close) * -ts_mean(volume, 20)",
     "open close add volume 20 ts_mean neg mul"),
    ("neg(add(high, low))", "-(high + low)", "high low add neg"),
    ("ts_corr(close, volume, 10)", "ts_corr(close, volume, 10)", "close volume 10 ts_corr"),
    ("add(close, add(open, low))", "close + (open + low)", "close open low add add"),  # kept: same tree back
    ("sub(add(close, open), low)", "close + open - low", "close open add low sub"),
    ("div(close, neg(sub(open, low)))", "close / -(open - low)", "close open low sub neg div"),
])
def test_infix_and_rpn(formula, infix, rpn):
    assert gp.to_infix(formula) == infix
    assert gp.to_rpn(formula) == rpn
    assert str(gp.parse(formula)) == formula
    assert str(gp.from_infix(infix)) == formula
    assert str(gp.parse_rpn(rpn)) == formula


def test_parse_rejects_malformed_and_unsafe():
    for bad in ("__import__", "div(close)", "close volume", "ts_mean(close, close)", "foo(close)",
                "ts_mean(close, 5.5)", "5"):
        with pytest.raises(ValueError):
            gp.parse(bad)
    assert str(gp.parse("ts_mean(close, 7)")) == "ts_mean(close, 7)"  # any integer window parses
    for bad in ("high low", "high sub", "close 5", "close close 5 ts_mean ts_mean", "close __import__",
                "close 5.5 ts_mean", ""):
        with pytest.raises(ValueError):
            gp.parse_rpn(bad)
    for bad in ("close +", "(close", "close)", "foo(close)", "ts_mean(close, close)", "close ^ 2",
                "__import__('os')", "ts_mean(close 5)", "close close", "5", "-5 + close", ""):
        with pytest.raises(ValueError):
            gp.from_infix(bad)
    assert str(gp.from_infix("high - low - close")) == "sub(sub(high, low), close)"  # left-associative
    assert str(gp.from_infix("-high * low")) == "mul(neg(high), low)"  # unary minus binds tightest
    assert str(gp.from_infix("add(high, low) / volume")) == "div(add(high, low), volume)"


def test_every_searched_formula_round_trips(run):
    """Infix and RPN give back the very tree (not just an equal value) for every scored formula."""
    formulas = list(run.evaluated["formula"])
    assert len(formulas) > 100
    for f in formulas:
        assert str(gp.parse_rpn(gp.to_rpn(f))) == f
        assert str(gp.from_infix(gp.to_infix(f))) == f


def test_correlation_filter_removes_duplicates(market):
    panel, split = market
    a, b = "neg(div(close, delay(close, 5)))", "div(volume, ts_mean(volume, 20))"
    cands = pd.DataFrame({"formula": [a, f"cs_rank({a})", f"neg({a})", b],
                          "train_ic": [0.10, 0.09, 0.08, 0.05]})
    factors, table, hof, on = gp.select(cands, panel, split, {"n_factors": 4, "corr_threshold": 0.9})
    assert on == "valid"
    assert list(table["formula"]) == [a, b] or list(table["formula"]) == [b, a]
    dropped = hof[~hof["kept"]]
    assert set(dropped["formula"]) == {f"cs_rank({a})", f"neg({a})"}
    assert (dropped["max_corr"] > 0.99).all()
    assert dropped["reason"].str.startswith("|corr|").all()
    assert table["max_corr"].max() < 0.9
    assert {f.name for f in factors} == set(table["name"])
    rounds = gp.select(cands, panel, split, {"n_factors": 2, "hof_size": 2})[2]
    assert list(rounds["round"]) == [1, 1, 2, 2] and rounds["kept"].sum() == 2  # a 2nd round fills up
    no_valid = make_split(panel.dates, panel.dates[60], n_train=180, n_valid=0, n_test=0)
    assert gp.select(cands, panel, no_valid, {"n_factors": 4})[3] == "train"  # falls back, says so


# --------------------------------------------------------------------------- results, config, serialisation


def test_history_and_lineage(run):
    assert list(run.history["generation"]) == list(range(SMALL["generations"] + 1))
    assert (run.history["evaluations"] > 0).all()
    lin = run.lineage
    assert set(lin["generation"]) == set(range(SMALL["generations"] - 2, SMALL["generations"] + 1))
    assert {"crossover", "mutation"} <= set(lin["operator"])
    changed = lin[lin["changed"]]
    assert len(changed) > 0
    for parent, child in changed[["parent", "child"]].head(5).itertuples(index=False):
        gp.parse(parent), gp.parse(child)
    assert np.isfinite(changed["parent_ic"]).all()  # parents were selected, so they have a fitness


def test_factor_meta_pickle_and_json(market, run):
    panel, _ = market
    f = run.factors[0]
    assert f.origin == "gp"
    assert {"formula", "infix", "rpn", "train_ic", "valid_ic"} <= set(f.meta)
    clone = pickle.loads(pickle.dumps(f))
    np.testing.assert_array_equal(clone.values(panel), f.values(panel))
    back = gp.from_json(gp.to_json(run.factors))
    assert [g.meta for g in back] == [g.meta for g in run.factors]
    np.testing.assert_array_equal(back[0].values(panel), f.values(panel))


def test_validation_ic_reproducible_from_the_factor(market, run):
    """The IC selection ranked on is the one a user gets from the Factor on the whole panel."""
    panel, split = market
    labels = forward_returns(panel["close"], SMALL_HORIZON, last_day=split.valid.stop - 1)
    for f in run.factors[:3]:
        daily = rank_ic(f.values(panel)[split.valid], labels[split.valid], panel.in_universe[split.valid])
        assert np.nanmean(daily) == pytest.approx(f.meta["valid_ic"], abs=1e-6)


def test_time_budget_stops_the_run(market):
    panel, split = market
    res = gp.run_gp(panel, split, {**SMALL, "population": 20, "generations": 50, "time_budget_s": 1e-3})
    assert res.stopped_early and len(res.history) == 1


def test_config_validation():
    with pytest.raises(ValueError, match="did you mean 'population'"):
        gp.as_config({"populaton": 10})
    for bad in ({"population": 1}, {"cxpb": 1.5}, {"windows": [1, 5]}, {"corr_threshold": 0},
                {"tournament_size": 500}, {"init_depth": (3, 1)}, {"dtype": "int8"},
                {"hof_size": 10, "n_factors": 50}, {"time_budget_s": -1}):
        with pytest.raises(ValueError):
            gp.as_config(bad)
    cfg = gp.as_config({"windows": [20, 5], "init_depth": [1, 2]})
    assert cfg.windows == (5, 20) and cfg.hall_of_fame == 250
    assert gp.GPConfig.from_dict(cfg.to_dict()) == cfg
