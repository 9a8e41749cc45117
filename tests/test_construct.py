"""construct: config validation, the three stages, model choice, reproducibility, no look-ahead."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from nnafc import nets
from nnafc.construct import (
    ConstructConfig,
    apply_masks,
    construct_factor,
    mean_rank_ic,
    prepare,
    pretrain,
    prune,
    standardise_target,
    train_ic,
)
from nnafc.data import FIELDS, Panel, load_panel, make_split
from nnafc.evaluate.saliency import saliency_map
from nnafc.pk import compute as pk_compute

SIZES = {"n_train": 80, "n_valid": 20, "n_test": 20}
TINY = {"m": 10, "net_cfg": {"hidden": [16, 16]}, "pretrain_epochs": 2, "epochs": 3, "patience": 3,
        "q": 10}



@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny nets gain nothing from threads, and threads on shared cores stall: one, then restore."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
@pytest.fixture(scope="module")
def panel(data_dir: Path) -> Panel:
    return load_panel(data_dir / "csi300_2010_2020.parquet", start="2018-06-01", end="2019-03-31",
                      universe="csi300")


@pytest.fixture(scope="module")
def split(panel: Panel):
    return make_split(panel.dates, panel.dates[40], **SIZES)


@pytest.fixture(scope="module")
def cfg() -> ConstructConfig:
    return ConstructConfig.from_dict(TINY)


@pytest.fixture(scope="module")
def factor(panel, split, cfg):
    return construct_factor("MA10", "fcn", panel, split, cfg)


def _state(f) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in f.compute.net.state_dict().items()}


def _corrupt_after(panel: Panel, day: int, seed: int = 1) -> Panel:
    """The panel with every price and volume from `day` on multiplied by random noise."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, v in panel.fields.items():
        v = v.copy()
        v[day:] *= rng.uniform(0.5, 2.0, size=v[day:].shape).astype(np.float32)
        out[name] = v
    return replace(panel, fields=out)


# ---------------------------------------------------------------------------- config


def test_config_unknown_key_names_the_closest() -> None:
    with pytest.raises(ValueError, match="unknown construct config key 'patiense'.*did you mean 'patience'"):
        ConstructConfig.from_dict({"patiense": 3})


@pytest.mark.parametrize("bad", [
    {"prune_rate": 1.0}, {"prune_rate": -0.1}, {"q": 0}, {"loss": "mse"}, {"net": "fcm"},
    {"net_cfg": {"hiden": [4]}}, {"normalisation": "zscore"}, {"p": -1.0}, {"epochs": 2.5},
    {"target_norm": "rank"}, {"device": "tpu"}, {"seed": -1},
])
def test_config_rejects_bad_values(bad: dict) -> None:
    with pytest.raises(ValueError):
        ConstructConfig.from_dict(bad)


# ---------------------------------------------------------------------------- pieces


def test_standardise_target_known_answers() -> None:
    values = torch.tensor([1.0, 2.0, 3.0, float("nan"), 10.0, 10.0, 10.0])
    day = torch.tensor([0, 0, 0, 0, 1, 1, 1])
    z = standardise_target(values, day, method="cross_section")
    s = np.sqrt(2 / 3)  # population std of 1, 2, 3
    np.testing.assert_allclose(z[:3].numpy(), [-1 / s, 0, 1 / s], rtol=1e-6)
    assert torch.isnan(z[3:]).all()  # missing stays missing; a day with no spread has no target
    outlier = torch.cat([torch.zeros(99), torch.tensor([100.0])])
    assert float(standardise_target(outlier, torch.zeros(100, dtype=torch.long), clip=3.0)[-1]) == 3.0
    ref = torch.tensor([0.0, 2.0])  # pooled: the reference's mean 1 and std 1
    got = standardise_target(torch.tensor([1.0, 2.5, 9.0]), torch.tensor([0, 1, 2]), method="pooled", ref=ref)
    np.testing.assert_allclose(got.numpy(), [0.0, 1.5, 3.0])


