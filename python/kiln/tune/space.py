"""Search spaces: the range of each hyperparameter and how to draw from it.

    space = {"lr": loguniform(1e-4, 1e-1), "weight_decay": loguniform(1e-6, 1e-2),
             "batch_size": randint(32, 257, log=True), "optimizer": choice(["adam", "sgd"])}

A space maps names to distributions (or to plain values, which stay fixed). Ranges on a
log scale are sampled, gridded, narrowed and checked for edges in log space, as the
lectures recommend for learning rates and regularization strengths. ``parse_spec`` reads
the command-line form: ``1e-4:1e-1:log``, ``0:0.5``, ``32:256:int``, ``adam,sgd``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from kiln._checks import int_arg

__all__ = ["Choice", "Distribution", "Float", "Int", "choice", "grid", "loguniform",
           "parse_spec", "randint", "sample_space", "uniform"]


def _number(op: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{op}: {name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{op}: {name} must be finite, got {value}")
    return float(value)


class Distribution:
    """One hyperparameter's range. ``sample(rng)`` draws a value; ``grid(points)`` lists
    the values a grid search tries; ``narrowed(values, best)`` is the range a finer
    stage searches around the best trials' ``values``; ``position(value)`` is where a
    value sits in the range, 0 at the low end and 1 at the high end (None: unordered)."""

    log: bool = False

    def sample(self, rng: np.random.Generator) -> Any:
        raise NotImplementedError

    def grid(self, points: int) -> list[Any]:
        raise NotImplementedError

    def narrowed(self, values: Sequence[Any], best: Any, min_width: float) -> Distribution:
        raise NotImplementedError

    def position(self, value: Any) -> float | None:
        return None

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError


class Float(Distribution):
    """Real values in [low, high], uniform or (``log=True``) log-uniform."""

    kind = "float"

    def __init__(self, low: float, high: float, log: bool = False) -> None:
        op = "loguniform" if log else "uniform"
        low, high = _number(op, "low", low), _number(op, "high", high)
        if not low < high:
            raise ValueError(f"{op}: low must be below high, got low={low:g} high={high:g}")
        if log and low <= 0:
            raise ValueError(f"{op}: a log range needs low > 0, got low={low:g}")
        self.low, self.high, self.log = low, high, bool(log)

    def _to(self, value: float) -> float:
        return math.log(value) if self.log else float(value)

    def _from(self, t: float) -> float:
        return math.exp(t) if self.log else t

    def _clip(self, value: float) -> Any:
        return min(max(value, self.low), self.high)

    def sample(self, rng: np.random.Generator) -> Any:
        return self._clip(self._from(rng.uniform(self._to(self.low), self._to(self.high))))

    def grid(self, points: int) -> list[Any]:
        ts = np.linspace(self._to(self.low), self._to(self.high), max(int(points), 2))
        return list(dict.fromkeys(self._clip(self._from(float(t))) for t in ts))

    def position(self, value: Any) -> float | None:
        lo, hi = self._to(self.low), self._to(self.high)
        return (self._to(value) - lo) / (hi - lo)

    def _bounds(self, values: Sequence[Any], best: Any, min_width: float
                ) -> tuple[float, float]:
        """The narrowed range in transformed units: the span of ``values`` plus a margin
        of a tenth of it on each side, at least ``min_width`` of this range wide and
        centred on ``best`` where it has to be widened, shifted back inside this range."""
        lo, hi = self._to(self.low), self._to(self.high)
        ts = [self._to(v) for v in values] + [self._to(best)]
        a, b = min(ts), max(ts)
        margin = 0.1 * (b - a)
        a, b = a - margin, b + margin
        width = max(b - a, min_width * (hi - lo))
        if width > b - a:
            centre = self._to(best)
            a, b = centre - width / 2, centre + width / 2
        if a < lo:
            a, b = lo, min(hi, lo + width)
        if b > hi:
            a, b = max(lo, hi - width), hi
        return a, b

    def narrowed(self, values: Sequence[Any], best: Any, min_width: float) -> Distribution:
        a, b = self._bounds(values, best, min_width)
        return Float(self._from(a), self._from(b), self.log)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "low": self.low, "high": self.high, "log": self.log}

    def __repr__(self) -> str:
        return f"{'loguniform' if self.log else 'uniform'}({self.low:g}, {self.high:g})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Distribution) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]


class Int(Float):
    """Integers from low to high inclusive, uniform or (``log=True``) log-uniform."""

    kind = "int"

    def __init__(self, low: int, high: int, log: bool = False) -> None:
        for name, value in (("low", low), ("high", high)):
            int_arg("randint", name, value)
        if log and low < 1:
            raise ValueError(f"randint: a log range needs low >= 1, got low={low}")
        if not low < high:
            raise ValueError(f"randint: low must be below high, got low={low} high={high}")
        super().__init__(int(low), int(high), log)
        self.low, self.high = int(low), int(high)

    def _clip(self, value: float) -> Any:
        return int(min(max(round(value), self.low), self.high))

    def sample(self, rng: np.random.Generator) -> Any:
        # Each integer owns the interval [k - 0.5, k + 0.5] of the (log) axis.
        if self.log:
            lo, hi = math.log(max(self.low - 0.5, 0.5)), math.log(self.high + 0.5)
        else:
            lo, hi = self.low - 0.5, self.high + 0.5
        return self._clip(self._from(rng.uniform(lo, hi)))

    def narrowed(self, values: Sequence[Any], best: Any, min_width: float) -> Distribution:
        a, b = self._bounds(values, best, min_width)
        low, high = math.floor(self._from(a)), math.ceil(self._from(b))
        low, high = max(low, self.low), min(high, self.high)
        if low >= high:  # one integer left: keep a neighbour so the range stays a range
            low, high = (low, low + 1) if low < self.high else (high - 1, high)
        return Int(low, high, self.log)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "low": self.low, "high": self.high, "log": self.log}

    def __repr__(self) -> str:
        return f"randint({self.low}, {self.high + 1}{', log=True' if self.log else ''})"


class Choice(Distribution):
    """One of ``options``, each equally likely. ``ordered=True`` (numbers, as ``grid``
    makes) gives positions and narrows to the span of the best trials' values."""

    kind = "choice"

    def __init__(self, options: Sequence[Any], ordered: bool = False) -> None:
        if isinstance(options, (str, bytes)) or not isinstance(options, Sequence):
            raise TypeError(f"choice: options must be a list, got {type(options).__name__}")
        options = list(dict.fromkeys(options))
        if not options:
            raise ValueError("choice: needs at least one option")
        for value in options:
            if not isinstance(value, (str, int, float, bool, type(None))):
                raise TypeError(f"choice: options must be str, int, float, bool or None, "
                                f"got {type(value).__name__}")
        if ordered:
            for value in options:
                _number("grid", "each value", value)
            options = sorted(options)
        self.options, self.ordered = options, bool(ordered)

    def sample(self, rng: np.random.Generator) -> Any:
        return self.options[int(rng.integers(len(self.options)))]

    def grid(self, points: int) -> list[Any]:
        return list(self.options)

    def position(self, value: Any) -> float | None:
        if not self.ordered or len(self.options) < 2 or value not in self.options:
            return None
        return self.options.index(value) / (len(self.options) - 1)

    def narrowed(self, values: Sequence[Any], best: Any, min_width: float) -> Distribution:
        keep = set(values) | {best}
        if self.ordered:
            lo, hi = min(keep), max(keep)
            return Choice([v for v in self.options if lo <= v <= hi], ordered=True)
        return Choice([v for v in self.options if v in keep])

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "options": list(self.options), "ordered": self.ordered}

    def __repr__(self) -> str:
        return f"{'grid' if self.ordered else 'choice'}({self.options!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Distribution) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]


