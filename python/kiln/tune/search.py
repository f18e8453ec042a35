"""Search: random or grid search, coarse to fine, with successive halving, in parallel,
journaled and resumable.

    def objective(trial):                 # trial.params, trial.epochs, trial.workdir ...
        return train_and_validate(**trial.params, epochs=trial.epochs)   # a float
    result = Search(objective, {"lr": loguniform(1e-4, 1e-1)}, trials=20, epochs=3,
                    stages=2, jobs=2, journal="search/journal.json").run()
    result.best["params"], result.warnings

Stage s trains each of its trials for ``epochs * epoch_factor**s`` epochs; stage s+1
searches a space narrowed around the best trials of stage s. Within a stage,
successive halving (``halving=eta``) trains every trial for the smallest rung budget,
keeps the best 1/eta, trains those on to the next budget, and so on (an objective that
keeps state in ``trial.workdir`` continues where it stopped; others start over). An
objective may report ``status='exploded'`` (a diverged loss): that trial stops there.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kiln.tune.journal import Journal
from kiln.tune.optuna_engine import run_stage
from kiln.tune.space import searched, space_from_dict, space_to_dict
from kiln.tune.strategy import (
    grid_params,
    narrow_space,
    random_params,
    rung_budgets,
    score,
    survivors,
)
from kiln.tune.workers import Workers

_STRATEGIES = ("random", "grid")
_ENGINES = ("kiln", "optuna")


@dataclass
class Trial:
    """What an objective is asked: train with ``params`` until ``epochs`` epochs are done
    (of ``max_epochs``, the stage's full budget, e.g. the length of an lr schedule);
    ``workdir`` (a folder or None) may keep its state between rungs and across a resume."""

    stage: int
    index: int
    params: dict[str, Any]
    epochs: int
    max_epochs: int
    seed: int
    workdir: str | None = None


def _evaluate(task: tuple[Callable[[Trial], Any], Trial]) -> dict[str, Any]:
    """Runs one objective call (in a worker) and normalizes what it returns."""
    objective, trial = task
    start = time.perf_counter()
    if trial.workdir is not None:
        os.makedirs(trial.workdir, exist_ok=True)
    out = objective(trial)
    extra: dict[str, Any] = {}
    if isinstance(out, Mapping):
        if "value" not in out:
            raise ValueError(f"kiln.tune: the objective returned a dict without 'value' "
                             f"(keys: {', '.join(out)})")
        extra = dict(out)
        out = extra.pop("value")
    status = extra.pop("status", "complete")
    if status not in ("complete", "exploded"):
        raise ValueError(f"kiln.tune: an objective's status must be 'complete' or "
                         f"'exploded', got {status!r}")
    value = math.nan if out is None else float(out)
    return {"value": value, "status": status, "curve": extra.pop("curve", None),
            "metrics": extra, "seconds": time.perf_counter() - start}


@dataclass
class SearchResult:
    """Every trial's record (stage, index, params, status, value, epochs, rungs, curve,
    metrics, seconds), the space of each stage, and edge warnings about the best."""

    trials: list[dict[str, Any]]
    spaces: list[dict[str, Any]]
    mode: str
    warnings: list[str] = field(default_factory=list)

    def ranked(self) -> list[dict[str, Any]]:
        """Finished trials (complete or pruned), best first: later stages before earlier,
        more epochs before fewer, then by value."""
        done = [r for r in self.trials if r["status"] in ("complete", "pruned")
                and score(r["value"], self.mode) > -math.inf]
        return sorted(done, key=lambda r: (-r["stage"], -r["epochs"],
                                           -score(r["value"], self.mode), r["index"]))

    @property
    def best(self) -> dict[str, Any] | None:
        """The best trial of the last stage trained to its full budget (None if none)."""
        top = self.top(1)
        return top[0] if top else None

    def top(self, k: int) -> list[dict[str, Any]]:
        """The k best trials with distinct parameters, ranked as ``ranked``."""
        out: list[dict[str, Any]] = []
        for record in self.ranked():
            if all(record["params"] != r["params"] for r in out):
                out.append(record)
            if len(out) == k:
                break
        return out


def edge_warnings(space: Mapping[str, Any], params: Mapping[str, Any],
                  fraction: float = 0.1) -> list[str]:
    """Plain-words warnings for each searched parameter whose value in ``params`` lies in
    the outer ``fraction`` of its range in ``space`` (measured on the log scale for log
    ranges; for a grid: its lowest or highest value)."""
    out = []
    for name, dist in searched(space).items():
        if name not in params:
            continue
        value = params[name]
        where = dist.position(value)
        if where is None or (hasattr(dist, "options") and len(dist.options) < 3):
            continue
        if hasattr(dist, "options"):
            low, high, scale = dist.options[0], dist.options[-1], "grid"
        else:
            low, high, scale = dist.low, dist.high, "log scale" if dist.log else "linear scale"
        for side, near, beyond in (("low", where <= fraction, "lower"),
                                   ("high", where >= 1 - fraction, "higher")):
            if near:
                edge = low if side == "low" else high
                out.append(f"the best {name}, {value:.4g}, lies at the {side} edge of the "
                           f"range searched ({low:g} to {high:g}, {scale}): the best value "
                           f"may be {beyond} than {edge:g}; search again with a range that "
                           f"reaches past it")
    return out


class Search:
    """A hyperparameter search of ``objective`` over ``space``.

    Args:
        objective: ``objective(trial: Trial)`` returning the validation value (a float)
            or a dict with 'value' and optionally 'status' ('complete' or 'exploded'),
            'curve' (values per epoch) and other numbers (kept as metrics). It must be
            picklable (a module-level function or object) when ``jobs > 1``.
        space: name -> Distribution (or a fixed value), see kiln.tune.space.
        trials: trials per stage (a grid search tries its whole grid instead).
        epochs: the budget of each trial of the first stage.
        stages: coarse-to-fine stages; each narrows the space around the best ``top``
            fraction of the previous stage's trials and multiplies the epochs by
            ``epoch_factor``.
        strategy: 'random' (default: more distinct values of each parameter than a grid
            of the same size) or 'grid'.
        engine: 'kiln' (the strategy above) or 'optuna' (Optuna's TPE sampler and
            successive-halving pruner through its ask-and-tell interface; pip install
            optuna).
        halving: successive halving's eta (keep the best 1/eta at each rung); 0 or 1: off.
        min_epochs: the smallest rung budget.
        mode: 'max' (accuracy) or 'min' (loss).
        seed: trial i of stage s draws its parameters from (seed, s, i) only.
        jobs: worker processes.
        journal: a JSON file rewritten after every trial (None: memory only).
        workdir: a folder for the trials' state (None: none).
        callbacks: functions called with each trial record after it is journaled.
    """

    def __init__(self, objective: Callable[[Trial], Any], space: Mapping[str, Any], *,
                 trials: int = 20, epochs: int = 1, stages: int = 1, epoch_factor: int = 3,
                 strategy: str = "random", engine: str = "kiln", halving: int = 3,
                 min_epochs: int = 1, mode: str = "max", seed: int = 0, jobs: int = 1,
                 journal: str | os.PathLike[str] | None = None,
                 workdir: str | os.PathLike[str] | None = None, top: float = 0.25,
                 min_width: float = 0.2, meta: Mapping[str, Any] | None = None,
                 callbacks: Sequence[Callable[[dict[str, Any]], None]] = ()) -> None:
        op = "Search"
        if not callable(objective):
            raise TypeError(f"{op}: objective must be callable, got {type(objective).__name__}")
        if not isinstance(space, Mapping) or not searched(space):
            raise ValueError(f"{op}: space must map names to distributions, at least one "
                             f"(loguniform, uniform, randint, choice, grid); got {space!r}")
        for name, value in (("trials", trials), ("epochs", epochs), ("stages", stages),
                            ("epoch_factor", epoch_factor), ("min_epochs", min_epochs),
                            ("jobs", jobs), ("halving", halving), ("seed", seed)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{op}: {name} must be an int, got {type(value).__name__}")
            low = 0 if name in ("halving", "seed") else 1
            if value < low:
                raise ValueError(f"{op}: {name} must be >= {low}, got {value}")
        if min_epochs > epochs:
            raise ValueError(f"{op}: min_epochs ({min_epochs}) must not exceed epochs "
                             f"({epochs})")
        if strategy not in _STRATEGIES:
            raise ValueError(f"{op}: strategy must be one of {_STRATEGIES}, got {strategy!r}")
        if engine not in _ENGINES:
            raise ValueError(f"{op}: engine must be one of {_ENGINES}, got {engine!r}")
        if engine == "optuna" and strategy == "grid":
            raise ValueError(f"{op}: engine 'optuna' picks its own points; use strategy "
                             "'random' with it")
        if mode not in ("max", "min"):
            raise ValueError(f"{op}: mode must be 'max' or 'min', got {mode!r}")
        if not 0 < top <= 1 or not 0 < min_width <= 1:
            raise ValueError(f"{op}: top and min_width must lie in (0, 1], got {top}, "
                             f"{min_width}")
        self.objective = objective
        self.settings: dict[str, Any] = {
            "space": space_to_dict(space), "trials": trials, "epochs": epochs,
            "stages": stages, "epoch_factor": epoch_factor, "strategy": strategy,
            "engine": engine, "halving": halving, "min_epochs": min_epochs, "mode": mode,
            "seed": seed, "batch": jobs, "top": top, "min_width": min_width,
            "meta": dict(meta or {})}
        self.jobs = jobs
        self.journal = Journal(journal, self.settings)
        self.workdir = None if workdir is None else Path(workdir)
        self.callbacks = list(callbacks)

    @classmethod
    def resume(cls, objective: Callable[[Trial], Any], journal: str | os.PathLike[str], *,
               jobs: int | None = None, workdir: str | os.PathLike[str] | None = None,
               callbacks: Sequence[Callable[[dict[str, Any]], None]] = ()) -> Search:
        """The search a journal file describes, continuing from its finished trials
        (their results are reused, the rest run). ``jobs`` may differ from the
        original's; the Optuna engine keeps the original's batches of asks."""
        saved = Journal.load(journal)
        s = saved.settings
        search = cls(objective, space_from_dict(s["space"]), trials=s["trials"],
                     epochs=s["epochs"], stages=s["stages"], epoch_factor=s["epoch_factor"],
                     strategy=s["strategy"], engine=s["engine"], halving=s["halving"],
                     min_epochs=s["min_epochs"], mode=s["mode"], seed=s["seed"],
                     jobs=jobs or s["batch"], journal=journal, workdir=workdir,
                     top=s["top"], min_width=s["min_width"], meta=s.get("meta"),
                     callbacks=callbacks)
        search.settings["batch"] = s["batch"]
        search.journal = saved
        return search

    # ------------------------------------------------------------------ running
    def run(self) -> SearchResult:
        """Runs (or finishes) every stage; returns the SearchResult."""
        s = self.settings
        space = space_from_dict(s["space"])
        spaces: list[dict[str, Any]] = []
        with Workers(self.jobs) as workers:
            for stage in range(s["stages"]):
                spaces.append(space)
                self.journal.extra["spaces"] = [space_to_dict(x) for x in spaces]
                max_epochs = s["epochs"] * s["epoch_factor"] ** stage
                budgets = rung_budgets(max_epochs, s["halving"], s["min_epochs"])
                if s["engine"] == "optuna":
                    run_stage(self, workers, stage, space, budgets)
                else:
                    if s["strategy"] == "grid":
                        params = grid_params(space, s["trials"])
                    else:
                        params = [random_params(space, s["seed"], stage, i)
                                  for i in range(s["trials"])]
                    self._run_rungs(workers, stage, dict(enumerate(params)), budgets,
                                    self._halving_cut)
                done = SearchResult(self._records(stage), [], s["mode"]).ranked()
                space = narrow_space(space, [r["params"] for r in done], s["top"],
                                     s["min_width"])
        result = SearchResult(self._records(), spaces, s["mode"])
        if result.best is not None:
            result.warnings = edge_warnings(spaces[0], result.best["params"])
        return result

    def _records(self, stage: int | None = None) -> list[dict[str, Any]]:
        records = [r for r in self.journal.trials.values()
                   if stage is None or r["stage"] == stage]
        return sorted(records, key=lambda r: (r["stage"], r["index"]))

    def _halving_cut(self, stage: int, values: dict[int, float], budget: int, last: bool
                     ) -> list[int]:
        if last:
            return [i for i, v in values.items() if score(v, self.settings["mode"]) > -math.inf]
        return survivors(values, self.settings["halving"],
                                                   self.settings["mode"])

    def _record(self, stage: int, index: int, params: dict[str, Any]) -> dict[str, Any]:
        record = self.journal.get(stage, index)
        if record is None:
            record = {"stage": stage, "index": index, "params": params, "status": "queued",
                      "value": None, "epochs": 0, "rungs": [], "curve": None, "metrics": {},
                      "seconds": 0.0}
        elif record["params"] != params:
            raise ValueError(f"kiln.tune: the journal's trial {index} of stage {stage} has "
                             f"params {record['params']}, but this search draws {params}: "
                             "it belongs to another search")
        return record

    def _put(self, record: dict[str, Any]) -> None:
        self.journal.put(record)
        for callback in self.callbacks:
            callback(dict(record))

    def _run_rungs(self, workers: Workers, stage: int, params: dict[int, dict[str, Any]],
                   budgets: list[int],
                   cut: Callable[[int, dict[int, float], int, bool], list[int]]) -> None:
        """Trains the trials ``params`` rung by rung; ``cut(stage, values, budget, last)``
        picks the trials that go on to the next rung (``values``: trial -> its value after
        ``budget`` epochs). Results already in the journal are reused."""
        seed = self.settings["seed"]
        records = {i: self._record(stage, i, p) for i, p in params.items()}
        alive = list(params)
        for r, budget in enumerate(budgets):
            tasks = []
            for i in alive:
                if records[i]["status"] in ("exploded", "failed") or any(
                        g["epochs"] >= budget for g in records[i]["rungs"]):
                    continue
                workdir = None if self.workdir is None else \
                    str(self.workdir / f"s{stage}-t{i:03d}")
                tasks.append((self.objective, Trial(stage, i, params[i], budget, budgets[-1],
                                                    seed, workdir)))
            for task, ok, out in workers.run(_evaluate, tasks):
                record = records[task[1].index]
                if not ok:
                    record.update(status="failed", error=out)
                    record["rungs"].append({"epochs": budget, "value": None})
                else:
                    record["rungs"].append({"epochs": budget, "value": out["value"]})
                    record.update(value=out["value"], status=out["status"], epochs=budget,
                                  curve=out["curve"], metrics=out["metrics"],
                                  seconds=record["seconds"] + out["seconds"])
                    if out["status"] == "complete" and r < len(budgets) - 1:
                        record["status"] = "running"
                self._put(record)
            # Each trial's value at this rung (a resumed record may hold later rungs too).
            values = {i: g["value"] for i in alive for g in records[i]["rungs"]
                      if g["epochs"] == budget}
            keep = cut(stage, values, budget, r == len(budgets) - 1)
            for i in alive:
                if i not in keep and records[i]["status"] in ("running", "complete"):
                    records[i]["status"] = "pruned"
                    self._put(records[i])
            alive = [i for i in alive if i in keep]
        for i in alive:
            if records[i]["status"] == "running":
                records[i]["status"] = "complete"
                self._put(records[i])
