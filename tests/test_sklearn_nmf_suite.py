"""scikit-learn's own public-API NMF tests, run with SparseNMF in place of NMF."""

import types

import pytest
from sklearn.decomposition import NMF, MiniBatchNMF

from skpart import SparseNMF

_sk = pytest.importorskip("sklearn.decomposition.tests.test_nmf")

#: A test that uses any of these names tests more than NMF's public API
#: (MiniBatchNMF, non_negative_factorization, the private module's internals).
_OTHER_API = {"MiniBatchNMF", "non_negative_factorization", "nmf"}


def _uses_only_nmf(func):
    names = set(func.__code__.co_names)
    takes_estimator = "Estimator" in func.__code__.co_varnames
    return not (names & _OTHER_API) and ("NMF" in names or takes_estimator)


#: What :func:`_swap` returns for a MiniBatchNMF case, which is dropped.
_DROP = object()


def _swap(value):
    """A parameter value with NMF replaced by SparseNMF (or :data:`_DROP`)."""
    if isinstance(value, (tuple, list)):
        if any(v is MiniBatchNMF for v in value):
            return _DROP
        return type(value)(SparseNMF if v is NMF else v for v in value)
    if value is MiniBatchNMF:
        return _DROP
    return SparseNMF if value is NMF else value


def _port(func):
    """``func`` with ``NMF`` bound to SparseNMF in its globals and in its
    parametrisations (MiniBatchNMF cases dropped); ``None`` if nothing is
    left."""
    ported = types.FunctionType(
        func.__code__,
        {**vars(_sk), "NMF": SparseNMF},
        func.__name__,
        func.__defaults__,
        func.__closure__,
    )
    for mark in reversed(getattr(func, "pytestmark", [])):
        args, kwargs = mark.args, dict(mark.kwargs)
        if mark.name == "parametrize":
            values = [_swap(v) for v in args[1]]
            if all(v is _DROP for v in values):
                return None
            if any(v is _DROP for v in values):
                kwargs.pop("ids", None)
            args = (args[0], [v for v in values if v is not _DROP])
        ported = getattr(pytest.mark, mark.name)(*args, **kwargs)(ported)
    return ported


PORTED = {}
for _name, _func in sorted(vars(_sk).items()):
    if _name.startswith("test_") and callable(_func) and _uses_only_nmf(_func):
        _ported = _port(_func)
        if _ported is not None:
            PORTED[_name] = _ported
globals().update(PORTED)


def test_the_port_covers_the_tests_that_matter():
    # A scikit-learn release that renames its tests must not empty this file.
    expected = {
        "test_nmf_fit_close",
        "test_nmf_fit_nn_output",
        "test_nmf_float32_float64_consistency",
        "test_nmf_inverse_transform",
        "test_nmf_sparse_input",
        "test_nmf_transform",
        "test_feature_names_out",
    }
    assert expected <= set(PORTED)
