"""kiln.tune: hyperparameter search the way the lectures teach it.

Random search over log ranges (``loguniform``) rather than grids, coarse to fine
(``stages``: each narrows the ranges around the best trials and trains longer),
successive halving and an immediate stop for trials whose loss explodes, k-fold
cross-validation (``cross_validate``), trials in parallel worker processes, a journal
rewritten atomically after every trial so a killed search resumes (``Search.resume``),
and a warning when the best value sits at the edge of its range. ``engine='optuna'``
uses Optuna's sampler and pruner (pip install optuna).

    from kiln.tune import Search, loguniform
    result = Search(objective, {"lr": loguniform(1e-4, 1e-1)}, trials=20, epochs=3,
                    stages=2, jobs=2, journal="journal.json").run()
"""

from kiln.tune.cv import CVResult, cross_validate
from kiln.tune.journal import Journal
from kiln.tune.report import plot_search, write_trials_csv
from kiln.tune.search import Search, SearchResult, Trial, edge_warnings
from kiln.tune.space import (
    Choice,
    Distribution,
    Float,
    Int,
    choice,
    grid,
    loguniform,
    parse_spec,
    randint,
    sample_space,
    uniform,
)
from kiln.tune.strategy import grid_params, narrow_space, random_params, rung_budgets

__all__ = [
    "CVResult", "Choice", "Distribution", "Float", "Int", "Journal", "Search", "SearchResult",
    "Trial", "choice", "cross_validate", "edge_warnings", "grid", "grid_params", "loguniform",
    "narrow_space", "parse_spec", "plot_search", "randint", "random_params", "rung_budgets",
    "sample_space", "uniform", "write_trials_csv",
]
