"""How fast is NNAFC's IC training, per network family? Prints measured figures (not a test).

For every family of `nets.names()` on CSI 300 and on all A-shares (`--quick`: CSI 300 only),
one IC-training epoch of `construct.train_ic` (Eq. 14; batches of q=20 whole training days,
m=30) is timed and reported as

- seconds per epoch: `--steps` timed training steps scaled to the epoch's step count, plus
  the timed validation pass (one warm-up step first, not timed);
- FLOPs per epoch: counted by `torch.utils.flop_counter.FlopCounterMode` on one real batch
  (forward + loss + backward, and the validation forward), scaled by rows; torch's counter
  has no formula for the oneDNN LSTM kernel, so the LSTM's 4·h·(in + h) multiply-adds per
  step and layer are added by hand (x2 forward, x3 with backward). Pruned zeros are still
  multiplied (dense kernels), so they count;
- achieved GFLOP/s and the fraction of a float32 matmul peak measured right before that row,
  same process, same threads (the CPU is shared: `load` is the 1-minute load average then).

Where this branch changed a family's default (nets.py: resnet, lstm, transformer; tcn's last block), its old
configuration is measured in the same run next to the new one, with the speed-up between them.

    python benchmarks/bench_construct.py --quick                 # CSI 300 (NNAFC_DATA)
    python benchmarks/bench_construct.py --data ../shared/data   # CSI 300 and all A-shares
    python benchmarks/bench_construct.py --quick --families resnet,lstm --no-old
"""

from __future__ import annotations

import argparse
import copy
import os
import time
import types
from dataclasses import replace

import pandas as pd
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from nnafc import losses, nets
from nnafc.construct import ConstructConfig, _ic_days, prepare, prune, train_ic
from nnafc.data.locate import data_dir, source_for
from nnafc.data.sources import load_panel
from nnafc.data.splits import make_split


def _torch_layers(net: nn.Module) -> None:
    """The transformer as it was: torch's `nn.TransformerEncoderLayer` (fused attention), same weights."""
    for i, layer in enumerate(net.layers):
        d, ff = layer.linear1.in_features, layer.linear1.out_features
        old = nn.TransformerEncoderLayer(d, layer.self_attn.heads, ff, layer.dropout.p,
                                         batch_first=True, norm_first=True)
        old.load_state_dict(layer.state_dict())
        net.layers[i] = old


def _full_tcn(net: nn.Module) -> None:
    """The TCN as it was: every block over all m days, then the head reads the last one."""
    net.forward = types.MethodType(lambda self, x, day=None: self.head(self.blocks(x)[:, :, -1]).squeeze(-1),
                                   net)


# (label, family, net config, how to alter the built net): the defaults before this branch
OLD = {
    "resnet": [("old (16,32,64)x2", {"widths": (16, 32, 64), "blocks": (2, 2, 2)}, None)],
    "lstm": [("old 64x2", {"hidden": 64, "layers": 2}, None)],
    "tcn": [("old: all days in the last block", {}, _full_tcn)],
    "transformer": [("old 4 heads, torch layer", {"heads": 4}, _torch_layers),
                    ("2 heads, torch layer", {}, _torch_layers)],
}


def matmul_peak(device: str, n: int = 2048, repeats: int = 5) -> float:
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


def _lstm_macs(net: nn.Module, m: int) -> int:
    """Multiply-adds of the net's LSTMs for one window (FlopCounterMode cannot see them)."""
    total = 0
    for mod in net.modules():
        if isinstance(mod, nn.LSTM):
            for layer in range(mod.num_layers):
                size_in = mod.input_size if layer == 0 else mod.hidden_size
                total += m * 4 * mod.hidden_size * (size_in + mod.hidden_size)
    return total


def counted_flops(net: nn.Module, data, cfg: ConstructConfig) -> tuple[float, float]:
    """(training FLOPs per window: forward + loss + backward, forward FLOPs per window)."""
    ds = data.train
    b = _ic_days(ds)[: cfg.q]
    rows = int(ds.valid[b].sum())
    y = ds.label[b]
    with FlopCounterMode(display=False) as fc:
        pred = ds.forward(net, b)  # (q, n)
        losses.kernel_rank_ic_loss(pred, y, mask=torch.isfinite(y), p=cfg.p).backward()
    net.zero_grad(set_to_none=True)
    with FlopCounterMode(display=False) as fwd, torch.no_grad():
        ds.forward(net, b)
    lstm = 2 * _lstm_macs(net, cfg.m)
    return fc.get_total_flops() / rows + 3 * lstm, fwd.get_total_flops() / rows + lstm


