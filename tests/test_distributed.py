"""Grid search over skpart pipelines on a Dask cluster, and thread limits."""

import numpy as np
import pytest
import torch
from joblib import parallel_backend
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.svm import SVC
from threadpoolctl import threadpool_limits

from skpart import SparseNMF
from skpart.metrics import hoyer_scorer, reconstruction_scorer

distributed = pytest.importorskip("distributed")


def _search(digits):
    X, y = digits
    pipe = make_pipeline(SparseNMF(n_components=8, max_iter=50, random_state=0), SVC())
    return (
        GridSearchCV(
            pipe,
            {"sparsenmf__sparseness_codes": [None, 0.5]},
            scoring={
                "acc": "accuracy",
                "hoyer": hoyer_scorer,
                "rec": reconstruction_scorer,
            },
            refit="acc",
            cv=2,
        ),
        X[:300],
        y[:300],
    )


def _torch_threads():
    import torch

    return torch.get_num_threads()


@pytest.mark.slow
def test_grid_search_on_local_dask_cluster(digits):
    search, X, y = _search(digits)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        # Workers do not oversubscribe: one torch thread per worker thread.
        threads = client.run(_torch_threads)
        assert len(threads) == 2
        assert set(threads.values()) == {1}
        with parallel_backend("dask"):
            search.fit(X, y)
    local, _, _ = _search(digits)
    local.fit(X, y)
    # The same search gives the same scores on the cluster as in process.
    for key in ("mean_test_acc", "mean_test_hoyer", "mean_test_rec"):
        np.testing.assert_allclose(search.cv_results_[key], local.cv_results_[key])
    assert search.best_score_ > 0.5


def test_torch_follows_threadpool_limits():
    # threadpoolctl's OpenMP limit is torch's intra-op limit (libgomp build), so
    # joblib workers and `threadpool_limits` bound skpart's fits.
    before = torch.get_num_threads()
    with threadpool_limits(limits=1, user_api="openmp"):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
