"""Optimizers driven by schedules that end at a rounding-level negative learning rate."""

from __future__ import annotations

import numpy as np

import kiln
from kiln.optim import SGD, Adam, lr_scheduler


def test_linear_decay_to_zero_keeps_training_and_reloads():
    # PyTorch's LinearLR(0.1 -> 0 over 9 steps) sets lr = -2.47e-19 at step 9.
    for make in (lambda p: SGD(p, lr=0.1, momentum=0.9), lambda p: Adam(p, lr=0.1)):
        w = kiln.nn.Parameter(kiln.ones(4))
        optimizer = make([w])
        schedule = lr_scheduler.LinearLR(optimizer, start_factor=1.0, end_factor=0.0,
                                         total_iters=9)
        for _ in range(12):
            w.grad = kiln.ones(4)
            optimizer.step()
            schedule.step()
        assert optimizer.param_groups[0]["lr"] <= 0.0
        assert np.all(np.isfinite(w.detach().numpy()))
        restored = make([kiln.nn.Parameter(kiln.ones(4))])
        restored.load_state_dict(optimizer.state_dict())
        assert restored.param_groups[0]["lr"] == optimizer.param_groups[0]["lr"]
