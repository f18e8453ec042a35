"""kiln.distributed: samplers, SyncBatchNorm and the DataLoader's sampler in one process;
data-parallel training under ``mpiexec -n 2`` (tests/distributed_worker.py) in
subprocesses with a deadline each: bit-identical replicas, 2 ranks x B == 1 x 2B (with
and without SyncBatchNorm), Trainer(distributed=True), ``kiln train`` under mpiexec, and
a rank that is killed, raises or hangs ending the job with a message naming it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import kiln
import kiln.distributed as dist
from kiln import nn
from kiln.data import DataLoader, TensorDataset
from kiln.distributed import DistributedEvalSampler, DistributedSampler

WORKER = Path(__file__).with_name("distributed_worker.py")


# ------------------------------------------------------------------ one process
@pytest.mark.parametrize("n,replicas,drop_last", [(10, 2, False), (11, 3, False),
                                                   (11, 3, True), (5, 4, False)])
def test_sampler_shards_cover_the_data_once_per_epoch(n, replicas, drop_last):
    samplers = [DistributedSampler(range(n), replicas, r, seed=7, drop_last=drop_last)
                for r in range(replicas)]
    for _ in range(2):
        shards = [list(s) for s in samplers]
        assert len({len(s) for s in shards}) == 1 and len(shards[0]) == len(samplers[0])
        every = sorted(i for s in shards for i in s)
        if drop_last:
            assert len(set(every)) == len(every) == (n // replicas) * replicas
        else:  # each sample at least once; the padding repeats ceil(n/N)*N - n of them
            assert set(every) == set(range(n))
            assert len(every) - n == -n % replicas


def test_sampler_reshuffles_every_epoch_by_itself_and_set_epoch_replays():
    s = DistributedSampler(range(40), 2, 1, seed=3)
    first, second = list(s), list(s)
    assert first != second and s.epoch == 2
    s.set_epoch(0)
    assert list(s) == first
    assert list(DistributedSampler(range(40), 2, 1, shuffle=False)) == list(range(1, 40, 2))
    other_seed = list(DistributedSampler(range(40), 2, 1, seed=4))
    assert other_seed != first


def test_eval_sampler_counts_every_sample_exactly_once():
    shards = [list(DistributedEvalSampler(range(13), 4, r)) for r in range(4)]
    assert sorted(i for s in shards for i in s) == list(range(13))
    assert [len(DistributedEvalSampler(range(13), 4, r)) for r in range(4)] == [4, 3, 3, 3]


def test_sampler_bad_arguments():
    with pytest.raises(ValueError, match="invalid rank 2"):
        DistributedSampler(range(4), 2, 2)
    with pytest.raises(ValueError, match="num_replicas"):
        DistributedEvalSampler(range(4), 0, 0)
    with pytest.raises(TypeError, match="seed"):
        DistributedSampler(range(4), 2, 0, seed=1.5)
    with pytest.raises(TypeError, match="__len__"):
        DistributedSampler(iter(range(4)), 2, 0)
    with pytest.raises(ValueError, match="set_epoch"):
        DistributedSampler(range(4), 2, 0).set_epoch(-1)
    if not dist.is_initialized():
        with pytest.raises(RuntimeError, match="init"):
            DistributedSampler(range(4))
        with pytest.raises(RuntimeError, match="init"):
            dist.rank()


def test_data_loader_follows_its_sampler_and_passes_set_epoch_on():
    data = TensorDataset(np.arange(20, dtype=np.float32)[:, None], np.arange(20))
    sampler = DistributedSampler(data, 2, 0, seed=1)
    loader = DataLoader(data, batch_size=3, sampler=sampler, num_workers=1)
    assert len(loader) == 4  # 10 indices in batches of 3
    epoch0 = np.concatenate([labels.numpy() for _, labels in loader])
    assert epoch0.tolist() == sampler.indices(0).tolist()
    loader.set_epoch(0)
    assert np.concatenate([y.numpy() for _, y in loader]).tolist() == epoch0.tolist()
    assert np.concatenate([y.numpy() for _, y in loader]).tolist() == sampler.indices(1).tolist()
    with pytest.raises(ValueError, match="mutually exclusive"):
        DataLoader(data, sampler=sampler, shuffle=True)
    with pytest.raises(TypeError, match="sampler"):
        DataLoader(data, sampler=5)


def test_sync_batchnorm_is_batchnorm_outside_a_job_and_conversion_shares_state():
    kiln.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.Sequential(nn.BatchNorm2d(4, momentum=None, affine=False)))
    reference = nn.Sequential(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.ReLU(),
                              nn.Sequential(nn.BatchNorm2d(4, momentum=None, affine=False)))
    reference.load_state_dict(model.state_dict())
    weight = model[1].weight
    converted = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    assert isinstance(converted[1], nn.SyncBatchNorm) and converted[1].weight is weight
    assert isinstance(converted[3][0], nn.SyncBatchNorm) and converted[3][0].weight is None
    x = kiln.randn(5, 2, 6, 6)
    for _ in range(2):
        np.testing.assert_array_equal(converted(x).detach().numpy(),
                                      reference(x).detach().numpy())
    for key, value in reference.state_dict().items():
        np.testing.assert_array_equal(converted.state_dict()[key].numpy(), value.numpy())
    with pytest.raises(ValueError, match="at least 2D"):
        nn.SyncBatchNorm(4)(kiln.randn(4))
    with pytest.raises(ValueError, match="process_group"):
        nn.SyncBatchNorm(4, process_group="world")


def test_ddp_bad_arguments():
    model = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="kiln.nn.Module"):
        dist.DistributedDataParallel(lambda x: x)
    with pytest.raises(ValueError, match="device_ids"):
        dist.DistributedDataParallel(model, device_ids=[0])
    with pytest.raises(ValueError, match="process_group"):
        dist.DistributedDataParallel(model, process_group="world")
    with pytest.raises(ValueError, match="bucket_cap_mb"):
        dist.DistributedDataParallel(model, bucket_cap_mb=0)
    if not dist.is_initialized():
        with pytest.raises(RuntimeError, match="init"):
            dist.DistributedDataParallel(model)


def test_init_without_mpi4py_names_the_packages(monkeypatch):
    if dist.is_initialized():
        pytest.skip("the job is already initialized in this process")
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    with pytest.raises(ImportError, match=r"kiln\[mpi\].*mpi4py.*mpich"):
        dist.init()
    assert not dist.is_initialized()


def test_launched_reads_the_launchers_environment(monkeypatch):
    for name in ("PMI_SIZE", "PMIX_SIZE", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS",
                 "SLURM_NTASKS"):
        monkeypatch.delenv(name, raising=False)
    assert not dist.launched()
    monkeypatch.setenv("PMI_SIZE", "1")
    assert not dist.launched()
    monkeypatch.setenv("PMI_SIZE", "4")
    assert dist.launched()


# ------------------------------------------------------------- under mpiexec -n 2
def _mpiexec() -> str | None:
    beside = Path(sys.executable).with_name("mpiexec")
    return str(beside) if beside.exists() else shutil.which("mpiexec")


def _have_mpi() -> bool:
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return _mpiexec() is not None


mpi = pytest.mark.skipif(not _have_mpi(), reason="needs mpi4py and mpiexec "
                         "(pip install 'kiln[mpi]')")


def _job(args: list[str], cwd: Path, timeout: float = 60, ranks: int = 2,
         **env: str) -> subprocess.CompletedProcess:
    """Runs ``mpiexec -n ranks python ARGS`` with one kernel thread per rank; a job that
    outlives ``timeout`` fails the test (after its process group is killed)."""
    # The ranks import this kiln (e.g. a stage folder on a relative PYTHONPATH).
    here = os.path.dirname(os.path.dirname(os.path.abspath(kiln.__file__)))
    path = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)
    environment = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1",
                   "OPENBLAS_NUM_THREADS": "1", **env}
    for name in ("PMI_SIZE", "PMI_RANK", "PMI_FD", "PMI_PORT", "PMIX_SIZE", "PMIX_RANK"):
        environment.pop(name, None)  # pytest itself may run under a launcher
    command = [_mpiexec(), "-n", str(ranks), sys.executable, *args]
    process = subprocess.Popen(command, cwd=cwd, env=environment, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)
        out, _ = process.communicate()
        pytest.fail(f"mpiexec -n {ranks} {' '.join(args)} did not end within {timeout} s:\n"
                    f"{out}")
    return subprocess.CompletedProcess(command, process.returncode, out, None)


def _scenario(name: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    return _job([str(WORKER), name, str(tmp_path)], tmp_path, **env)


def _states(tmp_path: Path) -> list[dict[str, np.ndarray]]:
    return [dict(np.load(tmp_path / f"rank{r}.npz")) for r in range(2)]


@mpi
def test_parameters_stay_bit_identical_across_ranks(tmp_path):
    result = _scenario("identical", tmp_path)
    assert result.returncode == 0, result.stdout
    a, b = _states(tmp_path)
    for key in a:
        if "running" not in key:  # buffers follow rank 0 at the next forward, as PyTorch
            assert np.array_equal(a[key], b[key]), key
    assert not np.array_equal(a["0.weight"], np.load(tmp_path / "init.npy"))  # it trained
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    for r in range(2):  # init gives each rank cores / (ranks on this machine) threads
        assert (tmp_path / f"threads{r}.txt").read_text() == str(max(1, cores // 2))


@mpi
@pytest.mark.parametrize("scenario", ["equivalence", "syncbn"])
def test_two_ranks_of_batch_b_match_one_process_of_batch_2b(tmp_path, scenario):
    result = _scenario(scenario, tmp_path)
    assert result.returncode == 0, result.stdout
    a, b = _states(tmp_path)
    single = dict(np.load(tmp_path / "single.npz"))
    info = json.loads((tmp_path / "rank0.json").read_text())
    assert info["buckets"] > 2  # several buckets, reduced while backward runs:
    assert max(info["launches"]) > 0  # some started while gradients were still to come
    assert set(a) == set(single)
    for key in a:
        assert np.array_equal(a[key], b[key]), key
        # Same math up to the order of float32 sums (the batch split in two halves).
        np.testing.assert_allclose(a[key], single[key], rtol=1e-5, atol=1e-6, err_msg=key)
    if scenario == "syncbn":  # the running statistics are those of the whole batch
        assert any("running_var" in k for k in a)
        assert info["uneven_error"] < 1e-5  # shards of 5 and 3 samples against all 8


@mpi
def test_no_sync_and_unused_parameters(tmp_path):
    result = _scenario("options", tmp_path)
    assert result.returncode == 0, result.stdout
    infos = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    for info in infos:
        assert info["no_sync_error"] < 1e-6
        assert "find_unused_parameters=True" in info["unused_error"]
        assert "4 parameter(s) received no gradient" in info["unused_error"]
        head0, head1, head2 = info["head_grads"]
        assert head2 is None  # used by no rank: untouched
        assert np.abs(head0).max() > 0 and np.abs(head1).max() > 0
    assert infos[0]["head_grads"] == infos[1]["head_grads"]  # the same averages everywhere


@mpi
def test_one_rank_job_trains_exactly_as_without_ddp(tmp_path):
    result = _job([str(WORKER), "equivalence", str(tmp_path)], tmp_path, ranks=1)
    assert result.returncode == 0, result.stdout
    ddp, single = np.load(tmp_path / "rank0.npz"), np.load(tmp_path / "single.npz")
    for key in single:
        assert np.array_equal(ddp[key], single[key]), key


@mpi
def test_trainer_distributed_shards_evaluates_exactly_and_writes_on_rank_0(tmp_path):
    result = _scenario("trainer", tmp_path)
    assert result.returncode == 0, result.stdout
    assert result.stdout.count("effective batch 8") == 1  # reported once, by rank 0
    infos = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert infos[0]["callbacks"] == ["ModelCheckpoint"] and infos[1]["callbacks"] == []
    assert sorted(p.name for p in tmp_path.glob("ckpt-*")) == ["ckpt-1.safetensors",
                                                               "ckpt-2.safetensors"]
    assert not list(tmp_path.glob(".*part"))  # no temporary file left behind
    for info in infos:  # 13 validation samples on 2 ranks, each counted once
        assert info["val_loss"] == pytest.approx(info["full_loss"], rel=1e-5)
        assert info["val_accuracy"] == pytest.approx(info["full_accuracy"])
    assert infos[0]["loss"] == infos[1]["loss"]
    a, b = _states(tmp_path)
    for key in a:  # buffers too: synchronized at the end of each epoch
        assert np.array_equal(a[key], b[key]), key
    saved = kiln.load_state(tmp_path / "ckpt-2.safetensors")
    assert np.array_equal(saved["model.0.weight"].numpy(), a["0.weight"])


@mpi
def test_a_stop_asked_on_one_rank_stops_every_rank_at_that_step(tmp_path):
    result = _scenario("stop", tmp_path)
    assert result.returncode == 0, result.stdout
    for r in range(2):
        assert json.loads((tmp_path / f"rank{r}.json").read_text()) == {"epoch": 1, "steps": 2}


@mpi
def test_kiln_train_under_mpiexec_writes_one_run_from_rank_0(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "tiny.npz", images=rng.integers(0, 255, (64, 1, 28, 28), np.uint8),
             labels=rng.integers(0, 3, 64))
    result = _job(["-m", "kiln.cli", "train", "--data", f"npz:{tmp_path / 'tiny.npz'}",
                   "--epochs", "1", "--batch-size", "8", "--schedule", "plateau", "--out",
                   str(tmp_path / "runs"), "--name", "job", "--quiet"], tmp_path)
    assert result.returncode == 0, result.stdout
    assert result.stdout.count("kiln train: lenet5") == 1
    assert "2 ranks x batch 8 = effective batch 16" in result.stdout
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["job"]
    run = tmp_path / "runs" / "job"
    files = {p.name for p in run.iterdir()}
    assert {"best.safetensors", "last.safetensors", "config.json", "metrics.csv"} <= files
    # Every rank resumes from the same checkpoint; rank 0 appends the next epoch.
    result = _job(["-m", "kiln.cli", "train", "--resume", str(run / "last.safetensors"),
                   "--epochs", "2", "--quiet"], tmp_path)
    assert result.returncode == 0, result.stdout
    assert result.stdout.count("resuming after epoch 1") == 1
    assert len((run / "metrics.csv").read_text().splitlines()) == 3  # header + 2 epochs


@mpi
def test_a_killed_rank_ends_the_job_with_a_message_naming_it(tmp_path):
    result = _scenario("kill", tmp_path)
    assert result.returncode != 0
    assert "finished without noticing" not in result.stdout
    assert "kiln.distributed: rank 1 of 2 (pid" in result.stdout, result.stdout
    assert "ended abruptly" in result.stdout


@mpi
def test_a_raising_rank_aborts_the_job_with_its_error(tmp_path):
    result = _scenario("raise", tmp_path)
    assert result.returncode != 0
    assert ("kiln.distributed: rank 1 of 2 failed: RuntimeError: a deliberate failure at "
            "step 3; aborting all ranks") in result.stdout, result.stdout


@mpi
def test_a_stuck_rank_makes_the_others_stop_after_the_timeout(tmp_path):
    result = _scenario("hang", tmp_path, KILN_DISTRIBUTED_TIMEOUT="6")
    assert result.returncode != 0
    assert "rank 0 of 2 waited 6 s for the gradient allreduce" in result.stdout, result.stdout
