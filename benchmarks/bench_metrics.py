"""How fast are nnafc's exact metrics and differentiable losses? Prints measured figures (not a test).

1. Daily rank IC of F factors x N stocks x T days (synthetic, ~5 % NaN): `metrics.rank_ic`
   against a per-day `scipy.stats.spearmanr` loop (timed on a subset of factor-days and
   extrapolated linearly, as the output says), a vectorised pandas baseline (rank(axis=1) +
   corrwith(axis=1), timed on a few factors, extrapolated) and alphalens-reloaded's
   `factor_information_coefficient` when `import alphalens` works.
2. Loss throughput: forward + backward of the kernel loss (Eq. 13-14) and of the pairwise
   soft-rank loss on q days x n stocks (float32): iterations/s and their ratio.

    python benchmarks/bench_metrics.py             # 50 x 3,000 x 1,000; losses on 20 x 3,000
    python benchmarks/bench_metrics.py --quick     # small sizes, a few seconds
    python benchmarks/bench_metrics.py --threads 4 --device cuda

One run, one machine: the ratios are what this run measured, not averages of many.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np
import pandas as pd
import scipy.stats as ss
import torch

from nnafc import losses, metrics
from nnafc.ops import average_ranks


def synthetic(days: int, stocks: int, nan_share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Returns `(T, N)` and a seed; factors are drawn on demand (all 50 at once would be 1.2 GB)."""
    gen = np.random.default_rng(seed)
    returns = 0.02 * gen.standard_t(4, size=(days, stocks))
    returns[gen.random(returns.shape) < nan_share] = np.nan  # suspended / unlisted
    return returns, gen.integers(1 << 31)


def factor(returns: np.ndarray, k: int, seed: int, nan_share: float) -> np.ndarray:
    """A noisy factor with a small IC, its own NaNs, and rounded values (ties)."""
    gen = np.random.default_rng([seed, k])
    f = np.nan_to_num(returns) * (0.05 + 0.01 * k) + 0.02 * gen.standard_normal(returns.shape)
    f = np.round(f, 4)
    f[gen.random(f.shape) < nan_share] = np.nan
    return f


def scipy_daily(f: np.ndarray, r: np.ndarray) -> np.ndarray:
    out = np.full(len(f), np.nan)
    for t in range(len(f)):
        ok = np.isfinite(f[t]) & np.isfinite(r[t])
        out[t] = ss.spearmanr(f[t, ok], r[t, ok])[0]
    return out


def pandas_daily(f: np.ndarray, r: np.ndarray) -> np.ndarray:
    """The usual vectorised pandas idiom: joint NaN mask, rank along rows, row-wise Pearson."""
    ok = np.isfinite(f) & np.isfinite(r)
    fr = pd.DataFrame(np.where(ok, f, np.nan)).rank(axis=1)
    rr = pd.DataFrame(np.where(ok, r, np.nan)).rank(axis=1)
    return fr.corrwith(rr, axis=1).to_numpy()


def bench_rank_ic(args: argparse.Namespace) -> None:
    f_count, t_len, n = args.factors, args.days, args.stocks
    print(f"== daily rank IC: {f_count} factors x {n:,} stocks x {t_len:,} days, ~{args.nan:.0%} NaN, f64")
    returns, seed = synthetic(t_len, n, args.nan, args.seed)
    device = torch.device(args.device)
    ours, agree = 0.0, 0.0
    loop_days = min(args.loop_days, t_len)
    loop_factors = min(args.loop_factors, f_count)
    scipy_time, pandas_time = 0.0, 0.0
    on_device = device.type != "cpu"  # on CPU: numpy in, numpy out (the common call)
    r_in = torch.as_tensor(returns, device=device) if on_device else returns
    for k in range(f_count):
        f = factor(returns, k, seed, args.nan)
        f_in = torch.as_tensor(f, device=device) if on_device else f
        _sync(device)
        t0 = time.perf_counter()
        daily = metrics.rank_ic(f_in, r_in)  # (T,)
        _sync(device)
        ours += time.perf_counter() - t0
        daily = daily.cpu().numpy() if torch.is_tensor(daily) else daily
        if k < loop_factors:
            t0 = time.perf_counter()
            ref = scipy_daily(f[:loop_days], returns[:loop_days])
            scipy_time += time.perf_counter() - t0
            agree = max(agree, float(np.nanmax(np.abs(ref - daily[:loop_days]))))
        if k < args.pandas_factors:
            t0 = time.perf_counter()
            pd_daily = pandas_daily(f, returns)
            pandas_time += time.perf_counter() - t0
            agree = max(agree, float(np.nanmax(np.abs(pd_daily - daily))))
    scale = (f_count * t_len) / (loop_factors * loop_days)
    scipy_total = scipy_time * scale
    pandas_factors = min(args.pandas_factors, f_count)
    pandas_total = pandas_time * f_count / max(1, pandas_factors)
    print(f"nnafc.metrics.rank_ic ({device.type}, all {f_count * t_len:,} factor-days): {ours:8.2f} s")
    print(
        f"scipy.stats.spearmanr loop: {scipy_time:.2f} s on {loop_factors} factors x {loop_days} days,"
        f" extrapolated linearly x{scale:,.0f} to {scipy_total:8.1f} s"
        f"  -> ours is {scipy_total / ours:,.1f}x faster"
    )
    if pandas_factors:
        print(
            f"pandas rank(axis=1)+corrwith(axis=1): {pandas_time:.2f} s on {pandas_factors} factors,"
            f" extrapolated to {pandas_total:8.1f} s  -> ours is {pandas_total / ours:,.1f}x faster"
        )
    print(f"max |ours - reference| over the compared factor-days: {agree:.1e}")
    diagnose(returns, seed, args, device, ours / f_count)
    try:
        import alphalens  # noqa: F401
    except ImportError:
        print("alphalens-reloaded: not installed (import alphalens failed) - skipped")
    else:
        bench_alphalens(returns, seed, args, ours)


