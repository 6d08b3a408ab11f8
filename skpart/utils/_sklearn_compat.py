"""The one module that imports scikit-learn's private helpers.

Parameter-constraint objects and the fit context decorator are private in
scikit-learn; importing them here only means that a scikit-learn release that
moves them touches this file alone.
"""

from sklearn.base import _fit_context
from sklearn.utils._param_validation import (
    Hidden,
    Interval,
    Options,
    StrOptions,
    validate_params,
)
from sklearn.utils.validation import (
    _check_feature_names_in,
    check_is_fitted,
    validate_data,
)

__all__ = [
    "_check_feature_names_in",
    "Hidden",
    "Interval",
    "Options",
    "StrOptions",
    "_fit_context",
    "check_is_fitted",
    "validate_data",
    "validate_params",
]
