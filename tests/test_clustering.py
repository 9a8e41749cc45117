"""§4.5's factor maps (`nnafc.evaluate.clustering`): constructed families with known answers --
families that copy different signals separate, families that copy the same signal share space."""

from __future__ import annotations

import numpy as np
import pytest

from nnafc import metrics
from nnafc.evaluate import clustering

DAYS, STOCKS = 12, 300


def _copies(signal: np.ndarray, n: int, noise: float, rng: np.random.Generator) -> list[np.ndarray]:
    return [signal + noise * rng.standard_normal(signal.shape) for _ in range(n)]


def _families(same: bool) -> tuple[np.ndarray, list[str]]:
    """Three families of six noisy copies of a signal each: three signals, or one shared by A and B."""
    rng = np.random.default_rng(0)
    a, b, c = (rng.standard_normal((DAYS, STOCKS)) for _ in range(3))
    values = _copies(a, 6, 0.3, rng) + _copies(a if same else b, 6, 0.3, rng) + _copies(c, 6, 0.3, rng)
    return np.stack(values), ["A"] * 6 + ["B"] * 6 + ["C"] * 6


def test_divergence_is_symmetric_zero_on_the_diagonal_and_zero_for_identical_factors() -> None:
    rng = np.random.default_rng(1)
    f = rng.standard_normal((3, DAYS, STOCKS))
    f[2] = f[0]  # identical factors
    d = clustering.divergence(metrics.mean_cross_entropy(f))
    np.testing.assert_allclose(d, d.T)
    assert np.all(np.diag(d) == 0) and d[0, 2] == pytest.approx(0.0, abs=1e-12) and d[0, 1] > 0.01


def test_classical_scaling_recovers_points_in_the_plane() -> None:
    pts = np.random.default_rng(2).standard_normal((8, 2))
    dist = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
    emb = clustering.classical_mds(dist)
    np.testing.assert_allclose(np.linalg.norm(emb[:, None] - emb[None], axis=-1), dist, atol=1e-9)


def test_distinct_signals_give_pure_clusters_and_separated_families() -> None:
    values, families = _families(same=False)
    fmap = clustering.factor_map(values, [f"f{i}" for i in range(18)], families)
    assert clustering.purity(fmap) == 1.0 and clustering.adjusted_rand(fmap) == pytest.approx(1.0)
    table = clustering.overlap(fmap)
    assert (table["silhouette"] > 0.5).all()
    assert (table["neighbours from others"] == 0).all() and np.allclose(table["chance"], 12 / 17)
    dist = clustering.family_distances(fmap)
    assert (np.diag(dist) < 0.2 * dist.to_numpy()[~np.eye(3, dtype=bool)].min()).all()


def test_families_copying_one_signal_share_their_space() -> None:
    values, families = _families(same=True)
    fmap = clustering.factor_map(values, [f"f{i}" for i in range(18)], families)
    table = clustering.overlap(fmap)
    assert table.loc["A", "silhouette"] < 0.1 and table.loc["B", "silhouette"] < 0.1
    assert table.loc["C", "silhouette"] > 0.5
    assert table.loc["A", "neighbours from others"] > 0.3  # half its near neighbours are B's
    dist = clustering.family_distances(fmap)
    assert dist.loc["A", "B"] < 2 * dist.loc["A", "A"] and dist.loc["A", "C"] > 5 * dist.loc["A", "B"]


def test_the_papers_layout_puts_a_centre_at_the_origin_and_factors_at_their_distance() -> None:
    values, families = _families(same=False)
    fmap = clustering.factor_map(values, [f"f{i}" for i in range(18)], families, seed=3)
    np.testing.assert_allclose(fmap.centres[0], 0.0, atol=1e-12)
    assert fmap.centres[1, 1] == pytest.approx(0.0, abs=1e-9) and fmap.centres[1, 0] > 0
    radius = np.linalg.norm(fmap.layout - fmap.centres[fmap.cluster], axis=1)
    for c in range(3):  # each factor lies at its row's distance from its k-means centre
        rows = fmap.distance[fmap.cluster == c]
        np.testing.assert_allclose(radius[fmap.cluster == c],
                                   np.linalg.norm(rows - rows.mean(axis=0), axis=1),
                                   rtol=1e-6)
    # the centres lie at the distances between the k-means centres (a triangle: exact in the plane)
    means = np.stack([fmap.distance[fmap.cluster == c].mean(axis=0) for c in range(3)])
    gaps = np.linalg.norm(means[:, None] - means[None], axis=-1)
    np.testing.assert_allclose(np.linalg.norm(fmap.centres[:, None] - fmap.centres[None], axis=-1), gaps,
                               rtol=1e-6, atol=1e-9)


def test_a_map_needs_two_factors() -> None:
    with pytest.raises(ValueError, match="at least two factors"):
        clustering.factor_map(np.zeros((1, DAYS, STOCKS)), ["x"], ["A"])