def test_prune_masks_the_smallest_magnitudes() -> None:
    torch.manual_seed(0)
    net = nets.build("fcn", m=10, hidden=[16, 8])
    before = copy.deepcopy(net.state_dict())
    masks = prune(net, 0.3)
    assert set(masks) == {n for n, _ in nets.prunable_named_weights(net)}
    for name, w in net.named_parameters():
        if name not in masks:
            assert torch.equal(w, before[name])  # biases are never pruned
            continue
        pruned = masks[name] == 0
        assert int(pruned.sum()) == int(0.3 * w.numel())
        assert torch.all(w[pruned] == 0) and torch.equal(w[~pruned], before[name][~pruned])
        assert before[name][pruned].abs().max() <= before[name][~pruned].abs().min()
    with torch.no_grad():
        for w in nets.prunable_weights(net):
            w.add_(1.0)
    apply_masks(net, masks)
    assert all(torch.all(w[masks[n] == 0] == 0) for n, w in nets.prunable_named_weights(net))


def test_dayset_batches_equal_rowwise_outputs(panel, split, cfg) -> None:
    data = prepare(panel, split, cfg)
    torch.manual_seed(0)
    net = nets.build("fcn", m=cfg.m, hidden=[8])
    ds = data.train
    b = np.array([3, 0, 7])
    pred = ds.forward(net, b)  # (3, n_max)
    for i, d in enumerate(b):
        rows = ds.index[d][ds.index[d] >= 0]
        expect = net(ds.x[rows])
        np.testing.assert_allclose(pred[i, : len(rows)].detach().numpy(), expect.detach().numpy(), rtol=1e-6)
        assert torch.all(pred[i, len(rows):] == 0)
    whole = ds.predict(net, batch_rows=1 << 20)
    # chunk sizes change only the matmul blocking: last-bit differences, nothing more
    np.testing.assert_allclose(ds.predict(net, batch_rows=50).numpy(), whole.numpy(), rtol=1e-5, atol=1e-7)
    assert whole.shape == (len(ds.windows),)
    # chunks of 50 rows split days: right for a row-wise net, not for one whose stocks see their day's others
    cross = nets.build("crossconv", m=cfg.m, width=8)
    np.testing.assert_allclose(ds.predict(cross, batch_rows=50).numpy(),
                               ds.predict(cross, batch_rows=1 << 20).numpy(), rtol=1e-5, atol=1e-6)


def test_pretrain_learns_to_mimic_the_seed(panel, split, cfg) -> None:
    data = prepare(panel, split, cfg)
    seed = pk_compute("MA10", data.panel)  # (T, N)
    torch.manual_seed(0)
    net = nets.build("fcn", m=cfg.m, hidden=[32, 32])
    untrained = pretrain(copy.deepcopy(net), data.train.windows, seed, replace(cfg, pretrain_epochs=0),
                         holdout=(data.valid.windows, seed))
    fit = pretrain(net, data.train.windows, seed, replace(cfg, pretrain_epochs=8),
                   holdout=(data.valid.windows, seed))
    assert fit.n_train > 0 and fit.n_test > 0 and len(fit.curve) == 8
    assert fit.curve[-1] < fit.curve[0]
    assert fit.train_mse < untrained.train_mse / 2 and fit.test_mse < untrained.test_mse / 2
    assert fit.test_error_rate < untrained.test_error_rate
    assert fit.test_accuracy > max(untrained.test_accuracy, 0.5)


# ---------------------------------------------------------------------------- IC training


def test_train_ic_restores_the_best_validation_epoch(panel, split, cfg) -> None:
    data = prepare(panel, split, cfg)
    torch.manual_seed(0)
    net = nets.build("fcn", m=cfg.m, hidden=[16, 16])
    masks = prune(net, 0.3)
    report = train_ic(net, data, replace(cfg, epochs=4, patience=10, lr=3e-3, keep_pretrained=True),
                      masks=masks)
    ics = [c["valid_ic"] for c in report.curve]
    assert report.epochs_run == 4 and len(ics) == 5
    assert report.best_epoch == int(np.argmax(ics)) and report.best_valid_ic == max(ics)
    got = mean_rank_ic(data.valid.pad(data.valid.predict(net)), data.valid.label)
    assert got == pytest.approx(report.best_valid_ic, abs=1e-12)
    losses = [c["train_loss"] for c in report.curve[1:]]
    assert losses[-1] < losses[0]  # the kernel rank IC of the training batches goes up
    assert all(torch.all(w[masks[n] == 0] == 0) for n, w in nets.prunable_named_weights(net))


