"""kiln run / python -m kiln.run: the import hook's table, the "kiln does not support"
errors at the point of use, no fall-back to the real PyTorch, and the script run as
``python script.py`` would run it (argv, __name__, exit codes, tracebacks)."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap

import pytest

import kiln
from kiln import run

ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))


@pytest.fixture
def hooked():
    with run.standing_in():
        yield


@pytest.mark.parametrize("name", sorted(n for n, t in run.MODULES.items() if t is not None))
def test_every_mapped_module_is_an_alias_of_its_kiln_module(hooked, name):
    alias = importlib.import_module(name)
    target = importlib.import_module(run.MODULES[name])
    assert sys.modules[name] is alias
    for attr in dir(target):
        value = getattr(target, attr)
        if not attr.startswith("_") and not isinstance(value, type(kiln)):
            assert getattr(alias, attr) is value
    for child in run.MODULES:
        if child.rpartition(".")[0] == name:
            assert getattr(alias, child.rpartition(".")[2]) is importlib.import_module(child)


def test_the_names_programs_use_are_kiln_objects(hooked):
    import torch
    import torch.backends.cudnn as cudnn
    import torch.nn as nn
    import torch.nn.functional as F
    import torchvision.transforms as T
    from torch.optim.lr_scheduler import StepLR
    from torch.utils.data import DataLoader
    from torch.utils.data.sampler import SubsetRandomSampler

    assert torch.Tensor is kiln.Tensor and torch.nn is nn and torch.nn.functional is F
    assert nn.Conv2d is kiln.nn.Conv2d and F.relu is kiln.nn.functional.relu
    assert DataLoader is kiln.utils.data.DataLoader and StepLR is kiln.optim.lr_scheduler.StepLR
    assert SubsetRandomSampler is kiln.utils.data.SubsetRandomSampler
    assert T.Compose is kiln.data.transforms.Compose
    assert torch.cuda.is_available() is False and torch.backends.cudnn is cudnn
    cudnn.benchmark = True
    assert kiln.backends.cudnn.benchmark is True
    cudnn.benchmark = False
    assert "Conv2d" in dir(nn) and "functional" in dir(nn)


@pytest.mark.parametrize("statement, error, name", [
    ("import torch.distributed", ImportError, "torch.distributed"),
    ("import torch.nn.parallel.scatter_gather", ImportError, "torch.nn.parallel"),
    ("from torch.nn import NoSuchLayer", ImportError, "torch.nn.NoSuchLayer"),
    ("import torch; torch.no_such_function", AttributeError, "torch.no_such_function"),
    ("import torch; torch.distributed", AttributeError, "torch.distributed"),
    ("import torch.nn as nn; nn.modules", AttributeError, "torch.nn.modules"),
    ("import torchvision; torchvision.io", AttributeError, "torchvision.io"),
    ("import torchvision; torchvision.models.densenet121", AttributeError,
     "torchvision.models.densenet121"),
    ("import torchvision.ops", ImportError, "torchvision.ops"),
    ("import torchvision.transforms as T; T.NoSuchTransform", AttributeError,
     "torchvision.transforms.NoSuchTransform"),
])
def test_what_kiln_lacks_fails_where_it_is_used(hooked, statement, error, name):
    with pytest.raises(error, match=f"kiln does not support {name} yet"):
        exec(statement, {})


def test_never_falls_back_to_the_real_pytorch(torch):
    real = sys.modules["torch"]
    with run.standing_in():
        import torch as standing
        assert standing is not real and standing.Tensor is kiln.Tensor
        with pytest.raises(ImportError, match="kiln does not support torch.fft yet"):
            import torch.fft  # noqa: F401  (exists in PyTorch, not in kiln)
    assert sys.modules["torch"] is real


def script(tmp_path, body):
    path = tmp_path / "prog.py"
    path.write_text(textwrap.dedent(body))
    return str(path)


LAUNCHERS = {"python -m kiln.run": [sys.executable, "-m", "kiln.run"],
             "kiln run": [sys.executable, "-m", "kiln.cli", "run"]}


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_argv_main_and_exit_code_as_python(tmp_path, launcher):
    (tmp_path / "helper.py").write_text("VALUE = 'from the script folder'\n")
    prog = script(tmp_path, """
        import sys
        import torch
        import helper
        print(__name__, sys.argv[1:], helper.VALUE, type(torch).__name__)
        sys.exit(int(sys.argv[1]))
    """)
    done = subprocess.run([*LAUNCHERS[launcher], prog, "3", "--lr", "0.1", "-h"], env=ENV,
                          capture_output=True, text=True, cwd="/")
    assert done.returncode == 3, done.stderr
    assert done.stdout.split("\n")[0] == ("__main__ ['3', '--lr', '0.1', '-h'] from the script "
                                          "folder _Alias")


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_uncaught_exceptions_print_a_traceback_and_exit_1(tmp_path, launcher):
    prog = script(tmp_path, """
        import torch
        x = torch.ones(2)
        raise ValueError(f"boom {x.sum().item()}")
    """)
    done = subprocess.run([*LAUNCHERS[launcher], prog], env=ENV, capture_output=True, text=True)
    assert done.returncode == 1
    assert "Traceback" in done.stderr and "ValueError: boom 2.0" in done.stderr
    assert 'prog.py", line 4' in done.stderr


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_a_missing_script_is_a_usage_error(tmp_path, launcher):
    done = subprocess.run([*LAUNCHERS[launcher], str(tmp_path / "nope.py")], env=ENV,
                          capture_output=True, text=True)
    assert done.returncode == 2 and "nope.py" in done.stderr
    assert subprocess.run([sys.executable, "-m", "kiln.run"], env=ENV,
                          capture_output=True).returncode == 2


def test_import_kiln_as_torch_has_the_same_names():
    import kiln as torch

    for name in ("nn", "nn.functional", "nn.init", "nn.utils", "optim", "optim.lr_scheduler",
                 "utils", "utils.data", "backends.cudnn", "cuda", "autograd"):
        module = torch
        for part in name.split("."):
            module = getattr(module, part)
        assert module is importlib.import_module(run.MODULES[f"torch.{name}"])
    for name in ("device", "save", "load", "manual_seed", "no_grad", "from_numpy"):
        assert callable(getattr(torch, name))
    assert torch.autograd.Variable(torch.ones(2), requires_grad=True).requires_grad
    assert isinstance(torch.nn.DataParallel(torch.nn.Linear(1, 1)), torch.nn.Module)