def bench_alphalens(returns: np.ndarray, seed: int, args: argparse.Namespace, ours: float) -> None:
    """alphalens' factor_information_coefficient on one factor, extrapolated to all factors."""
    from alphalens.performance import factor_information_coefficient

    t_len, n = returns.shape
    f = factor(returns, 0, seed, args.nan)
    index = pd.MultiIndex.from_product(
        [pd.bdate_range("2010-01-04", periods=t_len), [f"S{i:05d}" for i in range(n)]],
        names=["date", "asset"],
    )
    frame = pd.DataFrame({"factor": f.ravel(), "1D": returns.ravel()}, index=index).dropna()
    frame["factor_quantile"] = 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        factor_information_coefficient(frame)
        one = time.perf_counter() - t0
    total = one * args.factors
    print(f"alphalens factor_information_coefficient: {one:.2f} s per factor, x{args.factors} = {total:.1f} s"
          f"  -> ours is {total / ours:,.0f}x faster")


def diagnose(
    returns: np.ndarray, seed: int, args: argparse.Namespace, device: torch.device, per: float
) -> None:
    """Where one factor's time goes: the two `ops.average_ranks` calls, and their sort."""
    f = torch.as_tensor(factor(returns, 0, seed, args.nan), device=device)
    r = torch.as_tensor(returns, device=device)
    _sync(device)
    t0 = time.perf_counter()
    average_ranks(f)
    average_ranks(r)
    _sync(device)
    ranks = time.perf_counter() - t0
    t0 = time.perf_counter()
    f.sort(dim=-1)
    r.sort(dim=-1)
    _sync(device)
    torch_sort = time.perf_counter() - t0
    t0 = time.perf_counter()
    for x in (f.cpu().numpy(), returns):  # filled like average_ranks fills them: NaN -> +inf
        np.argsort(np.where(np.isfinite(x), x, np.inf), axis=-1)
    numpy_sort = time.perf_counter() - t0
    print(
        f"per factor: rank_ic {per:.3f} s, of which 2x ops.average_ranks {ranks:.3f} s"
        f" (its torch.sort: {torch_sort:.3f} s; numpy argsort of the same rows: {numpy_sort:.3f} s)"
    )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def iterations_per_second(fn, pred: torch.Tensor, target: torch.Tensor, min_seconds: float, min_iters: int,
                          device: torch.device) -> float:
    fn(pred, target).backward()  # warm-up
    count, t0 = 0, time.perf_counter()
    while count < min_iters or time.perf_counter() - t0 < min_seconds:
        pred.grad = None
        fn(pred, target).backward()
        _sync(device)
        count += 1
    return count / (time.perf_counter() - t0)


def bench_losses(args: argparse.Namespace) -> None:
    q, n = args.loss_days, args.loss_stocks
    print(f"== loss forward+backward: {q} days x {n:,} stocks, float32, ~{args.nan:.0%} NaN in the target")
    device = torch.device(args.device)
    gen = torch.Generator().manual_seed(args.seed)
    target = torch.randn(q, n, generator=gen)
    target[torch.rand(q, n, generator=gen) < args.nan] = float("nan")
    pred = torch.randn(q, n, generator=gen).to(device).requires_grad_(True)
    target = target.to(device)
    rates = {}
    for name, fn in (("kernel (Eq. 13-14)", losses.kernel_rank_ic_loss),
                     ("soft rank (pairwise, tau=0.05)", losses.soft_rank_ic_loss)):
        rates[name] = iterations_per_second(fn, pred, target, args.min_seconds, 3, device)
        print(f"{name:32s} {rates[name]:10.2f} it/s")
    kernel_rate, soft_rate = rates.values()
    print(f"kernel / soft-rank throughput: {kernel_rate / soft_rate:,.0f}x "
          f"(soft rank is O(q n^2): {q * n * n / 1e6:,.0f} M pairwise sigmoids per pass)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--factors", type=int, default=50)
    ap.add_argument("--stocks", type=int, default=3000)
    ap.add_argument("--days", type=int, default=1000)
    ap.add_argument("--nan", type=float, default=0.05, help="share of missing entries")
    ap.add_argument("--loop-factors", type=int, default=2, help="factors timed with the scipy loop")
    ap.add_argument("--loop-days", type=int, default=100, help="days per factor timed with the scipy loop")
    ap.add_argument("--pandas-factors", type=int, default=2, help="factors timed with pandas (0: skip)")
    ap.add_argument("--loss-days", type=int, default=20, help="q: days per training batch")
    ap.add_argument("--loss-stocks", type=int, default=3000)
    ap.add_argument("--min-seconds", type=float, default=3.0, help="time each loss at least this long")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (dev machine: shared cores)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="small sizes: 5 x 1,000 x 200, losses on 20 x 1,000")
    args = ap.parse_args()
    if args.quick:
        args.factors, args.stocks, args.days, args.loop_days = 5, 1000, 200, 50
        args.loss_stocks, args.min_seconds = 1000, 1.0
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), device {args.device}, "
          f"{os.cpu_count()} CPUs visible")
    bench_rank_ic(args)
    bench_losses(args)


if __name__ == "__main__":
    main()
