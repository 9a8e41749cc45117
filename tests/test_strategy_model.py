"""Labels (exactly 30/30 %, no read past the split), features, the XGBoost model, Combine selection."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from nnafc.data import Panel
from nnafc.factor import Factor
from nnafc.strategy import (
    FactorModel,
    build_features,
    combine_importance,
    make_labels,
    predict_scores,
    rank_labels,
    run_strategy,
    select_combine,
    standardize,
)

T, N = 150, 80
SPLIT = SimpleNamespace(train=slice(10, 100), valid=slice(100, 120), test=slice(120, 150))


def synthetic_panel(seed: int = 0, t: int = T, n: int = N) -> Panel:
    """Log-volume on day t predicts the return of day t+2 (a known, panel-derived signal).

    Day t+1 is the execution day, whose price the signal must not earn; opens are the previous
    close plus a small gap, as in a real market.
    """
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(t, n))
    r = rng.normal(0, 0.02, (t, n))
    r[2:] += 0.02 * z[:-2]
    close = 10 * np.cumprod(1 + r, axis=0)
    open_ = np.vstack([close[:1], close[:-1]]) * (1 + rng.normal(0, 0.003, (t, n)))
    fields = {"open": open_, "high": np.fmax(open_, close) * 1.01, "low": np.fmin(open_, close) * 0.99,
              "close": close, "volume": 1000 * np.exp(z)}
    fields = {k: v.astype(np.float32) for k, v in fields.items()}
    ones = np.ones((t, n), dtype=bool)
    return Panel(pd.bdate_range("2015-01-05", periods=t), pd.Index([f"S{i:03d}" for i in range(n)]),
                 fields, ones, ones.copy())


def _noise(k: int):
    return lambda p: np.sin(1000.0 * (k + 1) * p["close"].astype(np.float64))


SIGNAL = Factor("logvol", "test", lambda p: np.log(p["volume"]))
NOISE = [Factor(f"noise{k}", "test", _noise(k)) for k in range(4)]
GAP = Factor("gap", "test", lambda p: p["open"] / p["close"] - 1.0)


def test_rank_labels_are_exactly_thirty_thirty():
    rng = np.random.default_rng(0)
    fwd = rng.normal(size=(20, 57))
    fwd[rng.random(fwd.shape) < 0.1] = np.nan
    mask = rng.random(fwd.shape) > 0.1
    labels = rank_labels(fwd, mask)
    valid = np.isfinite(fwd) & mask
    for d in range(fwd.shape[0]):
        n = valid[d].sum()
        ones, zeros = labels[d] == 1, labels[d] == 0
        assert ones.sum() == int(0.3 * n) == zeros.sum()
        assert fwd[d][ones].min() > fwd[d][zeros].max()
        assert fwd[d][ones].min() >= np.sort(fwd[d][valid[d]])[n - int(0.3 * n)]  # the top ones, not any
    assert np.isnan(labels[~valid]).all()
    exact = rank_labels(np.arange(10.0)[None, :])  # 0.3 * 10 is 3, not 2.999...
    assert np.nan_to_num(exact, nan=-1).tolist() == [[0, 0, 0, -1, -1, -1, -1, 1, 1, 1]]
    with pytest.raises(ValueError):
        rank_labels(fwd, top=0.6, bottom=0.6)


def test_make_labels_read_no_price_after_the_split():
    panel = synthetic_panel()
    days = SPLIT.train
    labels = make_labels(panel, days, horizon=5)
    assert labels.shape == (days.stop - days.start, N)
    assert np.isnan(labels[-5:]).all() and np.isfinite(labels[:-5]).sum(axis=1).min() == 2 * int(0.3 * N)
    close = panel["close"].astype(np.float64)
    d = 7  # known answer for one day
    fwd = close[days.start + d + 5] / close[days.start + d] - 1
    np.testing.assert_array_equal(labels[d], rank_labels(fwd[None, :].astype(np.float32))[0])
    # corrupt every price after the split's last day: same labels
    fields = {k: v.copy() for k, v in panel.fields.items()}
    fields["close"][days.stop:] *= np.float32(3.0)
    fields["close"][days.stop:, ::2] = np.nan
    other = Panel(panel.dates, panel.instruments, fields, panel.traded, panel.in_universe)
    np.testing.assert_array_equal(make_labels(other, days, horizon=5), labels)
    # only in-universe stocks are labelled
    universe = panel.in_universe.copy()
    universe[:, :10] = False
    masked = Panel(panel.dates, panel.instruments, panel.fields, panel.traded, universe)
    assert np.isnan(make_labels(masked, days)[:, :10]).all()


def test_standardize_and_features():
    rng = np.random.default_rng(1)
    x = rng.normal(5, 3, (4, 200))
    x[0, :5] = np.nan
    x[3] = 1.0  # no dispersion
    z = standardize(x, clip=None)
    np.testing.assert_allclose(np.nanmean(z[:3], axis=1), 0, atol=1e-6)
    np.testing.assert_allclose(np.nanstd(z[:3], axis=1, ddof=1), 1, atol=1e-5)
    assert np.isnan(z[0, :5]).all() and np.isnan(z[3]).all()
    assert np.nanmax(np.abs(standardize(x, clip=2.0))) == pytest.approx(2.0)
    mask = np.ones_like(x, dtype=bool)
    mask[1, :100] = False
    zm = standardize(x, mask, clip=None)
    assert np.isnan(zm[1, :100]).all() and np.nanmean(zm[1]) == pytest.approx(0, abs=1e-6)
    panel = synthetic_panel()
    feats = build_features([SIGNAL, GAP], panel, slice(20, 30))
    assert feats.shape == (10, N, 2) and feats.dtype == np.float32
    np.testing.assert_allclose(feats[3, :, 0], standardize(np.log(panel["volume"][23:24]))[0], atol=1e-6)
    with pytest.raises(ValueError, match="unique"):
        build_features([SIGNAL, SIGNAL], panel, slice(20, 30))


def _rows(panel, factors, part):
    from nnafc.strategy import stack_rows

    return stack_rows(build_features(factors, panel, part), make_labels(panel, part, horizon=2))


def test_factor_model_learns_tunes_on_validation_and_is_deterministic():
    panel = synthetic_panel()
    factors = [GAP, SIGNAL, *NOISE]
    X, y = _rows(panel, factors, SPLIT.train)
    Xv, yv = _rows(panel, factors, SPLIT.valid)
    grid = dict(max_depth=(2, 3), learning_rate=(0.1,), n_estimators=(10, 40), min_child_weight=5.0)
    model = FactorModel(**grid).fit(X, y, Xv, yv, feature_names=[f.name for f in factors])
    assert len(model.grid_scores_) == 4
    best = model.grid_scores_.loc[model.grid_scores_["valid_auc"].idxmax()]
    assert model.valid_auc_ == best["valid_auc"] > 0.7
    assert model.best_params_["max_depth"] == best["max_depth"]
    proba = model.predict_proba(Xv)
    assert proba.shape == (len(Xv), 2) and np.allclose(proba.sum(axis=1), 1)
    again = FactorModel(**grid).fit(X, y, Xv, yv, feature_names=[f.name for f in factors])
    np.testing.assert_array_equal(again.predict_proba(Xv), proba)
    imp = model.importance("weight")
    assert imp.idxmax() == "logvol" and list(imp.index) == [f.name for f in factors]
    with pytest.raises(ValueError, match="X_valid"):
        FactorModel(**grid).fit(X, y)
    with pytest.raises(ValueError, match="not fitted"):
        FactorModel(max_depth=2, learning_rate=0.1, n_estimators=5).predict_proba(Xv)
    with pytest.raises(ValueError, match="kind"):
        model.importance("splits")


@pytest.mark.parametrize("bad", [{"max_depth": 0}, {"max_depth": (3, 2.5)}, {"learning_rate": 0},
                                 {"n_estimators": ()}, {"subsample": 1.5}, {"n_jobs": 0}])
def test_factor_model_validates_parameters(bad):
    with pytest.raises(ValueError):
        FactorModel(**bad)


def test_combine_selection_uses_training_data_only():
    panel = synthetic_panel()
    pk, new = [GAP, *NOISE[:2]], [SIGNAL, *NOISE[2:]]
    model = FactorModel(max_depth=2, learning_rate=0.1, n_estimators=30, min_child_weight=5.0)
    chosen = select_combine(pk, new, panel, SPLIT.train, n=2, horizon=2, model=model)
    assert SIGNAL in chosen and len(chosen) == 2
    base = combine_importance(pk + new, panel, SPLIT.train, horizon=2, model=model)
    # corrupt every field, mask and universe after the training split: nothing changes
    rng = np.random.default_rng(9)
    stop = SPLIT.train.stop
    fields = {k: v.copy() for k, v in panel.fields.items()}
    for v in fields.values():
        v[stop:] = rng.uniform(1, 100, v[stop:].shape).astype(np.float32)
    traded = panel.traded.copy()
    traded[stop:] = rng.random(traded[stop:].shape) > 0.5
    corrupted = Panel(panel.dates, panel.instruments, fields, traded, traded.copy())
    after = combine_importance(pk + new, corrupted, SPLIT.train, horizon=2, model=model)
    pd.testing.assert_series_equal(after, base)
    assert select_combine(pk, new, corrupted, SPLIT.train, n=2, horizon=2, model=model) == chosen
    # a corruption inside the training split does change it (the test can fail)
    fields["volume"][:stop] = rng.uniform(1, 100, fields["volume"][:stop].shape).astype(np.float32)
    inside = Panel(panel.dates, panel.instruments, fields, panel.traded, panel.in_universe)
    assert not combine_importance(pk + new, inside, SPLIT.train, horizon=2, model=model).equals(base)
    with pytest.raises(ValueError, match="n must"):
        select_combine(pk, new, panel, SPLIT.train, n=7)
    with pytest.raises(ValueError, match="fixed"):
        combine_importance(pk + new, panel, SPLIT.train, model=FactorModel())


def test_run_strategy_earns_the_planted_signal_and_never_looks_ahead():
    panel = synthetic_panel()
    model = FactorModel(max_depth=2, learning_rate=(0.1, 0.3), n_estimators=(20,), min_child_weight=5.0)
    z = np.zeros(panel.shape, dtype=bool)
    kw = dict(horizon=2, model=model, top_k=10, rebalance=2, limit_up=z, limit_down=z)
    good = run_strategy([SIGNAL, GAP, *NOISE], panel, SPLIT, **kw)
    market = (panel["close"][120:150] / panel["close"][119:149] - 1).mean(axis=1)
    assert good.returns.mean() - market.mean() > 0.005  # the signal earns ~0.02 * 1.7 every other day
    assert good.params["factors"][0] == "logvol" and good.params["valid_auc"] > 0.7
    # change everything after test day t: weights and returns up to t are the same
    t = 135
    rng = np.random.default_rng(4)
    fields = {k: v.copy() for k, v in panel.fields.items()}
    for v in fields.values():
        v[t + 1:] *= rng.uniform(0.8, 1.2, v[t + 1:].shape).astype(np.float32)
    future = Panel(panel.dates, panel.instruments, fields, panel.traded, panel.in_universe)
    other = run_strategy([SIGNAL, GAP, *NOISE], future, SPLIT, **kw)
    k = t - SPLIT.test.start + 1
    np.testing.assert_array_equal(other.weights[:k], good.weights[:k])
    np.testing.assert_array_equal(other.returns.to_numpy()[:k], good.returns.to_numpy()[:k])
    assert not np.array_equal(other.weights[k:], good.weights[k:])
    # without a validation split, fixed hyper-parameters still work and a grid is refused
    no_valid = SimpleNamespace(train=SPLIT.train, valid=slice(100, 100), test=slice(100, 130))
    fixed = FactorModel(max_depth=2, learning_rate=0.1, n_estimators=20, min_child_weight=5.0)
    plain = run_strategy([SIGNAL, GAP], panel, no_valid, **(kw | {"model": fixed}))
    assert np.isnan(plain.params["valid_auc"]) and len(plain.returns) == 30
    with pytest.raises(ValueError, match="X_valid"):
        run_strategy([SIGNAL, GAP], panel, no_valid, **kw)
    # and so are the model's predictions for days <= t
    fitted = FactorModel(max_depth=2, learning_rate=0.1, n_estimators=20, min_child_weight=5.0)
    fitted.fit(*_rows(panel, [SIGNAL, GAP], SPLIT.train))
    a = predict_scores(fitted, [SIGNAL, GAP], panel, SPLIT.test)
    b = predict_scores(fitted, [SIGNAL, GAP], future, SPLIT.test)
    np.testing.assert_array_equal(a[: t + 1], b[: t + 1])
    assert np.isnan(a[: SPLIT.test.start]).all() and np.isfinite(a[SPLIT.test]).all()
