"""Atomic file writes: a temporary file beside the target, renamed over it only once
complete, so a crash, an error or a failed check never leaves half a file behind.

The temporary file is named ``.NAME.PID.RANDOM.part``. A writer that is killed
mid-write cannot delete it, so every successful write of NAME removes the parts
of NAME left by processes that no longer exist (never those of a live process:
two runs may write the same file at once)."""

from __future__ import annotations

import collections
import contextlib
import glob
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yields a temporary path for the caller to write ``path``'s new content to; on a
    clean exit that file is synced and renamed over ``path``, on an exception it is
    deleted and ``path`` is left as it was."""
    path = Path(path)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.",
                                suffix=".part")
    os.close(fd)
    try:
        yield Path(temp)
        fd = os.open(temp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(temp, 0o644)  # mkstemp's 0600 would make the result private
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    _sync_folder(path.parent)
    remove_stale_parts(path)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """Yields a binary file; on a clean exit it replaces ``path``, on an exception it
    is deleted and ``path`` is left as it was."""
    with atomic_path(path) as temp, open(temp, "wb") as handle:
        yield handle


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Replaces ``path`` with ``data``, atomically."""
    with atomic_write(path) as handle:
        handle.write(data)


class WriteBehind:
    """Runs file writes on a background thread, in the order they were submitted, so a
    training loop does not wait for the disk: each write is atomic by itself, and its
    fsyncs (about 15 ms each on a cloud disk; two per file) happen off the loop.

    ``submit(write, *args)`` queues ``write(*args)``; the arguments must not change
    afterwards (pass bytes or copies, never live arrays). At most ``limit`` writes wait;
    a further submit blocks until one is done. ``flush()`` returns once every queued
    write is done. A write that failed raises its error from the next ``submit`` or
    ``flush``. The thread exists only while writes are queued and is not a daemon, so
    an interpreter leaving on an error still finishes them."""

    def __init__(self, name: str = "kiln-WriteBehind", limit: int = 2) -> None:
        self.name, self.limit = name, max(1, int(limit))
        self._queue: collections.deque[tuple[Callable[..., Any], tuple[Any, ...]]] = (
            collections.deque())
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def submit(self, write: Callable[..., Any], *args: Any) -> None:
        with self._changed:
            self._raise_error()
            while len(self._queue) >= self.limit:
                self._changed.wait()
            self._queue.append((write, args))
            if self._thread is None:
                self._thread = threading.Thread(target=self._drain, name=self.name)
                self._thread.start()

    def flush(self) -> None:
        with self._changed:
            while self._thread is not None:
                self._changed.wait()
            self._raise_error()

    def _drain(self) -> None:
        while True:
            with self._changed:
                if not self._queue:
                    self._thread = None
                    self._changed.notify_all()
                    return
                write, args = self._queue[0]
            try:
                write(*args)
            except BaseException as error:  # handed to the submitting thread
                with self._changed:
                    self._error = self._error or error
            with self._changed:
                self._queue.popleft()
                self._changed.notify_all()

    def _raise_error(self) -> None:
        error, self._error = self._error, None
        if error is not None:
            raise error


def claim_folder(base: str | os.PathLike[str]) -> Path:
    """Creates and returns ``base``, or ``base-2``, ``base-3``, ... when it is taken
    (parents made as needed). Each name is claimed by an exclusive mkdir, so two
    processes started at the same moment never get the same folder."""
    base = Path(base)
    base.parent.mkdir(parents=True, exist_ok=True)
    path, n = base, 1
    while True:
        try:
            path.mkdir()
            return path
        except FileExistsError:
            n += 1
            path = base.with_name(f"{base.name}-{n}")


def remove_stale_parts(path: str | os.PathLike[str]) -> list[Path]:
    """Deletes the partial files of ``path`` whose writing process has ended (and those
    of kiln versions that did not record the process); returns what it deleted."""
    path = Path(path)
    prefix = f".{path.name}."
    removed = []
    for name in glob.glob(glob.escape(str(path.parent / prefix)) + "*.part"):
        owner = Path(name).name[len(prefix):].split(".", 1)[0]
        if owner.isdigit() and _alive(int(owner)):
            continue
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
            removed.append(Path(name))
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _sync_folder(folder: Path) -> None:
    """Makes the rename itself durable (best effort: not every system can sync a folder)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
