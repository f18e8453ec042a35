"""kiln report / kiln train --report --tensorboard: the HTML page of a run, rendered by
headless Chromium (skipped where Chromium is absent)."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from kiln import cli

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("sklearn") is None or importlib.util.find_spec("matplotlib") is None,
    reason="the run trains on scikit-learn's digits and the report draws with matplotlib")

SECTIONS = ["Configuration", "Curves", "Diagnosis", "Confusion matrix",
            "Most confident mistakes", "First-layer filters", "Activation statistics",
            "Checkpoints"]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs")
    extra = ["--tensorboard"] if importlib.util.find_spec("tensorboardX") else []
    assert cli.main(["train", "--data", "digits", "--quiet", "--batch-size", "128",
                     "--epochs", "2", "--out", str(out), "--name", "r", "--report",
                     *extra]) == 0
    return out / "r"


def test_train_report_writes_every_section(run: Path) -> None:
    text = (run / "report.html").read_text()
    for heading in SECTIONS:
        assert f"<h2>{heading}</h2>" in text, heading
    assert "lenet5" in text and "best.safetensors" in text and "last.safetensors" in text
    # Self-contained: every image is an inline PNG, nothing is fetched.
    sources = re.findall(r'\b(?:src|href)="([^"]*)"', text)
    assert sources and all(s.startswith(("data:", "#")) for s in sources), sources
    assert len(re.findall(r'src="data:image/png;base64,', text)) == 5  # 5 figures
    assert "<script" not in text
    # The diagnosis is the recipe's reading of these curves, in words.
    assert re.search(r'<span class="kind">(ok|underfitting|too_short|overfitting|flat|'
                     r'slow_start)</span>', text)
    if importlib.util.find_spec("tensorboardX"):
        assert any(p.name.startswith("events.out.tfevents") for p in (run / "tensorboard")
                   .iterdir())


def test_report_command(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "page.html"
    assert cli.main(["report", str(run), "--output", str(target)]) == 0
    assert str(target) in capsys.readouterr().out
    assert "<h2>Confusion matrix</h2>" in target.read_text()


def test_report_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["report", str(tmp_path / "nothing")]) == 2
    assert "not a kiln train run folder" in capsys.readouterr().err
    (tmp_path / "config.json").write_text('{"model": "lenet5"}')
    assert cli.main(["report", str(tmp_path)]) == 2
    assert "is not a kiln train config" in capsys.readouterr().err


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.mark.skipif(_chromium() is None, reason="Chromium is not installed")
def test_report_renders_in_chromium(run: Path, tmp_path: Path) -> None:
    image = pytest.importorskip("PIL.Image")
    shot = tmp_path / "shot.png"
    result = subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--enable-logging=stderr", "--v=0", f"--user-data-dir={tmp_path / 'profile'}",
         f"--screenshot={shot}", "--window-size=1280,3000",
         (run / "report.html").resolve().as_uri()],
        capture_output=True, text=True, timeout=120)
    assert shot.exists(), result.stderr[-2000:]
    # Chromium logs each console message (errors included) as INFO:CONSOLE; the page has
    # no script, so any such line is a failure (a broken resource, a parse problem).
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, console
    pixels = np.asarray(image.open(shot).convert("RGB"), dtype=np.float64)
    assert pixels.shape[:2] == (3000, 1280)
    # Not blank: the header band, text and figures give many distinct colors and contrast.
    assert pixels.std() > 20
    assert len(np.unique(pixels.reshape(-1, 3).astype(np.uint8), axis=0)) > 200
    dark = (pixels.mean(axis=2) < 100).mean()
    assert 0.02 < dark < 0.6, dark
