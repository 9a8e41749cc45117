"""The differentiable objectives: Eq. 13-14 by hand, gradients, degenerate days, soft ranks."""

import numpy as np
import pandas as pd
import pytest
import torch

from nnafc import losses, metrics
from nnafc.ops import average_ranks


def _numpy_kernel_ic(x, y, p=1.83):
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    gx = 1 / (1 + np.exp(-p * (x - x.mean()) / (2 * x.std())))
    gy = 1 / (1 + np.exp(-p * (y - y.mean()) / (2 * y.std())))
    return np.corrcoef(gx, gy)[0, 1]


def test_kernel_is_eq13_and_monotone():
    x = torch.tensor([1.0, 2.0, 4.0, 8.0, float("nan")], dtype=torch.float64)
    g = losses.kernel(x, p=1.83)
    v = x[:4].numpy()
    expected = 1 / (1 + np.exp(-1.83 * (v - v.mean()) / (2 * v.std())))
    np.testing.assert_allclose(g[:4].numpy(), expected, rtol=1e-12)
    assert torch.isnan(g[4]) and (g[:4].diff() > 0).all()


def test_kernel_ic_matches_numpy_and_loss_is_negative_mean():
    gen = np.random.default_rng(0)
    x = gen.normal(size=(4, 50))
    y = 0.3 * x + gen.standard_t(3, size=(4, 50))
    x[1, :5] = np.nan
    out = losses.kernel_ic(torch.tensor(x), torch.tensor(y))
    expected = [_numpy_kernel_ic(a, b) for a, b in zip(x, y, strict=True)]
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-10)
    loss = losses.kernel_rank_ic_loss(torch.tensor(x), torch.tensor(y))
    assert loss.item() == pytest.approx(-out.mean().item())


@pytest.mark.parametrize("loss_fn", [losses.kernel_rank_ic_loss, losses.soft_rank_ic_loss])
def test_gradcheck(loss_fn):
    gen = torch.Generator().manual_seed(0)
    pred = torch.randn(3, 8, dtype=torch.float64, generator=gen, requires_grad=True)
    target = torch.randn(3, 8, dtype=torch.float64, generator=gen)
    target[2, :6] = float("nan")  # a day with too few stocks
    assert torch.autograd.gradcheck(lambda p: loss_fn(p, target), (pred,))


@pytest.mark.parametrize("loss_fn", [losses.kernel_rank_ic_loss, losses.soft_rank_ic_loss])
def test_degenerate_days_give_finite_loss_and_gradients(loss_fn):
    pred = torch.randn(4, 10, dtype=torch.float64, requires_grad=True)
    target = torch.randn(4, 10, dtype=torch.float64)
    target[0] = 0.01  # constant returns
    target[1, 2:] = float("nan")  # two stocks
    with torch.no_grad():
        pred[2, 3] = float("nan")  # a NaN output
    loss = loss_fn(pred, target)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(pred.grad).all()
    usable = torch.isfinite(losses.kernel_ic(pred.detach(), target))
    assert usable.tolist() == [False, False, True, True]

    all_bad = torch.zeros(2, 5, dtype=torch.float64, requires_grad=True)
    loss = loss_fn(all_bad, torch.full((2, 5), float("nan"), dtype=torch.float64))
    loss.backward()
    assert loss.item() == 0 and (all_bad.grad == 0).all()


def test_soft_rank_converges_to_exact_rank():
    x = torch.tensor([[3.0, -1.0, 2.5, 10.0, 0.0, float("nan")]], dtype=torch.float64)
    exact = average_ranks(x)
    coarse = losses.soft_rank(x, tau=1.0)
    fine = losses.soft_rank(x, tau=1e-3)
    np.testing.assert_allclose(fine[0, :5].numpy(), exact[0, :5].numpy() - 0.5, atol=1e-6)
    assert (coarse[0, :5] - exact[0, :5] + 0.5).abs().max() > 0.1
    assert torch.isnan(fine[0, 5])
    chunked = losses.soft_rank(x, tau=0.1, chunk=2)
    torch.testing.assert_close(chunked, losses.soft_rank(x, tau=0.1), equal_nan=True)


def test_soft_rank_ic_approaches_spearman():
    gen = np.random.default_rng(3)
    x = gen.normal(size=(5, 200))
    y = 0.2 * x + gen.normal(size=(5, 200))
    exact = metrics.rank_ic(x, y)
    approx = losses.soft_rank_ic(torch.tensor(x), torch.tensor(y), tau=1e-3).numpy()
    np.testing.assert_allclose(approx, exact, atol=1e-3)


def test_kernel_ic_tracks_rank_ic_on_real_days(data_dir):
    frame = pd.read_parquet(
        data_dir / "csi300_2010_2020.parquet", columns=["datetime", "instrument", "close"],
        filters=[("datetime", ">=", pd.Timestamp("2017-01-01")),
                 ("datetime", "<=", pd.Timestamp("2017-12-31"))],
    )
    close = frame.pivot(index="datetime", columns="instrument", values="close").to_numpy(np.float64)
    past = close[5:] / close[:-5] - 1
    factor, fwd = -past[:-5], past[5:]
    rank = metrics.rank_ic(factor, fwd)
    kern = losses.kernel_ic(torch.tensor(factor), torch.tensor(fwd)).numpy()
    ok = np.isfinite(rank) & np.isfinite(kern)
    assert ok.sum() > 200
    # a surrogate that did not follow the rank IC from day to day would be useless for training
    assert np.corrcoef(rank[ok], kern[ok])[0, 1] > 0.9
