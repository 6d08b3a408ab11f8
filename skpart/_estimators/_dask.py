"""Fitting and encoding on dask arrays: data-parallel NMF, blocks never gathered.

Nothing here is imported unless a ``dask.array.Array`` is passed to an
estimator (:func:`is_dask_array` looks in ``sys.modules``), so dask stays an
optional dependency (``pip install "skpart[dask]"``).
"""

import itertools
import sys
import uuid

import numpy as np
import torch

from .._core._distributed import (
    add_stats,
    codes_of,
    data_summary,
    fit_nmf_blocks,
    initialize_blocks,
    solve_codes_blocks,
    unwrap_stats,
    wrap_stats,
)
from ..utils._warnings import warn
from ._nmf_base import data_scale, resolve_init, sklearn_normals, working_dtype


def register_sizeof():
    """Tell dask the size of a torch tensor (the codes that the workers hold,
    the statistics they send), so that its memory limits and transfer
    counts see them; dask's default counts a tensor as a few bytes."""
    from dask.sizeof import sizeof

    if torch.Tensor in sizeof._lookup:
        return

    @sizeof.register(torch.Tensor)
    def _sizeof_tensor(t):
        if t.layout != torch.strided:
            t = t.values()
        return 64 + t.element_size() * t.nelement()


if "dask" in sys.modules:  # unpickled on a worker: dask is there already
    register_sizeof()


def is_dask_array(X):
    """Whether ``X`` is a ``dask.array.Array`` (without importing dask)."""
    da = sys.modules.get("dask.array")
    return da is not None and isinstance(X, da.Array)


# -- the block set of a dask array -------------------------------------------------
def _run(func, X, previous, msg):
    """``func`` on a block, its state taken from the previous step's
    ``(state, stats)`` pair; returns the new pair."""
    return func(X, _state_of(previous), msg)


def _stats(pair):
    return wrap_stats(pair[1])


def _add(a, b):
    return add_stats(a, b)


def _derive(func, previous):
    return func(_state_of(previous))


def _state_of(previous):
    """A block's state, from a step's ``(state, stats)`` pair or as it is."""
    return previous[0] if isinstance(previous, tuple) else previous


def _tree_sum(parts):
    """Pairwise (tree) sum of delayed statistics, in block order."""
    from dask import delayed

    parts = [delayed(_stats, pure=True)(part) for part in parts]
    while len(parts) > 1:
        pairs = [
            delayed(_add, pure=True)(parts[i], parts[i + 1])
            for i in range(0, len(parts) - 1, 2)
        ]
        if len(parts) % 2:
            pairs.append(parts[-1])
        parts = pairs
    return parts[0]


def _tree_sum_futures(client, parts, workers):
    """Pairwise sum of futures of statistics, on ``workers`` if given."""
    pinned = {"workers": workers, "allow_other_workers": False} if workers else {}
    while len(parts) > 1:
        pairs = [
            client.submit(_add, parts[i], parts[i + 1], pure=False, **pinned)
            for i in range(0, len(parts) - 1, 2)
        ]
        if len(parts) % 2:
            pairs.append(parts[-1])
        parts = pairs
    return parts[0]


