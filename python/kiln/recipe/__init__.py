"""kiln.recipe: the training recipe's diagnostics as functions.

Check the initial loss, overfit a small batch, find a learning rate, watch activation
distributions and update-to-weight ratios, read the curves, and gradcheck a model.
"""

from kiln.recipe.activations import ActivationStats, LayerStats, activation_stats
from kiln.recipe.diagnose import Diagnosis, Finding, diagnose_history
from kiln.recipe.gradcheck import gradcheck_model
from kiln.recipe.initial_loss import InitialLossReport, check_initial_loss
from kiln.recipe.lr_find import LRFindResult, lr_find
from kiln.recipe.overfit import OverfitReport, overfit_small_batch
from kiln.recipe.update_ratio import ParamRatio, UpdateRatioReport, update_ratio

__all__ = [
    "ActivationStats", "Diagnosis", "Finding", "InitialLossReport", "LRFindResult",
    "LayerStats", "OverfitReport", "ParamRatio", "UpdateRatioReport", "activation_stats",
    "check_initial_loss", "diagnose_history", "gradcheck_model", "lr_find",
    "overfit_small_batch", "update_ratio",
]
