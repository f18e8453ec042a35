# ruff: noqa: E501
"""Runs PyTorch's own test databases against kiln and prints every disagreement: the
sample inputs of op_db (torch.testing._internal.common_methods_invocations) for each op
kiln has, forward values/dtypes/shapes and gradients of a random upstream gradient, plus
op_db's error inputs that kiln fails to reject; and module_db's module inputs for each
kiln.nn module (weights copied from PyTorch's module, outputs, buffers and gradients).

Not a test (the judges' databases need the `expecttest` package, which CI does not
install): a probe to find cases for tests/op_table.py. Usage, from the repository root:

    pip install --target /tmp/xt expecttest
    PYTHONPATH=/tmp/xt:<kiln on the path> python tests/tools/opdb_probe.py [ops|modules] [name ...]
"""

import operator
import sys
import warnings
from collections import defaultdict

import numpy as np
import torch
from torch.testing._internal.common_methods_invocations import op_db
from torch.testing._internal.common_modules import module_db

import kiln
import kiln.nn.functional as F

warnings.simplefilter("ignore")
torch.set_num_threads(1)

OPER = {
    "add": operator.add,
    "sub": operator.sub,
    "mul": operator.mul,
    "div": operator.truediv,
    "true_divide": operator.truediv,
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
    "neg": operator.neg,
    "positive": operator.pos,
    "__getitem__": operator.getitem,
    "__radd__": None,
}


# ops whose forward draws random numbers: kiln's stream is not PyTorch's, so only the
# shape and dtype of their outputs are compared, and no gradients
RANDOM = {"nn.functional.dropout", "nn.functional.dropout2d"}


def kiln_callable(o):
    name = o.name
    if o.variant_test_name and name == "div" and o.variant_test_name != "no_rounding_mode":
        return None
    if name.startswith("nn.functional."):
        f = getattr(F, name[len("nn.functional.") :], None)
        return f
    if name == "zero_":  # op_db's op zeroes a clone of the leaf
        return lambda x: x.clone().zero_()
    if name in ("T", "mT", "H"):
        return (lambda x: x.T) if name == "T" else None
    if name in ("where",):
        return lambda x, cond, other: kiln.where(cond, x, other)
    if name in ("cat", "stack", "matmul"):
        return getattr(kiln, name)
    if name in OPER and OPER[name] is not None:
        f = OPER[name]
        if name in ("add", "sub"):
            return lambda x, y, alpha=1: f(x, y * alpha if alpha != 1 else y)
        return f
    if hasattr(kiln.Tensor, name) and not name.startswith("_"):
        return lambda x, *a, **k: getattr(x, name)(*a, **k)
    return None


def to_kiln(obj, leaves):
    if isinstance(obj, torch.Tensor):
        t = kiln.tensor(obj.detach().numpy().copy())
        if obj.requires_grad and obj.dtype.is_floating_point:
            t.requires_grad_(True)
            leaves.append((obj, t))
        return t
    if isinstance(obj, list):
        return [to_kiln(o, leaves) for o in obj]
    if isinstance(obj, tuple):
        return tuple(to_kiln(o, leaves) for o in obj)
    if isinstance(obj, dict):
        return {k: to_kiln(v, leaves) for k, v in obj.items()}
    if isinstance(obj, torch.dtype):
        return np.dtype(str(obj).replace("torch.", ""))
    return obj


def flat(out):
    return list(out) if isinstance(out, (tuple, list)) else [out]


def close(k, t, tol, values=True):
    kv = k.detach().numpy() if isinstance(k, kiln.Tensor) else np.asarray(k)
    tv = t.detach().numpy()
    if kv.shape != tv.shape:
        return f"shape {kv.shape} vs {tv.shape}"
    if kv.dtype != tv.dtype:
        return f"dtype {kv.dtype} vs {tv.dtype}"
    if not values:
        return None
    if kv.dtype.kind == "f":
        if not np.allclose(kv, tv, rtol=tol, atol=tol, equal_nan=True):
            return f"values maxdiff {np.nanmax(np.abs(kv - tv)) if kv.size else 0}"
    elif not np.array_equal(kv, tv):
        return "values differ"
    return None


def brief(sample):
    def d(x):
        if isinstance(x, torch.Tensor):
            return f"T{tuple(x.shape)}{'' if x.is_contiguous() else 'nc'}:{str(x.dtype)[6:]}"
        if isinstance(x, (list, tuple)):
            return type(x)(d(i) for i in x)
        return x

    return f"input={d(sample.input)} args={d(sample.args)} kwargs={ {k: d(v) for k, v in sample.kwargs.items()} }"


import kiln.nn as knn  # noqa: E402