class DaskBlocks:
    """The block set (see :mod:`~skpart._core._distributed`) of the row
    blocks of a persisted dask array, on the active Dask scheduler.

    Every :meth:`step` runs one task per block, ``func(X_b, state_b, msg)``,
    keeps the new states where they were computed and tree-sums the
    statistics; only the sum comes back to the client. On a ``distributed``
    cluster the message (the atoms and a few numbers) is scattered to every
    worker once, and every block's task is pinned to the worker that holds
    the block (``allow_other_workers=False``), so neither the blocks nor the
    codes ever move, whatever the scheduler's work stealing would prefer.
    Without a client, the same graph runs on dask's local scheduler.
    """

    def __init__(self, parts, n_rows, n_cols, states=None, where=None):
        self.parts = list(parts)
        self.n_rows, self.n_cols = n_rows, n_cols
        if states is None:
            states = [{"index": idx} for idx in range(len(self.parts))]
        self.states = list(states)
        self.where = where

    @classmethod
    def from_array(cls, X):
        """Blocks of a dask array with one chunk along the columns (persisted
        on the cluster first, where there is one)."""
        n, m = int(X.shape[0]), int(X.shape[1])
        client = _client()
        if client is None:
            out = cls(X.to_delayed().ravel().tolist(), n, m)
        else:
            from distributed import futures_of, wait

            X = client.persist(X)
            wait(X)
            futures = {f.key: f for f in futures_of(X)}
            parts = [futures[key] for key in _block_keys(X)]
            who = client.who_has(parts)
            where = [list(who[f.key]) for f in parts]
            out = cls(parts, n, m, where=where)
        out.sizes = X.chunks[0]
        return out

    def step(self, func, msg):
        client = _client()
        if client is None or self.where is None:
            return self._step_graph(func, msg)
        from dask.delayed import Delayed

        (msg_f,) = client.scatter([msg], broadcast=True, hash=False)
        outs = []
        for part, state, where in zip(self.parts, self.states, self.where):
            if isinstance(state, Delayed):
                state = client.compute(state, workers=where)
            outs.append(
                client.submit(
                    _run,
                    func,
                    part,
                    state,
                    msg_f,
                    workers=where,
                    allow_other_workers=False,
                    pure=False,
                )
            )
        # The statistics leave the pair on the block's worker (only they
        # travel, never the codes) and are summed on that worker first: one
        # partial sum per worker crosses the network.
        by_worker = {}
        for out, where in zip(outs, self.where):
            stats = client.submit(
                _stats, out, workers=where, allow_other_workers=False, pure=False
            )
            by_worker.setdefault(where[0], []).append(stats)
        totals = [
            _tree_sum_futures(client, parts, [where])
            for where, parts in by_worker.items()
        ]
        self.states = outs
        return unwrap_stats(_tree_sum_futures(client, totals, None).result())

    def _step_graph(self, func, msg):
        import dask
        from dask import delayed

        msg_d = delayed(msg, name=f"skpart-msg-{uuid.uuid4().hex}", traverse=False)
        outs = [
            delayed(_run, pure=False)(func, X, state, msg_d)
            for X, state in zip(self.parts, self.states)
        ]
        total = _tree_sum(outs)
        *self.states, total = dask.persist(*outs, total)
        return unwrap_stats(total.compute())

    def derive(self, func, n_cols):
        """A block set over the same rows whose blocks are ``func(state)``."""
        import dask
        from dask import delayed

        client = _client()
        if client is None or self.where is None:
            parts = [delayed(_derive, pure=False)(func, s) for s in self.states]
            parts = dask.persist(*parts)
        else:
            parts = [
                client.submit(
                    _derive,
                    func,
                    state,
                    workers=where,
                    allow_other_workers=False,
                    pure=False,
                )
                for state, where in zip(self.states, self.where)
            ]
        out = DaskBlocks(parts, self.n_rows, n_cols, where=self.where)
        out.sizes = self.sizes
        return out


def _client():
    """The active ``distributed`` client, or None (the local scheduler)."""
    if "distributed" not in sys.modules:
        return None
    from distributed import get_client

    try:
        return get_client()
    except ValueError:
        return None


def _block_keys(X):
    """The keys of the row blocks of ``X`` (one chunk along the columns), in
    order."""
    keys = X.__dask_keys__()
    return [row[0] for row in keys]


# -- input ----------------------------------------------------------------------------
def prepare(estimator, X, *, reset):
    """Check a dask array for an estimator, with messages like scikit-learn's.

    Returns the array with one chunk along the columns, in float32 or
    float64 (other dtypes become float64, as ``check_array`` does). With
    ``reset``, records ``n_features_in_`` (dask arrays have no feature
    names); otherwise checks the number of features.
    """
    register_sizeof()
    name = type(estimator).__name__
    if X.ndim != 2:
        raise ValueError(
            f"{name} needs a 2-D dask array chunked along its rows; got "
            f"{X.ndim} dimensions."
        )
    if any(np.isnan(s) for s in X.shape):
        raise ValueError(
            f"{name} needs a dask array of known shape; call "
            "X.compute_chunk_sizes() first."
        )
    if not isinstance(X._meta, np.ndarray):
        raise TypeError(
            f"{name} fits dask arrays of dense NumPy blocks; this one has "
            f"blocks of type {type(X._meta).__name__}. Densify them with "
            "X.map_blocks(lambda b: b.toarray()) or pass scipy.sparse data "
            "in memory."
        )
    if X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(
            f"Found array with shape {X.shape} while a minimum of 1 sample and "
            f"1 feature is required by {name}."
        )
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    if len(X.chunks[1]) > 1:
        X = X.rechunk({1: -1})
    if reset:
        estimator.n_features_in_ = int(X.shape[1])
        estimator.__dict__.pop("feature_names_in_", None)
    elif X.shape[1] != estimator.n_features_in_:
        raise ValueError(
            f"X has {X.shape[1]} features, but {name} is expecting "
            f"{estimator.n_features_in_} features as input."
        )
    return X


