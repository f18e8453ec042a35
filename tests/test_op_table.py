"""Every row of tests/op_table.py against PyTorch: forward (values, dtype, shape, and
in-place updates of non-differentiable tensor arguments), backward (the gradient of every
differentiable input for a random upstream gradient), float64 gradcheck with kiln's own
kiln.autograd.gradcheck, and bad input (kiln's exception type and message; PyTorch
rejects the same call). Test ids read <row>-<sample>-<dtype>."""

from __future__ import annotations

import traceback
import warnings
import zlib
from typing import Any

import numpy as np
import pytest
from _helpers import arr, torch_or_skip
from op_table import F64, GRADCHECK_MAX_NUMEL, OPS, Const, Layout, Maker, OpRow, Sample, resolve

import kiln
from kiln.autograd import gradcheck

torch = torch_or_skip()


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread() -> Any:
    """PyTorch's reference on one thread: the table's inputs are tiny, and its thread pool
    only contends with kiln's (and other processes) for the cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ----------------------------------------------------------------------- building calls
class Built:
    """One library's arguments for a sample: the converted args/kwargs, the leaves that
    require grad and the Const tensors, both in argument order."""

    def __init__(self, row: OpRow, sample: Sample, lib: str, contiguous: bool = False) -> None:
        self.lib, self.row, self.contiguous = lib, row, contiguous
        self.leaves: list[Any] = []
        self.consts: list[Any] = []
        self.args = tuple(self._convert(a) for a in sample.args)
        self.kwargs = {k: self._convert(v) for k, v in sample.kwargs.items()}

    def _tensor(self, array: np.ndarray, grad: bool) -> Any:
        if self.lib == "kiln":
            t = kiln.from_numpy(array)
        else:
            t = torch.from_numpy(array)
        if grad:
            t.requires_grad_(True)
            self.leaves.append(t)
        return t

    def _convert(self, obj: Any) -> Any:
        if isinstance(obj, Const):
            t = self._tensor(np.array(obj.array), grad=False)
            self.consts.append(t)
            return t
        if isinstance(obj, Layout):
            array = np.array(obj.array) if self.contiguous else obj.materialize()
            return self._tensor(array, grad=self.row.differentiable)
        if isinstance(obj, np.ndarray):
            grad = self.row.differentiable and obj.dtype.kind == "f"
            return self._tensor(np.array(obj), grad=grad)
        if isinstance(obj, np.dtype):
            return obj if self.lib == "kiln" else getattr(torch, obj.name)
        if isinstance(obj, list):
            return [self._convert(o) for o in obj]
        if isinstance(obj, tuple):
            return tuple(self._convert(o) for o in obj)
        return obj

    def call(self) -> Any:
        spec = self.row.op if self.lib == "kiln" or self.row.torch_op is None else self.row.torch_op
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return resolve(spec, self.lib)(*self.args, **self.kwargs)


def outputs(result: Any) -> list[Any]:
    return list(result) if isinstance(result, (tuple, list)) else [result]


def assert_same(k: Any, t: Any, tol: tuple[float, float], what: str) -> None:
    """A kiln tensor equals a torch tensor: shape, dtype and values (exact for integer and
    bool results, within (rtol, atol) for floats; NaN where PyTorch has NaN)."""
    assert isinstance(k, kiln.Tensor), f"{what}: kiln returned {type(k).__name__}"
    kv, tv = arr(k), arr(t)
    assert kv.shape == tv.shape, f"{what}: shape {kv.shape}, torch {tv.shape}"
    assert kv.dtype == tv.dtype, f"{what}: dtype {kv.dtype}, torch {tv.dtype}"
    if kv.dtype.kind == "f":
        rtol, atol = tol
        np.testing.assert_allclose(kv, tv, rtol=rtol, atol=atol, equal_nan=True, err_msg=what)
    else:
        np.testing.assert_array_equal(kv, tv, err_msg=what)


def _seed(*parts: str) -> int:
    return zlib.crc32("/".join(parts).encode())


def _tol(row: OpRow, dtype: np.dtype) -> tuple[float, float]:
    return row.tol[np.dtype(dtype)]


# ----------------------------------------------------------------------- parametrization
def _samples(row: OpRow, dtype: Any) -> list[Sample]:
    samples = list(row.samples(Maker(dtype, _seed(row.name))))
    descs = [s.desc for s in samples]
    assert len(descs) == len(set(descs)), f"{row.name}: duplicate sample names {descs}"
    unknown = (set(row.xfail) | set(row.no_backward)) - set(descs)
    assert not unknown, f"{row.name}: xfail/no_backward name no sample: {unknown}"
    for sample in samples:
        sample.xfail = {**row.xfail.get(sample.desc, {}), **sample.xfail}
    return samples


def _numels(sample: Sample, differentiable: bool) -> list[int]:
    """Element counts of the arrays that become leaves requiring grad."""
    found: list[int] = []

    def walk(obj: Any) -> None:
        if isinstance(obj, Layout):
            found.append(obj.array.size)
        elif isinstance(obj, np.ndarray) and obj.dtype.kind == "f":
            found.append(obj.size)
        elif isinstance(obj, (list, tuple)):
            for o in obj:
                walk(o)

    if differentiable:
        for a in (*sample.args, *sample.kwargs.values()):
            walk(a)
    return found


def _param(kind: str, row: OpRow, sample: Sample, dtype: Any) -> Any:
    marks = []
    if kind in sample.xfail:
        marks.append(pytest.mark.xfail(strict=True, reason=sample.xfail[kind]))
    return pytest.param(row, sample, np.dtype(dtype), marks=marks,
                        id=f"{row.name}-{sample.desc}-{np.dtype(dtype).name}")


def _params(kind: str) -> list[Any]:
    out = []
    for row in OPS:
        dtypes = (F64,) if kind == "gradcheck" else row.dtypes
        if kind != "forward" and not row.differentiable:
            continue
        if kind == "gradcheck" and not row.gradcheck:
            continue
        for dtype in dtypes:
            for sample in _samples(row, dtype):
                numels = _numels(sample, row.differentiable)
                if kind == "backward" and (not numels or sample.desc in row.no_backward):
                    continue
                if kind == "gradcheck" and (not sample.gradcheck or not 0 < sum(numels)
                                            or sum(numels) > GRADCHECK_MAX_NUMEL):
                    continue
                out.append(_param(kind, row, sample, dtype))
    return out


def _error_params() -> list[Any]:
    out = []
    for row in OPS:
        for case in row.errors(Maker(np.float32, _seed(row.name, "errors"))):
            marks = [pytest.mark.xfail(strict=True, reason=case.xfail)] if case.xfail else []
            out.append(pytest.param(row, case, marks=marks, id=f"{row.name}-{case.desc}"))
    return out


# ----------------------------------------------------------------------- the tests
def one_frame(check: Any, *args: Any) -> None:
    """Runs a check; a failure is re-raised as one AssertionError carrying the original
    traceback as text. pytest otherwise re-parses every source file on the failing stack
    for each failure, which made the table's strict xfails cost seconds."""
    try:
        check(*args)
    except (Exception, pytest.fail.Exception) as error:  # reported in full below
        text = f"{type(error).__name__}: {error}\n\n{traceback.format_exc()}"
    else:
        return
    raise AssertionError(text) from None

