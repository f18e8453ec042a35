"""Runs a program written for PyTorch with kiln standing in for it.

    kiln run train.py --epochs 3          (or: python -m kiln.run train.py --epochs 3)

runs ``train.py`` as ``python train.py --epochs 3`` would (``__name__ == "__main__"``,
``sys.argv``, the script's folder first on ``sys.path``; exceptions and exit codes
come out as they would), after installing an import hook first on ``sys.meta_path``
that answers ``import torch...`` and ``import torchvision...`` with kiln's modules:

    torch                     kiln
    torch.nn (.functional, .init, .utils)            kiln.nn (...)
    torch.optim, torch.optim.lr_scheduler            kiln.optim, kiln.optim.lr_scheduler
    torch.utils.data (.dataset, .sampler, .dataloader)   kiln.utils.data (...)
    torch.backends.cudnn, torch.cuda, torch.autograd     kiln.backends.cudnn, kiln.cuda, ...
    torchvision (.transforms, .datasets, .models, .utils)   kiln.vision (...)
    torchvision.transforms.functional                kiln.vision.functional

Anything else under torch or torchvision fails where it is used, never by falling
back to the real PyTorch (even when it is installed): importing an unmapped module
(or ``from torch.nn import X`` of a name kiln lacks) raises ImportError, and reading
a name kiln lacks from a mapped module raises AttributeError, both "kiln does not
support torch.X.Y yet". The mapped modules are aliases: ``torch.nn.Conv2d is
kiln.nn.Conv2d``.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import runpy
import sys
import types
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["MODULES", "install", "main", "run_script", "standing_in", "uninstall"]

# torch/torchvision module -> the kiln module standing in for it (None: an empty package).
MODULES: dict[str, str | None] = {
    "torch": "kiln",
    "torch.nn": "kiln.nn",
    "torch.nn.functional": "kiln.nn.functional",
    "torch.nn.init": "kiln.nn.init",
    "torch.nn.utils": "kiln.nn.utils",
    "torch.optim": "kiln.optim",
    "torch.optim.lr_scheduler": "kiln.optim.lr_scheduler",
    "torch.utils": "kiln.utils",
    "torch.utils.data": "kiln.utils.data",
    "torch.utils.data.dataset": "kiln.data.dataset",
    "torch.utils.data.sampler": "kiln.utils.data.sampler",
    "torch.utils.data.dataloader": "kiln.utils.data.dataloader",
    "torch.backends": "kiln.backends",
    "torch.backends.cudnn": "kiln.backends.cudnn",
    "torch.cuda": "kiln.cuda",
    "torch.autograd": "kiln.autograd",
    "torchvision": "kiln.vision",
    "torchvision.transforms": "kiln.vision.transforms",
    "torchvision.transforms.functional": "kiln.vision.functional",
    "torchvision.datasets": "kiln.vision.datasets",
    "torchvision.models": "kiln.vision.models",
    "torchvision.utils": "kiln.vision.utils",
}
_ROOTS = ("torch", "torchvision")


def _unsupported(name: str) -> str:
    return f"kiln does not support {name} yet"


class _Alias(types.ModuleType):
    """``torch.X`` standing for a kiln module: its names are the kiln module's, except
    that a name kiln lacks, or a kiln submodule with no torch counterpart, raises
    AttributeError naming the torch name."""

    def __init__(self, name: str, target: types.ModuleType | None) -> None:
        super().__init__(name, None if target is None else target.__doc__)
        self.__path__: list[str] = []  # a package, so that its submodules can be imported
        self.__dict__["_kiln_target"] = target

    def __getattr__(self, attr: str) -> Any:
        full = f"{self.__name__}.{attr}"
        if full in MODULES:
            return importlib.import_module(full)
        target = self.__dict__["_kiln_target"]
        if attr == "__all__":
            return [n for n in getattr(target, "__all__", ()) if self._allowed(target, n)]
        if attr.startswith("__"):
            if target is None:
                raise AttributeError(attr)
            return getattr(target, attr)
        if target is None or not self._allowed(target, attr):
            raise AttributeError(_unsupported(full))
        return getattr(target, attr)

    def __setattr__(self, attr: str, value: Any) -> None:
        # `torch.backends.cudnn.benchmark = True` sets kiln's flag; the import system's
        # own entries (dunders, the aliases of submodules) stay on the alias.
        target = self.__dict__.get("_kiln_target")
        if target is None or attr.startswith("__") or f"{self.__name__}.{attr}" in MODULES:
            super().__setattr__(attr, value)
        else:
            setattr(target, attr, value)

    def _allowed(self, target: types.ModuleType, attr: str) -> bool:
        value = getattr(target, attr, _MISSING)
        if isinstance(value, types.ModuleType):  # only the mapped submodules
            return f"{self.__name__}.{attr}" in MODULES
        return value is not _MISSING

    def __dir__(self) -> list[str]:
        target = self.__dict__["_kiln_target"]
        names = [] if target is None else [n for n in dir(target) if self._allowed(target, n)]
        children = [m.rpartition(".")[2] for m in MODULES if m.rpartition(".")[0] == self.__name__]
        return sorted({*names, *children})


_MISSING = object()


class _Loader(importlib.abc.Loader):
    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        target = MODULES[spec.name]
        return _Alias(spec.name, None if target is None else importlib.import_module(target))

    def exec_module(self, module: types.ModuleType) -> None:
        pass  # the alias is complete when made


class _Finder(importlib.abc.MetaPathFinder):
    """Answers every import under torch and torchvision: a kiln alias or an error."""

    def find_spec(self, fullname: str, path: Any = None,
                  target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname.partition(".")[0] not in _ROOTS:
            return None
        if fullname not in MODULES:
            # ImportError, not ModuleNotFoundError: `from torch.nn import X` would turn the
            # latter into Python's generic "cannot import name" and lose the torch name.
            raise ImportError(_unsupported(fullname), name=fullname)
        spec = importlib.machinery.ModuleSpec(fullname, _Loader(), is_package=True)
        spec.submodule_search_locations = []
        return spec


def _is_torch(name: str) -> bool:
    return name.partition(".")[0] in _ROOTS


_saved: dict[str, types.ModuleType] = {}


def install() -> None:
    """Puts the hook first on ``sys.meta_path`` and takes any torch/torchvision modules
    already imported out of ``sys.modules`` (kept for ``uninstall``), so that every
    later ``import torch...`` gets kiln. Installing twice is harmless."""
    if any(isinstance(f, _Finder) for f in sys.meta_path):
        return
    for name in [n for n in sys.modules if _is_torch(n)]:
        _saved[name] = sys.modules.pop(name)
    sys.meta_path.insert(0, _Finder())


def uninstall() -> None:
    """Removes the hook and the aliases, and restores the modules ``install`` took out."""
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _Finder)]
    for name in [n for n in sys.modules if _is_torch(n)]:
        del sys.modules[name]
    sys.modules.update(_saved)
    _saved.clear()


@contextmanager
def standing_in() -> Iterator[None]:
    """``install()`` for the duration of a ``with`` block."""
    install()
    try:
        yield
    finally:
        uninstall()


def run_script(script: str, args: Sequence[str] = ()) -> None:
    """Runs ``script`` as ``python script args...`` would, with the hook installed.
    Raises FileNotFoundError if there is no such file; the script's own exceptions
    (SystemExit included) propagate unchanged."""
    path = Path(script)
    if not path.is_file():
        raise FileNotFoundError(f"can't open file {str(path.resolve())!r}: no such file")
    install()
    sys.argv = [script, *args]
    sys.path[0:1] = [str(path.resolve().parent)]  # where `python script.py` looks first
    runpy.run_path(script, run_name="__main__")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m kiln.run SCRIPT [ARGS...]``; returns 2 on a usage error."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m kiln.run SCRIPT [ARGS...]\n\nRuns a program written for "
              "PyTorch with kiln standing in for torch and torchvision.",
              file=sys.stderr if not argv else sys.stdout)
        return 2 if not argv else 0
    try:
        run_script(argv[0], argv[1:])
    except FileNotFoundError as error:
        if Path(argv[0]).is_file():
            raise
        print(f"{sys.executable}: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
