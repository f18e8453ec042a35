"""Ensemble: several trained models voting with their averaged class probabilities."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kiln.nn.functional import softmax
from kiln.nn.modules.container import ModuleList
from kiln.nn.modules.module import Module
from kiln.tensor import Tensor


class Ensemble(Module):
    """Averages the softmax probabilities of ``models`` (each mapping x to logits (N, C)).

    ``forward(x)`` returns log(mean_m softmax(model_m(x), dim=1)), shape (N, C): log
    probabilities, so the output works wherever logits do (softmax of it gives back the
    averaged probabilities exactly; cross_entropy on it is the ensemble's NLL), e.g. in
    Trainer.evaluate and Trainer.predict. ``probabilities(x)`` gives the average itself.
    """

    def __init__(self, models: Iterable[Module]) -> None:
        super().__init__()
        models = list(models) if not isinstance(models, Module) else [models]
        if not models:
            raise ValueError("Ensemble: needs at least one model")
        for model in models:
            if not isinstance(model, Module):
                raise TypeError(f"Ensemble: models must be kiln.nn.Module instances, got "
                                f"{type(model).__name__}")
        self.models = ModuleList(models)

    def probabilities(self, x: Tensor) -> Tensor:
        """mean over models of softmax(model(x), dim=1): (N, C)."""
        total: Any = None
        shape = None
        for i, model in enumerate(self.models):
            logits = model(x)
            if not isinstance(logits, Tensor) or logits.ndim != 2:
                raise ValueError(f"Ensemble: model {i} must return logits (N, classes), got "
                                 f"{getattr(logits, 'shape', type(logits).__name__)}")
            if shape is not None and tuple(logits.shape) != shape:
                raise ValueError(f"Ensemble: model {i} returned {tuple(logits.shape)} but "
                                 f"model 0 returned {shape}")
            shape = tuple(logits.shape)
            probs = softmax(logits, dim=1)
            total = probs if total is None else total + probs
        return total / len(self.models)

    def forward(self, x: Tensor) -> Tensor:
        return self.probabilities(x).log()
