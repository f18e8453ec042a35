"""kiln.train: the training loop (Trainer), its History, Keras-style callbacks, metrics,
curve plots and model ensembles."""

from kiln.train import callbacks, metrics
from kiln.train.callbacks import (
    BatchSizeOnPlateau,
    BatchSizeScheduler,
    Callback,
    CSVLogger,
    CurvePlot,
    EarlyStopping,
    LRSchedulerCallback,
    ModelCheckpoint,
    NaNGuard,
    ProgressBar,
    ReduceLROnPlateau,
)
from kiln.train.ensemble import Ensemble
from kiln.train.history import History
from kiln.train.plots import plot_history
from kiln.train.tensorboard import TensorBoard
from kiln.train.trainer import Trainer

__all__ = [
    "BatchSizeOnPlateau", "BatchSizeScheduler", "CSVLogger", "Callback", "CurvePlot",
    "EarlyStopping", "Ensemble", "History",
    "LRSchedulerCallback", "ModelCheckpoint", "NaNGuard", "ProgressBar", "ReduceLROnPlateau",
    "TensorBoard", "Trainer", "callbacks", "metrics", "plot_history",
]