def loguniform(low: float, high: float) -> Float:
    """Values whose logarithm is uniform on [log low, log high]: every decade of a
    learning rate or weight decay range gets the same share of trials. Needs 0 < low < high."""
    return Float(low, high, log=True)


def uniform(low: float, high: float) -> Float:
    """Real values uniform on [low, high]."""
    return Float(low, high)


def randint(low: int, high: int, log: bool = False) -> Int:
    """Integers in [low, high) like numpy's and torch's randint (high excluded); ``log``
    spreads them evenly on a log scale (batch sizes, widths)."""
    if isinstance(high, (int, np.integer)) and not isinstance(high, bool):
        high = int(high) - 1
    return Int(low, high, log)


def choice(options: Sequence[Any]) -> Choice:
    """One of ``options`` (unordered: an optimizer, a schedule, a model name)."""
    return Choice(options)


def grid(values: Sequence[float]) -> Choice:
    """Exactly these numbers, in order: a grid search tries each, a random search draws
    among them, coarse-to-fine keeps those between the best trials' values."""
    return Choice(values, ordered=True)


def from_dict(data: Mapping[str, Any]) -> Distribution:
    """Inverse of ``Distribution.to_dict`` (how a journal stores a space)."""
    kind = data.get("kind")
    if kind == "float":
        return Float(data["low"], data["high"], data["log"])
    if kind == "int":
        return Int(data["low"], data["high"], data["log"])
    if kind == "choice":
        return Choice(data["options"], data["ordered"])
    raise ValueError(f"kiln.tune: unknown distribution kind {kind!r}")


