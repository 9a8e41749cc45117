"""How fast is the GP baseline? Prints measured figures from one run (not a test).

1. A 50-factor GP run (`nnafc.gp.run_gp`) on CSI 300 over one year of training days
   (+ 30 validation days): wall time, against the paper's 0.215 h for its 50 GP factors.
2. Formula evaluations per second on CSI 300 and on all A-shares (one year of training days
   plus the formulas' warm-up history), with and without the subtree cache. The formulas are
   exactly those the run in 1 scored, in the order it scored them, so the cache sees what it
   sees during a search. "values" times the `(T, N)` formula values alone, "fitness" adds the
   daily rank IC against the 5-day forward return. Rates are per user CPU-second of this
   process (one torch thread), best of `--repeats` passes with the cache off and on
   alternating, so that a busy neighbour on a shared machine distorts neither.

    python benchmarks/bench_gp.py --data ../shared/data            # paper-sized run (slow)
    python benchmarks/bench_gp.py --quick                           # small run (NNAFC_DATA)
    python benchmarks/bench_gp.py --quick --device cuda
"""

from __future__ import annotations

import argparse
import os
import time

import pandas as pd
import torch

from nnafc import gp
from nnafc.data.locate import data_dir, source_for
from nnafc.data.sources import load_panel
from nnafc.data.splits import make_split


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _user_time() -> float:
    """User CPU seconds of this process. Kernel time is left out: it is mostly page faults of the
    ops' large window temporaries, and varied by up to 2x between identical passes here."""
    return os.times().user


def load(root, universe: str, start: pd.Timestamp, history: int):
    """One year of training days from `start`, 30 validation days, and `history` days before."""
    t0 = time.perf_counter()
    panel = load_panel(source_for(root, universe), start=start - pd.Timedelta(days=2 * history),
                       end=start + pd.Timedelta(days=480), universe=universe)
    split = make_split(panel.dates, start, n_train=250, n_valid=30, n_test=0)
    return panel, split, time.perf_counter() - t0


