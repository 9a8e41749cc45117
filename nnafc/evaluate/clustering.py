"""§4.5, Figs. 7-8: do the factors of different extractors fill different parts of factor space?

The paper takes 50 factors each of an FCN, a spatial and a temporal network, measures every pair
by the cross-entropy of Eq. 19 (a factor's cross-section as a softmax distribution over stocks,
Eq. 18), k-means the factors into three clusters and draws them on a 2-D map: one cluster centre
at (0, 0), the others placed by their distances, each factor at its distance from its centre in a
random direction. It then reads "shared space" off the picture. Here the same map is drawn from
the study's factors on a window's test days (`factor_map`), beside a standard embedding of the
same distances (classical multidimensional scaling), and the picture's claims are measured
(`overlap`, `family_distances`): how pure the clusters are in families, how well each family is
separated (silhouette), how many of a factor's nearest neighbours come from another family, and
the mean distance within and between families — per window, so their spread can be read.

Distances. Row i of the day-averaged Eq. 19 matrix `D` (`metrics.mean_cross_entropy`, on
cross-sectional ranks as Table 4's diversity) is factor i's point for k-means, as in the paper's
diversity. Eq. 19 is a cross-entropy: not symmetric, and `D[i, i]` is factor i's entropy; the
measures and the embedding use the symmetric divergence `(KL(p_i||p_j) + KL(p_j||p_i)) / 2` with
`KL(p_i||p_j) = D[i, j] - D[i, i]`, which is 0 for identical factors.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from nnafc import metrics

if TYPE_CHECKING:
    from nnafc.study import Study


@dataclass
class FactorMap:
    """The factors of some families on one window's test days, clustered and laid out in 2-D."""

    window: str  # first training day of the window
    names: list[str]  # one per factor
    families: list[str]  # one per factor
    distance: np.ndarray  # (K, K) Eq. 19, mean over the test days: row i is factor i's point
    divergence: np.ndarray  # (K, K) symmetric KL divergence, 0 on the diagonal
    cluster: np.ndarray  # (K,) k-means cluster of each factor (0 .. n_clusters - 1)
    layout: np.ndarray  # (K, 2) the paper's map
    centres: np.ndarray  # (n_clusters, 2) cluster centres on the paper's map; centres[0] = (0, 0)
    embedding: np.ndarray  # (K, 2) classical MDS of the divergence

    def frame(self) -> pd.DataFrame:
        """One row per factor: family, name, cluster, both 2-D positions."""
        return pd.DataFrame({"family": self.families, "factor": self.names, "cluster": self.cluster,
                             "x": self.layout[:, 0], "y": self.layout[:, 1],
                             "mds x": self.embedding[:, 0], "mds y": self.embedding[:, 1]})


def divergence(distance: np.ndarray) -> np.ndarray:
    """The symmetric KL divergence from an Eq. 19 cross-entropy matrix: `(KL_ij + KL_ji) / 2`."""
    kl = distance - np.diag(distance)[:, None]  # KL(p_i || p_j) = H(p_i, p_j) - H(p_i)
    out = (kl + kl.T) / 2
    np.fill_diagonal(out, 0.0)
    return np.maximum(out, 0.0)  # rounding can leave -1e-16


def classical_mds(dissimilarity: np.ndarray, dims: int = 2) -> np.ndarray:
    """Torgerson's classical scaling: points whose Euclidean distances best match `dissimilarity`
    (double-centred squared distances, top eigenvectors scaled by the root of their eigenvalues)."""
    d2 = np.asarray(dissimilarity, dtype=np.float64) ** 2
    n = len(d2)
    j = np.eye(n) - 1.0 / n
    b = -0.5 * j @ d2 @ j
    vals, vecs = np.linalg.eigh(b)  # ascending
    top = np.argsort(vals)[::-1][:dims]
    out = vecs[:, top] * np.sqrt(np.clip(vals[top], 0.0, None))
    return out * np.where(out[np.abs(out).argmax(axis=0), range(dims)] < 0, -1.0, 1.0)  # sign fixed