def _scan(estimator, X):
    """One pass over the blocks: smallest and largest entries, finiteness.

    Raises scikit-learn's messages for NaN, infinity and negative values.
    """
    import dask
    import dask.array as da

    low, high, finite = dask.compute(X.min(), X.max(), da.isfinite(X).all())
    name = type(estimator).__name__
    if not finite:
        raise ValueError(
            f"Input X contains NaN or infinity (in the dask array given to {name})."
        )
    if low < 0:
        raise ValueError(f"Negative values in data passed to {name} (input X)")
    return float(low), float(high)


class _Layout:
    """What :func:`~skpart._estimators._nmf_base.working_dtype` reads from an
    array: its shape and dtype."""

    def __init__(self, X):
        self.shape, self.dtype = X.shape, X.dtype


def fit_blocks(estimator, X):
    """Validate a dask array for a fit and put it on the cluster.

    Returns ``(blocks, summary, dtype, low)``: the block set of ``X`` divided
    by the data scale in the working dtype (persisted: on a ``distributed``
    cluster the blocks stay on the workers for the whole fit), the data's
    summary (``0.5 ||X||^2``, sum, non-zeros, of the scaled data), the torch
    dtype the solvers work in, and the smallest entry.
    """
    # Persisted first, so that a lazily defined array (read from storage,
    # generated) is computed once, on the workers.
    client = _client()
    X = X.persist() if client is None else client.persist(X)
    low, high = _scan(estimator, X)
    estimator._data_scale = c = data_scale(np.array([high], dtype=X.dtype))
    estimator._working_dtype = working_dtype(_Layout(X))
    dtype = estimator._working_dtype or (
        torch.float32 if X.dtype == np.float32 else torch.float64
    )
    if c != 1:  # a power of 4: exact, in the data's dtype
        X = X * np.asarray(1.0 / c, dtype=X.dtype)
        X = X.persist() if client is None else X
    blocks = DaskBlocks.from_array(X)
    summary = blocks.step(data_summary, {"dtype": dtype})
    return blocks, summary, dtype, low


def _custom_codes(W, X, k, dtype):
    """The custom starting codes ``W`` (NumPy or dask) in ``X``'s row blocks,
    as a list of delayed NumPy blocks."""
    import dask.array as da

    if not is_dask_array(W):
        W = da.from_array(np.asarray(W), chunks=(X.chunks[0], (k,)))
    W = W.rechunk((X.chunks[0], (k,)))
    return W.to_delayed().ravel().tolist()


def _with_codes(state, W, scale, dtype):
    state = _state_of(state)
    W = torch.from_numpy(np.asarray(W, dtype=np.float64)).to(dtype)
    return dict(state, W=W if scale == 1 else W / scale)


def _minibatches(X, size):
    """The mini-batches of ``size`` rows of ``X`` (all of it for None), each
    a block set of its row blocks, made one at a time (no data moves for
    ``size=None``)."""
    n = int(X.shape[0])
    if size is None:
        yield DaskBlocks.from_array(X)
        return
    for start in range(0, n, size):
        yield DaskBlocks.from_array(X[start : start + size])