def space_to_dict(space: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (v.to_dict() if isinstance(v, Distribution) else {"kind": "fixed", "value": v})
            for k, v in space.items()}


def space_from_dict(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (v["value"] if v.get("kind") == "fixed" else from_dict(v))
            for k, v in data.items()}


def searched(space: Mapping[str, Any]) -> dict[str, Distribution]:
    """The entries of ``space`` that are distributions (the rest are fixed values)."""
    return {k: v for k, v in space.items() if isinstance(v, Distribution)}


def sample_space(space: Mapping[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """One draw of every parameter, in the space's order (fixed values pass through)."""
    return {k: (v.sample(rng) if isinstance(v, Distribution) else v) for k, v in space.items()}


def _scalar(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None}.get(text.lower(), text)


def parse_spec(name: str, text: str) -> Any:
    """The command-line form of a range, for the option ``--name``:

    ``LOW:HIGH`` uniform, ``LOW:HIGH:log`` log-uniform, ``LOW:HIGH:int`` and
    ``LOW:HIGH:log-int`` integers with HIGH included, ``A,B,C`` one of these values
    (numbers form an ordered grid), and a single value stays fixed.
    Raises ValueError naming the option and the spec."""
    where = f"--{name.replace('_', '-')} {text}"
    text = text.strip()
    if not text:
        raise ValueError(f"{where}: empty range")
    if ":" in text:
        parts = text.split(":")
        if len(parts) not in (2, 3):
            raise ValueError(f"{where}: expected LOW:HIGH or LOW:HIGH:SCALE, got {len(parts)} "
                             "fields")
        scale = parts[2].strip().lower() if len(parts) == 3 else "linear"
        scales = ("linear", "log", "int", "log-int")
        if scale not in scales:
            raise ValueError(f"{where}: unknown scale {parts[2]!r}; expected one of "
                             f"{', '.join(scales)}")
        values = [_scalar(p.strip()) for p in parts[:2]]
        kinds = (int,) if "int" in scale else (int, float)
        if not all(isinstance(v, kinds) and not isinstance(v, bool) for v in values):
            expected = "integers" if "int" in scale else "numbers"
            raise ValueError(f"{where}: LOW and HIGH must be {expected}, got {parts[0]!r} and "
                             f"{parts[1]!r}")
        low, high = values
        if not low < high:
            raise ValueError(f"{where}: the low end {low:g} must be below the high end "
                             f"{high:g} (write LOW:HIGH)")
        log = scale.startswith("log")
        if log and low <= 0:
            raise ValueError(f"{where}: a log range needs a positive low end, got {low:g}")
        try:
            return Int(low, high, log) if "int" in scale else Float(low, high, log)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{where}: {error}") from None
    if "," in text:
        values = [_scalar(p.strip()) for p in text.split(",") if p.strip()]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        if numeric and not all(math.isfinite(v) for v in values):
            raise ValueError(f"{where}: values must be finite")
        return Choice(values, ordered=numeric)
    return _scalar(text)
