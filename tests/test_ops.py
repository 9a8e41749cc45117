"""nnafc.ops: known answers, pandas equivalence (NaN handling included), no look-ahead, validation."""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd
import pytest
import torch

from nnafc import ops

NAN = float("nan")


def _t(values, dtype=torch.float64) -> torch.Tensor:
    return torch.tensor(values, dtype=dtype)


def _col(values) -> torch.Tensor:  # (T,) -> (T, 1)
    return _t(values).reshape(-1, 1)


def _close(a, b, rtol=1e-10, atol=1e-12) -> None:
    a = np.asarray(a.detach().cpu() if torch.is_tensor(a) else a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, equal_nan=True)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Small ops run ~10x slower with 2 threads on shared, busy cores; restore afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def panel() -> np.ndarray:
    """(80, 9) positive random walk with isolated and runs of NaN (suspensions), one late listing."""
    rng = np.random.default_rng(0)
    x = 20 * np.exp(np.cumsum(rng.normal(0, 0.02, size=(80, 9)), axis=0))
    x[5, 1] = np.nan
    x[30:34, 2] = np.nan
    x[:25, 3] = np.nan  # listed late
    x[rng.random(x.shape) < 0.02] = np.nan
    return x


@pytest.fixture(scope="module")
def other(panel) -> np.ndarray:
    rng = np.random.default_rng(1)
    y = 1e6 * np.exp(rng.normal(0, 0.3, size=panel.shape))
    y[40, 4] = np.nan
    return y


# --------------------------------------------------------------------------- known answers


def test_known_answers_tiny():
    x = _col([1, 2, 3, 4])
    _close(ops.ts_mean(x, 2)[:, 0], [NAN, 1.5, 2.5, 3.5])
    _close(ops.ts_sum(x, 3)[:, 0], [NAN, NAN, 6, 9])
    _close(ops.delay(x, 1)[:, 0], [NAN, 1, 2, 3])
    _close(ops.delta(x, 2)[:, 0], [NAN, NAN, 2, 2])
    _close(ops.ts_min(_col([3, 1, 2, 5]), 2)[:, 0], [NAN, 1, 1, 2])
    _close(ops.ts_max(_col([3, 1, 2, 5]), 2)[:, 0], [NAN, 3, 2, 5])
    _close(ops.ts_std(x, 2)[:, 0], [NAN] + [np.sqrt(0.5)] * 3)
    _close(ops.ts_std(_col([7, 7, 7]), 2)[:, 0], [NAN, 0, 0])  # exactly 0, not rounding noise
    _close(ops.ts_rank(_col([3, 1, 2, 5, 5]), 3)[:, 0], [NAN, NAN, 0.5, 1.0, 0.75])
    _close(ops.decay_linear(_col([1, 2, 4]), 2)[:, 0], [NAN, (1 + 4) / 3, (2 + 8) / 3])
    _close(ops.wma(_col([1, 2, 4]), [3, 1])[:, 0], [NAN, (3 + 2) / 4, (6 + 4) / 4])
    _close(ops.ema(_col([1, 3, NAN, 5]), alpha=0.5)[:, 0], [1, 2, NAN, 3.5])  # NaN day skipped
    _close(ops.ema(_col([2, 4, 6]), span=3)[:, 0], [NAN, NAN, 4.5])  # 2/(3+1) = .5, warm-up 3
    _close(ops.ts_corr(_col([1, 2, 3]), _col([2, 4, 7]), 2)[:, 0], [NAN, 1, 1])
    _close(ops.ts_corr(_col([1, 1, 3]), _col([2, 4, 7]), 2)[:, 0], [NAN, NAN, 1])  # flat -> NaN
    _close(ops.ts_cov(_col([1, 2, 4]), _col([1, 3, 2]), 2)[:, 0], [NAN, 1, -1])
    # a window containing a NaN is NaN; the next full window is fine again
    _close(ops.ts_mean(_col([1, NAN, 3, 4, 5]), 2)[:, 0], [NAN, NAN, NAN, 3.5, 4.5])


def test_cross_section_known_answers():
    x = _t([[3, 1, 2, NAN], [1, 1, 1, 1], [NAN, NAN, NAN, NAN]])
    _close(ops.cs_rank(x)[0], [1, 1 / 3, 2 / 3, NAN])
    _close(ops.cs_rank(x)[1], [0.625] * 4)  # ties: mean rank 2.5 of 4
    assert torch.isnan(ops.cs_rank(x)[2]).all()
    _close(ops.cs_demean(x)[0], [1, -1, 0, NAN])
    _close(ops.cs_zscore(x)[0], [1, -1, 0, NAN])  # sample std of (3, 1, 2) is 1
    assert torch.isnan(ops.cs_zscore(x)[1:]).all()  # no spread / empty day


