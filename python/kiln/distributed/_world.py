"""The MPI job kiln trains in: start-up, who is who, collectives that cannot hang.

Every rank of an ``mpiexec -n N`` job calls ``init()`` (``Trainer(distributed=True)``
and ``kiln train`` do it for you). It takes kiln's own duplicate of MPI_COMM_WORLD,
learns the ranks sharing this machine and gives each rank ``cores / local ranks``
kernel threads, so N ranks never oversubscribe one machine.

Failure handling (a dead or stuck rank must never leave the others waiting forever):

- every collective kiln issues is non-blocking and waited for with a deadline
  (``timeout``, default 300 s, or ``KILN_DISTRIBUTED_TIMEOUT``); past it the waiting
  rank prints what it waited for and aborts the whole job (MPI_Abort);
- an exception no one catches on a rank prints its traceback and
  ``kiln.distributed: rank R of N failed ...``, then aborts the job;
- a rank killed outright (SIGKILL, a crash) cannot speak for itself: a small watcher
  process per rank (see ``_WATCHER``) notices the first rank of its machine to end
  without saying goodbye and prints ``kiln.distributed: rank R of N (pid P on HOST)
  ended abruptly ...``; mpiexec (Hydra) then stops the other ranks itself.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any, NoReturn

import numpy as np

from kiln import _C
from kiln.nn.modules.sync_batchnorm import register_collectives

_INSTALL_HINT = ("kiln.distributed needs mpi4py and an MPI library: pip install 'kiln[mpi]' "
                 "(the packages mpi4py and mpich)")
_DEFAULT_TIMEOUT = 300.0
# Environment variables through which launchers announce the job size.
_SIZE_VARIABLES = ("PMI_SIZE", "PMIX_SIZE", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS",
                   "SLURM_NTASKS")


class _World:
    """The state of an initialized job (one per process)."""

    def __init__(self, mpi: Any, timeout: float) -> None:
        self.MPI = mpi
        self.comm = mpi.COMM_WORLD.Dup()
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()
        local = self.comm.Split_type(mpi.COMM_TYPE_SHARED, key=self.rank)
        self.local_rank = local.Get_rank()
        self.local_size = local.Get_size()
        local.Free()
        self.timeout = timeout
        self.host = socket.gethostname()
        self.peers = self.comm.allgather((os.getpid(), self.host))
        self.watcher: subprocess.Popen[bytes] | None = None


_world: _World | None = None


def launched() -> bool:
    """Whether a launcher (mpiexec, srun) started this process as one of several ranks."""
    for name in _SIZE_VARIABLES:
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 1:
            return True
    return False


def _timeout_from(timeout: float | None) -> float:
    if timeout is None:
        text = os.environ.get("KILN_DISTRIBUTED_TIMEOUT")
        if text is None:
            return _DEFAULT_TIMEOUT
        try:
            timeout = float(text)
        except ValueError:
            raise ValueError(f"kiln.distributed.init: KILN_DISTRIBUTED_TIMEOUT must be a number "
                             f"of seconds, got {text!r}") from None
    if hasattr(timeout, "total_seconds"):  # a datetime.timedelta, as torch.distributed takes
        timeout = timeout.total_seconds()
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(f"kiln.distributed.init: timeout must be a positive number of "
                         f"seconds, got {timeout!r}")
    return float(timeout)


def init(timeout: float | None = None, set_threads: bool = True) -> None:
    """Joins the MPI job this process was launched in (``mpiexec -n N python ...``).

    Args:
        timeout: seconds a rank waits in a collective before it aborts the job with a
            message naming itself (default ``KILN_DISTRIBUTED_TIMEOUT`` or 300).
        set_threads: give each rank ``cores / ranks on this machine`` kernel threads
            (``kiln.set_num_threads``).

    Started without mpiexec it forms a job of one rank. Calling it again does nothing.
    Raises ImportError naming the packages when mpi4py is missing.
    """
    global _world
    seconds = _timeout_from(timeout)
    if _world is not None:
        _world.timeout = seconds if timeout is not None else _world.timeout
        return
    try:
        from mpi4py import MPI
    except ImportError as error:
        raise ImportError(f"{_INSTALL_HINT} ({error})") from None
    world = _World(MPI, seconds)
    _world = world
    if set_threads:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
            os.cpu_count() or 1)
        _C.set_num_threads(max(1, cores // world.local_size))
    if world.size > 1:
        _install_failure_handlers(world)


def is_initialized() -> bool:
    """Whether ``init()`` has run in this process."""
    return _world is not None


def _require(op: str) -> _World:
    if _world is None:
        raise RuntimeError(f"kiln.distributed.{op}: the job is not initialized; call "
                           f"kiln.distributed.init() first (under mpiexec -n N)")
    return _world


def rank() -> int:
    """This process's rank in the job, 0 .. world_size() - 1."""
    return _require("rank").rank


