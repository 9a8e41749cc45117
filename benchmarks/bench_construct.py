"""How fast is NNAFC's IC training? Prints measured figures (not a test).

1. One FCN IC-training epoch (Eq. 14; one pass over the 250 training days in batches of q=20
   whole days, m=30) on every A-share stock: seconds per epoch, and the achieved GFLOP/s
   against a torch float32 matmul peak measured in the same process, same threads.
2. K factors trained at once (`construct.train_ic_many`: stacked weights, one vmapped forward)
   against the same K trained one after another (`construct.train_ic`).

    python benchmarks/bench_construct.py --data ../shared/data            # all A-shares
    python benchmarks/bench_construct.py --quick                           # CSI 300 (NNAFC_DATA)
    python benchmarks/bench_construct.py --device cuda --k 8

FLOPs are counted as multiply-adds x 2 of the dense layers (`nets.count_flops`) x 3 for the
forward and backward passes, over the windows actually fed in the epoch; pruned zeros are
still multiplied (dense kernels), so they count.
"""

from __future__ import annotations

import argparse
import copy
import os
import time
from dataclasses import replace

import numpy as np
import pandas as pd
import torch

from nnafc import nets
from nnafc.construct import ConstructConfig, _ic_days, prepare, prune, train_ic, train_ic_many
from nnafc.data.locate import data_dir, source_for
from nnafc.data.sources import load_panel
from nnafc.data.splits import make_split


def matmul_peak(device: str, n: int = 4096, repeats: int = 5) -> float:
    """GFLOP/s of an n x n float32 matmul (best of `repeats`)."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    best = float("inf")
    for _ in range(repeats + 1):
        _sync(device)
        t0 = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None, help="data directory or file (default: NNAFC_DATA)")
    ap.add_argument("--quick", action="store_true", help="CSI 300 instead of all A-shares")
    ap.add_argument("--train-start", default="2016-01-01")
    ap.add_argument("--epochs", type=int, default=2, help="timed epochs per measurement")
    ap.add_argument("--k", type=int, default=4, help="factors trained at once")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    root = data_dir(args.data)
    if root is None:
        raise SystemExit("no data: pass --data or set NNAFC_DATA")
    universe = "csi300" if args.quick else "all"
    start = pd.Timestamp(args.train_start)
    t0 = time.perf_counter()
    panel = load_panel(source_for(root, universe), start=start - pd.Timedelta(days=120),
                       end=start + pd.Timedelta(days=620), universe=universe)
    load_s = time.perf_counter() - t0
    split = make_split(panel.dates, start)
    cfg = ConstructConfig(epochs=args.epochs, patience=args.epochs + 1, device=args.device)
    t0 = time.perf_counter()
    data = prepare(panel, split, cfg)
    prep_s = time.perf_counter() - t0
    ic_days = _ic_days(data.train)
    rows_per_day = float(data.train.valid[ic_days].sum(1).double().mean())
    steps = -(-len(ic_days) // cfg.q)
    rows_per_epoch = steps * cfg.q * rows_per_day

    print(f"torch {torch.__version__}, device {args.device}, threads {torch.get_num_threads()}, "
          f"cores {os.cpu_count()}")
    print(f"panel {panel}: loaded in {load_s:.1f} s")
    print(f"split {split}")
    print(f"windows: train {len(data.train.windows):,} x (5, {cfg.m}), valid {len(data.valid.windows):,}; "
          f"built in {prep_s:.1f} s; {rows_per_day:.0f} stocks per training day")
    peak = matmul_peak(args.device)
    print(f"torch float32 matmul peak (4096^3): {peak:.1f} GFLOP/s")

    torch.manual_seed(0)
    net = nets.build("fcn", m=cfg.m).to(args.device)
    masks = prune(net, cfg.prune_rate)
    macs = nets.count_flops(net)
    train_ic(copy.deepcopy(net), data, replace(cfg, epochs=1), masks=masks)  # warm-up, not timed
    rep = train_ic(net, data, cfg, masks=masks)
    sec = np.array([c["seconds"] for c in rep.curve[1:]])
    vsec = np.array([c["valid_seconds"] for c in rep.curve[1:]])
    flops = 2 * macs * 3 * rows_per_epoch
    print(f"\n[1] fcn {tuple(net.config.hidden)} ({nets.n_params(net):,} params, {macs:,} MAC / window), "
          f"{steps} steps x {cfg.q} days per epoch, {rows_per_epoch:,.0f} windows per epoch")
    print(f"    IC-training epoch: {sec.mean():.2f} s (epochs: {', '.join(f'{s:.2f}' for s in sec)}); "
          f"validation pass {vsec.mean():.2f} s")
    print(f"    achieved {flops / sec.mean() / 1e9:.1f} GFLOP/s = {flops / sec.mean() / 1e9 / peak:.0%} "
          f"of the matmul peak")

    k = args.k
    models, all_masks = [], []
    for s in range(k):
        torch.manual_seed(s)
        m = nets.build("fcn", m=cfg.m).to(args.device)
        all_masks.append(prune(m, cfg.prune_rate))
        models.append(m)
    seq = [copy.deepcopy(m) for m in models]
    warm = [copy.deepcopy(m) for m in models]
    train_ic_many(warm, data, replace(cfg, epochs=1), masks=all_masks)  # warm-up, not timed
    t0 = time.perf_counter()
    reps = train_ic_many(models, data, cfg, masks=all_masks)
    many_total = time.perf_counter() - t0
    many_epoch = sum(c["seconds"] for c in reps[0].curve[1:]) * k / args.epochs
    t0 = time.perf_counter()
    reps_seq = [train_ic(m, data, cfg, masks=mk) for m, mk in zip(seq, all_masks, strict=True)]
    seq_total = time.perf_counter() - t0
    seq_epoch = sum(c["seconds"] for r in reps_seq for c in r.curve[1:]) / args.epochs
    diff = max(float((a.state_dict()[n] - b.state_dict()[n]).abs().max())
               for a, b in zip(models, seq, strict=True) for n in a.state_dict())
    print(f"\n[2] {k} fcn factors, {args.epochs} epochs")
    print(f"    one after another: {seq_epoch:.2f} s per epoch of all {k} "
          f"({seq_total:.1f} s in all, with validation)")
    print(f"    at once (vmap):    {many_epoch:.2f} s per epoch of all {k} "
          f"({many_total:.1f} s in all, with validation)")
    print(f"    speedup {seq_epoch / many_epoch:.2f}x training, {seq_total / many_total:.2f}x overall; "
          f"max |weight difference| {diff:.2e}")


if __name__ == "__main__":
    main()
