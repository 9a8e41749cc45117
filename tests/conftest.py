"""Shared fixtures: the real data directory (skip cleanly when absent) and small slices of it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)  # the tests' tensors are small: one thread is fastest and deterministic
os.environ["NNAFC_CACHE"] = tempfile.mkdtemp(prefix="nnafc-test-values-")  # studies' value stores


def _data_dir() -> Path | None:
    for candidate in (os.environ.get("NNAFC_DATA"), Path(__file__).parents[2] / "shared" / "data"):
        if candidate and (Path(candidate) / "csi300_2010_2020.parquet").exists():
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real A-share data (../shared/data or NNAFC_DATA); tests needing it skip without it."""
    path = _data_dir()
    if path is None:
        pytest.skip("real data not found: set NNAFC_DATA to the shared data directory")
    return path
