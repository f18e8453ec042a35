"""kiln.optim: optimizers with torch.optim's names, arguments and update rules.

Each ``step()`` updates a parameter group with one fused C++ call that walks all
its tensors in place (threaded for large groups). ``kiln.optim.lr_scheduler``
holds the learning-rate schedules.
"""

from kiln.optim import lr_scheduler
from kiln.optim.adadelta import Adadelta
from kiln.optim.adagrad import Adagrad
from kiln.optim.adam import Adam, AdamW
from kiln.optim.adamax import Adamax
from kiln.optim.nadam import NAdam
from kiln.optim.optimizer import Optimizer
from kiln.optim.radam import RAdam
from kiln.optim.rmsprop import RMSprop
from kiln.optim.sgd import SGD

__all__ = [
    "SGD", "Adadelta", "Adagrad", "Adam", "AdamW", "Adamax", "NAdam", "Optimizer", "RAdam",
    "RMSprop", "lr_scheduler",
]
