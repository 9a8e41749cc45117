"""zoo: content keys, atomic save, safe load that reproduces the factor exactly."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from nnafc import metrics, pk
from nnafc.construct import ConstructConfig, construct_factor
from nnafc.data import Panel, load_panel, make_split
from nnafc.gp import factor_from_formula
from nnafc.zoo import FILES, Zoo, describe, factor_key

SIZES = {"n_train": 60, "n_valid": 15, "n_test": 15}
TINY = {"m": 10, "net_cfg": {"hidden": [8]}, "pretrain_epochs": 1, "epochs": 2, "q": 10}



@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny nets gain nothing from threads, and threads on shared cores stall: one, then restore."""
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


@pytest.fixture(scope="module")
def cfg() -> ConstructConfig:
    return ConstructConfig.from_dict(TINY)


@pytest.fixture(scope="module")
def factor(panel, split, cfg):
    return construct_factor("RSI12", "fcn", panel, split, cfg)


def test_key_is_a_content_hash(panel, split, cfg) -> None:
    key = factor_key("RSI12", cfg, panel, split)
    assert key == factor_key("RSI12", cfg.to_dict(), panel, split)
    assert key == factor_key("RSI12", replace(cfg, progress=True), panel, split)  # does not change values
    assert key != factor_key("RSI6", cfg, panel, split)
    assert key != factor_key("RSI12", replace(cfg, epochs=3), panel, split)
    assert key != factor_key("RSI12", cfg, panel, make_split(panel.dates, panel.dates[21], **SIZES))
    moved = {k: v.copy() for k, v in panel.fields.items()}
    moved["close"][split.test.stop - 1, 0] *= 1.01  # data the factor's test reads: a new factor
    assert key != factor_key("RSI12", cfg, replace(panel, fields=moved), split)
    later = {k: v.copy() for k, v in panel.fields.items()}
    later["close"][split.test.stop:] *= 1.01  # data after the test period: the same factor
    assert key == factor_key("RSI12", cfg, replace(panel, fields=later), split)


def test_a_field_added_later_keeps_old_keys_at_its_default(panel, split, cfg) -> None:
    """pretrain_stock_fraction and report_every came after FORMAT 2: at their defaults (the old
    behaviour) the key is the old one; set, they change it."""
    old = describe("RSI12", cfg, panel, split)["config"]
    assert "pretrain_stock_fraction" not in old and "report_every" not in old
    key = factor_key("RSI12", cfg, panel, split)
    for later in ({"pretrain_stock_fraction": 0.5}, {"report_every": 5}):
        assert key != factor_key("RSI12", replace(cfg, **later), panel, split)


def test_save_load_round_trip(tmp_path, panel, split, cfg, factor) -> None:
    zoo = Zoo(tmp_path / "zoo")
    key = factor_key("RSI12", cfg, panel, split)
    assert not zoo.has(key)
    assert zoo.save(factor, panel, split, key=key) == key
    assert zoo.has(key) and zoo.keys() == [key]
    assert {p.name for p in zoo.path(key).iterdir()} == set(FILES)
    assert not list(zoo.root.glob(".tmp-*"))
    with np.load(zoo.path(key) / "weights.npz", allow_pickle=False) as z:  # plain arrays only
        assert set(z.files) == set(factor.compute.net.state_dict())

    loaded = zoo.load(key)
    assert loaded.name == factor.name and loaded.origin == "nnafc" and loaded.meta["key"] == key
    a, b = factor.compute.net.state_dict(), loaded.compute.net.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert all(torch.equal(factor.compute.masks[k].bool(), loaded.compute.masks[k].bool()) for k in a
               if k in factor.compute.masks)
    np.testing.assert_array_equal(loaded.values(panel), factor.values(panel))
    # a zoo written before weights were compressed (weights.pt, torch tensors) loads the same factor
    old = zoo.path(key)
    torch.save(zoo.weights(key), old / "weights.pt")
    (old / "weights.npz").unlink()
    np.testing.assert_array_equal(zoo.load(key).values(panel), factor.values(panel))

    stored = zoo.values(key)
    assert list(stored.columns) == ["datetime", "instrument", "value"]
    span = factor.compute(panel, split.span)
    t = panel.dates.get_indexer(stored["datetime"])
    n = panel.instruments.get_indexer(stored["instrument"].astype(str))
    np.testing.assert_array_equal(stored["value"].to_numpy(), span[t, n])
    assert len(stored) == np.isfinite(span).sum() and t.min() >= split.span.start

    table = zoo.list()
    assert list(table["key"]) == [key]
    assert table.loc[0, "seed_factor"] == "RSI12" and table.loc[0, "net"] == "fcn"
    assert table.loc[0, "test_ic"] == pytest.approx(factor.meta["ic"]["constructed"]["test"])
    meta = json.loads((zoo.path(key) / "meta.json").read_text())
    assert meta["describe"]["data"]["fingerprint"] and meta["describe"]["seed_factor"] == "RSI12"