def test_elementwise_protected():
    a, b = _t([1.0, 2.0, -3.0, 4.0]), _t([2.0, 0.0, 1e-15, -4.0])
    _close(ops.div(a, b), [0.5, NAN, NAN, -1.0])
    _close(ops.log(_t([np.e, 0.0, -1.0])), [1.0, NAN, NAN])
    _close(ops.sqrt(_t([4.0, 0.0, -1.0])), [2.0, 0.0, NAN])
    _close(ops.sign(_t([-2.0, 0.0, 3.0, NAN])), [-1, 0, 1, NAN])
    _close(ops.abs(_t([-2.0, 3.0])), [2, 3])
    _close(ops.add(a, b) - ops.sub(a, ops.neg(b)), [0, 0, 0, 0])
    _close(ops.mul(a, a), [1, 4, 9, 16])
    # formula (9) of the paper with a halted day: volume 0 gives NaN, not inf
    assert torch.isnan(ops.div(_t([1.0]), _t([0.0]))).all()


# --------------------------------------------------------------------------- pandas equivalence


_PANDAS_1 = {
    "ts_sum": lambda df, d: df.rolling(d).sum(),
    "ts_mean": lambda df, d: df.rolling(d).mean(),
    "ts_std": lambda df, d: df.rolling(d).std(),
    "ts_min": lambda df, d: df.rolling(d).min(),
    "ts_max": lambda df, d: df.rolling(d).max(),
    "ts_skew": lambda df, d: df.rolling(d).skew(),
    "ts_rank": lambda df, d: (df.rolling(d).rank() - 1) / (d - 1),
    "delay": lambda df, d: df.shift(d),
    "delta": lambda df, d: df.diff(d),
    "decay_linear": lambda df, d: df.rolling(d).apply(lambda v: np.dot(v, np.arange(1, d + 1)), raw=True)
    / (d * (d + 1) / 2),
}


@pytest.mark.parametrize("name", sorted(_PANDAS_1))
@pytest.mark.parametrize("d", [3, 10])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_rolling_matches_pandas(panel, name, d, dtype):
    x = torch.tensor(panel, dtype=dtype)
    got = getattr(ops, name)(x, d)
    assert got.dtype == dtype and got.shape == panel.shape
    want = _PANDAS_1[name](pd.DataFrame(x.double().numpy()), d).to_numpy()  # same (rounded) inputs
    rtol = 1e-10 if dtype == torch.float64 else 2e-5
    atol = 1e-9 if dtype == torch.float64 else 1e-4  # skew and rank are O(1); sums O(100)
    _close(got, want, rtol=rtol, atol=atol)