def rate(formulas: list[str], panel, split, cfg: gp.GPConfig, cache_mb: float) -> tuple[float, float, dict]:
    """(values / s, fitness / s, cache counters) over `formulas` in order, from an empty cache.

    Fitness time = the values' time + the daily rank IC's, timed formula by formula in one pass.
    On the CPU the clock is this process's user CPU time (one thread: neighbours' load does not
    count); on a GPU it is wall time after synchronising.
    """
    cfg = gp.as_config({**cfg.to_dict(), "cache_mb": cache_mb})
    clock = time.perf_counter if cfg.device.startswith("cuda") else _user_time
    block = gp.fitness.train_block(panel, split, cfg)
    gp.fitness.tree_fitness(formulas[0], block, cfg)  # warm-up (allocator, first-call costs), not timed
    block.evaluator.clear()
    block.evaluator.hits = block.evaluator.misses = 0
    values_s = ic_s = 0.0
    for f in formulas:
        _sync(cfg.device)
        t0 = clock()
        try:
            v = block.evaluator(f)
        except (ValueError, RuntimeError, ArithmeticError, IndexError):
            v = None
        _sync(cfg.device)
        t1 = clock()
        if v is not None:
            gp.fitness.score(v, block, cfg)
        _sync(cfg.device)
        values_s += t1 - t0
        ic_s += clock() - t1
    counters = {"hits": block.evaluator.hits, "misses": block.evaluator.misses}
    block.evaluator.clear()
    return len(formulas) / values_s, len(formulas) / (values_s + ic_s), counters


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None, help="data directory or file (default: NNAFC_DATA)")
    ap.add_argument("--quick", action="store_true", help="small GP run and fewer timed formulas")
    ap.add_argument("--train-start", default="2016-01-01")
    ap.add_argument("--population", type=int, default=None)
    ap.add_argument("--generations", type=int, default=None)
    ap.add_argument("--formulas", type=int, default=None, help="formulas timed per measurement")
    ap.add_argument("--repeats", type=int, default=2, help="passes per setting, cache off/on alternating; "
                    "the best is reported (the machine may be shared)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (CPU-time rates assume 1)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)  # one thread by default: CPU time then measures the work
    root = data_dir(args.data)
    if root is None:
        raise SystemExit("no data: pass --data or set NNAFC_DATA")
    population = args.population or (100 if args.quick else 500)
    generations = args.generations or (5 if args.quick else 20)
    n_formulas = args.formulas or 2000  # quick: every formula of the small run
    cfg = gp.GPConfig(population=population, generations=generations, n_factors=50, seed=0,
                      device=args.device)
    start = pd.Timestamp(args.train_start)
    print(f"torch {torch.__version__}, device {args.device}, threads {torch.get_num_threads()}, "
          f"cores {os.cpu_count()}, dtype {cfg.dtype}, cache {cfg.cache_mb:.0f} MiB")

    csi, csi_split, load_s = load(root, "csi300", start, cfg.history)
    print(f"CSI 300: {csi} loaded in {load_s:.1f} s; {csi_split}")

    t0, c0 = time.perf_counter(), time.process_time()
    res = gp.run_gp(csi, csi_split, cfg)
    run_s, cpu_s = time.perf_counter() - t0, time.process_time() - c0
    h = res.history
    print(f"\n[1] 50-factor GP run on CSI 300: population {population}, {generations} generations, "
          f"hall of fame {cfg.hall_of_fame}")
    print(f"    {run_s:.1f} s = {run_s / 3600:.3f} h wall, {cpu_s:.1f} CPU-s (paper: 0.215 h); "
          f"search {h['seconds'].iloc[-1]:.1f} s, selection {run_s - h['seconds'].iloc[-1]:.1f} s")
    print(f"    {len(res.evaluated):,} distinct formulas scored ({h['evaluations'].sum():,}), "
          f"{res.evaluated['train_ic'].isna().mean():.0%} degenerate; subtree cache hit rate "
          f"{res.cache['hits'] / max(1, res.cache['hits'] + res.cache['misses']):.0%}")
    valid = res.table["valid_ic"]
    print(f"    best train rank IC {res.evaluated['train_ic'].max():.4f}; {len(res.factors)} factors kept of "
          f"{len(res.hall_of_fame)} screened ({res.hall_of_fame['round'].max()} hall-of-fame rounds), "
          f"validation rank IC mean {valid.mean():.4f}, best {valid.max():.4f}")
    for row in res.table.head(3).itertuples():
        print(f"      {row.infix}   (train {row.train_ic:.4f}, valid {row.valid_ic:.4f})")

    formulas = list(res.evaluated["formula"].head(n_formulas))
    del res
    ashare, ashare_split, load_s = load(root, "all", start, cfg.history)
    print(f"\nall A-shares: {ashare} loaded in {load_s:.1f} s")
    print(f"\n[2] formula evaluations per user CPU-second, the first {len(formulas)} formulas of run [1], "
          "in order")
    head = f"{'universe':<12} {'(T, N)':<12} {'cache':<6} {'values/s':>9} {'fitness/s':>10} {'hit rate':>9}"
    print(f"    {head}")
    for name, panel, split in (("CSI 300", csi, csi_split), ("all A-shares", ashare, ashare_split)):
        t_len = split.train.stop - max(0, split.train.start - cfg.history)
        shape = f"({t_len}, {panel.shape[1]})"
        out = {"off": (0.0, 0.0), "on": (0.0, 0.0)}
        hits = {}
        for _ in range(args.repeats):
            for label, mb in (("off", 0.0), ("on", cfg.cache_mb)):
                v, f, c = rate(formulas, panel, split, cfg, mb)
                out[label] = (max(out[label][0], v), max(out[label][1], f))
                hits[label] = c
        for label in ("off", "on"):
            v, f = out[label]
            c = hits[label]
            hit = c["hits"] / max(1, c["hits"] + c["misses"])
            print(f"    {name:<12} {shape:<12} {label:<6} {v:>9.1f} {f:>10.1f} {hit:>9.0%}")
        print(f"    {name:<12} {'':<12} {'ratio':<6} {out['on'][0] / out['off'][0]:>8.2f}x "
              f"{out['on'][1] / out['off'][1]:>9.2f}x")


if __name__ == "__main__":
    main()
