"""k-fold cross-validation of one configuration: the recipe's estimate when the data is
too small to spare a large validation split."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from kiln.data import kfold


@dataclass
class CVResult:
    """``scores`` (one per fold), their ``mean`` and ``std`` (sample standard deviation,
    0 for one fold) and ``results``, what ``fit`` returned for each fold."""

    scores: list[float]
    results: list[Any]

    @property
    def mean(self) -> float:
        return float(np.mean(self.scores))

    @property
    def std(self) -> float:
        return float(np.std(self.scores, ddof=1)) if len(self.scores) > 1 else 0.0

    def __repr__(self) -> str:
        return f"CVResult(mean={self.mean:.4f}, std={self.std:.4f}, folds={len(self.scores)})"


def cross_validate(fit: Callable[[np.ndarray, np.ndarray, int], Any], n: int, k: int = 5,
                   seed: int | None = 0, stratify: Any = None) -> CVResult:
    """Calls ``fit(train_idx, val_idx, fold)`` for each of the k folds of
    kiln.data.kfold(n, k, seed, stratify) (index arrays into the n samples; with
    ``stratify=labels`` every fold keeps the class shares) and collects the validation
    scores it returns (a float, or a dict with 'value'). A NaN score (a diverged fold)
    makes the mean NaN."""
    scores, results = [], []
    for fold, (train_idx, val_idx) in enumerate(kfold(n, k, seed=seed, stratify=stratify)):
        out = fit(train_idx, val_idx, fold)
        value = out["value"] if isinstance(out, Mapping) else out
        if value is None or isinstance(value, bool) or not isinstance(
                value, (int, float, np.integer, np.floating)):
            raise TypeError(f"cross_validate: fit must return a number or a dict with "
                            f"'value', got {type(value).__name__} for fold {fold}")
        scores.append(float(value) if value is not None else math.nan)
        results.append(out)
    return CVResult(scores, results)