def _open_online(estimator, X):
    """The start of ``partial_fit`` on a dask array, as the in-memory
    ``_fit_online`` starts it: all of ``X`` validated before any step; the
    online states restored when the estimator is fitted, else the
    parameters resolved on the first mini-batch (``_check_online_params``),
    the generator drawn and the data scale taken from that mini-batch.

    Returns
    -------
    states : list of OnlineNMF or None
        The states to continue (None: a fresh start, for the caller).
    batches : iterator of DaskBlocks
        The mini-batches of ``X`` divided by the data scale
        (:func:`_minibatches`).
    dtype : torch.dtype
        The dtype of the online fit (the data's, as in memory).
    n : int
        The number of rows of ``X`` (for the forgetting rate).
    """
    continuing = hasattr(estimator, "components_")
    X = prepare(estimator, X, reset=not continuing)
    _, high = _scan(estimator, X)
    n = int(X.shape[0])
    size = n if estimator.batch_size is None else min(estimator.batch_size, n)
    estimator._working_dtype = None
    states = None
    if continuing:
        device = getattr(estimator, "_device", None) or estimator._inference_device()
        states = estimator._restore_online_states(device)
        scale = getattr(estimator, "_data_scale", 1.0)
        dtype = states[0].H.dtype
    else:
        estimator._check_online_params(_Shape((size, X.shape[1])))
        device, _ = estimator._fit_setup()
        if device.type != "cpu":
            raise ValueError(
                f"{type(estimator).__name__} fits dask arrays on the workers' "
                f"CPUs; device={estimator.device!r} is not supported there."
            )
        dtype = torch.float32 if X.dtype == np.float32 else torch.float64
        first_high = high if size == n else float(X[:size].max().compute())
        scale = estimator._data_scale = data_scale(
            np.array([first_high], dtype=X.dtype)
        )
    Xs = X if scale == 1 else X * (1.0 / scale)
    return states, _minibatches(Xs, estimator.batch_size), dtype, n


def _step_params(estimator, batch, n, dtype):
    """The arguments of the online step of either estimator on the block set
    ``batch``, a mini-batch of a call on ``n`` rows: the forgetting rate,
    the dtype and the codes' solver."""
    from .._core._online import forget_rate
    from ._nmf_base import code_solver_max_iter

    return {
        "rho": forget_rate(estimator.forget_factor, batch.n_rows, n),
        "dtype": dtype,
        "solver": estimator.solver,
        "code_max_iter": code_solver_max_iter(estimator),
        "tol": estimator.tol,
    }


def partial_fit_sparse_nmf(estimator, X, W=None, H=None):
    """``SparseNMF.partial_fit`` on a dask array: one online step per
    mini-batch of ``batch_size`` rows (None: the whole array, one step), each
    computed where its blocks live (codes per block, atoms from the summed
    ``W^T W`` and ``W^T X``): the in-memory ``partial_fit`` of the same rows.
    """
    from .._core._distributed import minibatch_step_blocks
    from .._core._online import OnlineNMF
    from ._nmf_base import save_online_state

    states, batches, dtype, n = _open_online(estimator, X)
    first = next(batches)
    m = first.n_cols
    if states is None:
        k = estimator._n_components
        if estimator.init == "custom":
            from ._sparse_nmf import _check_init

            Hc = _check_init(H, (k, m), f"{type(estimator).__name__} (input H)")
            if k == "auto":
                k = estimator._n_components = Hc.shape[0]
            H0 = torch.from_numpy(np.asarray(Hc)).to(dtype) / estimator._factor_scale
        else:
            if k == "auto":
                k = estimator._n_components = m
            b = first.n_rows
            error = (
                f"init = '{estimator.init}' can only be used when "
                "n_components <= min(n_samples, n_features)"
            )
            init = resolve_init(estimator.init, k, b, m, error=error)
            _refuse_init(init, b, m)
            summary = first.step(data_summary, {"dtype": dtype})
            H0 = initialize_blocks(
                first,
                k,
                init,
                summary=summary,
                dtype=dtype,
                generator=estimator._generator,
                normals=sklearn_normals(estimator.random_state),
                svd_normals=sklearn_normals(estimator.random_state),
                codes=False,
            )
        states = [OnlineNMF.start(H0, estimator.sparseness_components)]
        estimator.n_steps_ = 0
    (state,) = states
    k = state.H.shape[0]
    l1_W, l1_H, l2_W, l2_H = estimator._penalties(1, m)
    for batch in itertools.chain([first], batches):
        order = None
        if estimator.shuffle and estimator.solver == "cd":
            from .._core._device import randperm

            order = randperm(k, estimator._generator, device="cpu").tolist()
        minibatch_step_blocks(
            state,
            batch,
            **_step_params(estimator, batch, n, dtype),
            l1_reg_W=l1_W,
            l2_reg_W=l2_W,
            l1_reg_H=l1_H,
            l2_reg_H=l2_H,
            sparseness_W=estimator.sparseness_codes,
            sparseness_H=estimator.sparseness_components,
            order=order,
        )
        estimator.n_steps_ += 1
    estimator.components_ = estimator._fitted_factor(state.H)
    estimator.n_components_ = k
    estimator._online_state = save_online_state(state)
    estimator._check_finite_fit()
    return estimator