def probe_inplace(o, full, report):
    """op_db's in-place variant (add_, mul_, ...) against kiln's method of that name, on
    inputs that do not require grad: the result and the mutated self."""
    name = getattr(o.inplace_variant, "__name__", None)
    if name is None or not hasattr(kiln.Tensor, name):
        return
    for dtype in (torch.float32, torch.float64, torch.int64, torch.bool):
        if dtype not in o.supported_dtypes("cpu"):
            continue
        for s in o.sample_inputs("cpu", dtype, requires_grad=False):
            if not isinstance(s.input, torch.Tensor):
                continue
            kin = to_kiln(s.input, [])
            kargs, kkw = to_kiln(s.args, []), to_kiln(s.kwargs, [])
            t_self = s.input.clone()
            try:
                tout = o.inplace_variant(t_self, *s.args, **s.kwargs)
            except Exception as e:
                try:
                    getattr(kin, name)(*kargs, **kkw)
                except Exception:
                    continue
                report[full + " (in-place)"].append(
                    f"[{dtype}] not rejected: torch {type(e).__name__}: {str(e)[:100]} | {brief(s)}")
                continue
            try:
                kout = getattr(kin, name)(*kargs, **kkw)
            except Exception as e:
                report[full + " (in-place)"].append(
                    f"[{dtype}] kiln raised {type(e).__name__}: {str(e)[:150]} | {brief(s)}")
                continue
            for what, k, t in (("result", kout, tout), ("self", kin, t_self)):
                msg = close(k, t, 1e-5)
                if msg:
                    report[full + " (in-place)"].append(f"[{dtype}] {what}: {msg} | {brief(s)}")


def probe_ops(only):
    report = defaultdict(list)
    for o in op_db:
        if only and o.name not in only:
            continue
        kf = kiln_callable(o)
        if kf is None:
            continue
        full = o.name + ("." + o.variant_test_name if o.variant_test_name else "")
        supported = o.supported_dtypes("cpu")
        for dtype in (torch.float32, torch.float64, torch.int64, torch.int32, torch.uint8, torch.bool):
            if dtype not in supported:
                continue
            tol = 1e-4 if dtype == torch.float32 else 1e-7
            grad = o.supports_autograd and dtype.is_floating_point
            try:
                samples = list(o.sample_inputs("cpu", dtype, requires_grad=grad))
            except Exception as e:
                report[full].append(f"sample gen failed {e}")
                continue
            for s in samples:
                leaves = []
                try:
                    kin = to_kiln(s.input, leaves)
                    kargs = to_kiln(s.args, leaves)
                    kkw = to_kiln(s.kwargs, leaves)
                except Exception as e:
                    report[full].append(f"convert {e}")
                    continue
                try:
                    tout = o.op(s.input, *s.args, **s.kwargs)
                except Exception:
                    continue
                try:
                    kout = kf(kin, *kargs, **kkw)
                except Exception as e:
                    report[full].append(
                        f"[{dtype}] kiln raised {type(e).__name__}: {str(e)[:150]} | {brief(s)}"
                    )
                    continue
                tl, kl = flat(tout), flat(kout)
                if len(tl) != len(kl):
                    report[full].append(f"[{dtype}] n outputs {len(kl)} vs {len(tl)} | {brief(s)}")
                    continue
                bad = False
                for i, (k, t) in enumerate(zip(kl, tl)):
                    if not isinstance(t, torch.Tensor):
                        continue
                    msg = close(k, t, tol, values=o.name not in RANDOM)
                    if msg:
                        report[full].append(f"[{dtype}] fwd out{i}: {msg} | {brief(s)}")
                        bad = True
                if bad:
                    continue
                pairs = [
                    (k, t)
                    for k, t in zip(kl, tl)
                    if isinstance(t, torch.Tensor) and t.requires_grad
                ]
                if not pairs or not leaves or o.name in RANDOM:
                    continue
                gs = [torch.randn_like(t) for _, t in pairs]
                try:
                    tgrads = torch.autograd.grad(
                        [t for _, t in pairs], [tl_ for tl_, _ in leaves], gs, allow_unused=True
                    )
                except Exception:
                    continue
                try:
                    tot = None
                    for (k, _), g in zip(pairs, gs):
                        term = (k * kiln.tensor(g.numpy())).sum()
                        tot = term if tot is None else tot + term
                    tot.backward()
                except Exception as e:
                    report[full].append(
                        f"[{dtype}] kiln backward raised {type(e).__name__}: {str(e)[:150]} | {brief(s)}"
                    )
                    continue
                for i, ((_, kleaf), tg) in enumerate(zip(leaves, tgrads)):
                    if tg is None:
                        continue
                    kg = kleaf.grad if kleaf.grad is not None else kiln.zeros_like(kleaf)
                    msg = close(kg, tg, tol * 10)
                    if msg:
                        report[full].append(f"[{dtype}] grad{i}: {msg} | {brief(s)}")
        probe_inplace(o, full, report)
        # error inputs
        if o.error_inputs_func is not None and dtype:
            try:
                errs = list(o.error_inputs("cpu"))
            except Exception:
                errs = []
            for e in errs:
                s = e.sample_input
                if not isinstance(s.input, (torch.Tensor, list, tuple)):
                    continue  # torch.eq(2, t): the operator form reflects, kiln has no function
                leaves = []
                try:
                    kout = kf(
                        to_kiln(s.input, leaves),
                        *to_kiln(s.args, leaves),
                        **to_kiln(s.kwargs, leaves),
                    )
                except Exception:
                    continue
                report[full].append(
                    f"ERROR-INPUT not rejected: torch {e.error_type.__name__} /{e.error_regex}/ | {brief(s)}"
                )
    return report