def measure(name: str, net_cfg: dict, alter, data, cfg: ConstructConfig, steps: int) -> dict:
    """Seconds per IC-training epoch, FLOPs per epoch and the fraction of the matmul peak."""
    torch.manual_seed(0)
    net = nets.build(name, m=cfg.m, **net_cfg).to(cfg.device)
    flops_train, flops_fwd = counted_flops(net, data, cfg)  # before `alter`: the work the output
    #   needs (torch's counter has no formula for nn.TransformerEncoderLayer's fused CPU attention;
    #   the old TCN did 1/3 more, on days its head never read)
    if alter is not None:
        alter(net)
    masks = prune(net, cfg.prune_rate)
    days = _ic_days(data.train)
    epoch_steps = -(-len(days) // cfg.q)
    train_rows = float(data.train.valid[days].sum(1).double().mean()) * cfg.q * epoch_steps
    valid_rows = int(data.valid.valid.sum())
    run = replace(cfg, epochs=1, patience=2)
    train_ic(copy.deepcopy(net), data, replace(run, steps_per_epoch=1), masks=masks)  # warm-up
    load = os.getloadavg()[0]
    peak = matmul_peak(cfg.device)
    rep = train_ic(net, data, replace(run, steps_per_epoch=steps), masks=masks)
    c = rep.curve[1]
    seconds = c["seconds"] / steps * epoch_steps + c["valid_seconds"]
    flops = flops_train * train_rows + flops_fwd * valid_rows
    return {"params": nets.n_params(net), "MFLOP/window": flops_fwd / 1e6, "s/epoch": seconds,
            "GFLOP/epoch": flops / 1e9, "GFLOP/s": flops / seconds / 1e9,
            "peak GFLOP/s": peak, "of peak": flops / seconds / 1e9 / peak, "load": load}


def bench_universe(universe: str, root, args) -> pd.DataFrame:
    start = pd.Timestamp(args.train_start)
    t0 = time.perf_counter()
    panel = load_panel(source_for(root, universe), start=start - pd.Timedelta(days=120),
                       end=start + pd.Timedelta(days=620), universe=universe)
    split = make_split(panel.dates, start)
    cfg = ConstructConfig(device=args.device)
    data = prepare(panel, split, cfg)
    print(f"\n== {universe}: {panel}, split {split}; {len(data.train.windows):,} training windows; "
          f"prepared in {time.perf_counter() - t0:.1f} s", flush=True)
    rows = []
    for name in args.families:
        variants = [] if args.no_old else OLD.get(name, [])
        for label, net_cfg, alter in [*variants, ("default", {}, None)]:
            r = measure(name, net_cfg, alter, data, cfg, args.steps)
            rows.append({"universe": universe, "family": name, "config": label, **r})
            print(f"  {name:12s} {label:32s} {r['s/epoch']:8.2f} s/epoch"
                  f"  {r['MFLOP/window']:7.3f} MFLOP/window"
                  f"  {r['GFLOP/s']:6.1f} GFLOP/s = {r['of peak']:4.0%} of {r['peak GFLOP/s']:.0f}"
                  f"  (load {r['load']:.2f})", flush=True)
    out = pd.DataFrame(rows)
    default = out[out.config == "default"].set_index("family")["s/epoch"]
    # how many times faster the default is than this row's configuration (same run, same data)
    out["default x faster"] = [s / default[f] if c != "default" else float("nan")
                               for f, c, s in zip(out.family, out.config, out["s/epoch"], strict=True)]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None, help="data directory or file (default: NNAFC_DATA)")
    ap.add_argument("--quick", action="store_true", help="CSI 300 only (else CSI 300 and all A-shares)")
    ap.add_argument("--train-start", default="2018-01-01")
    ap.add_argument("--families", default=",".join(nets.names()), help="comma-separated net names")
    ap.add_argument("--steps", type=int, default=2, help="timed training steps per measurement")
    ap.add_argument("--no-old", action="store_true", help="skip the pre-change configurations")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: a shared CPU)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    args.families = args.families.split(",")
    for name in args.families:
        nets.make_config(name)  # an unknown family fails here, before any data is read
    if args.steps < 1:
        raise SystemExit("error: --steps must be >= 1")
    torch.set_num_threads(args.threads)
    root = data_dir(args.data)
    if root is None:
        raise SystemExit("error: no data: pass --data or set NNAFC_DATA")
    print(f"torch {torch.__version__}, device {args.device}, threads {torch.get_num_threads()}, "
          f"cores {os.cpu_count()}, oneDNN {torch.backends.mkldnn.is_available()}")
    tables = [bench_universe(u, root, args) for u in (["csi300"] if args.quick else ["csi300", "all"])]
    table = pd.concat(tables, ignore_index=True)
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.precision", 3):
        print("\n", table.drop(columns=["params"]).to_string(index=False))


if __name__ == "__main__":
    main()
