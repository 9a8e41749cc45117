"""The strategy's classifier: XGBoost in `binary:logistic` mode over factor features (§4.4).

Hyper-parameters are chosen on the validation split only (the 30 days after training, §4.1):
every combination of the grid is fitted on the training rows and scored by validation AUC on
the validation split's own top / bottom 30 % labels; the number of trees is a grid dimension
read off one fit per (depth, eta) through `iteration_range`, so the grid costs
`len(max_depth) * len(learning_rate)` fits. Test data is never seen.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import pandas as pd

IMPORTANCE_KINDS = ("weight", "gain", "cover", "total_gain", "total_cover")


def _as_grid(name: str, value, kind: type) -> tuple:
    values = tuple(value) if isinstance(value, Sequence) and not isinstance(value, str) else (value,)
    if not values:
        raise ValueError(f"{name} needs at least one value")
    for v in values:
        if kind is int and (not isinstance(v, int | np.integer) or isinstance(v, bool) or v < 1):
            raise ValueError(f"{name} values must be positive integers, got {v!r}")
        if kind is float and not (isinstance(v, int | float | np.number) and 0 < v <= 1):
            raise ValueError(f"{name} values must be in (0, 1], got {v!r}")
    return values


class FactorModel:
    """XGBoost `binary:logistic` classifier of "top 30 %" vs "bottom 30 %" stocks (§4.4).

    A scalar hyper-parameter is fixed; a sequence makes it a grid dimension chosen on the
    validation set by AUC. The default grid (depth 3/5 x eta 0.1 x 50/100/200/300 trees: two
    fits, the tree counts read off each) is small on purpose: the validation split is only 30
    days, and eta 0.05 with n trees is close to eta 0.1 with n/2, which the tree grid covers.
    Deterministic for a given `seed`.
    """

    def __init__(
        self,
        max_depth: int | Sequence[int] = (3, 5),
        learning_rate: float | Sequence[float] = (0.1,),
        n_estimators: int | Sequence[int] = (50, 100, 200, 300),
        subsample: float = 0.8,  # row subsampling per tree, seeded
        colsample_bytree: float = 0.8,  # factor subsampling per tree, seeded
        min_child_weight: float = 50.0,  # a leaf needs ~200 stock-days: daily cross-sections are noisy
        seed: int = 0,
        n_jobs: int = 1,  # threads; results do not depend on it with tree_method="hist"
    ) -> None:
        self.max_depth = _as_grid("max_depth", max_depth, int)
        self.learning_rate = _as_grid("learning_rate", learning_rate, float)
        self.n_estimators = _as_grid("n_estimators", n_estimators, int)
        for name, v in (("subsample", subsample), ("colsample_bytree", colsample_bytree)):
            if not 0 < v <= 1:
                raise ValueError(f"{name} must be in (0, 1], got {v}")
        if min_child_weight < 0:
            raise ValueError(f"min_child_weight must be >= 0, got {min_child_weight}")
        if not isinstance(n_jobs, int) or n_jobs < 1:
            raise ValueError(f"n_jobs must be a positive integer, got {n_jobs!r}")
        self.subsample = float(subsample)
        self.colsample_bytree = float(colsample_bytree)
        self.min_child_weight = float(min_child_weight)
        self.seed = int(seed)
        self.n_jobs = n_jobs

    @property
    def n_combinations(self) -> int:
        return len(self.max_depth) * len(self.learning_rate) * len(self.n_estimators)

    def __repr__(self) -> str:
        return (f"FactorModel(max_depth={self.max_depth}, learning_rate={self.learning_rate}, "
                f"n_estimators={self.n_estimators}, seed={self.seed})")

    def _classifier(self, max_depth: int, learning_rate: float, n_estimators: int):
        import xgboost as xgb

        return xgb.XGBClassifier(
            objective="binary:logistic", tree_method="hist", max_depth=max_depth,
            learning_rate=learning_rate, n_estimators=n_estimators, subsample=self.subsample,
            colsample_bytree=self.colsample_bytree, min_child_weight=self.min_child_weight,
            random_state=self.seed, n_jobs=self.n_jobs, eval_metric="auc", missing=np.nan,
        )

    def fit(self, X: np.ndarray, y: np.ndarray, X_valid: np.ndarray | None = None,
            y_valid: np.ndarray | None = None, feature_names: Sequence[str] | None = None) -> FactorModel:
        """Fit on training rows `X (n, F)`, labels `y (n,)` in {0, 1}; choose the grid point on validation."""
        from sklearn.metrics import roc_auc_score

        X = np.asarray(X, dtype=np.float32)  # (n, F)
        y = np.asarray(y)
        if X.ndim != 2 or y.shape != (X.shape[0],):
            raise ValueError(f"X must be (n, F) and y (n,), got {X.shape} and {y.shape}")
        if not np.isin(y, (0, 1)).all() or len(np.unique(y)) < 2:
            raise ValueError("y must hold both classes 0 and 1 and nothing else")
        names = [f"f{j}" for j in range(X.shape[1])] if feature_names is None else list(feature_names)
        if len(names) != X.shape[1]:
            raise ValueError(f"{len(names)} feature names for {X.shape[1]} features")
        has_valid = X_valid is not None and y_valid is not None
        if self.n_combinations > 1 and not has_valid:
            raise ValueError(f"a grid of {self.n_combinations} combinations needs X_valid, y_valid")
        if has_valid:
            X_valid = np.asarray(X_valid, dtype=np.float32)
            y_valid = np.asarray(y_valid)
            if X_valid.shape[1:] != X.shape[1:] or y_valid.shape != (X_valid.shape[0],):
                raise ValueError(f"validation rows {X_valid.shape}, {y_valid.shape} do not match X {X.shape}")
            if len(np.unique(y_valid)) < 2:
                raise ValueError("validation labels must hold both classes")

        rows, best = [], None
        for depth, eta in itertools.product(self.max_depth, self.learning_rate):
            clf = self._classifier(depth, eta, max(self.n_estimators))
            clf.fit(X, y)
            for n_trees in self.n_estimators:
                auc = np.nan
                if has_valid:
                    p = clf.predict_proba(X_valid, iteration_range=(0, n_trees))[:, 1]
                    auc = float(roc_auc_score(y_valid, p))
                rows.append({"max_depth": depth, "learning_rate": eta, "n_estimators": n_trees,
                             "valid_auc": auc})
                if best is None or (has_valid and auc > best[0]):
                    best = (auc, clf, n_trees, rows[-1])
        self.grid_scores_ = pd.DataFrame(rows)
        _, self.model_, self.n_trees_, chosen = best
        self.best_params_ = {k: chosen[k] for k in ("max_depth", "learning_rate", "n_estimators")}
        self.valid_auc_ = chosen["valid_auc"]
        self.feature_names_ = names
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise ValueError("FactorModel is not fitted yet: call fit() first")

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """`(n, 2)` class probabilities, like scikit-learn; column 1 is P(top 30 %)."""
        self._check_fitted()
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != len(self.feature_names_):
            raise ValueError(f"X must be (n, {len(self.feature_names_)}), got {X.shape}")
        return self.model_.predict_proba(X, iteration_range=(0, self.n_trees_))

    def predict_panel(self, features: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """P(top 30 %) for `(D, N, F)` features -> `(D, N)`; NaN outside `mask` / with no feature."""
        self._check_fitted()
        d, n, f = features.shape
        keep = np.isfinite(features).any(axis=2)  # (D, N)
        if mask is not None:
            keep &= mask
        out = np.full((d, n), np.nan, dtype=np.float64)  # (D, N)
        if keep.any():
            out[keep] = self.predict_proba(features[keep])[:, 1]
        return out

    def importance(self, kind: str = "weight") -> pd.Series:
        """Feature importance per factor name; `weight` = how often a factor splits a tree (§4.4)."""
        self._check_fitted()
        if kind not in IMPORTANCE_KINDS:
            raise ValueError(f"unknown importance kind {kind!r}; choose from {IMPORTANCE_KINDS}")
        booster = self.model_.get_booster()
        # restrict to the trees actually used for prediction (the chosen n_estimators)
        score = booster[: self.n_trees_].get_score(importance_type=kind)
        values = [float(score.get(f"f{j}", 0.0)) for j in range(len(self.feature_names_))]
        return pd.Series(values, index=pd.Index(self.feature_names_, name="factor"), name=kind)
