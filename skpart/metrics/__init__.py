"""Metrics and scorers for part-based representations."""

from ._reconstruction import dilation_error, reconstruction_error
from ._scorers import hoyer_scorer, make_dilation_scorer, reconstruction_scorer
from ._sparsity import hoyer_sparsity

__all__ = [
    "dilation_error",
    "hoyer_scorer",
    "hoyer_sparsity",
    "make_dilation_scorer",
    "reconstruction_error",
    "reconstruction_scorer",
]
