"""The strategy on real A-share data: labels, price limits at execution, no look-ahead with PK factors."""

from __future__ import annotations

import numpy as np
import pytest

from nnafc.data import Panel, hits_limit_down, hits_limit_up, load_panel, make_split
from nnafc.strategy import (
    FactorModel,
    backtest,
    build_features,
    make_labels,
    predict_scores,
    select_combine,
    select_top_k,
    stack_rows,
)

pytestmark = pytest.mark.data


@pytest.fixture(scope="module")
def crash_panel(data_dir) -> Panel:
    """All A-shares around the 2015 crash: many limit-up and limit-down days."""
    return load_panel(data_dir / "ashare_2010_2020.parquet", start="2015-04-01", end="2015-09-30")


@pytest.fixture(scope="module")
def csi300(data_dir) -> Panel:
    return load_panel(data_dir / "csi300_2010_2020.parquet", start="2016-09-01", end="2017-12-29",
                      universe="csi300")


def test_real_labels_are_thirty_thirty_within_the_universe(csi300):
    split = make_split(csi300.dates, "2017-01-03", n_train=120, n_valid=20, n_test=40)
    labels = make_labels(csi300, split.train, horizon=5)
    close = csi300["close"].astype(np.float64)
    t = np.arange(split.train.start, split.train.stop - 5)
    fwd = close[t + 5] / close[t] - 1
    n = (np.isfinite(fwd) & csi300.in_universe[t]).sum(axis=1)  # (D,)
    assert 200 < n.min() and n.max() <= 300  # CSI 300 members with prices and 60 days of history
    np.testing.assert_array_equal((labels[: len(t)] == 1).sum(axis=1), np.floor(0.3 * n + 1e-9))
    np.testing.assert_array_equal((labels[: len(t)] == 0).sum(axis=1), np.floor(0.3 * n + 1e-9))
    assert np.isnan(labels[~csi300.in_universe[split.train]]).all()
    assert np.isnan(labels[-5:]).all()


@pytest.mark.parametrize("execution", ["open", "close"])
def test_real_price_limits_bind_and_are_respected(crash_panel, execution):
    panel = crash_panel
    close = panel["close"].astype(np.float64)
    scores = np.full(panel.shape, np.nan)
    scores[1:] = close[1:] / close[:-1] - 1  # chase yesterday's winners: they often open at limit-up
    days = slice(10, len(panel.dates))
    res = backtest(scores, panel, days, top_k=50, rebalance=1, execution=execution)
    up, down = hits_limit_up(panel, field=execution), hits_limit_down(panel, field=execution)
    np.testing.assert_allclose(res.weights.sum(axis=1) + res.cash.to_numpy(), 1.0, atol=1e-9)
    blocked_buys = carried = 0
    for i, d in enumerate(range(days.start, days.stop)):
        before, after = (res.weights[i - 1] if i else np.zeros(panel.shape[1])), res.weights[i]
        assert not (up[d] & (before == 0) & (after > 0)).any(), "bought at limit-up"
        assert not (down[d] & (before > 0) & (after == 0)).any(), "sold at limit-down"
        assert not (~panel.traded[d] & (before == 0) & (after > 0)).any(), "bought while suspended"
        target = np.zeros(panel.shape[1], dtype=bool)
        target[select_top_k(scores[d - 1], panel.in_universe[d - 1], 50)] = True
        blocked_buys += (target & up[d] & (before == 0)).sum()
        carried += ((before > 0) & ~target & (down[d] | ~panel.traded[d]) & (after > 0)).sum()
    assert blocked_buys > 50 and carried > 10  # the constraints really bind in 2015


def _pk_factors(k: int):
    pk = pytest.importorskip("nnafc.pk")
    return pk.pk50()[:k]


def test_real_pk_predictions_and_positions_never_look_ahead(csi300):
    factors = _pk_factors(12)
    split = make_split(csi300.dates, "2017-01-03", n_train=120, n_valid=20, n_test=40)
    X, y = stack_rows(build_features(factors, csi300, split.train), make_labels(csi300, split.train))
    model = FactorModel(max_depth=3, learning_rate=0.1, n_estimators=30).fit(X, y)
    scored = slice(split.test.start - 1, split.test.stop)
    base = predict_scores(model, factors, csi300, scored)
    res = backtest(base, csi300, split.test, top_k=30)
    t = split.test.start + 17
    rng = np.random.default_rng(0)
    fields = {k: v.copy() for k, v in csi300.fields.items()}
    for name in ("open", "high", "low", "close", "volume"):
        fields[name][t + 1:] *= rng.uniform(0.7, 1.3, fields[name][t + 1:].shape).astype(np.float32)
    future = Panel(csi300.dates, csi300.instruments, fields, csi300.traded, csi300.in_universe)
    other = predict_scores(model, factors, future, scored)
    np.testing.assert_array_equal(other[: t + 1], base[: t + 1])
    assert not np.allclose(other[t + 1:][np.isfinite(base[t + 1:])], base[t + 1:][np.isfinite(base[t + 1:])])
    res2 = backtest(other, future, split.test, top_k=30)
    k = t - split.test.start + 1
    np.testing.assert_array_equal(res2.weights[:k], res.weights[:k])
    np.testing.assert_array_equal(res2.returns.to_numpy()[:k], res.returns.to_numpy()[:k])


def test_real_combine_selection_ignores_validation_and_test_data(csi300):
    factors = _pk_factors(16)
    split = make_split(csi300.dates, "2017-01-03", n_train=120, n_valid=20, n_test=40)
    model = FactorModel(max_depth=3, learning_rate=0.1, n_estimators=30)
    chosen = select_combine(factors[:8], factors[8:], csi300, split.train, n=8, model=model)
    fields = {k: v.copy() for k, v in csi300.fields.items()}
    stop = split.train.stop
    fields["close"][stop:] = fields["close"][stop:][::-1].copy()  # scramble valid + test prices
    fields["volume"][stop:] = 1.0
    universe = csi300.in_universe.copy()
    universe[stop:] = ~universe[stop:]
    corrupted = Panel(csi300.dates, csi300.instruments, fields, csi300.traded, universe)
    assert select_combine(factors[:8], factors[8:], corrupted, split.train, n=8, model=model) == chosen
    assert len({f.name for f in chosen}) == 8
    universe[stop - 1] = ~universe[stop - 1]  # the last training day does count
    fields["close"][: stop] *= np.random.default_rng(0).uniform(0.9, 1.1, fields["close"][:stop].shape)
    inside = Panel(csi300.dates, csi300.instruments, fields, csi300.traded, universe)
    assert select_combine(factors[:8], factors[8:], inside, split.train, n=8, model=model) != chosen
