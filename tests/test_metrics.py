"""Exact metrics against scipy on real days, and known answers for diversity and pool IC."""

import numpy as np
import pandas as pd
import pytest
import scipy.stats as ss
import torch

from nnafc import metrics


@pytest.fixture(scope="module")
def real_days(data_dir):
    """One year of CSI 300 closes and volumes as (T, N), with suspensions (NaN) and ties."""
    frame = pd.read_parquet(
        data_dir / "csi300_2010_2020.parquet", columns=["datetime", "instrument", "close", "volume"],
        filters=[("datetime", ">=", pd.Timestamp("2015-06-01")),
                 ("datetime", "<=", pd.Timestamp("2016-05-31"))],
    )
    close = frame.pivot(index="datetime", columns="instrument", values="close").to_numpy(np.float64)
    volume = frame.pivot(index="datetime", columns="instrument", values="volume").to_numpy(np.float64)
    past = close[5:] / close[:-5] - 1  # return over days t-5..t, known at t (row t-5 of this array)
    # day t (t = 5..T-6): factor from data up to t, label = return over t..t+5
    return {
        "fwd": past[5:],
        "rev": -past[:-5],
        "vol": np.round(volume[5:-5] / 1e6),  # coarse: many ties
        "raw": close[5:-5],
    }


def _scipy_daily(fn, f, r):
    out = []
    for a, b in zip(f, r, strict=True):
        ok = np.isfinite(a) & np.isfinite(b)
        if ok.sum() < 3 or np.ptp(a[ok]) == 0 or np.ptp(b[ok]) == 0:
            out.append(np.nan)
        else:
            out.append(fn(a[ok], b[ok])[0])
    return np.array(out)


@pytest.mark.parametrize("name", ["rev", "vol", "raw"])
def test_rank_ic_and_ic_match_scipy_per_day(real_days, name):
    f, r = real_days[name], real_days["fwd"]
    assert np.isnan(f).any() and np.isnan(r).any()
    np.testing.assert_allclose(metrics.rank_ic(f, r), _scipy_daily(ss.spearmanr, f, r), atol=1e-6)
    np.testing.assert_allclose(metrics.ic(f, r), _scipy_daily(ss.pearsonr, f, r), atol=1e-6)


def test_torch_input_gives_torch_output_and_mask_applies(real_days):
    f, r = real_days["rev"], real_days["fwd"]
    out = metrics.rank_ic(torch.as_tensor(f), torch.as_tensor(r))
    assert isinstance(out, torch.Tensor) and out.shape == (len(f),)
    mask = np.zeros_like(f, dtype=bool)
    mask[:, : f.shape[1] // 2] = True
    half = metrics.rank_ic(f, r, mask)
    np.testing.assert_allclose(half, metrics.rank_ic(f[:, : f.shape[1] // 2], r[:, : f.shape[1] // 2]))


def test_degenerate_days_are_nan():
    f = np.array([[1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 1.0, 1.0], [1.0, 2.0, np.nan, np.nan]])
    r = np.array([[4.0, 3.0, 2.0, 1.0], [1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0]])
    out = metrics.rank_ic(f, r)
    assert out[0] == pytest.approx(-1.0) and np.isnan(out[1]) and np.isnan(out[2])


def test_ic_summary_known_answer():
    s = metrics.ic_summary(np.array([0.1, 0.3, np.nan, -0.1, 0.1]))
    assert s["n_days"] == 4 and s["mean"] == pytest.approx(0.1)
    std = np.std([0.1, 0.3, -0.1, 0.1], ddof=1)
    assert s["std"] == pytest.approx(std) and s["icir"] == pytest.approx(0.1 / std)
    assert s["t_stat"] == pytest.approx(0.1 / std * 2) and s["positive"] == 0.75


def test_ic_table_rows(real_days):
    table = metrics.ic_table({"rev": real_days["rev"], "raw": real_days["raw"]}, real_days["fwd"])
    assert list(table.index) == ["rev", "raw"] and {"mean", "icir", "t_stat"} <= set(table.columns)
    with pytest.raises(ValueError, match="method"):
        metrics.ic_table({}, real_days["fwd"], method="kendall")


def test_cross_entropy_distance_hand_computed():
    f = np.array([[0.0, 1.0, 2.0], [2.0, 1.0, 0.0]])
    d = metrics.cross_entropy_distance(f)
    z = (f - f.mean(1, keepdims=True)) / f.std(1, ddof=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    expected = np.array([[-(p[i] * np.log(p[j])).sum() for j in range(2)] for i in range(2)])
    np.testing.assert_allclose(d, expected, rtol=1e-10)
    assert d[0, 1] > d[0, 0]  # a cross-entropy is smallest against itself (Gibbs)


def test_diversity_grows_with_difference():
    gen = np.random.default_rng(0)
    base = gen.normal(size=(20, 300))
    near = [base + 0.01 * gen.normal(size=base.shape) for _ in range(6)]
    far = [gen.normal(size=base.shape) * (1 + i) for i in range(6)]
    assert metrics.diversity(near, n_clusters=3) < 0.05 * metrics.diversity(far, n_clusters=3)
    with pytest.raises(ValueError, match="two factors"):
        metrics.diversity([base])


def test_pool_ic_two_uncorrelated_factors():
    gen = np.random.default_rng(1)
    a = gen.normal(size=4000)
    b = gen.normal(size=4000)
    ics = np.column_stack([
        0.05 + 0.1 * (a - a.mean()) / a.std(ddof=1), 0.02 + 0.05 * (b - b.mean()) / b.std(ddof=1)
    ])
    cov = np.cov(ics, rowvar=False)
    expected = 0.05**2 / 0.1**2 + 0.02**2 / 0.05**2  # sum of mean² / var when Σ is diagonal
    assert metrics.pool_ic(ics) == pytest.approx(expected, rel=0.05)
    np.testing.assert_allclose(metrics.pool_weights(ics), np.linalg.pinv(cov) @ ics.mean(0))