def test_early_stopping_after_patience(panel, split, cfg) -> None:
    data = prepare(panel, split, cfg)
    torch.manual_seed(0)
    net = nets.build("fcn", m=cfg.m, hidden=[8])
    before = copy.deepcopy(net.state_dict())
    # a step far below float32 resolution: the validation IC cannot improve, so it stops after
    # `patience` epochs past the best -- epoch 0 with keep_pretrained, else the first trained epoch
    report = train_ic(net, data, replace(cfg, epochs=50, patience=2, lr=1e-12, steps_per_epoch=1,
                                         keep_pretrained=True))
    assert report.stopped_early and report.epochs_run == 2 and report.best_epoch == 0
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    report = train_ic(net, data, replace(cfg, epochs=50, patience=2, lr=1e-12, steps_per_epoch=1))
    assert report.stopped_early and report.epochs_run == 3 and report.best_epoch == 1


def test_smoothed_model_choice_on_a_known_curve() -> None:
    """valid_smoothing=2 judges an epoch by the mean of its IC and the one before: a lone spike loses."""
    from nnafc.construct import _Selector

    ics = [0.10, 0.30, 0.02, 0.20, 0.21, 0.05]  # epochs 1..6; the mean of consecutive pairs peaks at epoch 5
    raw, smooth = (_Selector(10, 0.0, {}, False, smoothing=k) for k in (1, 2))
    for epoch, ic in enumerate(ics, start=1):
        for pick in (raw, smooth):
            pick.update(epoch, ic, lambda e=epoch: {"epoch": torch.tensor(e)}, 0.0, 0.0, 0.0)
    assert raw.best_epoch == 2 and raw.best_ic == pytest.approx(0.30)
    assert smooth.best_epoch == 5 and smooth.best_ic == pytest.approx((0.20 + 0.21) / 2)
    assert int(smooth.best_state["epoch"]) == 5  # the chosen epoch's own weights
    assert [c.get("smoothed_valid_ic") for c in smooth.curve[1:3]] == pytest.approx([0.10, 0.20])


def test_stock_fraction_runs_a_seeded_subset(panel, split, cfg) -> None:
    data = prepare(panel, split, cfg)
    ds = data.train
    keep = torch.zeros(ds.valid[:2].shape, dtype=torch.bool)
    keep[:, :5] = True
    net = nets.build("fcn", m=cfg.m, hidden=[8])
    out = ds.forward(net, np.arange(2), keep)
    # the kept stocks' outputs are the full pass's (to rounding: a smaller matmul may block differently)
    full = ds.forward(net, np.arange(2))
    assert (out[~keep] == 0).all() and torch.allclose(out[keep], full[keep], atol=1e-6)
    runs = []
    for fraction in (0.5, 0.5, 1.0):
        torch.manual_seed(0)
        net = nets.build("fcn", m=cfg.m, hidden=[8])
        train_ic(net, data, replace(cfg, epochs=1, stock_fraction=fraction))
        runs.append(data.valid.predict(net))
    assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])  # seeded, and it matters
    with pytest.raises(ValueError, match="stock_fraction"):
        ConstructConfig(stock_fraction=1.5)


def test_pretrain_stock_fraction_fits_a_seeded_subset(panel, split, cfg) -> None:
    data = prepare(panel, split, cfg)
    seed = pk_compute("MA10", data.panel)
    fits = []
    for fraction in (0.3, 0.3, 1.0):
        torch.manual_seed(0)
        net = nets.build("fcn", m=cfg.m, hidden=[8])
        report = pretrain(net, data.train.windows, seed, replace(cfg, pretrain_epochs=2,
                                                                  pretrain_stock_fraction=fraction))
        fits.append((report.train_mse, data.valid.predict(net)))
    assert torch.equal(fits[0][1], fits[1][1]) and not torch.equal(fits[0][1], fits[2][1])
    assert np.isfinite(fits[0][0]) and fits[0][0] < 1.0  # it still learns the seed (z-scored target)
    with pytest.raises(ValueError, match="pretrain_stock_fraction"):
        ConstructConfig(pretrain_stock_fraction=0)


# ---------------------------------------------------------------------------- construct_factor