def probe_modules(only):
    report = defaultdict(list)
    counts = defaultdict(int)
    for mi in module_db:
        name = mi.module_cls.__name__
        kcls = getattr(knn, name, None)
        if kcls is None or (only and name not in only):
            continue
        for dtype in (torch.float32, torch.float64):
            tol = 1e-4 if dtype == torch.float32 else 1e-7
            for training in (True, False):
                try:
                    inputs = mi.module_inputs_func(
                        mi, device="cpu", dtype=dtype, requires_grad=True, training=training
                    )
                except Exception as e:
                    report[name].append(f"gen failed {e}")
                    continue
                for inp in inputs:
                    if inp.forward_input is None:
                        continue
                    ca, ckw = inp.constructor_input.args, inp.constructor_input.kwargs
                    desc = f"[{str(dtype)[6:]} train={training}] ctor={ca} {ckw} fwd={[tuple(a.shape) if isinstance(a, torch.Tensor) else a for a in inp.forward_input.args]} {inp.forward_input.kwargs}"
                    try:
                        torch.manual_seed(0)
                        tm = mi.module_cls(*ca, **ckw).to(dtype)
                        tm.train(training)
                    except Exception:
                        continue
                    try:
                        km = kcls(*to_kiln(ca, []), **to_kiln(ckw, []))
                        km.to(np.dtype(str(dtype)[6:]))
                        sd = {
                            k: kiln.tensor(v.detach().numpy().copy())
                            for k, v in tm.state_dict().items()
                        }
                        km.load_state_dict(sd)
                        km.train(training)
                    except Exception as e:
                        report[name].append(
                            f"ctor/load raised {type(e).__name__}: {str(e)[:150]} | {desc}"
                        )
                        continue
                    fi = inp.forward_input
                    try:
                        tout = tm(*fi.args, **fi.kwargs)
                    except Exception:
                        continue
                    counts[name] += 1
                    leaves = []
                    try:
                        kout = km(*to_kiln(fi.args, leaves), **to_kiln(fi.kwargs, leaves))
                    except Exception as e:
                        report[name].append(
                            f"fwd raised {type(e).__name__}: {str(e)[:150]} | {desc}"
                        )
                        continue
                    tl, kl = flat(tout), flat(kout)
                    bad = False
                    for i, (k, t) in enumerate(zip(kl, tl)):
                        msg = close(k, t, tol)
                        if msg:
                            report[name].append(f"fwd out{i}: {msg} | {desc}")
                            bad = True
                    if bad:
                        continue
                    # buffers after forward (running stats)
                    for (bn, tb), kb in zip(tm.named_buffers(), [b for _, b in km.named_buffers()]):
                        msg = close(kb, tb, tol)
                        if msg:
                            report[name].append(f"buffer {bn}: {msg} | {desc}")
                    pairs = [(k, t) for k, t in zip(kl, tl) if t.requires_grad]
                    if not pairs:
                        continue
                    gs = [torch.randn_like(t) for _, t in pairs]
                    tparams = list(tm.parameters())
                    kparams = list(km.parameters())
                    tleaves = [t for t, _ in leaves] + tparams
                    tg = torch.autograd.grad([t for _, t in pairs], tleaves, gs, allow_unused=True)
                    try:
                        tot = None
                        for (k, _), g in zip(pairs, gs):
                            term = (k * kiln.tensor(g.numpy())).sum()
                            tot = term if tot is None else tot + term
                        tot.backward()
                    except Exception as e:
                        report[name].append(
                            f"bwd raised {type(e).__name__}: {str(e)[:150]} | {desc}"
                        )
                        continue
                    kleaves = [k for _, k in leaves] + kparams
                    for i, (kleaf, g) in enumerate(zip(kleaves, tg)):
                        if g is None:
                            continue
                        kg = kleaf.grad if kleaf.grad is not None else kiln.zeros_like(kleaf)
                        msg = close(kg, g, tol * 10)
                        if msg:
                            report[name].append(f"grad{i}: {msg} | {desc}")
    print(dict(counts))
    return report


def show(report):
    for k, v in report.items():
        print(f"== {k}: {len(v)}")
        seen = set()
        for line in v:
            if line[:60] in seen:
                continue
            seen.add(line[:60])
            print("   ", line[:420])


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "ops"
    if what not in ("ops", "modules"):
        sys.exit(__doc__)
    names = set(sys.argv[2:])
    show(probe_ops(names) if what == "ops" else probe_modules(names))
