"""The results journal of a search: one JSON file, rewritten atomically after every
trial (and every rung of a trial), so a killed search loses at most the trials that
were running and ``resume`` continues from the file."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from kiln.data._atomic import atomic_write

_FORMAT = "kiln.tune journal 1"


def _clean(value: Any) -> Any:
    """JSON has no NaN or infinity: they are stored as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


class Journal:
    """``settings`` (what the search was asked to do), ``trials`` (one record per
    (stage, index), in the order they were first written) and ``extra`` (anything else
    the caller keeps, e.g. the final models). Without a path it lives in memory only."""

    def __init__(self, path: str | os.PathLike[str] | None, settings: dict[str, Any]) -> None:
        self.path = None if path is None else Path(path)
        self.settings = settings
        self.trials: dict[str, dict[str, Any]] = {}
        self.extra: dict[str, Any] = {}

    @staticmethod
    def key(stage: int, index: int) -> str:
        return f"{stage}-{index}"

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Journal:
        """Reads a journal file; ValueError naming the file if it is not one."""
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"kiln.tune: no search journal at {path}")
        try:
            data = json.loads(path.read_text())
            if data.get("format") != _FORMAT:
                raise KeyError("format")
            journal = cls(path, data["settings"])
            journal.trials = {cls.key(r["stage"], r["index"]): r for r in data["trials"]}
            journal.extra = data.get("extra", {})
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ValueError(f"kiln.tune: {path} is not a kiln search journal") from None
        return journal

    def get(self, stage: int, index: int) -> dict[str, Any] | None:
        return self.trials.get(self.key(stage, index))

    def put(self, record: dict[str, Any]) -> None:
        """Adds or replaces the record of (record['stage'], record['index']) and saves."""
        self.trials[self.key(record["stage"], record["index"])] = _clean(record)
        self.save()

    def save(self) -> None:
        if self.path is None:
            return
        data = {"format": _FORMAT, "settings": self.settings,
                "trials": list(self.trials.values()), "extra": _clean(self.extra)}
        with atomic_write(self.path) as handle:
            handle.write((json.dumps(data, indent=1) + "\n").encode())
