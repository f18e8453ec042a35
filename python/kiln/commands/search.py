"""``kiln search``: hyperparameter search over the options of ``kiln train``.

    kiln search --lr 1e-4:1e-1:log --weight-decay 1e-6:1e-2:log --trials 20 --epochs 3 \\
                --stages 2 --jobs 2 --ensemble 3

Writes OUT/search-NAME/: journal.json (rewritten after every trial: ``--resume`` goes on
from it and from the trials' checkpoints, kept in trials/ until the search ends),
trials.csv, best.json, search.png, best.safetensors (the best configuration trained on
the whole training split, readable by ``kiln eval``) and, with ``--ensemble K``,
ensemble/ with the K best configurations' models and their accuracy as an ensemble.
Trials never see kiln train's validation split: they are scored on a split of the
training part (or by --cv folds of it), and the final models on it.
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import kiln
from kiln import nn
from kiln.checkpoint import load_checkpoint
from kiln.commands import _shared
from kiln.commands._shared import UsageError
from kiln.data._atomic import claim_folder
from kiln.models import list_models
from kiln.train import Ensemble, Trainer
from kiln.tune import Search
from kiln.tune.journal import Journal
from kiln.tune.report import plot_search, write_trials_csv
from kiln.tune.space import Choice, Distribution, Float, Int, parse_spec, searched, space_from_dict
from kiln.tune.training import TrainObjective, complete_config, held_out_split, train_final
from kiln.tune.workers import Workers

# The kiln train options a search may range over (config key: kind of value).
_SEARCHABLE = {"lr": float, "weight_decay": float, "warmup": float, "batch_size": int,
               "optimizer": str, "schedule": str, "augment": str, "model": str}
_NAMED_CHOICES = {"optimizer": _shared._OPTIMIZERS, "schedule": _shared._SCHEDULES,
                  "augment": _shared._AUGMENTS}
# Options whose value a --resume must not change (the rest may: jobs, final models).
_SETTINGS = ("data", "seed", "val_split", "epochs", "patience", "trials", "stages",
             "epoch_factor", "strategy", "engine", "halving", "cv", "explode", "param",
             *_SEARCHABLE)
_DEFAULT_SPACE = {"lr": "1e-4:1e-1:log", "weight_decay": "1e-6:1e-2:log"}


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "search", help="search hyperparameters: random, coarse to fine, in parallel",
        description="Search the options of kiln train: give a range instead of a value, "
        "LOW:HIGH (uniform), LOW:HIGH:log (log-uniform: use it for --lr and "
        "--weight-decay), LOW:HIGH:int or LOW:HIGH:log-int (integers, HIGH included) or "
        "A,B,C (one of these); a single value stays fixed. Writes OUT/search-NAME/ with "
        "journal.json, trials.csv, best.json, search.png and best.safetensors.")
    _shared._data_options(p, with_training=True)
    for action in p._actions:  # the searchable options take ranges, read below
        if action.dest in _SEARCHABLE:
            action.type, action.choices = None, None
            action.help = f"{action.help}; or a range: LOW:HIGH[:log|int|log-int] or A,B,C"
        elif action.dest == "epochs":
            action.help = "epochs of each trial of the first stage (default 3)"
    p.add_argument("--param", action="append", metavar="KEY=RANGE", help="a range for any "
                   f"searchable key ({', '.join(_SEARCHABLE)}), e.g. --param lr=1e-4:1e-1:log")
    p.add_argument("--trials", type=int, help="trials per stage (default 20; a grid search "
                   "tries its whole grid)")
    p.add_argument("--stages", type=int, help="coarse-to-fine stages: each narrows the "
                   "ranges around the best quarter of the trials before it and trains "
                   "--epoch-factor times longer (default 1)")
    p.add_argument("--epoch-factor", type=int, help="epochs multiply by this from stage to "
                   "stage (default 3)")
    p.add_argument("--strategy", choices=("random", "grid"), help="random search (default; "
                   "more distinct values of each parameter) or a grid")
    p.add_argument("--engine", choices=("kiln", "optuna"), help="kiln (default) or optuna: "
                   "Optuna's TPE sampler and successive-halving pruner (pip install optuna)")
    p.add_argument("--halving", type=int, help="successive halving within a stage: train "
                   "all trials 1 epoch, keep the best 1/ETA, train them on, ... (default 3; "
                   "0: off)")
    p.add_argument("--cv", type=int, metavar="K", help="score each trial by K-fold "
                   "cross-validation of the training split (default: one hold-out split)")
    p.add_argument("--explode", type=float, help="stop a trial at once when its loss is NaN "
                   "or over this many times its first batch's (default 3)")
    p.add_argument("--jobs", type=int, help="trials trained at once, each in its own "
                   "process with cores/jobs threads (default 1)")
    p.add_argument("--ensemble", type=int, metavar="K", help="also train the K best "
                   "configurations and report their ensemble's held-out accuracy")
    p.add_argument("--final-epochs", type=int, help="epochs of the final models (default "
                   f"{_shared._DEFAULTS['epochs']}, as kiln train; 0: no final model)")
    p.add_argument("--out", default="runs", help="folder of the runs (default runs)")
    p.add_argument("--name", help="search name: writes OUT/search-NAME (default the time)")
    p.add_argument("--resume", metavar="DIR", help="continue the search in DIR "
                   "(OUT/search-NAME) from its journal")
    p.add_argument("--quiet", action="store_true", help="no line per trial")
    p.set_defaults(func=cmd_search)
    _collect_unknown(p)


def _collect_unknown(parser: argparse.ArgumentParser) -> None:
    """Unknown options (``--momentum 0.5:0.9``) go to ``args.unknown`` instead of
    argparse's usage dump, so cmd_search reports them in one line with what can be
    searched."""
    original = parser.parse_known_args

    def parse_known_args(args: Any = None, namespace: Any = None) -> Any:
        namespace, extras = original(args, namespace)
        namespace.unknown = extras
        return namespace, []

    parser.parse_known_args = parse_known_args  # type: ignore[method-assign]


# ---------------------------------------------------------------------------- options
def _given(args: argparse.Namespace) -> dict[str, Any]:
    return {k: getattr(args, k) for k in _SETTINGS if getattr(args, k, None) is not None}


def _ranges(args: argparse.Namespace) -> dict[str, str]:
    """KEY -> range text from the options and --param; unknown keys are errors."""
    texts = {k: getattr(args, k) for k in _SEARCHABLE if getattr(args, k, None) is not None}
    for item in args.param or []:
        key, eq, text = item.partition("=")
        key = key.strip().lstrip("-").replace("-", "_")
        if not eq or not key:
            raise UsageError(f"--param {item!r}: expected KEY=RANGE, e.g. lr=1e-4:1e-1:log")
        if key not in _SEARCHABLE:
            raise UsageError(f"--param {item!r}: unknown parameter {key!r}; searchable: "
                             f"{', '.join(_SEARCHABLE)}")
        if key in texts:
            raise UsageError(f"--param {item!r}: {key} is already given")
        texts[key] = text
    return texts


def _check_value(key: str, value: Any, where: str, base: dict[str, Any]) -> None:
    """Rejects a value kiln train would reject, with the option and its text."""
    kind = _SEARCHABLE[key]
    if kind is str:
        allowed = _NAMED_CHOICES.get(key)
        if key == "model":
            allowed = tuple(list_models())
        if str(value).lower() not in (allowed or ()):
            raise UsageError(f"{where}: {value!r} is not one of {', '.join(allowed or ())}")
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
            kind is int and not isinstance(value, int)):
        raise UsageError(f"{where}: {value!r} is not {'an integer' if kind is int else 'a number'}"
                         + (" (write integer ranges as LOW:HIGH:int)" if kind is int else ""))
    try:
        _shared._checked_config(argparse.Namespace(**{key: value}), base)
    except UsageError as error:
        raise UsageError(f"{where}: {error}") from None


def _space(texts: dict[str, str], base: dict[str, Any]) -> dict[str, Any]:
    space: dict[str, Any] = {}
    for key, text in texts.items():
        where = f"--{key.replace('_', '-')} {text}"
        try:
            dist = parse_spec(key, text)
        except ValueError as error:
            raise UsageError(str(error)) from None
        if _SEARCHABLE[key] is str and isinstance(dist, Distribution) and not isinstance(
                dist, Choice):
            raise UsageError(f"{where}: {key} takes names, not a numeric range: write A,B")
        if _SEARCHABLE[key] is int and isinstance(dist, Float) and not isinstance(dist, Int):
            raise UsageError(f"{where}: {key} takes integers: write LOW:HIGH:int or "
                             "LOW:HIGH:log-int")
        if isinstance(dist, Choice):
            values = dist.options
        elif isinstance(dist, Float):
            values = [dist.low, dist.high]
        else:
            values = [dist]
        for value in values:
            _check_value(key, value, where, base)
        space[key] = dist
    return space


def _search_dir(args: argparse.Namespace) -> Path:
    """OUT/search-NAME, claimed here (a suffix -2, -3, ... when it exists)."""
    name = args.name or time.strftime("%Y%m%d-%H%M%S")
    return claim_folder(Path(args.out) / f"search-{name}")


def _plain(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _describe(params: dict[str, Any], names: list[str]) -> str:
    return "  ".join(f"{k} {_plain(params[k])}" for k in names)


# ---------------------------------------------------------------------------- command
def cmd_search(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    if getattr(args, "unknown", None):
        raise UsageError(f"unknown parameter or option {' '.join(args.unknown)!r}; searchable: "
                         f"--{', --'.join(k.replace('_', '-') for k in _SEARCHABLE)} (see "
                         "kiln search --help)")
    for name in ("trials", "stages", "epoch_factor", "jobs", "epochs"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    for name in ("halving", "ensemble", "final_epochs"):
        value = getattr(args, name)
        if value is not None and value < 0:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 0, got {value}")
    if args.cv is not None and args.cv < 2:
        raise UsageError(f"--cv needs at least 2 folds, got {args.cv}")
    if args.explode is not None and not args.explode > 1:
        raise UsageError(f"--explode must be > 1, got {args.explode}")
    jobs = args.jobs or 1
    if args.resume:
        run = Path(args.resume)
        journal = run / "journal.json"
        if not journal.is_file():
            raise UsageError(f"--resume {args.resume}: no journal.json there (give the "
                             "OUT/search-NAME folder of a search)")

        meta = Journal.load(journal).settings["meta"]
        changed = [k for k, v in _given(args).items() if meta["options"].get(k) != v]
        if changed:
            raise UsageError(f"--resume continues the search as it was started; it cannot "
                             f"change --{', --'.join(k.replace('_', '-') for k in changed)}")
        search = Search.resume(TrainObjective(meta["config"], meta["cv"], meta["explode"]),
                               journal, jobs=jobs, workdir=run / "trials")
    else:
        texts = _ranges(args)
        defaulted = not any(t for t in texts.values() if ":" in t or "," in t)
        if defaulted:
            texts = {**_DEFAULT_SPACE, **texts}
        fixed_args = {k: getattr(args, k) for k in ("data", "seed", "val_split", "patience")}
        base = _shared._checked_config(argparse.Namespace(**fixed_args))
        space = _space(texts, base)
        for key, value in space.items():
            if not hasattr(value, "sample"):
                base[key] = value.lower() if isinstance(value, str) else value
        config = complete_config(_shared._checked_config(argparse.Namespace(), base))
        meta = {"config": config, "options": _given(args), "cv": args.cv or 0,
                "explode": args.explode or 3.0}
        run = _search_dir(args)
        if defaulted:
            print("kiln search: no range given; searching the lectures' two: --lr "
                  f"{_DEFAULT_SPACE['lr']} --weight-decay {_DEFAULT_SPACE['weight_decay']}",
                  file=sys.stderr)
        search = Search(
            TrainObjective(config, meta["cv"], meta["explode"]),
            {k: v for k, v in space.items() if hasattr(v, "sample")},
            trials=args.trials or 20, epochs=args.epochs or 3, stages=args.stages or 1,
            epoch_factor=args.epoch_factor or 3, strategy=args.strategy or "random",
            engine=args.engine or "kiln", halving=3 if args.halving is None else args.halving,
            seed=config["seed"], jobs=jobs, journal=run / "journal.json",
            workdir=run / "trials", meta=meta)
        search.journal.save()
    settings, config = search.settings, meta["config"]
    names = list(searched(_space_of(settings)))
    scoring = f"{meta['cv']}-fold cross-validation" if meta["cv"] else \
        f"a {config['val_split']:.0%} hold-out of the training split"
    print(f"kiln search: {config['model']} on {config['data']}; {', '.join(names)}; "
          f"{settings['trials']} trials x {settings['stages']} stage(s) from "
          f"{settings['epochs']} epochs, {settings['engine']} engine, {jobs} job(s); trials "
          f"scored by {scoring}; writing {run}", file=sys.stderr)
    search.callbacks.append(_Progress(search, run, names, args.quiet))
    try:
        result = search.run()
    except KeyboardInterrupt:
        print(f"kiln search: stopped; the finished trials are in {run / 'journal.json'}; "
              f"continue with: kiln search --resume {run}", file=sys.stderr)
        raise
    _outputs(run, result, settings, names)
    shutil.rmtree(run / "trials", ignore_errors=True)  # the trials' checkpoints: done with
    best = result.best
    if best is None:
        print("kiln search: every trial exploded or failed; see trials.csv (lower the "
              "learning-rate range)", file=sys.stderr)
        return 1
    print(f"best: {_describe(best['params'], names)}  val_accuracy {best['value']:.4f} "
          f"(stage {best['stage'] + 1}, trial {best['index']}, {best['epochs']} epochs)")
    for warning in result.warnings:
        print(f"warning: {warning}")
    summary = _best_json(result, settings, meta, names)
    final = _final_models(search, run, result, meta, args, jobs)
    summary.update(final)
    _shared._write_json(run / "best.json", summary)
    print(f"{time.perf_counter() - start:.1f} s in all; files in {run}: "
          f"{', '.join(sorted(p.name for p in run.iterdir() if not p.name.startswith('.')))}")
    return 0


def _space_of(settings: dict[str, Any]) -> dict[str, Any]:
    return space_from_dict(settings["space"])


class _Progress:
    """After every trial: a line on stderr and a fresh trials.csv."""

    def __init__(self, search: Any, run: Path, names: list[str], quiet: bool) -> None:
        self.search, self.run, self.names, self.quiet = search, run, names, quiet

    def __call__(self, record: dict[str, Any]) -> None:
        s = self.search.settings
        write_trials_csv(self.run / "trials.csv", list(self.search.journal.trials.values()),
                         _space_of(s), "val_accuracy")
        if self.quiet or record["status"] == "pruned":  # pruned: marked, not trained
            return
        value = record["value"]
        shown = f"val_accuracy {value:.4f}" if value is not None and math.isfinite(value) \
            else record["status"]
        status = record["status"] if record["status"] not in ("complete", "running") else ""
        note = record.get("error") or record.get("metrics", {}).get("reason") or ""
        print(f"stage {record['stage'] + 1}/{s['stages']} trial {record['index']:>3}: "
              f"{_describe(record['params'], self.names)}  -> {shown} after "
              f"{record['epochs']} epochs {status} {note}".rstrip(), file=sys.stderr)


def _outputs(run: Path, result: Any, settings: dict[str, Any], names: list[str]) -> None:
    write_trials_csv(run / "trials.csv", result.trials, _space_of(settings), "val_accuracy")
    try:
        plot_search(run / "search.png", result.trials, result.spaces[0],
                    "validation accuracy", result.best, result.spaces)
    except ImportError as error:
        print(f"kiln search: no plot: {error}", file=sys.stderr)


def _best_json(result: Any, settings: dict[str, Any], meta: dict[str, Any],
               names: list[str]) -> dict[str, Any]:
    best = result.best
    counts: dict[str, int] = {}
    for record in result.trials:
        counts[record["status"]] = counts.get(record["status"], 0) + 1
    return {"params": {k: best["params"][k] for k in names},
            "val_accuracy": best["value"], "stage": best["stage"] + 1, "trial": best["index"],
            "epochs": best["epochs"],
            "scored_by": f"{meta['cv']}-fold cross-validation of the training split"
            if meta["cv"] else "a stratified hold-out of the training split",
            "trials": counts, "warnings": result.warnings,
            "ranges": {str(i + 1): {k: repr(v) for k, v in space.items() if k in names}
                       for i, space in enumerate(result.spaces)},
            "config": {**meta["config"], **best["params"]}}


def _final_models(search: Any, run: Path, result: Any, meta: dict[str, Any],
                  args: argparse.Namespace, jobs: int) -> dict[str, Any]:
    """Trains the best (and with --ensemble K the K best) configurations on the whole
    training split, scores them on the held-out split; results kept in the journal."""
    epochs = _shared._DEFAULTS["epochs"] if args.final_epochs is None else args.final_epochs
    k = max(1, args.ensemble or 0)
    if epochs == 0:
        if k > 1:
            raise UsageError("--ensemble needs final models: drop --final-epochs 0")
        return {}
    objective = TrainObjective(meta["config"], meta["cv"], meta["explode"])
    top = result.top(k)
    if len(top) < k:
        print(f"kiln search: only {len(top)} distinct configurations finished; the "
              f"ensemble has {len(top)}", file=sys.stderr)
    if len(top) > 1:
        (run / "ensemble").mkdir(exist_ok=True)
    tasks, ranks, done = [], {}, search.journal.extra.setdefault("final", {})
    for rank, record in enumerate(top):
        config = objective.trial_config(record["params"], epochs)
        path = run / ("best.safetensors" if rank == 0 else
                      f"ensemble/member{rank + 1}.safetensors")
        key = str(rank)
        saved = done.get(key)
        if saved and saved["params"] == record["params"] and saved["epochs"] == epochs \
                and path.is_file():
            continue
        tasks.append((config, config["seed"] + rank, str(path)))
        ranks[str(path)] = rank
    if tasks:
        print(f"kiln search: training {len(tasks)} final model(s) for {epochs} epochs on the "
              "whole training split", file=sys.stderr)
    with Workers(min(jobs, len(tasks)) or 1) as workers:
        for task, ok, out in workers.run(train_final, tasks):
            if not ok:
                raise RuntimeError(f"kiln search: training a final model failed: {out}")
            rank = ranks[task[2]]
            done[str(rank)] = {**out, "params": top[rank]["params"], "epochs": epochs,
                               "path": str(Path(out["path"]).relative_to(run))}
            search.journal.save()
    members = [done[str(r)] for r in range(len(top))]
    images = _held_out_size(meta["config"])
    summary: dict[str, Any] = {"held_out": {
        "images": images, "epochs": epochs, "accuracy": members[0]["accuracy"],
        "loss": members[0]["loss"], "checkpoint": "best.safetensors"}}
    print(f"held-out accuracy ({images} images kiln train validates on, never seen by the "
          f"search): best configuration {members[0]['accuracy']:.4f} after {epochs} epochs")
    if len(members) > 1:
        shutil.copyfile(run / "best.safetensors", run / "ensemble" / "member1.safetensors")
        accuracy, loss = _ensemble_score(run, members, meta["config"])
        ensemble = {"members": len(members), "accuracy": accuracy, "loss": loss,
                    "best_single": members[0]["accuracy"],
                    "files": [f"ensemble/member{r + 1}.safetensors"
                              for r in range(len(members))],
                    "member_accuracy": [m["accuracy"] for m in members],
                    "member_params": [m["params"] for m in members]}
        _shared._write_json(run / "ensemble" / "ensemble.json", ensemble)
        summary["ensemble"] = ensemble
        print(f"ensemble of the {len(members)} best configurations: held-out accuracy "
              f"{accuracy:.4f} ({accuracy - members[0]['accuracy']:+.4f} against the best "
              f"single model; members {', '.join(format(m['accuracy'], '.4f') for m in members)})")
    print(f"evaluate it like any run: kiln eval {run / 'best.safetensors'}")
    return summary


def _held_out_size(config: dict[str, Any]) -> int:
    return int(len(held_out_split(config).val[1]))


def _ensemble_score(run: Path, members: list[dict[str, Any]], config: dict[str, Any]
                    ) -> tuple[float, float]:
    """Held-out accuracy and loss of kiln.train.Ensemble over the members' checkpoints."""
    models, shapes = [], set()
    for member in members:
        saved = _shared._read_checkpoint_extra(str(run / member["path"]))
        model = _shared._build_model(saved)
        load_checkpoint(run / member["path"], model)
        models.append(model)
        shapes.add(held_out_split(saved).size)
    if len(shapes) > 1:
        raise UsageError("--ensemble: the best configurations read different input sizes "
                         "(different --model); fix --model to ensemble them")
    _, loader = _shared._loaders(config, held_out_split(config), augment=False)
    ensemble = Ensemble(models)
    trainer = Trainer(ensemble, nn.CrossEntropyLoss(), kiln.optim.SGD(ensemble.parameters(),
                                                                      lr=0.1))
    result = trainer.evaluate(loader)
    return float(result["accuracy"]), float(result["loss"])
