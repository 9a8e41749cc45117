"""How fast does a constructed factor score a panel, by inference chunk size? Prints ratios (not a test).

`NetScorer` runs the net over whole days of windows in chunks of `batch_rows` rows. On a CPU the
chunk decides whether a convolutional net's activations (rows x channels x 5 x m floats) stay in
cache: this script times each family's default net (`nets.build`, random weights: the cost does
not depend on them) on the same random `(R, 5, m)` windows at several chunk sizes, in one run,
and prints seconds and the speed-up over the largest chunk. The default chunk,
`construct.INFERENCE_ROWS`, was chosen from this table.

    python benchmarks/bench_inference.py                    # every family, 1 thread
    python benchmarks/bench_inference.py --quick            # fewer windows (make bench)
    python benchmarks/bench_inference.py --threads 2 --rows 100000 --families resnet,tcn
"""

from __future__ import annotations

import argparse
import time

import pandas as pd
import torch

from nnafc import nets
from nnafc.construct import INFERENCE_ROWS


def seconds(net: torch.nn.Module, x: torch.Tensor, rows: int, repeat: int) -> float:
    """Best of `repeat` timed passes of `net` over `x` in chunks of `rows` (after one warm-up chunk)."""
    with torch.no_grad():
        net(x[:rows])
        best = float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter()
            for a in range(0, len(x), rows):
                net(x[a : a + rows])
            best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", default=",".join(nets.names()))
    ap.add_argument("--rows", type=int, default=1 << 16, help="windows scored (~ 17 days of all A-shares)")
    ap.add_argument("--chunks", default=f"{1 << 16},{1 << 14},{INFERENCE_ROWS},{1 << 10}")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="16,384 windows, one timed pass (make bench)")
    args = ap.parse_args()
    if args.quick:
        args.rows, args.repeat = 1 << 14, 1
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    chunks = [int(c) for c in args.chunks.split(",")]
    x = torch.randn(args.rows, 5, 30)
    rows = []
    for family in args.families.split(","):
        net = nets.build(family, m=30).eval()
        times = {c: seconds(net, x, c, args.repeat) for c in chunks}
        for c, t in times.items():
            rows.append({"family": family, "chunk rows": c, "seconds": t,
                         "windows / s": args.rows / t, "speed-up vs largest": times[max(chunks)] / t})
    table = pd.DataFrame(rows).set_index(["family", "chunk rows"])
    print(f"{args.rows} random (5, 30) windows, {args.threads} thread(s), torch {torch.__version__}")
    print(table.round(3).to_string())


if __name__ == "__main__":
    main()
