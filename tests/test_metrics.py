"""Exact metrics against scipy on real CSI 300 days; known answers for summaries, diversity, pool IC."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.stats as ss
import torch

from nnafc import metrics


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Small tensor ops run ~10x slower with 2 threads on shared, busy cores; restore afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def real_days(data_dir) -> dict[str, np.ndarray]:
    """A year of CSI 300 (2015-06 .. 2016-05, the crash: many suspensions) as (T, N) arrays.

    Day t's factors use data up to t; the label is the return over t .. t+5.
    """
    frame = pd.read_parquet(
        data_dir / "csi300_2010_2020.parquet",
        columns=["datetime", "instrument", "close", "volume"],
        filters=[("datetime", ">=", pd.Timestamp("2015-06")), ("datetime", "<", pd.Timestamp("2016-06"))],
    )
    frame["instrument"] = frame["instrument"].astype(str)
    close = frame.pivot(index="datetime", columns="instrument", values="close").to_numpy(np.float64)
    volume = frame.pivot(index="datetime", columns="instrument", values="volume").to_numpy(np.float64)
    past = close[5:] / close[:-5] - 1  # (T - 5, N) return over t-5 .. t, at row t - 5
    return {
        "fwd": past[5:],  # (T - 10, N)
        "rev": -past[:-5],  # 5-day reversal
        "vol": np.round(volume[5:-5] / 1e6),  # volume in millions, rounded: many ties (and zeros)
        "close": np.round(close[5:-5], 1),  # rounded price levels: ties
    }


def _scipy_daily(fn, f: np.ndarray, r: np.ndarray) -> np.ndarray:
    """The reference: scipy per day on the jointly finite pairs; NaN where we define NaN."""
    out = np.full(len(f), np.nan)
    for t, (a, b) in enumerate(zip(f, r, strict=True)):
        ok = np.isfinite(a) & np.isfinite(b)
        if ok.sum() >= 3 and np.ptp(a[ok]) > 0 and np.ptp(b[ok]) > 0:
            out[t] = fn(a[ok], b[ok])[0]
    return out


@pytest.mark.parametrize("name", ["rev", "vol", "close"])
def test_rank_ic_and_ic_match_scipy_per_day(real_days, name: str) -> None:
    f, r = real_days[name], real_days["fwd"]
    assert len(f) > 200 and np.isnan(f).any() and np.isnan(r).any()  # suspensions are in the data
    if name != "rev":  # the rounded factors really have ties on every day
        ok = np.isfinite(f[0])
        assert len(np.unique(f[0][ok])) < ok.sum()
    want_rank, want_ic = _scipy_daily(ss.spearmanr, f, r), _scipy_daily(ss.pearsonr, f, r)
    np.testing.assert_allclose(metrics.rank_ic(f, r), want_rank, rtol=0, atol=1e-6)
    np.testing.assert_allclose(metrics.ic(f, r), want_ic, rtol=0, atol=1e-6)
    got = metrics.rank_ic(torch.as_tensor(f, dtype=torch.float32), torch.as_tensor(r))  # torch in, torch out
    assert isinstance(got, torch.Tensor) and got.shape == (len(f),)
    np.testing.assert_allclose(got.numpy(), _scipy_daily(ss.spearmanr, f.astype(np.float32), r), atol=1e-6)


def test_mask_and_leading_axes(real_days) -> None:
    f, r = real_days["rev"], real_days["fwd"]
    half = f.shape[1] // 2
    mask = np.zeros(f.shape, dtype=bool)
    mask[:, :half] = True
    np.testing.assert_allclose(metrics.rank_ic(f, r, mask), metrics.rank_ic(f[:, :half], r[:, :half]))
    np.testing.assert_allclose(metrics.ic(f, r, torch.as_tensor(mask)), metrics.ic(f[:, :half], r[:, :half]))
    stacked = metrics.rank_ic(np.stack([f, real_days["vol"]]), np.stack([r, r]))  # (2, T)
    np.testing.assert_allclose(stacked[1], metrics.rank_ic(real_days["vol"], r))
    assert metrics.rank_ic(f[0], r[0]).shape == ()  # one day


def test_degenerate_days_are_nan() -> None:
    nan = np.nan
    f = np.array([
        [1.0, 2.0, 3.0, 4.0],  # fine: perfectly anti-correlated
        [1.0, 1.0, 1.0, 1.0],  # constant factor
        [1.0, 2.0, nan, nan],  # 2 pairs
        [nan, nan, nan, nan],  # nothing
        [1.0, 2.0, 3.0, 9.0],  # constant returns (0.1 is not exact in binary: rounding must not matter)
        [3.0, 1.0, 2.0, nan],  # exactly 3 pairs: defined
    ])
    r = np.array([[4.0, 3.0, 2.0, 1.0], [1, 2, 3, 4], [1, 2, 3, 4], [1, 2, 3, 4], [0.1] * 4, [3, 1, 2, 7]])
    for fn in (metrics.rank_ic, metrics.ic):
        out = fn(f, r)
        assert out[0] == pytest.approx(-1.0) and out[5] == pytest.approx(1.0)
        assert np.isnan(out[1:5]).all()
    masked = metrics.rank_ic(f[:1], r[:1], np.array([[True, True, False, False]]))
    assert np.isnan(masked[0])  # the mask leaves 2 pairs


def test_ic_summary_known_answer() -> None:
    daily = np.array([0.1, 0.3, np.nan, -0.1, 0.1])
    s = metrics.ic_summary(daily)
    std = np.sqrt(((0.0) ** 2 + 0.2**2 + 0.2**2 + 0.0**2) / 3)  # deviations from 0.1, ddof=1
    assert s.n_days == 4 and s.mean == pytest.approx(0.1) and s.std == pytest.approx(std)
    assert s.icir == pytest.approx(0.1 / std) and s.t_stat == pytest.approx(0.1 / std * 2)
    assert s.positive == 0.75 and s["icir"] == s.icir and s.as_dict()["n_days"] == 4
    flat = metrics.ic_summary(torch.tensor([0.25, 0.25, 0.25]))  # tensors accepted; no spread: no ICIR
    assert flat.mean == 0.25 and flat.std == 0 and np.isnan(flat.icir)
    one = metrics.ic_summary([0.2])
    assert one.n_days == 1 and np.isnan(one.std) and np.isnan(one.t_stat)


def test_ic_table(real_days) -> None:
    table = metrics.ic_table({"rev": real_days["rev"], "vol": real_days["vol"]}, real_days["fwd"])
    assert list(table.index) == ["rev", "vol"]
    assert list(table.columns) == ["mean", "std", "icir", "t_stat", "n_days", "positive"]
    rev, fwd = real_days["rev"], real_days["fwd"]
    assert table.loc["rev", "mean"] == pytest.approx(np.nanmean(metrics.rank_ic(rev, fwd)))
    pearson = metrics.ic_table({"rev": rev}, fwd, method="pearson")
    assert pearson.loc["rev", "mean"] == pytest.approx(np.nanmean(metrics.ic(rev, fwd)))
    with pytest.raises(ValueError, match="method"):
        metrics.ic_table({}, real_days["fwd"], method="kendall")


# --------------------------------------------------------------------------- diversity


def _hand_distance(f: np.ndarray) -> np.ndarray:
    z = (f - f.mean(1, keepdims=True)) / f.std(1, ddof=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    return np.array([[-(p[i] * np.log(p[j])).sum() for j in range(len(f))] for i in range(len(f))])


def test_cross_entropy_distance_hand_computed() -> None:
    f = np.array([[0.0, 1.0, 2.0, 7.0, np.nan], [2.0, 1.0, 0.0, 1.0, 5.0], [1.0, 5.0, 2.0, 2.0, 0.0]])
    d = metrics.cross_entropy_distance(f)
    np.testing.assert_allclose(d, _hand_distance(f[:, :4]), rtol=1e-12)  # the stock missing in one is dropped
    assert not np.allclose(d, d.T)  # a cross-entropy: not symmetric
    assert (d >= np.diag(d)[:, None] - 1e-12).all()  # Gibbs: smallest against itself (diag = entropy)
    rescaled = f * [[10.0], [0.1], [3.0]] + 4
    np.testing.assert_allclose(metrics.cross_entropy_distance(rescaled), d)  # the z-score removes scale
    t = metrics.cross_entropy_distance(torch.as_tensor(f))
    assert isinstance(t, torch.Tensor) and t.shape == (3, 3)
    flat = metrics.cross_entropy_distance(np.array([[1.0, 1.0, 1.0], [0.0, 1.0, 2.0]]))
    assert flat[0, 0] == pytest.approx(np.log(3))  # no spread: uniform distribution


def test_diversity_known_values() -> None:
    gen = np.random.default_rng(0)
    base = gen.normal(size=(12, 200))  # (T, N)
    # identical factors (up to a positive affine map, which the z-score removes): the minimum, 0
    assert metrics.diversity([base, 2 * base + 1, base], n_clusters=2) == pytest.approx(0.0, abs=1e-9)
    # two factors and two clusters: each factor is a centre, diversity = |D[0] - D[1]| averaged over days
    other = gen.normal(size=base.shape)
    pairs = [_hand_distance(np.stack([base[t], other[t]])) for t in range(12)]
    hand = np.mean([np.linalg.norm(d[0] - d[1]) for d in pairs])
    assert metrics.diversity([base, other], n_clusters=5) == pytest.approx(hand, rel=1e-9)
    # near-duplicates vs independent factors
    near = [base + 0.01 * gen.normal(size=base.shape) for _ in range(6)]
    far = [gen.normal(size=base.shape) for _ in range(6)]
    assert metrics.diversity(near, n_clusters=3) < 0.05 * metrics.diversity(far, n_clusters=3)
    by_day = metrics.diversity_by_day(np.stack(far), n_clusters=3, days=5, seed=1)
    assert len(by_day) == 5 and by_day.index.is_monotonic_increasing and by_day.notna().all()
    assert metrics.diversity({"a": base, "b": other}, days=[0, 3]) == pytest.approx(
        metrics.diversity_by_day([base, other]).iloc[[0, 3]].mean()
    )
    with pytest.raises(ValueError, match="two factors"):
        metrics.diversity([base])


# --------------------------------------------------------------------------- pool IC


def test_pool_ic_two_uncorrelated_factors() -> None:
    # deviations (+-1 patterns) orthogonal by construction: the sample covariance is exactly diagonal
    a = np.tile([1.0, -1.0, 1.0, -1.0], 25)
    b = np.tile([1.0, 1.0, -1.0, -1.0], 25)
    ics = np.column_stack([0.05 + 0.1 * a, 0.02 + 0.04 * b])  # (100, 2)
    var = np.var(ics, axis=0, ddof=1)
    assert metrics.pool_ic(ics) == pytest.approx(0.05**2 / var[0] + 0.02**2 / var[1], rel=1e-12)
    np.testing.assert_allclose(metrics.pool_weights(ics), [0.05 / var[0], 0.02 / var[1]], rtol=1e-12)
    # a duplicate adds no information: the pseudo-inverse gives the single factor's IC*
    dup = np.column_stack([ics[:, 0], ics[:, 0]])
    assert metrics.pool_ic(dup) == pytest.approx(0.05**2 / var[0], rel=1e-9)
    with_nan = np.vstack([ics, [[np.nan, 0.3]]])  # days where some factor has no IC are dropped
    assert metrics.pool_ic(with_nan) == pytest.approx(metrics.pool_ic(ics))
    assert metrics.pool_ic(ics, ridge=0.1) < metrics.pool_ic(ics)


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
