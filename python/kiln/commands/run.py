"""``kiln run``: a program written for PyTorch, with kiln standing in for it.

    kiln run train.py --epochs 3

is ``python train.py --epochs 3`` with ``import torch`` (and the torchvision pieces
kiln has) answered by kiln (``kiln.run`` holds the import hook and its table). The
script's exit code is the command's; an exception it does not catch prints its
traceback and exits with 1, as Python does.
"""

from __future__ import annotations

import argparse
import traceback
from pathlib import Path
from typing import Any

from kiln.commands._shared import UsageError
from kiln.run import run_script


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "run", help="run a program written for PyTorch on kiln",
        description="Run SCRIPT as `python SCRIPT ARGS...` would, with kiln standing in for "
        "torch and torchvision (torch.nn, torch.optim, torch.utils.data, ...); whatever kiln "
        "lacks fails where it is used with \"kiln does not support torch.X yet\".")
    parser.add_argument("script", help="the Python program")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="its arguments")
    parser.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    if not Path(args.script).is_file():
        raise UsageError(f"cannot open {args.script}: no such file")
    try:
        run_script(args.script, args.args)
    except Exception:  # the script's own: its traceback and exit code 1, as `python` does
        traceback.print_exc()
        return 1
    return 0