def _refuse_init(init, n, m):
    """The inits the block-wise initialisation cannot do, refused."""
    if init == "nndsvdar":
        raise ValueError(
            "init='nndsvdar' is not available for dask arrays (its random "
            "fill is drawn over all the zeros at once); use 'nndsvda', "
            "'nndsvd', 'random' or 'custom'."
        )
    if init != "random" and n < m:
        raise ValueError(
            f"init={init!r} on a dask array needs n_samples >= n_features "
            f"(got {n} x {m}); use init='random' or 'custom'."
        )


# -- SparseNMF ----------------------------------------------------------------------
def fit_sparse_nmf(estimator, X, W=None, H=None):
    """``SparseNMF.fit`` on a dask array (full batch, data-parallel)."""
    from dask import delayed

    if estimator.batch_size is not None:
        raise ValueError(
            f"{type(estimator).__name__} fits a dask array in full batch, block "
            "by block on the cluster; batch_size must be None (got "
            f"batch_size={estimator.batch_size!r})."
        )
    X = prepare(estimator, X, reset=True)
    estimator._check_params(_Shape(X.shape))
    if estimator._beta_loss <= 0:
        low, _ = _scan(estimator, X)
        if low == 0:
            raise ValueError(
                "When beta_loss <= 0 and X contains zeros, "
                "the solver may diverge. Please add small values "
                "to X, or use a positive beta_loss."
            )
    device, generator = estimator._fit_setup()
    if device.type != "cpu":
        raise ValueError(
            f"{type(estimator).__name__} fits dask arrays on the workers' CPUs; "
            f"device={estimator.device!r} is not supported there."
        )
    blocks, summary, dtype, _ = fit_blocks(estimator, X)
    n, m = X.shape
    k = estimator._n_components
    if estimator.init == "custom":
        from ._sparse_nmf import _check_init

        Hc = _check_init(H, (k, m), f"{type(estimator).__name__} (input H)")
        if k == "auto":
            k = estimator._n_components = Hc.shape[0]
        if W is None:
            raise ValueError("init='custom' needs W (numpy or dask) and H.")
        if W.shape != (n, k):
            raise ValueError(
                f"Array with wrong shape passed to {type(estimator).__name__} "
                f"(input W). Expected {(n, k)}, but got {W.shape}."
            )
        root = estimator._factor_scale
        H0 = torch.from_numpy(np.asarray(Hc, dtype=np.float64)).to(dtype) / root
        parts = _custom_codes(W, X, k, dtype)
        blocks.states = [
            delayed(_with_codes, pure=False)(state, part, root, dtype)
            for state, part in zip(blocks.states, parts)
        ]
    else:
        if W is not None or H is not None:
            warn(
                (
                    "When init!='custom', provided W or H are ignored. Set "
                    " init='custom' to use them as initialization."
                ),
                RuntimeWarning,
            )
        if k == "auto":
            k = estimator._n_components = m
        error = (
            f"init = '{estimator.init}' can only be used when "
            "n_components <= min(n_samples, n_features)"
        )
        init = resolve_init(estimator.init, k, n, m, error=error)
        _refuse_init(init, n, m)
        H0 = initialize_blocks(
            blocks,
            k,
            init,
            summary=summary,
            dtype=dtype,
            generator=generator,
            normals=sklearn_normals(estimator.random_state),
            svd_normals=sklearn_normals(estimator.random_state),
        )
    l1_W, l1_H, l2_W, l2_H = estimator._penalties(n, m)
    H, n_iter, converged, error = fit_nmf_blocks(
        blocks,
        H0,
        summary=summary,
        dtype=dtype,
        solver=estimator.solver,
        beta_loss=estimator._beta_loss,
        max_iter=estimator.max_iter,
        tol=estimator.tol,
        l1_reg_W=l1_W,
        l1_reg_H=l1_H,
        l2_reg_W=l2_W,
        l2_reg_H=l2_H,
        sparseness_W=estimator.sparseness_codes,
        sparseness_H=estimator.sparseness_components,
        shuffle=estimator.shuffle,
        generator=generator,
        verbose=estimator.verbose,
    )
    if not converged:
        estimator._warn_max_iter(n_iter, estimator.max_iter)
    if estimator._data_scale != 1:
        error *= estimator._data_scale ** (estimator._beta_loss / 2)
    estimator.reconstruction_err_ = error
    estimator.components_ = estimator._fitted_factor(H, X.dtype)
    estimator.n_components_ = estimator.components_.shape[0]
    estimator.n_iter_ = n_iter
    estimator._online_state = None
    estimator.__dict__.pop("n_steps_", None)
    estimator._check_finite_fit()
    return estimator