def test_construct_factor_meta_and_values(panel, split, cfg, factor) -> None:
    assert factor.origin == "nnafc" and "MA10" in factor.name
    meta = json.loads(json.dumps(factor.meta))  # JSON-serialisable as it is
    assert meta["seed_factor"] == "MA10" and meta["config"]["net"] == "fcn"
    for who in ("seed_factor", "pretrained", "constructed"):
        assert set(meta["ic"][who]) == {"train", "valid", "test"}
        assert all(np.isfinite(v) for v in meta["ic"][who].values())
    assert meta["training"]["best_epoch"] <= meta["training"]["epochs_run"] <= cfg.epochs
    assert meta["pretrain"]["n_train"] > 0 and np.isfinite(meta["pretrain"]["test_mse"])
    masks = factor.compute.masks
    assert set(meta["pruned"]) == set(masks)
    for name, mask in masks.items():
        assert meta["pruned"][name] == pytest.approx(int(cfg.prune_rate * mask.numel()) / mask.numel())
        assert torch.all(factor.compute.net.get_parameter(name)[mask == 0] == 0)
    values = factor.values(panel)
    assert values.shape == panel.shape and values.dtype == np.float32
    finite = np.isfinite(values)
    assert finite[split.test].any() and not finite[: cfg.m - 1].any()  # no window before day m-1
    assert not (finite & ~panel.in_universe).any()


def test_same_seed_same_factor_bit_for_bit(panel, split, cfg, factor) -> None:
    again = construct_factor("MA10", "fcn", panel, split, cfg)
    a, b = _state(factor), _state(again)
    assert all(torch.equal(a[k], b[k]) for k in a)
    np.testing.assert_array_equal(factor.values(panel), again.values(panel))
    other = construct_factor("MA10", "fcn", panel, split, replace(cfg, seed=1))
    assert not np.array_equal(factor.values(panel), other.values(panel), equal_nan=True)


def test_no_look_ahead_after_validation(panel, split, cfg, factor) -> None:
    """Prices after the last validation day cannot change the network (the test split included)."""
    corrupted = _corrupt_after(panel, split.valid.stop)
    again = construct_factor("MA10", "fcn", corrupted, split, cfg)
    a, b = _state(factor), _state(again)
    assert all(torch.equal(a[k], b[k]) for k in a)
    stop = split.valid.stop
    np.testing.assert_array_equal(factor.values(panel)[:stop], again.values(corrupted)[:stop])
    assert again.meta["ic"]["constructed"]["valid"] == factor.meta["ic"]["constructed"]["valid"]
    assert again.meta["ic"]["constructed"]["test"] != factor.meta["ic"]["constructed"]["test"]


def test_training_never_reads_validation_prices(panel, split, cfg, factor) -> None:
    """Pre-training and every training batch see only prices up to the last training day."""
    corrupted = _corrupt_after(panel, split.train.stop)
    again = construct_factor("MA10", "fcn", corrupted, split, cfg)
    assert again.meta["pretrain"]["train_mse"] == factor.meta["pretrain"]["train_mse"]
    assert again.meta["ic"]["pretrained"]["train"] == factor.meta["ic"]["pretrained"]["train"]
    curve_a, curve_b = factor.meta["training"]["curve"], again.meta["training"]["curve"]
    assert [c["train_loss"] for c in curve_a[1:]] == [c["train_loss"] for c in curve_b[1:]]
    assert curve_a[0]["valid_ic"] != curve_b[0]["valid_ic"]  # validation did read the corrupted days


def test_other_losses_nets_and_decorrelation(panel, split, cfg) -> None:
    soft = construct_factor("RSI12", "fcn", panel, split, replace(cfg, loss="softrank", epochs=1))
    assert np.isfinite(soft.meta["ic"]["constructed"]["valid"])
    cross = construct_factor("TOP10", None, panel, split,
                             replace(cfg, net="crossconv", net_cfg={"width": 8, "layers": 1}, epochs=1))
    assert cross.meta["net"]["name"] == "crossconv" and np.isfinite(cross.values(panel)).any()
    from nnafc import pk

    pool = [pk.factor("REV5")]
    c = replace(cfg, epochs=3, lr=3e-3)
    free = construct_factor("RSI12", "fcn", panel, split, c, pool=pool)  # decorrelation 0: pool unused
    apart = construct_factor("RSI12", "fcn", panel, split, replace(c, decorrelation=1.0), pool=pool)
    rev = pd.DataFrame(pool[0].values(panel)[split.train])

    def corr(f) -> float:  # |mean daily Spearman correlation| with the pool factor on training days
        v = pd.DataFrame(f.values(panel)[split.train])
        return abs(float(np.nanmean([v.iloc[t].corr(rev.iloc[t], method="spearman") for t in range(len(v))])))

    assert corr(apart) < corr(free)


