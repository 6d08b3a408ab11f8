"""Metrics and scorers on hand-computed values, and inside GridSearchCV pipelines."""

import pickle

import numpy as np
import pytest
import scipy.sparse as sp
from scipy import ndimage
from sklearn.base import BaseEstimator
from sklearn.decomposition import NMF
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, MinMaxScaler
from sklearn.svm import SVC

from skpart.metrics import (
    dilation_error,
    hoyer_scorer,
    hoyer_sparsity,
    make_dilation_scorer,
    reconstruction_error,
    reconstruction_scorer,
)


class FixedModel(BaseEstimator):
    """A fitted part-based model with given atoms and codes (for hand checks)."""

    def __init__(self, components=None, codes=None):
        self.components = components
        self.codes = codes
        self.components_ = np.asarray(components, dtype=float)
        self._codes = np.asarray(codes, dtype=float)

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return self._codes[: len(X)]

    def inverse_transform(self, W):
        return W @ self.components_

    def __sklearn_is_fitted__(self):
        return True


def test_hoyer_sparsity_hand_values():
    # one-hot -> 1; constant -> 0; [3, 4, 0, 0]: (2 - 7/5) / (2 - 1) = 0.6
    X = np.array([[0.0, 2.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0], [3.0, 4.0, 0.0, 0.0]])
    assert hoyer_sparsity(X[:1]) == pytest.approx(1.0)
    assert hoyer_sparsity(X[1:2]) == pytest.approx(0.0)
    assert hoyer_sparsity(X[2:]) == pytest.approx(0.6)
    assert hoyer_sparsity(X) == pytest.approx((1.0 + 0.0 + 0.6) / 3)
    # Signs do not matter; columns with axis=0; sparse == dense.
    assert hoyer_sparsity(-X) == pytest.approx(hoyer_sparsity(X))
    assert hoyer_sparsity(X.T, axis=0) == pytest.approx(hoyer_sparsity(X))
    assert hoyer_sparsity(sp.csr_matrix(X)) == pytest.approx(hoyer_sparsity(X))


def test_hoyer_sparsity_zero_row_counts_as_zero():
    X = np.array([[0.0, 0.0, 0.0], [0.0, 5.0, 0.0]])
    assert hoyer_sparsity(X) == pytest.approx(0.5)


def test_hoyer_sparsity_bad_input():
    with pytest.raises(ValueError, match="length >= 2"):
        hoyer_sparsity(np.ones((3, 1)))
    with pytest.raises(ValueError, match="2D array"):
        hoyer_sparsity(np.ones(3))
    with pytest.raises(ValueError, match="axis must be 0 or 1"):
        hoyer_sparsity(np.ones((2, 2)), axis=2)
    with pytest.raises(ValueError, match="empty"):
        hoyer_sparsity(np.ones((0, 3)))


def test_reconstruction_error_hand_value():
    H = np.array([[1.0, 0.0], [0.0, 1.0]])
    W = np.array([[1.0, 2.0], [3.0, 0.0]])
    X = np.array([[1.0, 3.0], [3.0, 1.0]])  # residuals 0, 1, 0, 1
    model = FixedModel(H, W)
    assert reconstruction_error(model, X) == pytest.approx(0.5)
    assert reconstruction_scorer(model, X) == pytest.approx(-0.5)


def test_dilation_error_hand_value():
    # 3x3 images; one atom with a single centre pixel, code 2.
    atom = np.zeros((3, 3))
    atom[1, 1] = 1.0
    X = np.zeros((1, 9))
    X[0, 4] = 2.0
    X[0, 0] = 1.0  # a corner pixel the model misses
    model = FixedModel(atom.reshape(1, 9), [[2.0]])
    # Dilation with the cross: the centre spreads to the 4 neighbours.
    dil_atom = ndimage.grey_dilation(
        atom, footprint=np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool)
    )
    assert dil_atom.sum() == 5
    dil_X = ndimage.grey_dilation(
        X.reshape(3, 3), footprint=np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool)
    )
    expected = np.mean((dil_X.ravel() - 2.0 * dil_atom.ravel()) ** 2)
    # dil_X = [[1,2,0],[2,2,2],[0,2,0]] ... corner 1 spreads to (0,1) and (1,0),
    # which the centre's 2 already covers: only the corner itself differs by 1.
    assert expected == pytest.approx(1.0 / 9)
    assert dilation_error(model, X, image_shape=(3, 3)) == pytest.approx(expected)
    assert make_dilation_scorer((3, 3))(model, X) == pytest.approx(-expected)
    # A full 3x3 footprint dilates the centre over the whole image.
    full = dilation_error(model, X, (3, 3), footprint=np.ones((3, 3), bool))
    assert full == pytest.approx(np.mean((np.full(9, 2.0) - 2.0) ** 2))