class _Shape:
    """What the estimators' ``_check_params`` and ``_check_online_params``
    read from an array: its shape."""

    def __init__(self, shape):
        self.shape = tuple(shape)


# -- MultilayerNMF --------------------------------------------------------------------
def fit_multilayer_nmf(estimator, X):
    """``MultilayerNMF.fit`` on a dask array: every layer fitted block-wise
    on the previous layer's codes (which stay on the workers), then the
    fine-tuning with summed statistics."""
    from .._core._distributed import fine_tune_blocks

    if estimator.batch_size is not None:
        raise ValueError(
            f"{type(estimator).__name__} fits a dask array in full batch, block "
            "by block on the cluster; batch_size must be None (got "
            f"batch_size={estimator.batch_size!r})."
        )
    X = prepare(estimator, X, reset=True)
    n, m = X.shape
    estimator._check_params(n, m)
    device, generator = estimator._fit_setup()
    if device.type != "cpu":
        raise ValueError(
            f"{type(estimator).__name__} fits dask arrays on the workers' CPUs; "
            f"device={estimator.device!r} is not supported there."
        )
    for idx, init in enumerate(estimator._inits):
        n_inputs = m if idx == 0 else estimator._ranks[idx - 1]
        if init != "random" and n < n_inputs:
            raise ValueError(
                f"init={init!r} on a dask array needs n_samples >= the layer's "
                f"inputs ({n} < {n_inputs}); use init='random'."
            )
    blocks, summary, dtype, _ = fit_blocks(estimator, X)
    data, layers, n_iter_layers = blocks, [], []
    layer_summary = summary
    for idx, k in enumerate(estimator._ranks):
        if idx > 0:
            data = data.derive(codes_of, estimator._ranks[idx - 1])
            layer_summary = data.step(data_summary, {"dtype": dtype})
        H0 = initialize_blocks(
            data,
            k,
            estimator._inits[idx],
            summary=layer_summary,
            dtype=dtype,
            generator=generator,
        )
        H, it, done, _ = fit_nmf_blocks(
            data,
            H0,
            summary=layer_summary,
            dtype=dtype,
            solver=estimator.solver,
            max_iter=estimator.max_iter,
            tol=estimator.tol,
            sparseness_W=estimator._sparseness_codes[idx],
            sparseness_H=estimator._sparseness_components[idx],
            generator=generator,
            verbose=estimator.verbose,
        )
        if not done:
            estimator._warn_max_iter(
                it, estimator.max_iter, where=f"in layer {idx + 1}", param="max_iter"
            )
        layers.append(H)
        n_iter_layers.append(it)
    blocks.states = [
        _codes_state(state, last) for state, last in zip(blocks.states, data.states)
    ]
    layers, loss_curve, n_iter = fine_tune_blocks(
        blocks,
        layers,
        summary=summary,
        dtype=dtype,
        max_iter=estimator.fine_tune_iter,
        tol=estimator.tol,
        sparseness_codes=estimator._sparseness_codes[-1],
        sparseness_components=estimator._sparseness_components,
        verbose=estimator.verbose,
    )
    estimator._warn_max_iter(
        n_iter,
        estimator.fine_tune_iter,
        where="in the fine-tuning",
        param="fine_tune_iter",
    )
    from .._core._multilayer import effective_atoms

    components = effective_atoms(layers)[-1]
    max_iter = estimator.transform_max_iter or estimator.max_iter
    code_iter, loss = solve_codes_blocks(
        blocks,
        components,
        dtype=dtype,
        error=True,
        solver=estimator.solver,
        max_iter=max_iter,
        tol=estimator.tol,
        sparseness_W=estimator._sparseness_codes[-1],
    )
    estimator._warn_max_iter(
        code_iter, max_iter, where="in the code solver", param="transform_max_iter"
    )
    c = estimator._data_scale
    estimator._set_layers(layers, components, X.dtype)
    estimator.n_components_ = estimator._ranks[-1]
    estimator.n_iter_ = n_iter
    estimator.n_iter_layers_ = list(n_iter_layers)
    if c != 1:
        loss_curve = [value * c**2 for value in loss_curve]
    estimator.loss_curve_ = loss_curve
    estimator.reconstruction_err_ = c * float(np.sqrt(2 * max(loss, 0.0)))
    estimator._online_state = None
    estimator.__dict__.pop("n_steps_", None)
    estimator._check_finite_fit()
    return estimator


