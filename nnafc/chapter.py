"""What every book chapter does first: resolve the data, load the panel, seed, set the style.

Kept here (not in the notebooks) so that chapters stay thin and re-executing them with other
parameters (papermill) behaves the same everywhere. Without configured data the chapter runs
on the simulated market and says so prominently.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch

from nnafc.data import Panel, load_panel
from nnafc.data.locate import data_dir, source_for

SIMULATED_BANNER = (
    ":::{warning}\nNo market data was configured (`--data` / `NNAFC_DATA`), so every number on "
    "this page comes from the **simulated market** (`nnafc.simulate`), not from A-shares. "
    "They show that the code runs; they say nothing about the paper's claims.\n:::"
)


@dataclass
class Chapter:
    panel: Panel
    device: str
    seed: int

    @property
    def simulated(self) -> bool:
        return self.panel.simulated

    def banner(self):
        """A Markdown cell output stating where the numbers come from."""
        from IPython.display import Markdown

        if self.simulated:
            return Markdown(SIMULATED_BANNER)
        p = self.panel
        return Markdown(
            f"Data: `{p.meta.get('source', '?')}` — universe **{p.universe}**, "
            f"{p.shape[0]} trading days {p.dates[0].date()} … {p.dates[-1].date()}, "
            f"{p.shape[1]} instruments; device `{self.device}`, seed {self.seed}."
        )


def _inline_figures() -> None:
    """Figures as cell outputs even when MPLBACKEND (e.g. Agg) is set in the environment."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None and "IPKernelApp" in shell.config:
        shell.run_line_magic("matplotlib", "inline")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 -- libraries that draw from the global RNG
    torch.manual_seed(seed)


def setup(
    data: str | None = None,
    universe: str = "csi300",
    start: str | None = None,
    end: str | None = None,
    seed: int = 0,
    device: str = "cpu",
    simulated_stocks: int = 300,
) -> Chapter:
    """Load the chapter's panel (real data when configured, else the simulated market)."""
    configure(seed, device)
    panel = load(data, universe, start, end, seed, simulated_stocks)
    return Chapter(panel=panel, device=device, seed=seed)


def configure(seed: int = 0, device: str = "cpu") -> None:
    """What every chapter does first (`setup` does it too): inline figures, the book's style, every
    RNG seeded, the device checked. A chapter that reads the factor study calls this alone."""
    from nnafc.plotting import use_style

    _inline_figures()
    use_style()
    seed_everything(seed)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but torch sees no CUDA device")


def load(data: str | None = None, universe: str = "csi300", start: str | None = None,
         end: str | None = None, seed: int = 0, simulated_stocks: int = 300) -> Panel:
    """A panel as `setup` loads it (real data when configured, else the simulated market): for a
    chapter section that needs another universe or period than the chapter's own."""
    root = data_dir(data)
    if root is None:
        from nnafc.simulate import simulate_market

        return simulate_market(n_stocks=simulated_stocks, seed=seed)
    return load_panel(source_for(root, universe), start=start, end=end, universe=universe)
