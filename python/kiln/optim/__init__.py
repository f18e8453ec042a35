"""kiln.optim: optimizers with torch.optim's names, arguments and update rules.

Each ``step()`` updates a parameter group with one fused C++ call that walks all
its tensors in place (threaded for large groups). ``kiln.optim.lr_scheduler``
holds the learning-rate schedules.
"""

from kiln.optim import lr_scheduler
from kiln.optim.adagrad import Adagrad
from kiln.optim.adam import Adam, AdamW
from kiln.optim.optimizer import Optimizer
from kiln.optim.rmsprop import RMSprop
from kiln.optim.sgd import SGD

__all__ = ["SGD", "Adagrad", "Adam", "AdamW", "Optimizer", "RMSprop", "lr_scheduler"]