def partial_fit_multilayer_nmf(estimator, X):
    """``MultilayerNMF.partial_fit`` on a dask array: one online step per
    mini-batch of ``batch_size`` rows (None: the whole array, one step), each
    computed where its blocks live (every layer's codes per block, every
    layer's atoms from the summed statistics): the in-memory ``partial_fit``
    of the same rows."""
    from .._core._distributed import multilayer_step_blocks

    states, batches, dtype, n = _open_online(estimator, X)
    first = next(batches)
    if states is None:
        states = _start_layers(estimator, first, dtype)
        estimator.n_steps_ = 0
    for batch in itertools.chain([first], batches):
        multilayer_step_blocks(
            states,
            batch,
            **_step_params(estimator, batch, n, dtype),
            sparseness_codes=estimator._sparseness_codes,
            sparseness_components=estimator._sparseness_components,
        )
        estimator.n_steps_ += 1
    estimator._set_online_model(states, incremental=True)
    estimator._check_finite_fit()
    return estimator


def _start_layers(estimator, first, dtype):
    """``MultilayerNMF._start_online_states`` on the block set ``first`` (the
    first mini-batch): every layer's atoms from its ``init`` on its input
    (block-wise), the layer's codes (on the workers) the next one's input.

    The atoms are the in-memory ones, but for one case: the in-memory
    ``"random"`` init of a layer after the first also draws that layer's
    codes from the generator, which the block-wise one does not need, so
    the layers after such a layer (three layers or more) start from other
    draws."""
    from .._core._online import OnlineNMF
    from ._nmf_base import code_solver_max_iter

    states, data = [], first
    for idx, k in enumerate(estimator._ranks):
        init = estimator._inits[idx]
        _refuse_init(init, data.n_rows, data.n_cols)
        # The first layer starts as SparseNMF does (scikit-learn's draws).
        draws = {}
        if idx == 0:
            draws = dict(
                normals=sklearn_normals(estimator.random_state),
                svd_normals=sklearn_normals(estimator.random_state),
            )
        H0 = initialize_blocks(
            data,
            k,
            init,
            summary=data.step(data_summary, {"dtype": dtype}),
            dtype=dtype,
            generator=estimator._generator,
            codes=False,
            **draws,
        )
        states.append(OnlineNMF.start(H0, estimator._sparseness_components[idx]))
        if idx + 1 < len(estimator._ranks):
            solve_codes_blocks(
                data,
                states[-1].H,
                dtype=dtype,
                solver=estimator.solver,
                max_iter=code_solver_max_iter(estimator),
                tol=estimator.tol,
                sparseness_W=estimator._sparseness_codes[idx],
            )
            data = data.derive(codes_of, k)
    return states


def _codes_state(state, last):
    from dask import delayed

    return delayed(_merge_codes, pure=False)(state, last)


def _merge_codes(state, last):
    state, last = _state_of(state), _state_of(last)
    return {"index": state["index"], "W": last["W"]}


# -- the autoencoder ----------------------------------------------------------------
def fit_autoencoder(estimator, X):
    """``NonnegativeSparseAutoencoder.fit`` on a dask array: ``max_iter``
    epochs, each a ``partial_fit`` over every row block in a new random
    order (from the estimator's generator), the next block computed on its
    worker while the current one trains: the client holds two blocks at a
    time. The input scale is the whole array's largest entry, as in memory.
    """
    if estimator.early_stopping:
        raise ValueError(
            f"{type(estimator).__name__} trains on a dask array block by block; "
            "early_stopping=True needs the data in memory."
        )
    if estimator.solver == "lbfgs":
        raise ValueError(
            f"{type(estimator).__name__} trains on a dask array block by block; "
            "solver='lbfgs' is full-batch and needs the data in memory."
        )
    for attr in list(estimator.__dict__):
        if attr.endswith("_") and not attr.startswith("_"):
            delattr(estimator, attr)  # a fresh fit, not a continuation
    for attr in ("_module", "_optimizer", "_history"):
        estimator.__dict__.pop(attr, None)
    X = prepare(estimator, X, reset=True)
    low, high = _scan_signed(X)
    estimator._stream_peak = max(abs(low), abs(high)) or 1.0
    rng = np.random.RandomState(
        np.random.RandomState(estimator.random_state).randint(2**31 - 1)
        if estimator.random_state is not None
        else None
    )
    blocks = X.to_delayed().ravel().tolist()
    client = _client()
    try:
        for _ in range(estimator.max_iter):
            order = rng.permutation(len(blocks))
            pending = _fetch(blocks[order[0]], client)
            for pos in range(len(order)):
                block = pending.result() if client is not None else pending.compute()
                if pos + 1 < len(order):
                    pending = _fetch(blocks[order[pos + 1]], client)
                estimator._fit(block, incremental=True)
    finally:
        estimator.__dict__.pop("_stream_peak", None)
    estimator.n_iter_ = estimator.max_iter
    err = (X - estimator.inverse_transform(estimator.transform(X))) ** 2
    estimator.reconstruction_err_ = float(err.mean().compute())
    return estimator


