"""scikit-learn's estimator checks on every skpart estimator, with small settings."""

import numpy as np
import pytest
from sklearn.utils.estimator_checks import (
    check_param_validation,
    parametrize_with_checks,
)

from skpart import MultilayerNMF, NonnegativeSparseAutoencoder, SparseNMF

# Small, fast settings per estimator; one entry each, owned by its issue.
SMALL_SETTINGS = {
    SparseNMF: {"n_components": 3, "max_iter": 50, "random_state": 0},
    MultilayerNMF: {"n_components": (2, 1), "max_iter": 20, "fine_tune_iter": 10},
    NonnegativeSparseAutoencoder: {"n_components": 4, "max_iter": 5, "batch_size": 16},
}

# Checks that truly cannot apply, with the reason; empty on purpose.
EXPECTED_FAILED_CHECKS = {}

ESTIMATORS = [cls(**kw) for cls, kw in SMALL_SETTINGS.items() if kw is not None]


@parametrize_with_checks(
    ESTIMATORS,
    expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS.get(type(est), {}),
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_param_validation(estimator):
    check_param_validation(type(estimator).__name__, estimator)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_dataframe_in_dataframe_out(estimator):
    # The pandas round trip a Pipeline user relies on: feature names stored
    # from the fit, codes as a DataFrame named by get_feature_names_out, and
    # columns in another order refused at transform.
    pd = pytest.importorskip("pandas")
    from sklearn.base import clone

    rng = np.random.RandomState(0)
    df = pd.DataFrame(rng.rand(40, 6), columns=[f"px{i}" for i in range(6)])
    model = clone(estimator).set_output(transform="pandas").fit(df)
    codes = model.transform(df)
    assert isinstance(codes, pd.DataFrame)
    assert list(codes.columns) == list(model.get_feature_names_out())
    assert list(model.feature_names_in_) == list(df.columns)
    assert (codes.to_numpy() >= 0).all()
    with pytest.raises(ValueError, match="feature names"):
        model.transform(df[df.columns[::-1]])