def world_size() -> int:
    """The number of ranks in the job."""
    return _require("world_size").size


def local_rank() -> int:
    """This process's rank among the ranks on its machine."""
    return _require("local_rank").local_rank


def local_world_size() -> int:
    """The number of ranks on this machine."""
    return _require("local_world_size").local_size


def is_main() -> bool:
    """True on rank 0, the rank that prints and writes files."""
    return _require("is_main").rank == 0


def get_rank() -> int:
    """torch.distributed's name for ``rank()``."""
    return rank()


def get_world_size() -> int:
    """torch.distributed's name for ``world_size()``."""
    return world_size()


# --------------------------------------------------------------------- collectives
def wait(request: Any, what: str) -> None:
    """Waits for a non-blocking MPI request; past the job's timeout, aborts the job with
    a message naming this rank and ``what`` it waited for."""
    if request.Test():
        return
    world = _require("wait")
    deadline = time.monotonic() + world.timeout
    spins = 0
    while not request.Test():
        spins += 1
        if spins > 200:  # a short spin first: most waits end within microseconds
            time.sleep(0.0002 if spins < 2000 else 0.002)
            if time.monotonic() > deadline:
                abort(f"rank {world.rank} of {world.size} waited {world.timeout:g} s for "
                      f"{what} without an answer: another rank is dead or stuck "
                      f"(set the limit with kiln.distributed.init(timeout=...) or "
                      f"KILN_DISTRIBUTED_TIMEOUT)")


_OPS = ("sum", "max", "min")


def all_reduce(array: np.ndarray, op: str = "sum", what: str = "all_reduce") -> np.ndarray:
    """Reduces a contiguous NumPy array over all ranks, in place (op 'sum', 'max',
    'min', or 'avg': the sum divided by world_size()); returns it."""
    world = _require("all_reduce")
    if not isinstance(array, np.ndarray) or not array.flags.c_contiguous:
        raise TypeError("kiln.distributed.all_reduce: expected a C-contiguous NumPy array, got "
                        f"{type(array).__name__}")
    if op not in (*_OPS, "avg"):
        raise ValueError(f"kiln.distributed.all_reduce: op must be one of sum, avg, max, min; "
                         f"got {op!r}")
    if op == "avg" and array.dtype.kind != "f":  # refused before the collective runs
        raise TypeError("kiln.distributed.all_reduce: op 'avg' needs a floating-point array, "
                        f"got {array.dtype}")
    if world.size > 1:
        mpi_op = {"sum": world.MPI.SUM, "avg": world.MPI.SUM, "max": world.MPI.MAX,
                  "min": world.MPI.MIN}[op]
        wait(world.comm.Iallreduce(world.MPI.IN_PLACE, array, op=mpi_op), what)
    if op == "avg":
        array /= world.size
    return array


def broadcast(array: np.ndarray, src: int = 0, what: str = "broadcast") -> np.ndarray:
    """Overwrites a contiguous NumPy array with rank ``src``'s, in place; returns it."""
    world = _require("broadcast")
    if not isinstance(array, np.ndarray) or not array.flags.c_contiguous:
        raise TypeError("kiln.distributed.broadcast: expected a C-contiguous NumPy array, got "
                        f"{type(array).__name__}")
    if not 0 <= src < world.size:
        raise ValueError(f"kiln.distributed.broadcast: src {src} is not a rank of a job of "
                         f"{world.size}")
    if world.size > 1:
        wait(world.comm.Ibcast(array, root=src), what)
    return array


def all_gather(array: np.ndarray, what: str = "all_gather") -> np.ndarray:
    """Every rank's copy of a contiguous array, stacked: shape (world_size, *array.shape)."""
    world = _require("all_gather")
    if not isinstance(array, np.ndarray):
        raise TypeError("kiln.distributed.all_gather: expected a NumPy array, got "
                        f"{type(array).__name__}")
    out = np.empty((world.size, *array.shape), array.dtype)
    if world.size == 1:
        out[0] = array
        return out
    wait(world.comm.Iallgather(np.ascontiguousarray(array), out), what)
    return out


