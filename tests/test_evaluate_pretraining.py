"""The pre-training chapter's measurements, on a small simulated market (fast, known structure)."""

import numpy as np
import pandas as pd
import pytest

from nnafc import metrics
from nnafc.data import forward_returns, make_split, split_window
from nnafc.evaluate import pretraining
from nnafc.simulate import simulate_market


@pytest.fixture(scope="module")
def panel():
    return simulate_market(n_stocks=40, n_days=500, seed=3)


def test_mimic_table_and_best_structure_choose_on_training(panel):
    train, test = pretraining.mimic_periods(panel, ("2010-02-01", "2018-03-31"), ("2018-05-01", "2020-03-31"))
    assert pd.Timestamp(train[1]) < pd.Timestamp(test[0])  # the simulated panel is split 80/20
    cfg = {"pretrain_epochs": 2, "seed": 0}
    table = pretraining.mimic_table(panel, {"MA": "MA10", "PVT": "PVT20"}, ("fcn", "crossconv"), train, test,
                                    cfg, day_step=5)
    assert len(table) == 4 and table[["train MSE", "test MSE"]].notna().all().all()
    assert table["test accuracy"].between(0, 1).all()
    best = pretraining.best_structure(table)
    for factor, row in best.iterrows():
        assert row["train MSE"] == table.loc[table["factor"] == factor, "train MSE"].min()


def test_split_ics_cut_labels_at_each_part(panel):
    split = make_split(panel.dates, panel.dates[100], n_train=120, n_valid=30, n_test=60)
    values = -(panel["close"] / np.roll(panel["close"], 5, axis=0) - 1)
    ics = pretraining.split_ics(values, panel, split)
    fwd = forward_returns(panel["close"], 5, last_day=split.valid.stop - 1)
    daily = metrics.rank_ic(values[split.valid], fwd[split.valid], panel.in_universe[split.valid])
    assert ics["valid"] == pytest.approx(np.nanmean(daily))
    assert np.isnan(daily[-5:]).all()  # the last 5 validation days have no label inside validation


def test_construction_trace_records_each_stage(panel):
    split = make_split(panel.dates, panel.dates[150], n_train=120, n_valid=30, n_test=60)
    sub, local = split_window(panel, split)
    trace = pretraining.construction_trace("REV5", "fcn", sub, local, {"pretrain_epochs": 2, "epochs": 2})
    assert trace.ic.shape == (3, 3) and np.isfinite(trace.ic.to_numpy()).all()
    assert trace.saliency_before.shape == trace.saliency_after.shape == (5, 30)
    assert not np.allclose(trace.saliency_before, trace.saliency_after)  # IC training moved the net
    shares = pretraining.field_shares(trace.saliency_before, trace.saliency_after)
    np.testing.assert_allclose(shares.sum().to_numpy(), 1.0)
