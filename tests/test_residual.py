"""The residual form: factor = residual · s · rank_score(seed) + net(x), stored and rebuilt exactly."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from nnafc import metrics, pk
from nnafc.construct import ConstructConfig, construct_factor
from nnafc.data import Panel, load_panel, make_split
from nnafc.gp import factor_from_formula
from nnafc.zoo import Zoo

SIZES = {"n_train": 60, "n_valid": 15, "n_test": 15}
TINY = {"m": 10, "net_cfg": {"hidden": [8]}, "pretrain_epochs": 1, "epochs": 2, "q": 10}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def panel(data_dir: Path) -> Panel:
    return load_panel(data_dir / "csi300_2010_2020.parquet", start="2019-01-01", end="2019-08-31",
                      universe="csi300")


@pytest.fixture(scope="module")
def split(panel: Panel):
    return make_split(panel.dates, panel.dates[20], **SIZES)


def test_rank_score_known_answers() -> None:
    v = np.array([[3.0, 1.0, 2.0, np.nan], [5.0, 5.0, np.nan, np.nan], [np.nan, 1.0, np.nan, np.nan]])
    out = metrics.rank_score(v)
    scale = np.sqrt((9 - 1) / 12)
    np.testing.assert_allclose(out[0, :3], [1 / scale, -1 / scale, 0.0], rtol=1e-6)
    assert np.isnan(out[0, 3])
    np.testing.assert_allclose(out[1, :2], [0.0, 0.0])  # ties: both at the middle rank
    assert np.isnan(out[2]).all()  # one stock: no spread, no score
    big = metrics.rank_score(np.random.default_rng(0).normal(size=(1, 1001)))
    assert abs(big.std() - 1) < 1e-3 and abs(big.mean()) < 1e-6  # unit variance without ties
    np.testing.assert_array_equal(metrics.rank_score(v * 100 + 7), out)  # only the ordering counts


def test_weight_zero_is_the_plain_factor(panel, split) -> None:
    plain = construct_factor("MA10", "fcn", panel, split, TINY)
    zero = construct_factor("MA10", "fcn", panel, split, {**TINY, "residual": 0.0})
    np.testing.assert_array_equal(plain.values(panel), zero.values(panel))
    assert plain.meta["residual"] == {"weight": 0.0, "sign": 1.0}


def test_residual_factor_is_net_plus_signed_seed_rank(panel, split) -> None:
    f = construct_factor("REV5", "fcn", panel, split, {**TINY, "residual": 2.0})
    sign = f.meta["residual"]["sign"]
    seed = pk.factor("REV5").values(panel)
    train_ic = metrics.mean_ic(metrics.period_rank_ic(seed, panel, split.train, 5))
    assert sign == (1.0 if train_ic >= 0 else -1.0)
    scorer = f.compute
    net_only = type(scorer)(scorer.net, scorer.standardiser)(panel)  # the same net without its base
    base = 2.0 * sign * np.nan_to_num(metrics.rank_score(seed))
    values = f.values(panel)
    ok = np.isfinite(values)
    np.testing.assert_allclose(values[ok], (net_only + base)[ok], rtol=1e-5, atol=1e-5)
    assert np.isfinite(f.meta["ic"]["constructed"]["test"])


def test_residual_factor_round_trips_through_the_zoo(panel, split, tmp_path: Path) -> None:
    zoo = Zoo(tmp_path / "zoo")
    cfg = ConstructConfig.from_dict({**TINY, "residual": 1.0})
    f = construct_factor("MA10", "fcn", panel, split, cfg)
    key = zoo.save(f, panel, split)
    back = zoo.load(key)
    np.testing.assert_array_equal(back.values(panel), f.values(panel))
    assert back.meta["residual"] == f.meta["residual"]


def test_gp_seeded_residual_factor_is_rebuilt_from_its_formula(panel, split, tmp_path: Path) -> None:
    seed = factor_from_formula("ts_mean(close, 10)")
    f = construct_factor(seed, "fcn", panel, split, {**TINY, "residual": 1.0})
    assert f.meta["seed_factor_formula"] == seed.meta["formula"]
    zoo = Zoo(tmp_path / "zoo")
    key = zoo.save(f, panel, split, key="abc123")
    np.testing.assert_array_equal(zoo.load(key).values(panel), f.values(panel))


def test_a_residual_factor_whose_seed_cannot_be_rebuilt_is_refused(panel, split, tmp_path: Path) -> None:
    from nnafc.factor import Factor

    ma = pk.factor("MA10")
    custom = Factor("my-own", "user", lambda p: ma.values(p), {})
    f = construct_factor(custom, "fcn", panel, split, {**TINY, "residual": 1.0})
    with pytest.raises(ValueError, match="cannot be stored"):
        Zoo(tmp_path / "zoo").save(f, panel, split, key="c0ffee")
    assert not any((tmp_path / "zoo").glob("*c0ffee*"))


def test_no_look_ahead_with_the_residual_form(panel, split) -> None:
    cfg = {**TINY, "residual": 1.0}
    f = construct_factor("MA10", "fcn", panel, split, cfg)
    rng = np.random.default_rng(3)
    moved = {}
    for name, v in panel.fields.items():
        v = v.copy()
        v[split.valid.stop:] *= rng.uniform(0.5, 1.5, size=v[split.valid.stop:].shape).astype(np.float32)
        moved[name] = v
    other = replace(panel, fields=moved)
    g = construct_factor("MA10", "fcn", other, split, cfg)
    cut = slice(0, split.valid.stop)
    np.testing.assert_array_equal(f.values(panel)[cut], g.values(other)[cut])
    assert f.meta["ic"]["constructed"]["valid"] == g.meta["ic"]["constructed"]["valid"]