def _fetch(block, client):
    """A block being computed: a future on a cluster, else the delayed."""
    return client.compute(block) if client is not None else block


def _scan_signed(X):
    """Smallest and largest entries of a dask array (finite check included)."""
    import dask
    import dask.array as da

    low, high, finite = dask.compute(X.min(), X.max(), da.isfinite(X).all())
    if not finite:
        raise ValueError("Input X contains NaN or infinity (in the dask array).")
    return float(low), float(high)


# -- inference ---------------------------------------------------------------------
def _transform_block(estimator, block):
    return estimator.transform(block)


def _inverse_block(estimator, block):
    return estimator.inverse_transform(block)


def transform(estimator, X):
    """``transform`` of a dask array: a lazy dask array of codes, block by
    block, the fitted estimator shipped once (one key of the graph)."""
    from dask import delayed

    X = prepare(estimator, X, reset=False)
    model = delayed(estimator, name=f"skpart-model-{uuid.uuid4().hex}", traverse=False)
    k = estimator.n_components_
    return X.map_blocks(
        _transform_block_wrapped,
        model,
        chunks=(X.chunks[0], (k,)),
        dtype=X.dtype,
        meta=np.empty((0, 0), dtype=X.dtype),
    )


def _transform_block_wrapped(block, estimator):
    return _transform_block(estimator, block)


def _inverse_block_wrapped(block, estimator):
    return _inverse_block(estimator, block)


def _layers_block(block, estimator):
    return np.concatenate(estimator.transform_layers(block), axis=1)


def transform_layers(estimator, X):
    """``MultilayerNMF.transform_layers`` of a dask array: one lazy dask
    array per layer, all computed by one task per block."""
    from dask import delayed

    X = prepare(estimator, X, reset=False)
    model = delayed(estimator, name=f"skpart-model-{uuid.uuid4().hex}", traverse=False)
    ranks = [H.shape[0] for H in estimator.layers_]
    every = X.map_blocks(
        _layers_block,
        model,
        chunks=(X.chunks[0], (sum(ranks),)),
        dtype=X.dtype,
        meta=np.empty((0, 0), dtype=X.dtype),
    )
    bounds = np.cumsum([0, *ranks])
    return [every[:, bounds[i] : bounds[i + 1]] for i in range(len(ranks))]


def inverse_transform(estimator, codes):
    """``inverse_transform`` of dask codes: a lazy dask array."""
    from dask import delayed

    if codes.ndim != 2:
        raise ValueError("inverse_transform needs 2-D codes.")
    if codes.dtype not in (np.float32, np.float64):
        codes = codes.astype(np.float64)
    if len(codes.chunks[1]) > 1:
        codes = codes.rechunk({1: -1})
    if codes.shape[1] != estimator.n_components_:
        raise ValueError(
            f"X has {codes.shape[1]} features, but {type(estimator).__name__}."
            f"inverse_transform is expecting {estimator.n_components_} features "
            "(n_components_) as input."
        )
    model = delayed(estimator, name=f"skpart-model-{uuid.uuid4().hex}", traverse=False)
    m = estimator.components_.shape[1]
    return codes.map_blocks(
        _inverse_block_wrapped,
        model,
        chunks=(codes.chunks[0], (m,)),
        dtype=codes.dtype,
        meta=np.empty((0, 0), dtype=codes.dtype),
    )
