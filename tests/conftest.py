"""Suite-wide settings. In CI (CI=true) every optional dependency is installed by the
test command, so a skipped test means a missing install step: the run fails."""

from __future__ import annotations

import os

import pytest


@pytest.fixture
def torch():
    """PyTorch, for tests that take it as a fixture; skips where it is not installed (a
    failure in CI, see below)."""
    return pytest.importorskip("torch")


# The skip reason of the tests that need a CUDA device (tests/test_cuda_*.py).
GPU_SKIP = "needs a CUDA device"


def _reason(report: pytest.TestReport) -> str:
    return str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else str(
        report.longrepr)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("CI") != "true" or exitstatus != 0:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    # GPU tests skip on CI's machines, which have no GPU: expected, not a missing install.
    skipped = [report for report in skipped if GPU_SKIP not in _reason(report)]
    if skipped:
        reasons = sorted({_reason(report) for report in skipped})
        reporter.write_line(f"CI: {len(skipped)} test(s) skipped, so a dependency the test "
                            f"command should install is missing: {'; '.join(reasons)}",
                            red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
