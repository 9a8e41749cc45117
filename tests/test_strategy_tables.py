"""Table 5 / Table 7 builders on a small constructed market: windows, not-run rows, paper alignment."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from nnafc import factor, paper
from nnafc.data import DataError, Panel
from nnafc.data.splits import WARMUP_DAYS, windows_covering
from nnafc.evaluate import formatting, table5, table7
from nnafc.factor import Factor
from nnafc.strategy import benchmarks
from nnafc.strategy.rolling import StrategyConfig, run_rolling

PAPER_T7 = paper.TABLE7_STRATEGY


def make_market(t: int = 420, n: int = 40, seed: int = 0, start: str = "2018-01-02",
                simulated: bool = True) -> Panel:
    """Random-walk prices with a weak, persistent cross-sectional drift: something for XGBoost to learn."""
    rng = np.random.default_rng(seed)
    drift = rng.normal(0, 0.002, n)  # (N,)
    r = drift + rng.normal(0, 0.02, (t, n))  # (T, N)
    close = (10 * np.cumprod(1 + r, axis=0)).astype(np.float32)
    open_ = (close * (1 + rng.normal(0, 0.002, (t, n)))).astype(np.float32)
    traded = np.ones((t, n), dtype=bool)
    fields = {"open": open_, "high": np.fmax(open_, close) * 1.001, "low": np.fmin(open_, close) * 0.999,
              "close": close, "volume": np.full((t, n), 1e6, dtype=np.float32)}
    return Panel(pd.bdate_range(start, periods=t), pd.Index([f"SH60{i:04d}" for i in range(n)]), fields,
                 traded, traded.copy(), universe="all", simulated=simulated)


def momentum(k: int) -> Factor:
    def compute(panel: Panel) -> np.ndarray:
        c = panel["close"].astype(np.float64)
        out = np.full(c.shape, np.nan)
        out[k:] = c[k:] / c[:-k] - 1
        return out

    return Factor(f"MOM{k}", "pk", compute)


@pytest.fixture(scope="module")
def market() -> Panel:
    return make_market()


@pytest.fixture(scope="module")
def cfg() -> StrategyConfig:
    return StrategyConfig(top_k=5, rebalance=5, model={"max_depth": [2], "learning_rate": [0.1],
                                                          "n_estimators": [10, 20], "min_child_weight": 1.0})


@pytest.fixture(scope="module")
def runs(market, cfg):
    splits = windows_covering(market, "2019-03-01", "2019-07-31", n_train=120, n_valid=20, n_test=40)
    pk = factor.cached([momentum(5), momentum(10), momentum(20)], market)
    gp = [momentum(3), momentum(15)]
    sets = lambda split: {"PK 50": pk, "GP 50": gp, "fcn Combine 50": None}  # noqa: E731
    return splits, run_rolling(market, splits, sets, cfg)


# ----------------------------------------------------------------------------- windows


def test_test_windows_tile_the_period_and_keep_validation_before_test(market):
    splits = windows_covering(market, "2019-03-01", "2019-07-31", n_train=120, n_valid=20, n_test=40)
    test_days = market.dates[splits[0].test.start: splits[-1].test.stop]
    assert test_days[0] >= pd.Timestamp("2019-03-01") and test_days[-1] <= pd.Timestamp("2019-07-31")
    assert market.dates[splits[0].test.start - 1] < pd.Timestamp("2019-03-01")
    for a, b in zip(splits, splits[1:], strict=False):
        assert b.test.start == a.test.stop  # contiguous, no overlap
    for s in splits:
        assert s.train.stop == s.valid.start and s.valid.stop == s.test.start
        assert s.train.stop - s.train.start == 120 and s.valid.stop - s.valid.start == 20
        assert 20 <= s.test.stop - s.test.start < 40 + 20  # remainder < n_valid joins the last window


def test_test_windows_refuse_real_data_without_history_but_place_simulated_ones(market):
    real = make_market(simulated=False)
    with pytest.raises(DataError):
        windows_covering(real, "2018-02-01", "2018-06-30")  # no 250 + 30 days before it
    placed = windows_covering(market, "2030-01-01", "2030-06-30", n_train=120, n_valid=20, n_test=40)
    assert placed[-1].test.stop == len(market.dates) and placed[0].train.start >= WARMUP_DAYS


class _Windows:
    """What `table5.study_windows` reads of a factor study: its windows."""

    def __init__(self, splits):
        self.splits = splits

    def windows(self):
        return self.splits


def _study_like(panel: Panel, train_starts) -> _Windows:
    from nnafc.data.splits import make_split

    return _Windows([make_split(panel.dates, d, n_train=500, n_valid=30, n_test=90) for d in train_starts])


def test_table5_windows_lie_in_the_study_windows_with_the_paper_labels():
    panel = make_market(t=1400, start="2014-06-02", simulated=False)
    # study windows testing from March 2017 and 2018, and from August 2018 (near no paper window)
    study = _study_like(panel, ["2015-01-27", "2016-01-26", "2016-07-26"])
    splits = table5.study_windows(study, panel)
    labels = list(paper.TABLE5_RETURNS.index)
    assert list(splits)[:4] == labels and len(splits) == 5
    assert splits[labels[0]] is None and splits[labels[3]] is None  # no study window tests near 2016 / 2019
    for label, w in ((labels[1], 0), (labels[2], 1)):
        mine, theirs = splits[label].dates(), study.windows()[w].dates()
        assert mine["valid"].equals(theirs["valid"])
        assert mine["train"].equals(theirs["train"][-250:])  # the last 250 of the study's training days
        assert mine["test"][0] == theirs["test"][0] and mine["test"].isin(theirs["test"]).all()
        assert (mine["test"][-1] - mine["test"][0]).days <= 59 < (theirs["test"][-1] - theirs["test"][0]).days
    extra = list(splits)[4]  # labelled by its own dates
    assert extra == "2017 -> 2018-08..10"
    assert splits[extra].dates()["valid"].equals(study.windows()[2].dates()["valid"])
    short = make_market(t=300, start="2014-06-02", simulated=False)
    assert all(s is None for s in table5.study_windows(study, short).values())


# ----------------------------------------------------------------------------- benchmarks


def test_without_index_data_benchmarks_are_a_labelled_equal_weight_stand_in(market):
    bench = benchmarks.benchmarks(market)
    assert bench.simulated and "not the real indices" in bench.source
    c = market["close"].astype(np.float64)
    expected = (c[1:] / c[:-1] - 1).mean(axis=1)
    np.testing.assert_allclose(bench.returns["ZZ500"].to_numpy()[1:], expected, rtol=1e-9)
    assert bench.returns["ZZ500"].index.equals(market.dates)


# ----------------------------------------------------------------------------- Table 7


def test_rolling_run_is_one_continuous_backtest_with_per_window_choices(runs):
    splits, result = runs
    run = result["PK 50"]
    assert result["fcn Combine 50"] is None
    assert run.result.dates[0] == splits[0].dates()["test"][0]
    assert run.result.dates[-1] == splits[-1].dates()["test"][-1]
    assert len(run.windows) == len(splits) and set(run.windows["factors"]) == {3}
    assert run.windows["valid_auc"].between(0, 1).all()
    # one portfolio: only the first day starts from cash
    assert run.result.cash.iloc[1:].max() < 1e-9 and run.result.n_holdings.iloc[-1] == 5


def test_table7_keeps_not_run_rows_and_never_fills_ours_from_the_paper(runs):
    _, result = runs
    bench = benchmarks.benchmarks(make_market())
    ours = table7.table7(result, bench, "ZZ500")
    assert list(ours.index[:3]) == ["ZZ500", "HS300", "PK 50"]
    assert ours.loc["fcn Combine 50", "status"] == formatting.NOT_RUN
    assert ours.loc["fcn Combine 50", list(table7.TABLE7_COLUMNS)].isna().all()
    table = table7.table7_vs_paper(ours)
    for col in table7.TABLE7_COLUMNS:
        # paper columns are the paper's numbers, row for row
        theirs = PAPER_T7[col].reindex(ours.index)
        pd.testing.assert_series_equal(table.loc[ours.index, f"{col} paper"], theirs, check_names=False)
        # no paper number in an "ours" column
        shared = table[f"{col} ours"].notna()
        assert not np.isclose(table.loc[shared, f"{col} ours"], table.loc[shared, f"{col} paper"]).any()
    # every paper row is present: sets we did not pass at all read "not run" too
    assert set(PAPER_T7.index) <= set(table.index)
    assert (table.loc["lstm Combine 50", "status"] == formatting.NOT_RUN)
    shown = formatting.formatted(table)
    assert shown.loc["fcn Combine 50", "revenue ours"] == formatting.NOT_RUN
    assert shown.loc["fcn Combine 50", "revenue paper"].endswith("%")
    assert shown.loc["PK 50", "sharpe ours"] != formatting.NOT_RUN


def test_table7_excess_matches_a_direct_computation(runs):
    _, result = runs
    bench = benchmarks.benchmarks(make_market())
    ours = table7.table7(result, bench, "ZZ500")
    r = result["PK 50"].result.returns
    excess = r - bench.returns["ZZ500"].reindex(r.index)
    expected = np.prod(1 + excess.to_numpy()) ** (252 / len(excess)) - 1
    assert ours.loc["PK 50", "revenue"] == pytest.approx(expected)
    assert ours.loc["PK 50", "abs_revenue"] == pytest.approx(np.prod(1 + r.to_numpy()) ** (252 / len(r)) - 1)


def test_intervals_costs_and_facts(runs, market):
    _, result = runs
    bench = benchmarks.benchmarks(market)
    iv = table7.sharpe_intervals(result, bench, n_boot=200, seed=1)
    assert iv.loc["PK 50", "low"] <= iv.loc["PK 50", "sharpe"] <= iv.loc["PK 50", "high"]
    assert iv.loc["PK 50", "sharpe paper"] == PAPER_T7.loc["PK 50", "sharpe"]
    assert iv.loc["fcn Combine 50", "status"] == formatting.NOT_RUN
    assert np.isnan(iv.loc["fcn Combine 50", "sharpe"])
    costs = table7.cost_table(result, market, bench, round_trips=(0.0, 0.003))
    assert list(costs.index) == ["PK 50", "GP 50"]
    free, paid = costs[("annual_return", "0.00 %")], costs[("annual_return", "0.30 %")]
    assert (free > paid).all()  # the same scores cost more at a higher fee
    rules = table7.rule_table(result, market, bench, n_drops=(1, 2), round_trip=0.003)
    variants = ("top k", "dropout 1", "dropout 2")
    assert list(rules.index) == [(g, r) for g in ("PK 50", "GP 50") for r in variants]
    pk = rules.loc["PK 50"]
    assert pk.loc["dropout 1", "turnover"] < pk.loc["dropout 2", "turnover"] < pk.loc["top k", "turnover"]
    assert pk.loc["top k", "excess before costs"] > pk.loc["top k", "excess after costs"]
    paid_excess = costs.loc["PK 50", ("annual_excess", "0.30 %")]
    assert pk.loc["top k", "excess after costs"] == pytest.approx(paid_excess)
    ours = table7.table7(result, bench)
    facts = table7.table7_facts(ours, iv)
    assert list(facts.index) == ["PK 50", "GP 50"]  # the rows that ran
    assert facts.loc["PK 50", "revenue gap"] == pytest.approx(ours.loc["PK 50", "revenue"]
                                                              - PAPER_T7.loc["PK 50", "revenue"])
    assert facts.loc["PK 50", "paper sharpe inside our interval"] == iv.loc["PK 50", "paper inside"]
    assert "fcn Combine 50" in facts.attrs["not_run"] and "PK 50" not in facts.attrs["not_run"]
    assert facts.attrs["index_returns"]["ZZ500"][1] == PAPER_T7.loc["ZZ500", "revenue"]


def test_paired_table_tests_each_combine_against_pk_on_the_same_days(market, cfg):
    from nnafc.strategy.rolling import RollingRun

    splits = windows_covering(market, "2019-03-01", "2019-07-31", n_train=120, n_valid=20, n_test=40)
    pk = factor.cached([momentum(5), momentum(10), momentum(20)], market)
    sets = lambda split: {"PK 50": pk, "fcn Combine 50": pk[:2], "lstm Combine 50": None}  # noqa: E731
    result = run_rolling(market, splits, sets, cfg)
    paired = table7.paired_table(result, n_boot=300, seed=2)
    assert list(paired.index) == [("fcn Combine 50", "PK 50")]  # no GP Combine row ran, lstm did not run
    diff = result["fcn Combine 50"].result.returns - result["PK 50"].result.returns
    row = paired.loc[("fcn Combine 50", "PK 50")]
    assert row["difference"] == pytest.approx(diff.mean() * 252)
    assert row["low"] <= row["difference"] <= row["high"] and row["days"] == len(diff)
    expected = "ahead" if row["low"] > 0 else "behind" if row["high"] < 0 else "undecided"
    assert row["verdict"] == expected
    # a copy of PK 50 with its returns shifted up by 1 bp a day is ahead by 2.52 % a year, interval and all
    pk_run = result["PK 50"]
    shifted = RollingRun("x", replace(pk_run.result, returns=pk_run.result.returns + 1e-4), pk_run.windows)
    ahead = table7.paired_table({"PK 50": pk_run, "fcn Combine 50": shifted}, n_boot=200)
    assert ahead.loc[("fcn Combine 50", "PK 50"), "difference"] == pytest.approx(0.0252)
    assert ahead.loc[("fcn Combine 50", "PK 50"), "verdict"] == "ahead"
    facts = table7.paired_facts(ahead)
    assert facts == {"rows": 1, "ahead point": 1, "ahead interval": 1, "behind interval": 0}
    assert table7.paired_facts(ahead, "GP Combine 50")["rows"] == 0


def test_score_ics_read_the_stitched_scores_against_the_strategys_label(runs, market):
    from nnafc import metrics

    _, result = runs
    table = table7.score_ic_table(result, market, horizon=5)
    assert list(table.index) == ["PK 50", "GP 50"]  # the sets that ran
    res = result["PK 50"].result
    start = int(market.dates.get_loc(res.dates[0]))
    scores = np.full(market.shape, np.nan)
    scores[start - 1 : start + len(res.dates)] = res.scores
    direct = metrics.signal_ics(scores, market, slice(start, start + len(res.dates)), 5)
    assert table.loc["PK 50", "Rank IC"] == pytest.approx(direct["Rank IC"])
    assert -1 < table.loc["PK 50", "IC"] < 1


def test_the_rule_is_chosen_on_selection_days_only(cfg):
    selection = ("2018-12-03", "2019-04-30")  # then reported on later days: those are corrupted
    clean, dirty = make_market(t=520), make_market(t=520)  # history enough: the dates are used as they are
    cut = int(clean.dates.searchsorted(pd.Timestamp(selection[1]), side="right"))
    rng = np.random.default_rng(5)
    for name in ("open", "high", "low", "close", "volume"):
        dirty[name][cut:] *= rng.uniform(0.5, 1.5, dirty[name][cut:].shape).astype(np.float32)
    assert not np.allclose(clean["close"][cut:], dirty["close"][cut:])
    picks = []
    for m in (clean, dirty):
        splits = windows_covering(m, *selection, n_train=120, n_valid=20, n_test=40)
        pk = factor.cached([momentum(5), momentum(10), momentum(20)], m)
        picks.append(table7.select_rule(m, splits, pk, cfg, benchmarks.benchmarks(m), n_drops=(1, 2)))
    (chosen, rules), (chosen_dirty, rules_dirty) = picks
    assert chosen == chosen_dirty
    pd.testing.assert_frame_equal(rules, rules_dirty)
    after = rules.loc["PK 50", "excess after costs"]
    assert list(after.index) == ["top k", "dropout 1", "dropout 2"] and after[chosen] == after.max()
    assert table7.rule_kw("top k") == {"rule": "topk"}
    assert table7.rule_kw("dropout 2") == {"rule": "dropout", "n_drop": 2}
    with pytest.raises(ValueError, match="not a rule"):
        table7.rule_kw("dropout two")


# ----------------------------------------------------------------------------- Table 5


def test_table5_shows_schemes_not_run_beside_the_paper(cfg, monkeypatch):
    monkeypatch.delenv("NNAFC_DATA", raising=False)  # invented weekdays: no real index file may be read
    panel = make_market(t=1400, start="2014-06-02", simulated=False)
    bench = benchmarks.benchmarks(panel)
    study = _study_like(panel, ["2014-12-29"])  # tests from 2017-01: the paper's 2nd window
    splits = table5.study_windows(study, panel)
    splits = {k: (v if i == 1 else None) for i, (k, v) in enumerate(splits.items())}  # one window, fast
    pk = factor.cached([momentum(5), momentum(20)], panel)
    ours = table5.table5(panel, splits, lambda s: table5.table5_sets(pk, {}), bench, cfg)
    first = paper.TABLE5_RETURNS.index[1]
    assert np.isfinite(ours.loc[first, "PK 50"]) and np.isfinite(ours.loc[first, "ZZ500"])
    assert ours[list(table5.TABLE5_SCHEMES)].isna().all().all()
    table = table5.table5_vs_paper(ours)
    assert list(table.index) == list(paper.TABLE5_RETURNS.index)
    for col in (*table5.TABLE5_SCHEMES, "ZZ500"):
        np.testing.assert_array_equal(table[f"{col} paper"], paper.TABLE5_RETURNS[col])
    shown = table5.table5_display(table)
    assert (shown[[f"{s} ours" for s in table5.TABLE5_SCHEMES]] == formatting.NOT_RUN).all().all()
    assert shown.loc[first, "PK 50 ours"].endswith("%")
    facts = table5.table5_facts(ours)
    assert list(facts.index) == ["PK 50"] and facts.attrs["schemes_not_run"] == list(table5.TABLE5_SCHEMES)
    assert facts.loc["PK 50", "windows"] == 1
    assert facts.loc["PK 50", "beats ZZ500"] == int(ours.loc[first, "PK 50"] > ours.loc[first, "ZZ500"])
    gap = abs(ours.loc[first, "ZZ500"] - paper.TABLE5_RETURNS.loc[first, "ZZ500"])
    assert facts.attrs["index_gap_max"] == pytest.approx(gap)


def test_table5_facts_without_any_window():
    """New dates after 2019: no Table 5 window inside the data; the facts are empty, no KeyError."""
    empty = pd.DataFrame(columns=["PK 50", "status"])
    facts = table5.table5_facts(empty)
    assert facts.empty and np.isnan(facts.attrs["index_gap_max"])
    assert facts.attrs["schemes_not_run"] == list(table5.TABLE5_SCHEMES)


# ----------------------------------------------------------------------------- caching


def test_cached_values_serve_prefixes_and_match_direct_values(market):
    calls = []
    base = momentum(5)
    counted = Factor("M", "pk", lambda p: calls.append(1) or base.values(p))
    (f,) = factor.cached([counted], market)
    full = f.values(market)
    prefix = market.slice_days(0, 100)
    np.testing.assert_array_equal(f.values(prefix), full[:100])
    assert len(calls) == 1
    np.testing.assert_array_equal(full, base.values(market))


def test_value_store_computes_once_then_reads_disk_and_keys_by_data(market, tmp_path):
    calls = []
    base = momentum(5)
    counted = Factor("M", "pk", lambda p: calls.append(1) or base.values(p))
    store = factor.ValueStore(tmp_path)
    (f,) = factor.cached([counted], market, store)
    full = f.values(market)
    np.testing.assert_array_equal(full, base.values(market))
    (again,) = factor.cached([counted], market, factor.ValueStore(tmp_path))  # a later process
    np.testing.assert_array_equal(again.values(market), full)
    np.testing.assert_array_equal(again.values(market.slice_days(0, 100)), full[:100])
    assert len(calls) == 1
    files = list(tmp_path.rglob("*.npy"))
    assert len(files) == 1 and not list(tmp_path.rglob(".tmp-*"))  # written atomically
    other = Panel(market.dates, market.instruments, {k: v * 1.01 for k, v in market.fields.items()},
                  market.traded, market.in_universe, market.universe)  # other data: its own file
    factor.cached([counted], other, store)[0].values(other)
    assert len(calls) == 2 and len(list(tmp_path.rglob("*.npy"))) == 2


def test_pk_set_sizes():
    assert len(table7.pk_set()) == 50
    assert [f.name for f in table7.pk_set(3)] == [f.name for f in table7.pk_set()[:3]]
    with pytest.raises(ValueError):
        table7.pk_set(0)


def test_bootstrap_mean_of_a_constant_difference_is_that_difference_annualised():
    from nnafc.strategy import bootstrap_mean

    mean, low, high = bootstrap_mean(np.full(90, 2e-4), n_boot=100, block=10)
    assert mean == pytest.approx(0.0504) and low == pytest.approx(0.0504) and high == pytest.approx(0.0504)
    noisy = np.random.default_rng(0).normal(0, 0.01, 500)
    mean, low, high = bootstrap_mean(noisy, n_boot=500, block=10)
    assert low < mean < high and low < 0 < high  # pure noise: no side is decided
    with pytest.raises(ValueError):
        bootstrap_mean(noisy[:1])
