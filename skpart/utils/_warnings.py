"""Warnings attributed to the user's line, however deep in skpart and sklearn."""

import os
import sys
import warnings
from pathlib import Path

import sklearn

#: Files under these folders are not the user's code: skpart itself and
#: scikit-learn, whose wrappers (``_fit_context``, ``set_output``) sit between
#: the user's call and skpart's code, one level or several.
_LIBRARY_DIRS = tuple(
    str(Path(path).resolve().parent) + os.sep
    for path in (Path(__file__).parent, sklearn.__file__)
)


def warn(message, category=UserWarning):
    """``warnings.warn(message, category)`` attributed to the first caller
    outside skpart and scikit-learn.

    A fixed ``stacklevel`` cannot do it: the same warning is reached through
    ``fit`` or ``fit_transform``, with or without scikit-learn's output
    wrappers, directly or from a meta-estimator.
    """
    frame, level = sys._getframe(1), 2
    while frame is not None and _is_library(frame.f_code.co_filename):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


def _is_library(filename):
    try:
        path = str(Path(filename).resolve())
    except (OSError, ValueError):
        return False
    return path.startswith(_LIBRARY_DIRS)
