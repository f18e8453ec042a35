"""The optional Optuna engine: Optuna's TPE sampler picks each trial's parameters and
its successive-halving pruner decides at each rung which trials go on, both through
Optuna's ask-and-tell interface; kiln keeps running the trials (in its workers), the
journal and the outputs. Trials are asked in batches of the search's ``jobs`` and told
when their batch ends, so a resumed search replays the journal through the same asks
and tells and gets the same trials."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from kiln.tune.space import Choice, Distribution, Float, Int


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise ImportError("kiln.tune: the optuna engine needs Optuna: pip install optuna "
                          "(or kiln[tune])") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def to_optuna(dist: Distribution) -> Any:
    """The Optuna distribution of a kiln one."""
    optuna = _optuna()
    D = optuna.distributions
    if isinstance(dist, Int):
        return D.IntDistribution(dist.low, dist.high, log=dist.log)
    if isinstance(dist, Float):
        return D.FloatDistribution(dist.low, dist.high, log=dist.log)
    if isinstance(dist, Choice):
        return D.CategoricalDistribution(dist.options)
    raise TypeError(f"kiln.tune: no Optuna distribution for {dist!r}")


def run_stage(search: Any, workers: Any, stage: int, space: dict[str, Any],
              budgets: list[int]) -> None:
    """Runs one stage of ``search`` (a kiln.tune.Search) with Optuna choosing the trials."""
    optuna = _optuna()
    s = search.settings
    seed = int(np.random.SeedSequence(s["seed"] & 0xFFFF_FFFF_FFFF_FFFF, spawn_key=(
        stage, 1 << 32)).generate_state(1)[0])
    pruner = (optuna.pruners.SuccessiveHalvingPruner(min_resource=budgets[0],
                                                    reduction_factor=s["halving"])
              if len(budgets) > 1 else optuna.pruners.NopPruner())
    study = optuna.create_study(direction="maximize" if s["mode"] == "max" else "minimize",
                                sampler=optuna.samplers.TPESampler(seed=seed), pruner=pruner)
    distributions = {k: to_optuna(v) for k, v in space.items() if isinstance(v, Distribution)}
    State = optuna.trial.TrialState
    for start in range(0, s["trials"], s["batch"]):
        indices = range(start, min(s["trials"], start + s["batch"]))
        asked = {i: study.ask(distributions) for i in indices}
        params = {i: {k: (asked[i].params[k] if k in distributions else v)
                      for k, v in space.items()} for i in indices}
        search._run_rungs(workers, stage, params, budgets, _Pruner(search, asked))
        for i in indices:
            record = search.journal.get(stage, i)
            if record["status"] == "complete":
                study.tell(asked[i], record["value"], state=State.COMPLETE)
            elif record["status"] == "pruned":
                study.tell(asked[i], state=State.PRUNED)
            else:
                study.tell(asked[i], state=State.FAIL)


class _Pruner:
    """The rung cut of a batch: each trial reports its validation curve so far (or its
    rung value) to its Optuna trial, which the study's pruner then keeps or stops."""

    def __init__(self, search: Any, asked: dict[int, Any]) -> None:
        self.search, self.asked = search, asked
        self.reported = dict.fromkeys(asked, 0)

    def __call__(self, stage: int, values: dict[int, float], budget: int, last: bool
                 ) -> list[int]:
        keep = []
        for i, value in values.items():
            if value is None or not math.isfinite(value):
                continue  # exploded or failed: told as failed at the batch's end
            curve = (self.search.journal.get(stage, i).get("curve") or [])[:budget]
            steps = list(enumerate(curve, start=1)) if len(curve) == budget else \
                [(budget, value)]
            for step, value in steps:
                if step > self.reported[i] and value is not None and math.isfinite(value):
                    self.asked[i].report(float(value), step)
                    self.reported[i] = step
            if last or not self.asked[i].should_prune():
                keep.append(i)
        return keep