# SyncBatchNorm's collectives (kiln.nn.modules.sync_batchnorm): these, in a job of
# several ranks; registered here because nn does not import kiln.distributed.
_SYNC_BATCHNORM = SimpleNamespace(all_gather=all_gather, all_reduce=all_reduce)


def _sync_batchnorm_collectives() -> SimpleNamespace | None:
    return _SYNC_BATCHNORM if _world is not None and _world.size > 1 else None


register_collectives(_sync_batchnorm_collectives)


def barrier() -> None:
    """Returns once every rank has called it (with the job's timeout)."""
    world = _require("barrier")
    if world.size > 1:
        wait(world.comm.Ibarrier(), "a barrier")


# ------------------------------------------------------------------------ failures
def abort(message: str, code: int = 1) -> NoReturn:
    """Prints ``kiln.distributed: MESSAGE`` on stderr and ends every rank of the job."""
    print(f"kiln.distributed: {message}; aborting all ranks", file=sys.stderr, flush=True)
    world = _world
    if world is None or world.size == 1:
        raise SystemExit(code)
    _said_goodbye(world, failed=True)
    sys.stdout.flush()
    _wait_until_launcher_read((sys.stdout, sys.stderr))
    world.MPI.COMM_WORLD.Abort(code)
    raise SystemExit(code)  # not reached: Abort ends the process


def _wait_until_launcher_read(streams: tuple[Any, ...], limit: float = 5.0) -> None:
    """Waits (at most ``limit`` seconds) until the launcher has read what this rank wrote
    to ``streams``. Hydra stops every process as soon as it hears of MPI_Abort, and text
    still sitting in a rank's stdout/stderr pipe is then lost, so the message that says
    why the job ended would not reach the user."""
    import fcntl
    import stat
    import termios

    pipes = []
    for stream in streams:
        try:
            fd = stream.fileno()
            if stat.S_ISFIFO(os.fstat(fd).st_mode):
                pipes.append(fd)
        except (AttributeError, OSError, ValueError):
            continue
    deadline = time.monotonic() + limit
    unread = bytearray(4)
    while pipes and time.monotonic() < deadline:
        try:
            pipes = [fd for fd in pipes
                     if fcntl.ioctl(fd, termios.FIONREAD, unread) == 0
                     and int.from_bytes(unread, sys.byteorder) > 0]
        except OSError:
            return
        if pipes:
            time.sleep(0.01)


_USAGE_ERRORS = (ValueError, TypeError, OSError, ImportError)


@contextlib.contextmanager
def abort_on_error(prog: str = "kiln", usage_errors: tuple[type[BaseException], ...] = (
        _USAGE_ERRORS)) -> Iterator[None]:
    """Turns an exception inside the block into a message naming this rank and the
    abort of the whole job (the other ranks would otherwise wait for it forever):
    ``usage_errors`` in one line with exit code 2, others after their traceback with
    code 1. A job of one rank lets the exception through."""
    try:
        yield
    except BaseException as error:
        world = _world
        if world is None or world.size == 1 or isinstance(error, SystemExit) and not error.code:
            raise
        text = " ".join(str(error).split()) or type(error).__name__
        code = 130 if isinstance(error, KeyboardInterrupt) else 2 if isinstance(
            error, usage_errors) else 1
        if code == 1:
            traceback.print_exc()
        abort(f"{prog}: rank {world.rank} of {world.size} failed: {type(error).__name__}: "
              f"{text}", code)


def _install_failure_handlers(world: _World) -> None:
    previous = sys.excepthook

    def excepthook(kind: type[BaseException], error: BaseException, tb: Any) -> None:
        previous(kind, error, tb)
        text = " ".join(str(error).split()) or kind.__name__
        abort(f"rank {world.rank} of {world.size} failed: {kind.__name__}: {text}")

    sys.excepthook = excepthook
    _start_watcher(world)
    atexit.register(_said_goodbye, world)