@pytest.mark.parametrize("row, sample, dtype", _params("forward"))
def test_forward(row: OpRow, sample: Sample, dtype: np.dtype) -> None:
    one_frame(check_forward, row, sample, dtype)


def check_forward(row: OpRow, sample: Sample, dtype: np.dtype) -> None:
    kb, tb = Built(row, sample, "kiln"), Built(row, sample, "torch")
    for k, t in zip(kb.leaves, tb.leaves):  # the layout under test really is there
        assert k.is_contiguous() == t.is_contiguous()
    kout, tout = outputs(kb.call()), outputs(tb.call())
    assert len(kout) == len(tout), f"{len(kout)} outputs, torch {len(tout)}"
    tol = _tol(row, dtype)
    for i, (k, t) in enumerate(zip(kout, tout)):
        assert_same(k, t, tol, f"output {i}")
        assert k.requires_grad == t.requires_grad, f"output {i} requires_grad"
    for i, (k, t) in enumerate(zip(kb.consts, tb.consts)):
        assert_same(k, t, tol, f"tensor argument {i} after the call (in-place update)")


@pytest.mark.parametrize("row, sample, dtype", _params("backward"))
def test_backward(row: OpRow, sample: Sample, dtype: np.dtype) -> None:
    one_frame(check_backward, row, sample, dtype)


