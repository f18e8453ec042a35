"""The ``kiln`` command end to end in a temporary folder, on scikit-learn's digits with
tiny settings; bad input gives one line on stderr, exit code 2 and no files."""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kiln import cli
from kiln.checkpoint import load_checkpoint, load_state, save_checkpoint
from kiln.models import get_model, lenet5

pytestmark = pytest.mark.skipif(importlib.util.find_spec("sklearn") is None,
                                reason="the digits come with scikit-learn")
TINY = ["--data", "digits", "--quiet", "--batch-size", "128"]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-epoch run on the digits: its run folder."""
    out = tmp_path_factory.mktemp("runs")
    assert cli.main(["train", *TINY, "--epochs", "2", "--out", str(out), "--name", "d"]) == 0
    return out / "d"


@pytest.mark.parametrize("command", [None, "train", "eval", "diagnose", "lr-find"])
def test_help(command: str | None, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main([command, "--help"] if command else ["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: kiln")
    expected = {None: ["train", "eval", "diagnose", "lr-find"],
                "train": ["--data", "--model", "--epochs", "--batch-size", "--optimizer", "--lr",
                          "--schedule", "--weight-decay", "--augment", "--seed", "--threads",
                          "--out", "--resume"],
                "eval": ["checkpoint", "--data", "--tta"],
                "diagnose": ["--data", "--model", "--plots"],
                "lr-find": ["--start", "--end", "--output"]}[command]
    for word in expected:
        assert word in text


def test_train_writes_the_run(trained: Path, capsys: pytest.CaptureFixture[str]) -> None:
    names = {"config.json", "metrics.csv", "best.safetensors", "last.safetensors"}
    if importlib.util.find_spec("matplotlib"):
        names.add("curves.png")
    assert names <= {p.name for p in trained.iterdir()}
    assert not [p for p in trained.iterdir() if p.name.startswith(".")]  # no temp files
    config = json.loads((trained / "config.json").read_text())
    assert config["model"] == "lenet5" and config["data"] == "digits"
    assert config["model_config"]["batch_norm"] is True
    assert config["label_smoothing"] == 0.1  # the recipe's default
    with open(trained / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert max(float(r["val_accuracy"]) for r in rows) > 0.8


def test_summary_names_the_best_epoch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "train", *TINY, "--epochs", "1", "--out", str(tmp_path),
                       "--name", "s")
    assert code == 0
    assert "best val accuracy" in out and "at epoch 1 of 1" in out and "s per epoch" in out
    assert str(tmp_path / "s") in out


def test_best_checkpoint_keeps_the_latest_epoch_within_one_standard_error() -> None:
    from kiln.commands._shared import _NearBest

    rule = _NearBest(val_images=1000)
    kept = [rule.update(e, {"val_accuracy": a}) for e, a in
            enumerate([0.95, 0.980, 0.978, 0.983, 0.979, 0.9795, math.nan, 0.982], start=1)]
    # SE at 0.983 on 1,000 images: sqrt(0.983 * 0.017 / 1000) = 0.00409
    assert kept == [True, True, True, True, True, True, False, True]
    assert rule.best == 0.983 and rule.best_epoch == 8 and rule.kept == 0.982
    assert rule.standard_error() == pytest.approx(math.sqrt(0.983 * 0.017 / 1000))
    assert not rule.update(9, {"val_accuracy": 0.978})  # 0.005 below the best: not noise
    assert rule.best_epoch == 8
    rule.reset()
    assert rule.best_epoch == 0 and rule.update(1, {"val_accuracy": 1.0})
    assert not rule.update(2, {"val_accuracy": 0.999})  # SE 0 at 100%


def test_eval_prints_loss_accuracy_and_confusion(trained: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "eval", str(trained / "best.safetensors"), "--tta")
    assert code == 0, err
    assert "359 images" in out  # the run's seeded 20% of 1,797 digits
    line = next(x for x in out.splitlines() if x.startswith("loss"))
    accuracy = float(line.split("accuracy")[1].split()[0])
    with open(trained / "metrics.csv") as handle:
        kept = {int(r["epoch"]): float(r["val_accuracy"]) for r in csv.DictReader(handle)}
    assert accuracy == pytest.approx(kept[_best_epoch(trained)], abs=1e-4)  # same split
    assert "accuracy with TTA" in line
    matrix = out.split("columns: predicted)\n")[1].splitlines()[1:]
    assert len(matrix) == 10 and sum(sum(map(int, r.split()[1:])) for r in matrix) == 359


def test_resume_is_bit_exact(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Two epochs straight equal one, a save, a fresh process state and one more; at 2
    threads (reductions add in an order fixed by the problem, not the thread count)."""
    common = ["train", *TINY, "--schedule", "constant", "--warmup", "0", "--threads", "2",
              "--out", str(tmp_path)]
    assert cli.main([*common, "--epochs", "2", "--name", "straight"]) == 0
    assert cli.main([*common, "--epochs", "1", "--name", "split"]) == 0
    assert cli.main(["train", "--quiet", "--epochs", "2", "--threads", "2", "--resume",
                     str(tmp_path / "split" / "last.safetensors")]) == 0
    a = load_state(tmp_path / "straight" / "last.safetensors")
    b = load_state(tmp_path / "split" / "last.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key].numpy(), b[key].numpy(), err_msg=key)
    columns = ("epoch", "loss", "val_loss", "val_accuracy", "lr")
    assert _metrics(tmp_path / "straight", columns) == _metrics(tmp_path / "split", columns)
    assert _best_epoch(tmp_path / "straight") == _best_epoch(tmp_path / "split")
    capsys.readouterr()


def _metrics(run: Path, columns: tuple[str, ...]) -> list[tuple[str, ...]]:
    with open(run / "metrics.csv") as handle:
        return [tuple(row[c] for c in columns) for row in csv.DictReader(handle)]


def _best_epoch(run: Path) -> int:
    config = json.loads((run / "config.json").read_text())
    model = get_model(config["model"], **config["model_config"])
    return load_checkpoint(run / "best.safetensors", model)["epoch"]


def test_diagnose_and_lr_find(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "diagnose", "--data", "digits", "--steps", "20",
                         "--overfit-steps", "60", "--plots", str(tmp_path))
    assert code == 0, err
    for title in ("initial loss", "overfit one batch", "learning-rate sweep", "activations"):
        assert title in out
    plot = tmp_path / "lr.png"
    code, out, err = run(capsys, "lr-find", "--data", "digits", "--steps", "20",
                         "--output", str(plot))
    assert code == 0, err
    assert "lr_find:" in out
    if importlib.util.find_spec("matplotlib"):
        assert plot.is_file() and (tmp_path / "activations.png").is_file()


def _other_architecture(trained: Path, path: Path) -> None:
    config = json.loads((trained / "config.json").read_text())
    save_checkpoint(path, lenet5(batch_norm=False), extra={"model": "lenet5", "config": config})


@pytest.mark.parametrize("case", ["missing-folder", "unknown-model", "bad-data", "corrupt",
                                  "missing-checkpoint", "weights-only", "other-architecture",
                                  "zero-epochs", "resume-shorter", "label-smoothing"])
def test_bad_input(case: str, trained: Path, tmp_path: Path,
                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "runs"
    train = ["train", "--quiet", "--out", str(out)]
    best = trained / "best.safetensors"
    if case == "missing-folder":
        argv = [*train, "--data", f"mnist:{tmp_path / 'nowhere'}"]
    elif case == "unknown-model":
        argv = [*train, "--data", "digits", "--model", "lenet6"]
    elif case == "bad-data":
        argv = [*train, "--data", "imagenet"]
    elif case == "zero-epochs":
        argv = [*train, "--data", "digits", "--epochs", "0"]
    elif case == "label-smoothing":
        argv = [*train, "--data", "digits", "--label-smoothing", "1"]
    elif case == "corrupt":
        path = tmp_path / "corrupt.safetensors"
        path.write_bytes(best.read_bytes()[:200])
        argv = ["eval", str(path)]
    elif case == "missing-checkpoint":
        argv = ["eval", str(tmp_path / "none.safetensors")]
    elif case == "weights-only":
        path = tmp_path / "weights.safetensors"
        lenet5().save(path)
        argv = ["eval", str(path)]
    elif case == "other-architecture":
        path = tmp_path / "other.safetensors"
        _other_architecture(trained, path)
        argv = ["eval", str(path)]
    else:
        argv = ["train", "--quiet", "--epochs", "1", "--resume", str(best)]
    code, stdout, err = run(capsys, *argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"kiln {argv[0]}: error: "), err
    assert "Traceback" not in err + stdout
    assert not out.exists()  # nothing half-written
    assert sorted(p.name for p in trained.iterdir()) == sorted(
        ["best.safetensors", "last.safetensors", "config.json", "metrics.csv"]
        + (["curves.png"] if (trained / "curves.png").exists() else []))


def test_console_script_error_has_no_traceback(tmp_path: Path) -> None:
    """Through a real process: stderr holds exactly the one error line."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    done = subprocess.run([sys.executable, "-m", "kiln.cli", "eval",
                           str(tmp_path / "none.safetensors")], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == (f"kiln eval: error: checkpoint "
                                   f"{tmp_path / 'none.safetensors'} does not exist")


def test_runs_started_together_get_folders_of_their_own(tmp_path: Path) -> None:
    """Two `kiln train` processes with the same name, started at once: each claims a
    folder of its own and writes its whole run there."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    argv = [sys.executable, "-m", "kiln.cli", "train", *TINY, "--epochs", "1",
            "--threads", "1", "--out", str(tmp_path), "--name", "same"]
    runs = [subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for _ in range(2)]
    assert [process.wait(timeout=120) for process in runs] == [0, 0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["same", "same-2"]
    for folder in tmp_path.iterdir():
        assert {"best.safetensors", "config.json", "metrics.csv"} <= {
            p.name for p in folder.iterdir()}


def test_run_folder_is_claimed_exclusively(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    args = argparse.Namespace(name=None, out=str(tmp_path / "runs"))
    config = {"model": "lenet5", "data": "mnist:/data"}
    with ThreadPoolExecutor(8) as pool:
        folders = list(pool.map(lambda _: cli._create_run_dir(args, config), range(16)))
    assert len(set(folders)) == 16 and all(folder.is_dir() for folder in folders)


def test_eval_of_a_deeply_nested_header_is_one_line(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    encoded = b'{"__metadata__":{"extra":"x"},"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    path = tmp_path / "nested.safetensors"
    path.write_bytes(len(encoded).to_bytes(8, "little") + encoded)
    code, out, err = run(capsys, "eval", str(path))
    assert code == 2 and "Traceback" not in out + err
    [line] = err.strip().splitlines()
    assert line.startswith(f"kiln eval: error: load_state: {path} is not a valid safetensors "
                           "file: ") and "recursion limit exceeded" in line


def test_resume_with_more_epochs_replans_the_cosine(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """A finished cosine run resumed with a larger --epochs trains on with the lr a run
    planned for that total would have (not 0) and ends at 0 on the new last step; a
    one-cycle run refuses, naming what can change."""
    common = ["train", *TINY, "--out", str(tmp_path)]
    assert cli.main([*common, "--epochs", "2", "--name", "cos"]) == 0
    assert cli.main(["train", "--quiet", "--epochs", "4", "--resume",
                     str(tmp_path / "cos" / "last.safetensors")]) == 0
    lrs = [float(row[0]) for row in _metrics(tmp_path / "cos", ("lr",))]
    steps = 12  # 1,438 training digits in batches of 128; one warm-up epoch
    planned = [lrs[0] * (1 + math.cos(math.pi * (e * steps - steps) / (4 * steps - steps))) / 2
               for e in (3, 4)]
    assert len(lrs) == 4 and lrs[1] == 0.0
    assert lrs[2:] == pytest.approx(planned, abs=1e-9)
    assert json.loads((tmp_path / "cos" / "config.json").read_text())["epochs"] == 4

    assert cli.main([*common, "--epochs", "1", "--schedule", "onecycle", "--name", "one"]) == 0
    capsys.readouterr()
    code, _, err = run(capsys, "train", "--quiet", "--epochs", "3", "--resume",
                       str(tmp_path / "one" / "last.safetensors"))
    assert code == 2 and "one-cycle schedule" in err and len(err.strip().splitlines()) == 1


def test_label_smoothing_reaches_the_loss_and_old_runs_resume_without_it(
        trained: Path, tmp_path: Path) -> None:
    from kiln import nn

    loss = cli._loss({"label_smoothing": 0.25})
    assert isinstance(loss, nn.CrossEntropyLoss) and loss.label_smoothing == 0.25
    assert cli._loss({}).label_smoothing == 0.0  # a config saved before the option existed
    saved = json.loads((trained / "config.json").read_text())
    del saved["label_smoothing"]
    config = cli._checked_config(argparse.Namespace(), saved)
    assert "label_smoothing" not in config and cli._loss(config).label_smoothing == 0.0
