"""Saliency maps (Eq. 17, Fig. 6): which inputs (field x lag) a constructed factor is made of.

Following Simonyan et al. (2014), the factor is approximated to first order around each input
window, S(I) ≈ wᵀI + b, and w = ∂S/∂I is the contribution of each "pixel" (one of the five
fields on one of the m days). Averaging w over stocks and days gives the factor's map: red
(positive) inputs push the factor up, blue (negative) push it down.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from nnafc.data.windows import Windows


def saliency_map(net: nn.Module, windows: Windows | torch.Tensor, absolute: bool = False,
                 batch_rows: int = 1 << 15) -> np.ndarray:
    """`(5, m)` mean gradient of the net's output w.r.t. its input window (Eq. 17).

    Signed by default, as Fig. 6 shows it; `absolute=True` averages |∂S/∂I| instead, a
    contribution magnitude that positive and negative days cannot cancel. `windows`: a
    `Windows` (its `day` ids let cross-sectional nets see whole days) or an `(R, 5, m)` tensor.
    Rows are processed in chunks of whole days; the net's weights are not changed.
    """
    if isinstance(windows, Windows):
        x, day = windows.x, windows.day
    else:
        x, day = torch.as_tensor(windows, dtype=torch.float32), None
    if x.ndim != 3 or len(x) == 0:
        raise ValueError(f"saliency needs a non-empty (R, 5, m) batch of windows, got {tuple(x.shape)}")
    param = next(net.parameters())
    was = net.training
    net.eval()
    total = torch.zeros(x.shape[1:], dtype=torch.float64)
    try:
        for rows in _chunks(day, len(x), batch_rows):
            xb = x[rows].to(param.device, param.dtype).requires_grad_(True)  # (r, 5, m)
            db = None if day is None else day[rows].to(param.device)
            out = net(xb, db)  # (r,)
            (grad,) = torch.autograd.grad(out.sum(), xb)  # (r, 5, m): row i's output only moves with
            #   its own input for per-stock nets; for crossconv the sum also carries cross-stock terms
            grad = grad.abs() if absolute else grad
            total += grad.double().sum(0).cpu()
    finally:
        net.train(was)
    return (total / len(x)).numpy()


def _chunks(day: torch.Tensor | None, n: int, batch_rows: int) -> list[slice]:
    """Row slices of at most ~batch_rows rows that never split a day (rows are sorted by day)."""
    if day is None:
        return [slice(a, min(n, a + batch_rows)) for a in range(0, n, batch_rows)]
    d = day.numpy()
    cuts = np.r_[0, np.flatnonzero(np.diff(d)) + 1, n]  # day boundaries
    out, start = [], 0
    for c in cuts[1:]:
        if c - start >= batch_rows:
            out.append(slice(start, int(c)))
            start = int(c)
    if start < n:
        out.append(slice(start, n))
    return out