def check_backward(row: OpRow, sample: Sample, dtype: np.dtype) -> None:
    kb, tb = Built(row, sample, "kiln"), Built(row, sample, "torch")
    kout, tout = outputs(kb.call()), outputs(tb.call())
    rng = np.random.default_rng(_seed(row.name, sample.desc))
    pairs = [(k, t) for k, t in zip(kout, tout) if t.requires_grad]
    assert [k.requires_grad for k in kout] == [t.requires_grad for t in tout]
    if not pairs:  # no output depends on a leaf requiring grad
        return
    grads = [rng.standard_normal(tuple(t.shape)).astype(arr(t).dtype) for _, t in pairs]
    with warnings.catch_warnings():  # NumPy's RuntimeWarnings at NaN/inf/0 (special values)
        warnings.simplefilter("ignore", RuntimeWarning)
        if len(pairs) == 1:
            pairs[0][0].backward(kiln.tensor(grads[0]))
            pairs[0][1].backward(torch.from_numpy(grads[0]))
        else:
            sum((k * kiln.tensor(g)).sum() for (k, _), g in zip(pairs, grads)).backward()
            sum((t * torch.from_numpy(g)).sum() for (_, t), g in zip(pairs, grads)).backward()
    tol = _tol(row, dtype)
    for i, (k, t) in enumerate(zip(kb.leaves, tb.leaves)):
        tg = torch.zeros_like(t) if t.grad is None else t.grad
        assert k.grad is not None or t.grad is None or not tg.any(), f"input {i}: no gradient"
        kg = kiln.zeros_like(k) if k.grad is None else k.grad
        assert_same(kg, tg, tol, f"gradient of input {i}")


@pytest.mark.parametrize("row, sample, dtype", _params("gradcheck"))
def test_gradcheck(row: OpRow, sample: Sample, dtype: np.dtype) -> None:
    one_frame(check_gradcheck, row, sample, dtype)


def check_gradcheck(row: OpRow, sample: Sample, dtype: np.dtype) -> None:
    kb = Built(row, sample, "kiln", contiguous=True)  # gradcheck perturbs the buffer in place
    assert gradcheck(lambda *_: kb.call(), kb.leaves, eps=1e-6, atol=1e-5, rtol=1e-3)


@pytest.mark.parametrize("row, case", _error_params())
def test_bad_input(row: OpRow, case: Any) -> None:
    one_frame(check_bad_input, row, case)


def check_bad_input(row: OpRow, case: Any) -> None:
    sample = Sample(case.desc, *case.args, **case.kwargs)
    with pytest.raises(case.exc, match=case.match):
        Built(row, sample, "kiln").call()
    if case.torch_raises:
        with pytest.raises(Exception):  # noqa: B017 (PyTorch's types differ from kiln's)
            Built(row, sample, "torch").call()


def test_table_names_every_row_once() -> None:
    names = [row.name for row in OPS]
    assert len(names) == len(set(names))