def test_existing_key_is_kept_and_orphans_are_removed(tmp_path, panel, split, factor) -> None:
    zoo = Zoo(tmp_path)
    key = zoo.save(factor, panel, split, values=False)
    stamp = os.stat(zoo.path(key) / "meta.json").st_mtime_ns
    assert zoo.save(factor, panel, split) == key  # a re-run is a no-op
    assert os.stat(zoo.path(key) / "meta.json").st_mtime_ns == stamp
    assert not (zoo.path(key) / "values.parquet").exists()

    from nnafc.zoo import _HOST

    dead = tmp_path / f".tmp-{key}-{_HOST}-999999999-abcd"  # a writer killed mid-save (no such pid)
    dead.mkdir()
    (dead / "weights.pt").write_bytes(b"partial")
    elsewhere = tmp_path / f".tmp-{key}-otherhost-999999999-abcd"  # maybe alive on another host
    elsewhere.mkdir()
    Zoo(tmp_path)
    assert not dead.exists() and elsewhere.exists() and zoo.keys() == [key]


def test_failed_save_leaves_nothing(tmp_path, panel, split, factor, monkeypatch) -> None:
    zoo = Zoo(tmp_path)

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("nnafc.zoo._long", fail)  # dies after the weights were written
    with pytest.raises(OSError, match="disk full"):
        zoo.save(factor, panel, split)
    assert zoo.keys() == [] and not list(tmp_path.iterdir())
    with pytest.raises(ValueError, match="not a zoo key"):
        zoo.has("../etc")
    with pytest.raises(KeyError):
        zoo.load("f" * 20)


def _columns(panel: Panel, idx: np.ndarray, names: list[str]) -> Panel:
    """A panel of some of the instruments, in another order, under the given codes."""
    return replace(panel, instruments=pd.Index(names), fields={k: v[:, idx] for k, v in panel.fields.items()},
                   traded=panel.traded[:, idx], in_universe=panel.in_universe[:, idx])


@pytest.mark.parametrize("normalisation", ["train_zscore", "window"])
def test_loaded_factor_on_other_instruments(tmp_path, panel, split, cfg, normalisation) -> None:
    f = construct_factor("RSI12", "fcn", panel, split, replace(cfg, normalisation=normalisation, epochs=1))
    zoo = Zoo(tmp_path)
    loaded = zoo.load(zoo.save(f, panel, split))
    full = f.values(panel)
    np.testing.assert_array_equal(loaded.values(panel), full)
    idx = np.random.default_rng(0).permutation(len(panel.instruments))[:50]
    names = [str(panel.instruments[i]) for i in idx]
    names[0] = "XX000001"  # a stock the training never saw
    sub = loaded.values(_columns(panel, idx, names))  # (T, 50)
    assert np.isfinite(sub[:, 1:]).any()
    np.testing.assert_allclose(sub[:, 1:], full[:, idx[1:]], rtol=1e-5, atol=1e-6)
    if normalisation == "train_zscore":  # no training statistics for it: no value
        assert np.isnan(sub[:, 0]).all()
    else:  # scale-free windows need no statistics
        np.testing.assert_allclose(sub[:, 0], full[:, idx[0]], rtol=1e-5, atol=1e-6)


def test_masks_are_stored_as_bits_and_old_bool_masks_still_load(tmp_path, panel, split, factor) -> None:
    from nnafc.zoo import pack_masks, unpack_masks

    masks = {k: v.bool() for k, v in factor.compute.masks.items()}
    packed = pack_masks(masks)
    back = unpack_masks(packed)
    assert set(back) == set(masks) and all(torch.equal(back[k], masks[k]) for k in masks)
    assert sum(v.nbytes for k, v in packed.items() if not k.endswith("#shape")) * 8 >= sum(
        m.numel() for m in masks.values())
    zoo = Zoo(tmp_path / "zoo")
    key = zoo.save(factor, panel, split)
    new = zoo.load(key).values(panel)
    d = zoo.path(key)
    (d / "masks.npz").unlink()
    torch.save(masks, d / "masks.pt")  # the layout before masks were packed
    old = zoo.load(key)
    np.testing.assert_array_equal(old.values(panel), new)
    assert all(torch.equal(old.compute.masks[k].bool(), masks[k]) for k in masks)


# ---------------------------------------------------------------------------- the residual form
# factor = residual · s · rank_score(seed) + net(x), stored and rebuilt exactly


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
