"""TensorBoard(log_dir): training logs that ``tensorboard --logdir`` shows.

Written with tensorboardX's SummaryWriter (``pip install tensorboardX``, the
kiln[tensorboard] extra), which needs neither TensorFlow nor PyTorch:

    scalars     loss, metrics and learning rate per epoch (``epoch/...``, train and
                ``val_`` values), per batch every ``update_freq`` steps (``batch/...``),
                and each parameter's update ratio ||W_after - W_before|| / ||W|| of the
                first optimizer step of an epoch (``update_ratio/<param>``; ~1e-3 is
                healthy)
    histograms  every ``histogram_freq`` epochs: weights (``weights/<param>``), their
                gradients at that step (``gradients/<param>``) and each leaf layer's
                outputs on the epoch's first training batch in eval mode
                (``activations/<layer>``, through kiln.recipe.activation_stats)
    images      the first training batch of the run as the network sees it (augmented,
                normalized: ``inputs``) and the first convolution's filters each epoch
                (``filters/<layer>``)
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from kiln.recipe import activation_stats
from kiln.tensor import Tensor
from kiln.train import _images
from kiln.train.callbacks import Callback, Logs


def _summary_writer() -> Any:
    try:
        from tensorboardX import SummaryWriter
    except ImportError as e:
        raise ImportError("TensorBoard needs the tensorboardX package: pip install "
                          "tensorboardX (or the kiln[tensorboard] extra)") from e
    return SummaryWriter


def _hwc_to_chw(grid: np.ndarray) -> np.ndarray:
    """A uint8 (H, W, C) grid as the (C, H, W) image add_image reads, 3 channels."""
    if grid.shape[2] == 1:
        grid = np.repeat(grid, 3, axis=2)
    return np.ascontiguousarray(grid.transpose(2, 0, 1))


class TensorBoard(Callback):
    """Writes TensorBoard event files into ``log_dir`` (see the module docstring).

    Args:
        log_dir: folder for the event files (created; a run per folder).
        histogram_freq: epochs between histograms and update ratios (0: none).
        update_freq: 'epoch' (scalars once per epoch) or an int n (also every n batches).
        write_images: the input grid and first-layer filters.
        max_images: images in the input grid.
    """

    main_process_only = True  # under data-parallel training, rank 0 alone writes the logs

    def __init__(self, log_dir: str | os.PathLike[str] = "logs", histogram_freq: int = 1,
                 update_freq: int | str = "epoch", write_images: bool = True,
                 max_images: int = 32) -> None:
        op = "TensorBoard"
        if isinstance(histogram_freq, bool) or not isinstance(histogram_freq, int) \
                or histogram_freq < 0:
            raise ValueError(f"{op}: histogram_freq must be an int >= 0, got {histogram_freq!r}")
        if update_freq != "epoch" and (isinstance(update_freq, bool) or not isinstance(
                update_freq, int) or update_freq < 1):
            raise ValueError(f"{op}: update_freq must be 'epoch' or an int >= 1, got "
                             f"{update_freq!r}")
        if isinstance(max_images, bool) or not isinstance(max_images, int) or max_images < 1:
            raise ValueError(f"{op}: max_images must be an int >= 1, got {max_images!r}")
        self._writer_class = _summary_writer()
        self.log_dir = os.fspath(log_dir)
        self.histogram_freq = histogram_freq
        self.update_freq = update_freq
        self.write_images = bool(write_images)
        self.max_images = max_images
        self.writer: Any = None
        self._hook: Any = None
        self._batch: np.ndarray | None = None
        self._capture = False
        self._before: dict[str, np.ndarray] | None = None
        self._grads: dict[str, np.ndarray] = {}
        self._global_step = 0
        self._images_written = False

    # ------------------------------------------------------------------ lifecycle
    def on_train_begin(self, logs: Logs) -> None:
        self.writer = self._writer_class(self.log_dir)
        # The batch the model actually trains on, after the loader's augmentation.
        self._hook = self.trainer.model.register_forward_pre_hook(self._grab_inputs)
        self._global_step = self.trainer.epoch * (self.trainer.steps_per_epoch or 0)

    def on_train_end(self, logs: Logs) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def _grab_inputs(self, module: Any, args: tuple[Any, ...]) -> None:
        if self._capture and module.training and args and isinstance(args[0], Tensor):
            self._batch = np.array(args[0].detach().cpu().numpy()[: self.max_images], copy=True)
            self._capture = False

    def _histogram_epoch(self, epoch: int) -> bool:
        return self.histogram_freq > 0 and (epoch - 1) % self.histogram_freq == 0

    # ------------------------------------------------------------------ batches
    def on_epoch_begin(self, epoch: int, logs: Logs) -> None:
        self._epoch = epoch
        self._capture = True

    def on_batch_begin(self, step: int, logs: Logs) -> None:
        if step == 1 and self._histogram_epoch(self._epoch):
            self._before = {n: np.array(p.detach().cpu().numpy(), np.float64)
                            for n, p in self.trainer.model.named_parameters()}

    def on_batch_end(self, step: int, logs: Logs) -> None:
        self._global_step += 1
        if isinstance(self.update_freq, int) and self._global_step % self.update_freq == 0:
            for key in ("loss", *self.trainer.metrics, "lr"):
                value = logs.get(key)
                if value is not None and math.isfinite(value):
                    self.writer.add_scalar(f"batch/{key}", value, self._global_step)
        if self._before is not None:
            self._write_update_ratios()
            self._before = None

    def _write_update_ratios(self) -> None:
        self._grads = {}
        for name, p in self.trainer.model.named_parameters():
            before = self._before.get(name) if self._before else None
            if before is None:
                continue
            if p.grad is not None:
                self._grads[name] = np.array(p.grad.detach().cpu().numpy(), copy=True)
            norm = float(np.linalg.norm(before))
            if norm > 0:
                delta = float(np.linalg.norm(p.detach().cpu().numpy() - before))
                self.writer.add_scalar(f"update_ratio/{name}", delta / norm, self._epoch)

    # ------------------------------------------------------------------ epochs
    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        for key, value in logs.items():
            if key in ("epoch", "time") or value is None or not math.isfinite(value):
                continue
            tag = "learning_rate" if key == "lr" else key
            self.writer.add_scalar(f"epoch/{tag}", value, epoch)
        model = self.trainer.model
        if self._histogram_epoch(epoch):
            for name, p in model.named_parameters():
                self.writer.add_histogram(f"weights/{name}", p.detach().cpu().numpy(), epoch)
            for name, grad in self._grads.items():
                self.writer.add_histogram(f"gradients/{name}", grad, epoch)
            if self._batch is not None:
                self._write_activations(epoch)
        if self.write_images:
            if self._batch is not None and not self._images_written:
                self.writer.add_image("inputs", _hwc_to_chw(_images.image_grid(self._batch)),
                                      epoch)
                self._images_written = True
            found = _images.first_conv_weight(model)
            if found is not None:
                self.writer.add_image(f"filters/{found[0]}",
                                      _hwc_to_chw(_images.filter_grid(model)), epoch)
        self.writer.flush()

    def _write_activations(self, epoch: int) -> None:
        model = self.trainer.model
        training = model.training
        model.eval()  # train mode would move batch norm's running statistics
        try:
            stats = activation_stats(model, Tensor(self._batch))
        finally:
            model.train(training)
        for layer in stats:
            self.writer.add_histogram(f"activations/{layer.name}", layer.values, epoch)