def paper_layout(points: np.ndarray, n_clusters: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray,
                                                                                  np.ndarray]:
    """§4.5's map: k-means (`n_clusters`, scikit-learn, seeded) on the rows of `points`; the first
    cluster's centre at (0, 0), the others placed by the distances between the centres (classical
    scaling of them, the second centre on the x axis: "a given direction" that changes only the
    look); each factor at its distance from its own centre, in a random (seeded) direction.
    Returns (cluster of each row, (K, 2) positions, (n_clusters, 2) centres)."""
    from sklearn.cluster import KMeans

    k = min(n_clusters, len(np.unique(np.round(points, 12), axis=0)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning on near-duplicate points
        km = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(points)
    gaps = np.linalg.norm(km.cluster_centers_[:, None] - km.cluster_centers_[None], axis=-1)
    centres = classical_mds(gaps) if k > 1 else np.zeros((1, 2))
    centres = centres - centres[0]
    if k > 1 and np.linalg.norm(centres[1]) > 0:  # rotate: the second centre on the +x axis
        a = np.arctan2(centres[1, 1], centres[1, 0])
        rot = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
        centres = centres @ rot.T
    radius = np.linalg.norm(points - km.cluster_centers_[km.labels_], axis=1)
    angle = np.random.default_rng(seed).uniform(0, 2 * np.pi, len(points))
    layout = centres[km.labels_] + radius[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return km.labels_.astype(int), layout, centres


def factor_map(values: np.ndarray, names: Sequence[str], families: Sequence[str], window: str = "",
               n_clusters: int = 3, days: int | Sequence[int] | None = None, seed: int = 0) -> FactorMap:
    """The map of K factors from their `(K, D, N)` values on test days (ranked per day first, as
    Table 4's diversity, so a factor's tails do not dominate its softmax)."""
    if len(values) < 2:
        raise ValueError(f"a factor map needs at least two factors, got {len(values)}")
    ranked = metrics.cross_sectional_ranks(values)
    dist = metrics.mean_cross_entropy(ranked, days=days, seed=seed)
    cluster, layout, centres = paper_layout(dist, n_clusters, seed)
    div = divergence(dist)
    return FactorMap(window, list(names), list(families), dist, div, cluster, layout, centres,
                     classical_mds(div))


def study_map(study: Study, families: Sequence[str], window: int, n_clusters: int = 3,
              days: int | Sequence[int] | None = None, seed: int = 0) -> FactorMap:
    """`factor_map` of the study's factors of `families` on `window` (those built so far)."""
    names, labels, values = [], [], []
    for family in families:
        factors, v = study.test_values(family, window, partial=True)
        names += [str(f.meta.get("infix", f.name)) for f in factors]
        labels += [family] * len(factors)
        values.append(v)
    first = study.window_label(window)
    return factor_map(np.concatenate(values), names, labels, first, n_clusters, days, seed)


def study_maps(study: Study, families: Sequence[str], n_clusters: int = 3,
               days: int | Sequence[int] | None = None, seed: int = 0) -> list[FactorMap]:
    """`study_map` on every window where each of `families` has at least two factors."""
    maps = []
    for w in range(len(study.windows())):
        if min(study.built(f, w) for f in families) >= 2:
            maps.append(study_map(study, families, w, n_clusters, days, seed))
    return maps


# ----------------------------------------------------------------------------- measures


def overlap(fmap: FactorMap, neighbours: int = 5) -> pd.DataFrame:
    """Per family: factors; silhouette (mean over its factors, on the divergence with families as
    labels: 1 = apart from the rest, about 0 or below = shared space); the share of each factor's
    `neighbours` nearest factors that belong to another family, and that share's value if the
    neighbours were drawn at random ("chance"); mean divergence within the family and to the
    nearest other family; the share of its factors in the cluster its family dominates."""
    from sklearn.metrics import silhouette_samples

    fam = np.asarray(fmap.families)
    k = len(fam)
    sil = (silhouette_samples(fmap.divergence, fam, metric="precomputed") if len(set(fam)) > 1
           else np.full(k, np.nan))
    order = np.argsort(fmap.divergence + np.diag(np.full(k, np.inf)), axis=1)[:, :min(neighbours, k - 1)]
    other = (fam[order] != fam[:, None]).mean(axis=1)
    between = family_distances(fmap)
    rows = {}
    for f in dict.fromkeys(fam):
        mine = fam == f
        clusters = pd.Series(fmap.cluster[mine]).value_counts()
        rows[f] = {"factors": int(mine.sum()), "silhouette": float(sil[mine].mean()),
                   "neighbours from others": float(other[mine].mean()),
                   "chance": float((k - mine.sum()) / (k - 1)),
                   "within": float(between.loc[f, f]),
                   "to nearest other": float(between.loc[f].drop(f).min()) if len(between) > 1 else np.nan,
                   "in its main cluster": float(clusters.iloc[0] / mine.sum())}
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "family"
    return out


def family_distances(fmap: FactorMap) -> pd.DataFrame:
    """Mean divergence between the factors of each pair of families (within: distinct pairs only)."""
    fam = np.asarray(fmap.families)
    names = list(dict.fromkeys(fam))
    out = pd.DataFrame(index=pd.Index(names, name="family"), columns=names, dtype=float)
    for a in names:
        for b in names:
            block = fmap.divergence[np.ix_(fam == a, fam == b)]
            if a == b:
                block = block[~np.eye(len(block), dtype=bool)]
            out.loc[a, b] = float(block.mean()) if block.size else np.nan
    return out


def purity(fmap: FactorMap) -> float:
    """The share of factors whose cluster's most common family is their own (1: clusters = families)."""
    frame = pd.DataFrame({"family": fmap.families, "cluster": fmap.cluster})
    main = frame.groupby("cluster")["family"].agg(lambda s: s.value_counts().iloc[0])
    return float(main.sum() / len(frame))


def adjusted_rand(fmap: FactorMap) -> float:
    """Agreement of the k-means clusters with the families, corrected for chance (0: none, 1: equal)."""
    from sklearn.metrics import adjusted_rand_score

    return float(adjusted_rand_score(fmap.families, fmap.cluster))


def window_measures(maps: Sequence[FactorMap], neighbours: int = 5) -> pd.DataFrame:
    """`overlap` of each map stacked (a `window` column), with each map's purity and adjusted Rand
    index: the spread of every measure over windows."""
    frames = [overlap(m, neighbours).assign(window=m.window, purity=purity(m), ARI=adjusted_rand(m))
              for m in maps]
    return pd.concat(frames).reset_index().set_index(["window", "family"])


def mean_family_distances(maps: Sequence[FactorMap]) -> pd.DataFrame | None:
    """`family_distances` averaged over maps (windows); None without maps."""
    if not maps:
        return None
    tables = [family_distances(m) for m in maps]
    return sum(tables[1:], tables[0]) / len(tables)


def summary(measures: pd.DataFrame) -> pd.DataFrame:
    """Per family, mean and standard deviation over windows of `window_measures`' columns."""
    cols = ["silhouette", "neighbours from others", "chance", "within", "to nearest other"]
    g = measures[cols].groupby(level="family", sort=False)
    out = g.mean().join(g.std(ddof=1).add_suffix(" std")).join(g.size().rename("windows"))
    return out[[c for pair in zip(cols, [f"{c} std" for c in cols], strict=True) for c in pair] + ["windows"]]
