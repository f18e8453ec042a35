"""How trials are chosen: seeded random draws, grids, successive-halving rungs and the
coarse-to-fine narrowing of a space around the best trials of a stage."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from kiln.tune.space import Distribution, sample_space, searched


def trial_rng(seed: int, stage: int, index: int) -> np.random.Generator:
    """The generator of trial ``index`` of ``stage``: a function of these three only, so a
    resumed or parallel search draws the same parameters as an uninterrupted one."""
    return np.random.default_rng(np.random.SeedSequence(
        int(seed) & 0xFFFF_FFFF_FFFF_FFFF, spawn_key=(int(stage), int(index))))


def random_params(space: Mapping[str, Any], seed: int, stage: int, index: int
                  ) -> dict[str, Any]:
    """Trial ``index`` of ``stage`` of a random search over ``space``."""
    return sample_space(space, trial_rng(seed, stage, index))


def grid_params(space: Mapping[str, Any], trials: int) -> list[dict[str, Any]]:
    """Every combination of a grid over ``space``: choices and grids give their values,
    ranges about ``trials ** (1 / number of ranges)`` evenly spaced points (log-spaced
    on log ranges), at least 2."""
    dists = searched(space)
    ranges = [d for d in dists.values() if not hasattr(d, "options")]
    discrete = math.prod(len(d.options) for d in dists.values() if hasattr(d, "options"))
    points = max(2, int(round((max(trials, 1) / discrete) ** (1 / len(ranges))))) \
        if ranges else 0
    axes = [(k, v.grid(points) if isinstance(v, Distribution) else [v])
            for k, v in space.items()]
    return [dict(zip([k for k, _ in axes], combo))
            for combo in itertools.product(*(values for _, values in axes))]


def rung_budgets(epochs: int, eta: int, min_epochs: int = 1) -> list[int]:
    """The epoch budgets of successive halving for a stage of ``epochs`` epochs:
    epochs, epochs/eta, epochs/eta^2, ... down to ``min_epochs``, ascending
    (``eta`` < 2 turns halving off: one rung)."""
    if not 1 <= min_epochs <= epochs:
        raise ValueError(f"rung_budgets: min_epochs must lie in [1, epochs={epochs}], got "
                         f"{min_epochs}")
    if eta < 2:
        return [epochs]
    budgets, budget = [], float(epochs)
    while budget >= min_epochs - 1e-9 and (not budgets or budgets[-1] > min_epochs):
        budgets.append(max(int(round(budget)), min_epochs))
        budget /= eta
    return sorted(set(budgets))


def score(value: Any, mode: str) -> float:
    """A value to sort by, largest best; None and NaN (failed, exploded) rank last."""
    if value is None or not math.isfinite(value):
        return -math.inf
    return float(value) if mode == "max" else -float(value)


def survivors(values: Mapping[int, Any], eta: int, mode: str) -> list[int]:
    """The keys of the best ceil(n / eta) finite ``values`` (successive halving's cut),
    best first; ties keep the lower key."""
    alive = [k for k, v in values.items() if score(v, mode) > -math.inf]
    keep = math.ceil(len(alive) / eta) if eta >= 2 else len(alive)
    return sorted(alive, key=lambda k: (-score(values[k], mode), k))[:keep]


def narrow_space(space: Mapping[str, Any], ranked: Sequence[Mapping[str, Any]],
                 top: float = 0.25, min_width: float = 0.2) -> dict[str, Any]:
    """The space of the next, finer stage: around the parameters of the best trials.

    ``ranked``: the finished trials' parameter dicts, best first. Each range shrinks to
    the span of the best ``top`` fraction of them (at least one) plus a margin, never
    below ``min_width`` of its width (centred on the best) and never outside it; a
    choice keeps the options those trials used."""
    if not ranked:
        return dict(space)
    count = max(1, math.ceil(len(ranked) * top))
    best = ranked[:count]
    out: dict[str, Any] = {}
    for name, dist in space.items():
        if isinstance(dist, Distribution):
            out[name] = dist.narrowed([p[name] for p in best], best[0][name], min_width)
        else:
            out[name] = dist
    return out