def test_dilation_scorer_pickles():
    # A search with n_jobs > 1 sends its scorers to worker processes.
    model = FixedModel(np.eye(4)[:2], [[1.0, 0.5]])
    X = np.array([[1.0, 0.5, 0.0, 0.0]])
    scorer = make_dilation_scorer((2, 2), footprint=np.ones((2, 2), bool))
    loaded = pickle.loads(pickle.dumps(scorer))
    assert loaded.__name__ == "neg_dilation_error"
    expected = -dilation_error(model, X, (2, 2), footprint=np.ones((2, 2), bool))
    assert expected < 0  # guard: a real error, not a perfect reconstruction
    assert loaded(model, X) == scorer(model, X, None) == expected


def test_dilation_error_uses_decoder_hook():
    class Biased(FixedModel):
        def _decode(self, codes, components):
            return codes @ components + 1.0  # a bias that is not dilated

    X = np.zeros((1, 4))
    model = Biased(np.zeros((1, 4)), [[0.0]])
    assert dilation_error(model, X, (2, 2)) == pytest.approx(1.0)


def test_dilation_error_bad_shape():
    model = FixedModel(np.ones((1, 4)), [[1.0]])
    with pytest.raises(ValueError, match="image_shape"):
        dilation_error(model, np.ones((1, 4)), (3, 3))


def test_metrics_refuse_unfitted_and_non_part_models():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        reconstruction_error(NMF(), np.ones((3, 3)))
    with pytest.raises(TypeError, match="not a part-based model"):
        reconstruction_error(MinMaxScaler().fit(np.ones((3, 3))), np.ones((3, 3)))


def test_scorers_in_pipeline_match_manual(digits):
    X, y = digits
    X, y = X[:300], y[:300]
    pipe = make_pipeline(
        FunctionTransformer(lambda Z: Z * 2.0, inverse_func=lambda Z: Z / 2.0),
        NMF(n_components=8, init="nndsvda", max_iter=400, random_state=0),
        SVC(),
    ).fit(X, y)
    nmf = pipe[1]
    X2 = X * 2.0
    codes = nmf.transform(X2)
    assert hoyer_scorer(pipe, X) == pytest.approx(hoyer_sparsity(codes))
    rec = np.mean((X2 - nmf.inverse_transform(codes)) ** 2)
    assert reconstruction_scorer(pipe, X) == pytest.approx(-rec)
    assert rec > 0  # guard: a real reconstruction, not an identity


def test_scorers_in_gridsearch_with_svc(digits):
    X, y = digits
    pipe = make_pipeline(
        NMF(init="nndsvda", max_iter=1000, tol=1e-3, random_state=0), SVC()
    )
    search = GridSearchCV(
        pipe,
        {"nmf__n_components": [5, 15]},
        scoring={
            "acc": "accuracy",
            "hoyer": hoyer_scorer,
            "rec": reconstruction_scorer,
            "dil": make_dilation_scorer((8, 8)),
        },
        refit="acc",
        cv=2,
    ).fit(X[:400], y[:400])
    res = search.cv_results_
    for key in ("acc", "hoyer", "rec", "dil"):
        assert np.all(np.isfinite(res[f"mean_test_{key}"]))
    # More components reconstruct better; accuracy is real.
    assert res["mean_test_rec"][1] > res["mean_test_rec"][0]
    assert res["mean_test_acc"].max() > 0.7  # chance is 0.1
    assert 0 < res["mean_test_hoyer"].min() < 1
