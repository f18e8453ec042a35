"""kiln.tune and `kiln search`: spaces and specs, planted optima, coarse to fine,
successive halving, explosion stops, edge warnings, kill and resume, worker processes,
k-fold CV, the Optuna engine, and one tiny real search through the command line."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kiln import cli
from kiln.tune import (
    Journal,
    Search,
    Trial,
    choice,
    cross_validate,
    edge_warnings,
    grid,
    grid_params,
    loguniform,
    narrow_space,
    parse_spec,
    randint,
    random_params,
    rung_budgets,
    uniform,
)
from kiln.tune.space import Choice, Float, Int
from kiln.tune.training import ExplosionGuard

PLANTED_LR, PLANTED_WD = 3e-3, 0.3
SPACE = {"lr": loguniform(1e-5, 1e-1), "wd": uniform(0.0, 1.0),
         "act": choice(["relu", "tanh"]), "width": 16}


def planted(trial: Trial) -> dict[str, Any]:
    """A smooth synthetic 'validation accuracy': best at lr 3e-3, wd 0.3, relu; more epochs
    help a little; lr over 5e-2 'explodes'."""
    lr, wd = trial.params["lr"], trial.params["wd"]
    if lr > 5e-2:
        return {"value": math.nan, "status": "exploded"}
    gap = (math.log10(lr) - math.log10(PLANTED_LR)) ** 2 + 4 * (wd - PLANTED_WD) ** 2
    base = 1.0 - 0.1 * gap - (0.02 if trial.params["act"] == "tanh" else 0)
    curve = [base - 0.05 / e for e in range(1, trial.epochs + 1)]
    return {"value": max(curve), "curve": curve, "gap": gap}


def rising(trial: Trial) -> float:
    """Best at the top of the lr range: the edge warning must fire."""
    return math.log10(trial.params["lr"])


def records(result: Any) -> list[tuple[Any, ...]]:
    trials = result.trials if hasattr(result, "trials") else result
    return [(r["stage"], r["index"], r["params"], r["status"], r["epochs"], r["value"])
            for r in trials]


# ---------------------------------------------------------------------------- spaces
def test_parse_spec_forms() -> None:
    assert parse_spec("lr", "1e-4:1e-1:log") == Float(1e-4, 1e-1, log=True)
    assert parse_spec("wd", "0:0.5") == Float(0.0, 0.5)
    assert parse_spec("batch_size", "32:256:log-int") == Int(32, 256, log=True)
    assert parse_spec("batch_size", "32:256:int") == randint(32, 257)
    assert parse_spec("optimizer", "adam,sgd") == choice(["adam", "sgd"])
    assert parse_spec("wd", "0,1e-4,1e-3") == grid([0, 1e-4, 1e-3])
    assert parse_spec("lr", "3e-3") == 3e-3


@pytest.mark.parametrize("text, words", [
    ("1e-1:1e-4:log", ["--lr 1e-1:1e-4:log", "low end 0.1", "below the high end 0.0001"]),
    ("0:1e-1:log", ["positive low end"]),
    ("1e-4:1e-1:cubic", ["unknown scale"]),
    ("a:b", ["must be numbers"]),
    ("1:2:3:4", ["expected LOW:HIGH"]),
])
def test_parse_spec_errors(text: str, words: list[str]) -> None:
    with pytest.raises(ValueError) as info:
        parse_spec("lr", text)
    for word in words:
        assert word in str(info.value)


def test_samples_stay_in_range_and_spread_over_decades() -> None:
    rng = np.random.default_rng(0)
    lr = [loguniform(1e-5, 1e-1).sample(rng) for _ in range(4000)]
    assert min(lr) >= 1e-5 and max(lr) <= 1e-1
    decades = np.histogram(np.log10(lr), bins=4, range=(-5, -1))[0]
    assert decades.min() > 850  # about 1000 per decade, not 90% in the top one
    ints = [randint(32, 257, log=True).sample(rng) for _ in range(2000)]
    assert min(ints) == 32 and max(ints) == 256 and all(isinstance(v, int) for v in ints)
    assert np.median(ints) < 110  # log-uniform: the geometric middle is about 90
    with pytest.raises(ValueError, match="low must be below high"):
        uniform(1.0, 1.0)
    with pytest.raises(ValueError, match="low > 0"):
        loguniform(0.0, 1.0)


def test_trial_params_depend_on_seed_stage_and_index_only() -> None:
    a = [random_params(SPACE, 7, 1, i) for i in range(5)]
    b = [random_params(SPACE, 7, 1, i) for i in reversed(range(5))][::-1]
    assert a == b
    assert a != [random_params(SPACE, 8, 1, i) for i in range(5)]
    assert a != [random_params(SPACE, 7, 2, i) for i in range(5)]
    assert all(p["width"] == 16 for p in a)
    assert len({p["lr"] for p in a}) == 5


def test_grid_params() -> None:
    combos = grid_params({"lr": loguniform(1e-4, 1e-2), "wd": grid([0, 0.1]), "k": 3}, 6)
    assert len(combos) == 6  # 3 log-spaced lrs x 2 weight decays
    assert sorted({round(c["lr"], 10) for c in combos}) == [1e-4, 1e-3, 1e-2]
    assert {c["wd"] for c in combos} == {0, 0.1} and all(c["k"] == 3 for c in combos)


def test_rung_budgets() -> None:
    assert rung_budgets(9, 3) == [1, 3, 9]
    assert rung_budgets(3, 3) == [1, 3]
    assert rung_budgets(2, 3) == [2]
    assert rung_budgets(9, 0) == [9]
    assert rung_budgets(27, 3, min_epochs=3) == [3, 9, 27]


# ---------------------------------------------------------------------------- search
def test_random_search_finds_the_planted_optimum() -> None:
    result = Search(planted, SPACE, trials=24, epochs=1, stages=3, seed=3).run()
    best = result.best
    assert best["stage"] == 2 and best["status"] == "complete"
    assert abs(math.log10(best["params"]["lr"]) - math.log10(PLANTED_LR)) < 0.15
    assert abs(best["params"]["wd"] - PLANTED_WD) < 0.05
    assert best["params"]["act"] == "relu" and best["params"]["width"] == 16
    assert result.warnings == []
    assert any(r["status"] == "exploded" for r in result.trials)  # lr > 5e-2 was drawn


def test_grid_search_tries_the_whole_grid() -> None:
    space = {"lr": grid([1e-4, 1e-3, 3e-3, 1e-2]), "wd": grid([0.0, 0.3, 0.9]),
             "act": "relu"}
    result = Search(planted, space, trials=1, strategy="grid", halving=0).run()
    assert len(result.trials) == 12
    assert result.best["params"] == {"lr": 3e-3, "wd": 0.3, "act": "relu"}


def _width(dist: Float) -> float:
    return math.log(dist.high / dist.low) if dist.log else dist.high - dist.low


def test_coarse_to_fine_narrows_around_the_best() -> None:
    result = Search(planted, SPACE, trials=16, epochs=1, stages=2, epoch_factor=3,
                    seed=0).run()
    first, second = result.spaces
    stage0 = [r for r in result.trials if r["stage"] == 0 and r["status"] == "complete"]
    best0 = max(stage0, key=lambda r: r["value"])
    for name in ("lr", "wd"):
        a, b = first[name], second[name]
        assert a.low <= b.low < b.high <= a.high
        assert b.low <= best0["params"][name] <= b.high
        assert _width(b) < 0.6 * _width(a)
    assert second["lr"].log and second["width"] == 16
    assert {r["epochs"] for r in result.trials if r["stage"] == 1 and
            r["status"] == "complete"} == {3}
    for r in result.trials:
        if r["stage"] == 1:
            assert second["lr"].low <= r["params"]["lr"] <= second["lr"].high


def test_narrowing_keeps_a_minimum_width_and_the_used_choices() -> None:
    ranked = [{"lr": 1e-3, "act": "relu"}, {"lr": 1.1e-3, "act": "relu"},
              {"lr": 1e-1, "act": "tanh"}, {"lr": 1e-5, "act": "tanh"}]
    out = narrow_space({"lr": loguniform(1e-5, 1e-1), "act": choice(["relu", "tanh"])},
                       ranked, top=0.5, min_width=0.2)
    assert math.log10(out["lr"].high / out["lr"].low) == pytest.approx(0.8)  # 0.2 of 4 decades
    assert out["lr"].low < 1e-3 < 1.1e-3 < out["lr"].high
    assert out["act"] == Choice(["relu"])


def test_successive_halving_trains_only_the_best_on() -> None:
    calls: list[tuple[int, int]] = []

    def objective(trial: Trial) -> float:
        calls.append((trial.index, trial.epochs))
        return -abs(math.log10(trial.params["lr"]) + 2.5)

    result = Search(objective, {"lr": loguniform(1e-5, 1e-1)}, trials=9, epochs=9,
                    halving=3).run()
    assert [c for c in calls if c[1] == 1] == [(i, 1) for i in range(9)]
    at3 = [i for i, e in calls if e == 3]
    at9 = [i for i, e in calls if e == 9]
    assert len(at3) == 3 and len(at9) == 1 and set(at9) <= set(at3)
    values = {r["index"]: r["rungs"][0]["value"] for r in result.trials}
    assert set(at3) == set(sorted(values, key=values.get, reverse=True)[:3])
    statuses = [r["status"] for r in result.trials]
    assert statuses.count("pruned") == 8 and statuses.count("complete") == 1
    assert result.best["index"] == at9[0] and result.best["epochs"] == 9


def test_exploded_trials_stop_at_once() -> None:
    calls: list[tuple[int, int]] = []

    def objective(trial: Trial) -> dict[str, Any]:
        calls.append((trial.index, trial.epochs))
        if trial.params["lr"] > 1e-2:
            return {"value": math.nan, "status": "exploded"}
        return {"value": trial.params["lr"]}

    result = Search(objective, {"lr": loguniform(1e-5, 1e-1)}, trials=12, epochs=3).run()
    exploded = {r["index"] for r in result.trials if r["status"] == "exploded"}
    assert exploded and all(e == 1 for i, e in calls if i in exploded)
    assert result.best["params"]["lr"] <= 1e-2


def test_explosion_guard_stops_on_a_growing_or_nan_loss() -> None:
    class History:
        steps: dict[str, list[float]] = {"loss": [2.3]}

    class FakeTrainer:
        history, stop_training, stop_reason = History(), False, None

    guard = ExplosionGuard(factor=3)
    guard.set_trainer(FakeTrainer())
    guard.on_batch_end(2, {"loss": 6.0, "epoch": 1, "lr": 0.1})
    assert not guard.trainer.stop_training and not guard.exploded
    guard.on_batch_end(3, {"loss": 7.5, "epoch": 1, "lr": 0.1})
    assert guard.trainer.stop_training and guard.exploded
    assert "3 times the first batch" in guard.trainer.stop_reason
    guard = ExplosionGuard()
    guard.set_trainer(FakeTrainer())
    guard.trainer.stop_training = False
    with pytest.warns(RuntimeWarning, match="nan"):
        guard.on_batch_end(1, {"loss": math.nan, "epoch": 1, "lr": 0.1})
    assert guard.exploded
    with pytest.raises(ValueError, match="factor"):
        ExplosionGuard(1.0)


def test_edge_warnings() -> None:
    space = {"lr": loguniform(1e-4, 1e-1), "wd": uniform(0, 1), "bs": randint(16, 257),
             "opt": choice(["adam", "sgd", "rmsprop"])}
    inside = {"lr": 3e-3, "wd": 0.5, "bs": 128, "opt": "sgd"}
    assert edge_warnings(space, inside) == []
    # 5e-3 is in the lowest tenth of [0, 1] linearly but mid-range on the log scale
    assert edge_warnings(space, {**inside, "lr": 5e-3}) == []
    high = edge_warnings(space, {**inside, "lr": 0.08})
    assert len(high) == 1 and "the best lr, 0.08, lies at the high edge" in high[0]
    assert "log scale" in high[0] and "higher than 0.1" in high[0]
    low = edge_warnings(space, {**inside, "wd": 0.02, "bs": 250})
    assert len(low) == 2 and "low edge" in low[0] and "high edge" in low[1]


def test_search_warns_when_the_best_sits_on_the_edge() -> None:
    result = Search(rising, {"lr": loguniform(1e-4, 1e-1)}, trials=12, stages=2, seed=3).run()
    assert len(result.warnings) == 1 and "high edge" in result.warnings[0]
    result = Search(planted, SPACE, trials=12, stages=2).run()
    assert result.warnings == []


class Kill(Exception):
    pass


def _killer(after: int) -> Any:
    seen: list[int] = []

    def callback(record: dict[str, Any]) -> None:
        seen.append(1)
        if len(seen) == after:
            raise Kill

    return callback


@pytest.mark.parametrize("after", [1, 7, 15])
def test_kill_and_resume_gives_the_same_trials(tmp_path: Path, after: int) -> None:
    kwargs = dict(trials=6, epochs=1, stages=2, seed=5)
    whole = Search(planted, SPACE, journal=tmp_path / "whole.json", **kwargs).run()
    path = tmp_path / "killed.json"
    with pytest.raises(Kill):
        Search(planted, SPACE, journal=path, callbacks=[_killer(after)], **kwargs).run()
    partial = Journal.load(path)
    assert 0 < len(partial.trials) <= after
    ran: list[int] = []
    resumed = Search.resume(planted, path, callbacks=[lambda r: ran.append(1)]).run()
    assert records(resumed) == records(whole)
    assert resumed.spaces == whole.spaces
    assert records([resumed.best]) == records([whole.best])
    assert len(ran) < len(whole.trials) + 10  # the finished trials were not run again
    again = Search.resume(planted, path).run()  # a finished search: nothing left to do
    assert records(again) == records(whole)


def test_resume_refuses_another_search(tmp_path: Path) -> None:
    path = tmp_path / "j.json"
    Search(planted, SPACE, trials=3, journal=path).run()
    data = json.loads(path.read_text())
    data["trials"][0]["params"]["lr"] = 0.5
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="belongs to another search"):
        Search.resume(planted, path).run()
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not a kiln search journal"):
        Journal.load(path)


def test_worker_processes_give_the_same_trials(tmp_path: Path) -> None:
    kwargs = dict(trials=4, epochs=3, stages=1, seed=2)
    serial = Search(planted, SPACE, **kwargs).run()
    parallel = Search(planted, SPACE, jobs=2, workdir=tmp_path, **kwargs).run()
    assert records(parallel) == records(serial)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"s0-t00{i}" for i in range(4)]


def test_bad_search_arguments() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Search(planted, {"lr": 0.1})
    with pytest.raises(ValueError, match="trials must be >= 1"):
        Search(planted, SPACE, trials=0)
    with pytest.raises(ValueError, match="strategy"):
        Search(planted, SPACE, strategy="bayes")
    with pytest.raises(TypeError, match="objective must be callable"):
        Search(None, SPACE)  # type: ignore[arg-type]

    def no_value(trial: Trial) -> dict[str, Any]:
        return {"accuracy": 1.0}

    result = Search(no_value, SPACE, trials=2).run()
    assert [r["status"] for r in result.trials] == ["failed", "failed"]
    assert "without 'value'" in result.trials[0]["error"] and result.best is None


def test_cross_validate() -> None:
    labels = np.repeat(np.arange(3), 10)
    seen: list[np.ndarray] = []

    def fit(train: np.ndarray, val: np.ndarray, fold: int) -> float:
        assert not set(train) & set(val) and len(train) + len(val) == 30
        assert np.bincount(labels[val], minlength=3).tolist() == [2, 2, 2]
        seen.append(val)
        return float(fold)

    result = cross_validate(fit, 30, k=5, seed=0, stratify=labels)
    assert sorted(np.concatenate(seen).tolist()) == list(range(30))
    assert result.scores == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert result.mean == 2.0 and result.std == pytest.approx(np.std(range(5), ddof=1))
    with pytest.raises(ValueError, match="2 <= k <= n"):
        cross_validate(fit, 3, k=5)


# ---------------------------------------------------------------------------- optuna
def test_optuna_engine_finds_the_optimum_and_resumes(tmp_path: Path) -> None:
    pytest.importorskip("optuna")
    kwargs = dict(trials=16, epochs=3, stages=2, seed=1, engine="optuna", jobs=1)
    whole = Search(planted, SPACE, journal=tmp_path / "w.json", **kwargs).run()
    best = whole.best
    assert abs(math.log10(best["params"]["lr"]) - math.log10(PLANTED_LR)) < 0.3
    assert abs(best["params"]["wd"] - PLANTED_WD) < 0.1
    assert any(r["status"] == "pruned" for r in whole.trials)  # Optuna's pruner acted
    path = tmp_path / "k.json"
    with pytest.raises(Kill):
        Search(planted, SPACE, journal=path, callbacks=[_killer(20)], **kwargs).run()
    assert records(Search.resume(planted, path).run()) == records(whole)


# ---------------------------------------------------------------------------- command
needs_digits = pytest.mark.skipif(importlib.util.find_spec("sklearn") is None,
                                  reason="the digits come with scikit-learn")


@pytest.mark.parametrize("argv, words", [
    (["--lr", "1e-1:1e-4:log"], ["--lr 1e-1:1e-4:log", "below the high end"]),
    (["--param", "momentum=0.5:0.99"], ["unknown parameter 'momentum'", "lr, weight_decay"]),
    (["--momentum", "0.5:0.99"], ["unknown parameter or option '--momentum 0.5:0.99'",
                                  "--lr, --weight-decay"]),
    (["--batch-size", "32:256"], ["--batch-size 32:256", "LOW:HIGH:int"]),
    (["--optimizer", "adam,lion"], ["'lion' is not one of adam, adamw, sgd, rmsprop"]),
    (["--weight-decay=-1:1"], ["--weight-decay -1:1", ">= 0"]),
    (["--lr", "1e-4:1e-1:log", "--cv", "1"], ["--cv needs at least 2 folds"]),
])
@needs_digits
def test_search_bad_specs_give_one_line(argv: list[str], words: list[str], tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["search", "--data", "digits", "--out", str(tmp_path), *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("kiln search: error: ")
    for word in words:
        assert word in err
    assert list(tmp_path.iterdir()) == []


def test_search_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["search", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for word in ("--lr", "--weight-decay", "--trials", "--stages", "--jobs", "--resume",
                 "--ensemble", "--engine", "--cv", "--halving", "LOW:HIGH:log", "--data"):
        assert word in text


@needs_digits
def test_search_command_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["search", "--data", "digits", "--batch-size", "128", "--lr", "1e-3:3e-2:log",
            "--weight-decay", "1e-6:1e-3:log", "--trials", "3", "--epochs", "1",
            "--stages", "2", "--final-epochs", "2", "--ensemble", "2", "--quiet",
            "--out", str(tmp_path), "--name", "t"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    run = tmp_path / "search-t"
    names = {"journal.json", "trials.csv", "best.json", "best.safetensors", "ensemble"}
    if importlib.util.find_spec("matplotlib"):
        names.add("search.png")
    assert names <= {p.name for p in run.iterdir()}
    with open(run / "trials.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["stage"], r["trial"]) for r in rows] == [(s, t) for s in "01" for t in "012"]
    assert {"lr", "weight_decay", "val_accuracy", "status"} <= set(rows[0])
    best = json.loads((run / "best.json").read_text())
    assert set(best["params"]) == {"lr", "weight_decay"}
    assert 1e-3 <= best["params"]["lr"] <= 3e-2 and best["stage"] == 2
    assert best["held_out"]["images"] == 359 and 0.5 < best["held_out"]["accuracy"] <= 1
    ensemble = best["ensemble"]
    assert ensemble["members"] == 2 and 0.5 < ensemble["accuracy"] <= 1
    assert (run / "ensemble" / "member2.safetensors").is_file()
    assert "held-out accuracy" in out and "ensemble of the 2 best" in out
    # the final model is a kiln train checkpoint: kiln eval reads it
    assert cli.main(["eval", str(run / "best.safetensors")]) == 0
    scores = next(line for line in capsys.readouterr().out.splitlines()
                  if line.startswith("loss "))
    accuracy = float(scores.split("accuracy ")[1].split()[0])
    assert accuracy == pytest.approx(best["held_out"]["accuracy"], abs=1e-4)
    # a finished search resumes to the same answer without training again
    before = (run / "journal.json").read_text()
    assert cli.main(["search", "--resume", str(run), "--quiet", "--final-epochs", "2",
                     "--ensemble", "2"]) == 0
    assert json.loads((run / "best.json").read_text())["params"] == best["params"]
    assert json.loads((run / "journal.json").read_text())["trials"] == \
        json.loads(before)["trials"]
    capsys.readouterr()
    assert cli.main(["search", "--resume", str(run), "--trials", "5"]) == 2
    assert "cannot change --trials" in capsys.readouterr().err


@pytest.fixture
def one_thread() -> Any:
    """One kernel thread, so that two trainings agree to the last bit."""
    import kiln

    threads = kiln.get_num_threads()
    kiln.set_num_threads(1)
    yield
    kiln.set_num_threads(threads)


@needs_digits
def test_train_objective_continues_trials_and_stops_explosions(tmp_path: Path,
                                                               one_thread: None) -> None:
    import argparse

    from kiln.tune.training import TrainObjective, complete_config

    base = cli._checked_config(argparse.Namespace(data="digits", batch_size=128))
    objective = TrainObjective(complete_config(base))
    params = {"lr": 3e-3}
    straight = objective(Trial(0, 0, params, 2, 2, 0, str(tmp_path / "a")))
    first = objective(Trial(0, 1, params, 1, 2, 0, str(tmp_path / "b")))
    then = objective(Trial(0, 1, params, 2, 2, 0, str(tmp_path / "b")))
    assert straight["status"] == first["status"] == "complete"
    assert len(first["curve"]) == 1 and then["curve"] == straight["curve"]
    assert then["curve"][0] == first["curve"][0] and then["value"] == max(then["curve"])
    assert 0.5 < then["value"] <= 1 and then["best_epoch"] in (1, 2)
    exploded = objective(Trial(0, 2, {"lr": 30.0, "optimizer": "sgd"}, 2, 2, 0, None))
    assert exploded["status"] == "exploded" and math.isnan(exploded["value"])
    assert "first batch" in exploded["reason"] or "nan" in exploded["reason"]