# ---------------------------------------------------------------------------- saliency (Eq. 17)


class _Linear(torch.nn.Module):
    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(w)

    def forward(self, x: torch.Tensor, day: torch.Tensor | None = None) -> torch.Tensor:
        return (x * self.w).sum((1, 2)) + 0.5 * (x[:, 0, 0] ** 2)  # (n,)


def test_saliency_is_the_input_gradient() -> None:
    w = torch.randn(len(FIELDS), 6, generator=torch.Generator().manual_seed(0))
    x = torch.randn(40, len(FIELDS), 6, generator=torch.Generator().manual_seed(1))
    got = saliency_map(_Linear(w), x, batch_rows=7)
    expect = w.double().numpy().copy()
    expect[0, 0] += x[:, 0, 0].double().mean().item()  # d(0.5 x²)/dx = x, averaged
    np.testing.assert_allclose(got, expect, rtol=1e-5, atol=1e-6)
    absolute = saliency_map(_Linear(w), x, absolute=True)
    expect_abs = np.abs(w.double().numpy())
    expect_abs[0, 0] = (w[0, 0] + x[:, 0, 0]).abs().double().mean().item()
    np.testing.assert_allclose(absolute, expect_abs, rtol=1e-5, atol=1e-6)


def test_saliency_of_a_constructed_factor(panel, split, cfg, factor) -> None:
    data = prepare(panel, split, cfg)
    net = factor.compute.net
    before = copy.deepcopy(net.state_dict())
    s = saliency_map(net, data.valid.windows, batch_rows=500)
    assert s.shape == (len(FIELDS), cfg.m) and np.isfinite(s).all() and np.abs(s).sum() > 0
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


# ---------------------------------------------------------------------------- the simulated market


def test_ic_training_finds_the_planted_signals() -> None:
    """On a market with planted return signals, training turns a seed of the wrong sign into a
    factor that predicts out of sample (no real data needed)."""
    from nnafc.simulate import simulate_market

    sim = simulate_market(n_stocks=150, n_days=300, seed=0)
    split = make_split(sim.dates, sim.dates[60], n_train=150, n_valid=30, n_test=50)
    cfg = ConstructConfig.from_dict({**TINY, "epochs": 10, "patience": 10, "lr": 3e-3})
    f = construct_factor("RSI12", "fcn", sim, split, cfg)
    ic = f.meta["ic"]
    # the seed factor points the wrong way here
    assert ic["seed_factor"]["train"] < 0 and ic["seed_factor"]["test"] < 0
    assert ic["constructed"]["train"] > 0 and ic["constructed"]["test"] > 0
    assert ic["constructed"]["test"] > ic["pretrained"]["test"]


def test_report_every_measures_a_day_subset_and_keeps_the_factor(panel, split, cfg) -> None:
    data = prepare(panel, split, cfg)
    sub = data.train.every(3)
    assert list(sub.days) == list(data.train.days[::3]) and data.train.every(1) is data.train
    rows = np.isin(data.train.windows.day.numpy(), sub.days)
    assert torch.equal(sub.windows.x, data.train.windows.x[torch.from_numpy(rows)])
    assert torch.equal(sub.label.nan_to_num(9), data.train.label[::3, : sub.label.shape[1]].nan_to_num(9))
    full, every = (construct_factor("MA10", None, panel, split, replace(cfg, report_every=k)) for k in (1, 3))
    assert np.array_equal(full.values(panel), every.values(panel), equal_nan=True)  # the same network
    assert full.meta["ic"]["constructed"]["valid"] == every.meta["ic"]["constructed"]["valid"]
    assert full.meta["ic"]["constructed"]["train"] != every.meta["ic"]["constructed"]["train"]
