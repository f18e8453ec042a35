"""``kiln export CHECKPOINT --onnx model.onnx``: a `kiln train` checkpoint as an ONNX model.

The model is rebuilt from the run config stored in the checkpoint (as ``kiln eval``
does), loaded, traced in eval mode at batch 2 and written with a symbolic batch
dimension. The input normalization the run trained with and the class count go into
the model's metadata (``kiln.normalize_mean``, ``kiln.normalize_std``,
``kiln.num_classes``). With onnxruntime installed the file is run once on random
images at batch 3 and compared with kiln's outputs.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np

import kiln
from kiln.checkpoint import load_checkpoint
from kiln.commands._shared import UsageError, _build_model, _read_checkpoint_extra
from kiln.data._atomic import atomic_write


def _input_size(args: argparse.Namespace, config: dict[str, Any]) -> tuple[int, int]:
    if args.input_size is not None:
        parts = args.input_size.lower().replace("x", ",").split(",")
        try:
            h, w = (int(parts[0]), int(parts[-1])) if len(parts) <= 2 else (0, 0)
        except ValueError:
            h = w = 0
        if h < 1 or w < 1:
            raise UsageError(f"--input-size must be N or H,W with positive ints, got "
                             f"{args.input_size!r}")
        return h, w
    size = int(config["model_config"].get("input_size", 32))
    return size, size


def _verify(model: Any, path: str, shape: tuple[int, ...]) -> float | None:
    """Max abs difference between onnxruntime and kiln at batch 3 (None without ort)."""
    try:
        import onnxruntime
    except ImportError:
        return None

    x = np.random.default_rng(0).standard_normal((3, *shape)).astype(np.float32)
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    model.eval()
    with kiln.no_grad():
        expected = model(kiln.tensor(x)).numpy()
    return float(np.abs(got - expected).max())


def cmd_export(args: argparse.Namespace) -> int:
    if args.onnx is None:
        raise UsageError("nothing to export to: pass --onnx FILE")
    config = _read_checkpoint_extra(args.checkpoint)
    model = _build_model(config)
    load_checkpoint(args.checkpoint, model)
    channels = int(config["model_config"].get("in_channels", 1))
    shape = (channels, *_input_size(args, config))
    import onnx

    proto = kiln.onnx.export(model, kiln.zeros(2, *shape), None, opset=args.opset)
    mean, std = config.get("normalize", (None, None))
    onnx.helper.set_model_props(proto, {
        "kiln.model": str(config["model"]),
        "kiln.num_classes": str(config.get("num_classes", "")),
        "kiln.normalize_mean": json.dumps(mean),
        "kiln.normalize_std": json.dumps(std),
    })

    with atomic_write(args.onnx) as handle:
        handle.write(proto.SerializeToString())
    print(f"kiln export: {config['model']} from {args.checkpoint} -> {args.onnx} (opset "
          f"{args.opset}, IR {proto.ir_version}, input (batch, {', '.join(map(str, shape))}), "
          f"{len(proto.graph.node)} nodes)")
    diff = _verify(model, args.onnx, shape)
    if diff is None:
        print("onnxruntime is not installed: the file was not run (pip install onnxruntime)")
    else:
        print(f"onnxruntime at batch 3: max abs difference from kiln {diff:.2e}")
        if not diff <= args.tolerance:
            print(f"kiln export: error: difference above --tolerance {args.tolerance:g}")
            return 1
    return 0


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "export", help="export a checkpoint's model (ONNX)",
        description="Rebuilds the model of a `kiln train` checkpoint and writes it as ONNX "
        "(symbolic batch dimension; input normalization in the metadata), then checks the "
        "file in onnxruntime when it is installed. Needs kiln[onnx].")
    parser.add_argument("checkpoint", help="a .safetensors checkpoint written by kiln train")
    parser.add_argument("--onnx", metavar="FILE", help="the ONNX file to write")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    parser.add_argument("--input-size", metavar="H,W", help="image size to trace at (default: "
                        "the model's own, else 32; the zoo's pooled models accept any)")
    parser.add_argument("--tolerance", type=float, default=1e-4, help="largest accepted "
                        "difference from kiln in the onnxruntime check (default 1e-4)")
    parser.set_defaults(func=cmd_export)