# The watcher of one rank. It reads the rank's pipe: "." when the rank ends normally, "!"
# when it reports its own failure and aborts, EOF without either when it is killed or
# crashes. It also holds a pidfd of every other rank on this machine, so it sees them
# end, in order. When its rank dies, the culprit is the first rank of this machine seen
# dead: a peer that died while this rank still ran, else this rank if no peer is dead
# yet. One watcher per machine speaks (the holder of an abstract Unix socket name); a
# rank that reported its own failure claims it first, silencing the rest. A rank alone
# on its machine cannot tell who went first, and says so.
_WATCHER = r"""
import errno, os, select, socket, sys, time
rank, size, host = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
local = dict((int(r), int(p)) for r, p in (x.split(":") for x in sys.argv[4].split(",")))
claim_name = "\0kiln-watch-" + "-".join(str(p) for p in sorted(local.values()))
peers = {}
for r, p in local.items():
    if r != rank:
        try:
            peers[os.pidfd_open(p)] = r
        except (AttributeError, OSError):
            pass
os.write(int(sys.argv[5]), b"+")  # watching from here on
os.close(int(sys.argv[5]))

held = []

def claim():
    # An abstract Unix socket name: one holder at a time, gone when the holder exits.
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(claim_name)
    except OSError as error:
        return error.errno != errno.EADDRINUSE  # no claims possible here: speak anyway
    held.append(sock)
    return True

def release():
    time.sleep(1.0)  # the other watchers of this machine decide within milliseconds

def say(culprit, text):
    print(f"kiln.distributed: rank {culprit} of {size} (pid {local[culprit]} on {host}) "
          + text, file=sys.stderr, flush=True)
    release()

first_dead = None
while True:
    ready = select.select([0, *peers], [], [])[0]
    if 0 not in ready:
        for fd in ready:
            if first_dead is None:
                first_dead = peers[fd]
            del peers[fd]
        continue
    said = os.read(0, 1)
    if said == b"!" and claim():
        release()
    if said:
        sys.exit(0)
    dead_now = sorted(peers[fd] for fd in select.select(list(peers), [], [], 0)[0]) \
        if peers else []
    if len(local) == 1:
        print(f"kiln.distributed: rank {rank} of {size} (pid {local[rank]} on {host}) ended "
              f"without finishing (killed, crashed, or stopped by mpiexec after a rank on "
              f"another machine ended)", file=sys.stderr, flush=True)
    elif first_dead is not None or not dead_now:
        culprit = rank if first_dead is None else first_dead
        if claim():
            say(culprit, "ended abruptly (killed by a signal or crashed) while the job was "
                         "running; mpiexec stops the other ranks")
    else:  # this rank and others were found dead at once: wait for a better-placed watcher
        time.sleep(0.2)
        if claim():
            ranks = " or ".join(str(r) for r in sorted({rank, *dead_now}))
            print(f"kiln.distributed: rank {ranks} of {size} (on {host}) ended abruptly first "
                  f"(killed by a signal or crashed); mpiexec stops the other ranks",
                  file=sys.stderr, flush=True)
            release()
    sys.exit(0)
"""


def _start_watcher(world: _World) -> None:
    local = ",".join(f"{r}:{pid}" for r, (pid, host) in enumerate(world.peers)
                     if host == world.host)
    goodbye_read, goodbye_write = os.pipe()
    ready_read, ready_write = os.pipe()
    try:
        world.watcher = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _WATCHER, str(world.rank), str(world.size),
             world.host, local, str(ready_write)],
            stdin=goodbye_read, stdout=subprocess.DEVNULL, pass_fds=(ready_write,),
            start_new_session=True)
    except OSError:  # no watcher: a killed rank is then reported by mpiexec alone
        os.close(goodbye_write)
        world.watcher = None
    else:
        world.watcher_pipe = goodbye_write  # type: ignore[attr-defined]
        os.close(ready_write)
        ready_write = -1
        os.read(ready_read, 1)  # it is watching from here on
    finally:
        os.close(goodbye_read)
        os.close(ready_read)
        if ready_write >= 0:
            os.close(ready_write)


def _said_goodbye(world: _World, failed: bool = False) -> None:
    """Tells the watcher that this rank ends on purpose ("!": after reporting its own
    failure, so no other watcher speaks)."""
    pipe = getattr(world, "watcher_pipe", None)
    if pipe is None:
        return
    world.watcher_pipe = None  # type: ignore[attr-defined]
    with contextlib.suppress(OSError):
        os.write(pipe, b"!" if failed else b".")
        os.close(pipe)
