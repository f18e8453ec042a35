"""Trials in worker processes.

Workers start with the 'spawn' method: kiln's C++ thread pool may already run in the
parent, and forking a process with running threads is unsafe. Each worker gives its
kernels ``cores // jobs`` threads so that ``jobs`` workers share the machine without
oversubscribing it. With ``jobs=1`` tasks run in the calling process."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any

from kiln import _C


def cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def threads_per_worker(jobs: int) -> int:
    return max(1, cores() // max(1, jobs))


def _init_worker(threads: int) -> None:
    _C.set_num_threads(threads)
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()


def _exit_with_parent(parent: int) -> None:
    """Ends this worker once its parent is gone (killed searches leave no orphans
    training on)."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def _call(fn: Callable[[Any], Any], item: Any) -> tuple[bool, Any]:
    """(True, fn(item)) or (False, a one-line error with the traceback's last frame)."""
    try:
        return True, fn(item)
    except Exception as error:  # a failing trial is recorded, the search goes on
        frame = traceback.extract_tb(error.__traceback__)[-1]
        where = f" ({os.path.basename(frame.filename)}:{frame.lineno})"
        return False, f"{type(error).__name__}: {' '.join(str(error).split())}{where}"


class Workers:
    """A pool of ``jobs`` worker processes (or the calling process for ``jobs=1``);
    ``run(fn, items)`` yields ``(item, ok, result_or_error)`` as each task finishes.
    ``fn`` and the items must be picklable (module-level functions and plain data)."""

    def __init__(self, jobs: int = 1) -> None:
        if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
            raise ValueError(f"kiln.tune: jobs must be an int >= 1, got {jobs!r}")
        self.jobs = jobs
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.jobs, mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker, initargs=(threads_per_worker(self.jobs),))
        return self._pool

    def run(self, fn: Callable[[Any], Any], items: Sequence[Any]
            ) -> Iterator[tuple[Any, bool, Any]]:
        if self.jobs == 1 or len(items) == 0:
            for item in items:
                yield (item, *_call(fn, item))
            return
        pool = self._executor()
        pending: dict[Future[Any], Any] = {pool.submit(_call, fn, item): item for item in items}
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    item = pending.pop(future)
                    yield (item, *future.result())
        finally:
            for future in pending:
                future.cancel()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