@pytest.mark.parametrize("d", [2, 7])
def test_corr_cov_match_pandas(panel, other, d):
    x, y = torch.tensor(panel), torch.tensor(other)
    dx, dy = pd.DataFrame(panel), pd.DataFrame(other)
    _close(ops.ts_cov(x, y, d), dx.rolling(d).cov(dy).to_numpy(), rtol=1e-9)
    _close(ops.ts_corr(x, y, d), dx.rolling(d).corr(dy).to_numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("span", [1, 5, 26])
def test_ema_matches_pandas(panel, span):
    got = ops.ema(torch.tensor(panel), span)
    ewm = pd.DataFrame(panel).ewm(span=span, adjust=False, ignore_na=True, min_periods=span).mean()
    want = ewm.where(np.isfinite(panel)).to_numpy()  # pandas carries the value over NaN days; we say NaN
    _close(got, want)
    got = ops.ema(torch.tensor(panel), alpha=0.2, min_periods=3)
    ewm = pd.DataFrame(panel).ewm(alpha=0.2, adjust=False, ignore_na=True, min_periods=3).mean()
    _close(got, ewm.where(np.isfinite(panel)).to_numpy())


def test_cross_section_matches_pandas(panel):
    df = pd.DataFrame(panel)
    x = torch.tensor(panel)
    _close(ops.cs_rank(x), df.rank(axis=1, pct=True).to_numpy())
    _close(ops.cs_demean(x), df.sub(df.mean(axis=1), axis=0).to_numpy())
    _close(ops.cs_zscore(x), df.sub(df.mean(axis=1), axis=0).div(df.std(axis=1), axis=0).to_numpy())


def test_infinities_are_missing_in_windows():
    x = _col([1.0, float("inf"), 3.0, 4.0])
    _close(ops.ts_mean(x, 2)[:, 0], [NAN, NAN, NAN, 3.5])
    _close(ops.cs_rank(_t([[1.0, float("inf"), 2.0]])), [[0.5, NAN, 1.0]])


def test_window_longer_than_history_is_all_nan(panel):
    assert torch.isnan(ops.ts_mean(torch.tensor(panel), 500)).all()
    assert ops.ts_mean(torch.empty(0, 3), 5).shape == (0, 3)


def test_chunking_does_not_change_results(panel, other, monkeypatch):
    x, y = torch.tensor(panel), torch.tensor(other)
    whole = [ops.ts_std(x, 5), ops.ts_rank(x, 5), ops.ts_corr(x, y, 5)]
    monkeypatch.setattr(ops, "_CHUNK_ELEMENTS", 7)  # one row per block
    for a, b in zip(whole, [ops.ts_std(x, 5), ops.ts_rank(x, 5), ops.ts_corr(x, y, 5)], strict=True):
        _close(a, b, rtol=1e-12)  # same values up to summation order


# --------------------------------------------------------------------------- no look-ahead

def _windowed(name: str, x: torch.Tensor) -> torch.Tensor:
    return getattr(ops, name)(x, 5)


_UNARY = {
    **{name: partial(_windowed, name) for name in _PANDAS_1},
    "ema_span": lambda x: ops.ema(x, 5),
    "ema_alpha": lambda x: ops.ema(x, alpha=0.3),
    "wma": lambda x: ops.wma(x, [1.0, 2.0, 0.5]),
    "cs_rank": ops.cs_rank,
    "cs_zscore": ops.cs_zscore,
    "cs_demean": ops.cs_demean,
    "log": ops.log,
    "sqrt": ops.sqrt,
    "sign": ops.sign,
    "abs": ops.abs,
    "neg": ops.neg,
    "ts_corr": lambda x: ops.ts_corr(x, ops.delay(x, 1), 6),
    "ts_cov": lambda x: ops.ts_cov(x, x * x, 6),
    "div": lambda x: ops.div(x, ops.delta(x, 1)),
    "add_sub_mul": lambda x: ops.mul(ops.add(x, x), ops.sub(x, 1.0)),
}


@pytest.mark.parametrize("name", sorted(_UNARY))
def test_no_look_ahead(panel, name):
    """Corrupting every row after t (values and gaps) leaves rows <= t bit-for-bit unchanged."""
    fn = _UNARY[name]
    x = torch.tensor(panel)
    base = fn(x)
    rng = np.random.default_rng(2)
    for t in (0, 17, 50, 78):
        bad = x.clone()
        noise = torch.tensor(rng.normal(0, 50, size=bad[t + 1 :].shape))
        bad[t + 1 :] = torch.where(noise > 60, torch.tensor(NAN, dtype=bad.dtype), noise)
        out = fn(bad)
        assert torch.equal(torch.nan_to_num(base[: t + 1], nan=-9), torch.nan_to_num(out[: t + 1], nan=-9))


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "5", None])
def test_window_validation(bad):
    x = torch.ones(10, 2)
    with pytest.raises(ValueError, match="window d must be an integer"):
        ops.ts_mean(x, bad)


def test_window_minimums_and_ema_arguments():
    x = torch.ones(10, 2)
    for fn in (ops.ts_std, ops.ts_rank):
        with pytest.raises(ValueError, match=">= 2"):
            fn(x, 1)
    with pytest.raises(ValueError, match=">= 3"):
        ops.ts_skew(x, 2)
    assert ops.ts_mean(x, np.int64(3)).shape == x.shape  # numpy ints are fine
    with pytest.raises(ValueError, match="exactly one"):
        ops.ema(x)
    with pytest.raises(ValueError, match="exactly one"):
        ops.ema(x, 3, alpha=0.5)
    with pytest.raises(ValueError, match="alpha"):
        ops.ema(x, alpha=1.5)
    with pytest.raises(ValueError, match="sum to 0"):
        ops.wma(x, [1.0, -1.0])
    with pytest.raises(ValueError, match="shapes differ"):
        ops.ts_corr(x, torch.ones(10, 3), 3)
