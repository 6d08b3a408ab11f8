"""NMF on data held in row blocks: codes solved per block, atoms from summed statistics.

The data ``X`` is split by rows into blocks that never leave the place they
live in (a Dask worker, or a list in memory). Everything here talks to the
blocks through a *block set*, an object with

- ``step(func, msg)``: run ``func(X_b, state_b, msg) -> (state_b, stats_b)``
  on every block ``b``, keep the new states where they are, and return the
  statistics summed over the blocks (``stats_b`` are dicts of tensors or
  numbers; a value may also be any object with ``+``, such as
  :class:`ArgMaxAbs`);
- ``derive(func)``: a new block set over the same rows whose data is
  ``func(state_b)`` (the codes of one layer as the data of the next);
- ``n_rows`` and ``n_cols``.

:class:`ListBlocks` is the in-memory block set (tests, and the reference for
the Dask one). The drivers repeat the in-memory fits of
:mod:`~skpart._core._nmf` and :mod:`~skpart._core._multilayer` step for step:
the codes' update is separable by rows, so each block does it with the
broadcast atoms, and the atoms' update, the objective, the restart decisions
and the stopping rules need only ``W^T X`` and ``W^T W`` (and, for the beta
divergences, their multiplicative terms), summed over the blocks.
"""

import math
import time

import torch

from ._beta import divergence_rows, mu_terms_atoms, mu_terms_codes
from ._hals import n_inner_sweeps
from ._hoyer import cone_project
from ._multilayer import _balance, _update_layers, effective_atoms
from ._nmf import (
    _EPS64,
    BALANCE_EVERY,
    CHECK_EVERY,
    Extrapolation,
    Penalties,
    extrapolate,
    objective_noise,
    print_epoch,
    run_extrapolated,
    solve_codes,
)
from ._online import (
    balance_atoms,
    batch_statistics,
    fold_layers,
    fold_statistics,
    multilayer_statistics,
)
from ._operator import DataOperator
from ._stopping import ErrorPlateau
from ._updates import ShuffledOrder, factor_update


# -- block sets ------------------------------------------------------------------
class Float64Sum:
    """A float32 statistic summed across blocks in float64: the sum then
    hardly depends on the order in which the blocks are added (which worker
    holds which block), and is returned in float32 by :func:`unwrap_stats`."""

    def __init__(self, value):
        self.value = value

    def __add__(self, other):
        return Float64Sum(self.value + other.value)


def wrap_stats(stats):
    """A block's statistics with its float32 tensors as :class:`Float64Sum`."""
    return {
        key: Float64Sum(val.double())
        if torch.is_tensor(val) and val.dtype == torch.float32
        else val
        for key, val in stats.items()
    }


def unwrap_stats(stats):
    """Summed statistics with every :class:`Float64Sum` back in float32."""
    if stats is None:
        return None
    return {
        key: val.value.float() if isinstance(val, Float64Sum) else val
        for key, val in stats.items()
    }


def add_stats(a, b):
    """Sum of two statistics dicts, key by key (``None`` is the empty sum)."""
    if a is None:
        return b
    if b is None:
        return a
    return {key: a[key] + b[key] for key in a}


class ListBlocks:
    """A block set in memory: a list of row blocks (tensors) and their states."""

    def __init__(self, blocks, states=None):
        self.blocks = list(blocks)
        if states is None:
            states = [{"index": idx} for idx in range(len(self.blocks))]
        self.states = list(states)
        self.n_rows = sum(int(X.shape[0]) for X in self.blocks)
        self.n_cols = int(self.blocks[0].shape[1])

    def step(self, func, msg):
        total = None
        for idx, X in enumerate(self.blocks):
            self.states[idx], stats = func(X, self.states[idx], msg)
            total = add_stats(total, wrap_stats(stats))
        return unwrap_stats(total)

    def derive(self, func, n_cols=None):
        return ListBlocks([func(state) for state in self.states])


class Max:
    """A number combined by ``+`` as the maximum (iteration counts of blocks)."""

    def __init__(self, value):
        self.value = value

    def __add__(self, other):
        return Max(max(self.value, other.value))


class ArgMaxAbs:
    """The signed entry of largest magnitude of every column, combined by ``+``
    across blocks (the sign rule of :func:`~skpart._core._init._flip_signs`)."""

    def __init__(self, U):
        idx = U.abs().argmax(dim=0, keepdim=True)
        self.value = U.gather(0, idx).squeeze(0)

    def __add__(self, other):
        keep = self.value.abs() >= other.value.abs()
        out = ArgMaxAbs.__new__(ArgMaxAbs)
        out.value = torch.where(keep, self.value, other.value)
        return out


def as_tensor(X, dtype=None):
    """A block as a tensor in ``dtype`` (NumPy blocks are wrapped, not copied)."""
    if not torch.is_tensor(X):
        X = torch.from_numpy(X)
    return X if dtype is None or X.dtype == dtype else X.to(dtype)


def data_summary(X, state, msg):
    """Statistics of a block for the fit: ``0.5 ||X||^2`` (float64), the sum
    of the entries (float64) and the number of non-zeros."""
    X = as_tensor(X, msg.get("dtype"))
    stats = {
        "half_sq": 0.5 * torch.linalg.vecdot(X, X).to(torch.float64).sum(),
        "sum": X.sum(dtype=torch.float64),
        "nnz": int(torch.count_nonzero(X)),
    }
    return state, stats


def gram_loss(half_sq_X, cross, Q, VVt):
    """``0.5 ||X - U V||^2`` (float64) from ``<U^T X, V>`` (``cross``),
    ``Q = U^T U`` and ``V V^T``, the formula of
    :func:`~skpart._core._operator.gram_half_sq_error`."""
    quad = torch.linalg.vecdot(Q.flatten().double(), VVt.flatten().double())
    return half_sq_X - cross + 0.5 * quad


def _cross(P, V):
    """``<P, V>`` in float64."""
    return torch.linalg.vecdot(P.flatten().double(), V.flatten().double())


def _codes_penalty_sums(Wt):
    """``sum(W)`` and ``sum(W^2)`` of a block's codes (float64)."""
    W64 = Wt.double()
    return W64.sum(), torch.linalg.vecdot(W64.flatten(), W64.flatten())


def _penalty_value(penalties, sum_W, sq_W, H):
    """:meth:`~skpart._core._nmf.Penalties.value` from the summed codes."""
    out = 0.0
    if penalties.l1_W:
        out = out + penalties.l1_W * sum_W
    if penalties.l2_W:
        out = out + 0.5 * penalties.l2_W * sq_W
    return out + Penalties(0.0, penalties.l1_H, 0.0, penalties.l2_H).value(H, H)


# -- initialisation --------------------------------------------------------------
def _random_codes(X, state, msg):
    """``|N(0, 1)| * scale`` codes of a block, drawn from its own seed."""
    gen = torch.Generator().manual_seed(msg["seed"] + 7919 * state["index"])
    n = int(X.shape[0])
    W = torch.randn((n, msg["k"]), generator=gen, dtype=torch.float64)
    state = dict(state, W=W.to(msg["dtype"]).abs_().mul_(msg["scale"]))
    return state, {}


def _power_step(X, state, msg):
    """``X_b^T (X_b Q)`` of a block (the range finder's power iteration)."""
    X = as_tensor(X, msg["dtype"])
    return state, {"XtXQ": X.mT @ (X @ msg["Q"])}


def _range_gram(X, state, msg):
    """``Y_b = X_b Q`` kept on the block, and ``Y_b^T Y_b`` (float64)."""
    X = as_tensor(X, msg["dtype"])
    Y = X @ msg["Q"]
    Y64 = Y.double()
    return dict(state, Y=Y), {"YtY": Y64.mT @ Y64}


def _range_project(X, state, msg):
    """``Q_b = Y_b R^-1`` (the block's rows of the orthonormal basis) and
    ``Q_b^T X_b``."""
    X = as_tensor(X, msg["dtype"])
    Qb = (state["Y"].double() @ msg["Rinv"]).to(X.dtype)
    state = {key: val for key, val in state.items() if key != "Y"}
    return dict(state, Qb=Qb), {"QtX": Qb.mT @ X}


def _left_vectors(X, state, msg):
    """The block's rows of ``U = Q Uhat``, and what the sign rule and the
    NNDSVD norms need from them."""
    U = state["Qb"] @ msg["Uhat"]
    state = {key: val for key, val in state.items() if key != "Qb"}
    return dict(state, U=U), {"argmax": ArgMaxAbs(U)}


def _part_norms(X, state, msg):
    """Squared norms of the positive and negative parts of the block's
    columns of ``U`` (signs fixed)."""
    U = state["U"] * msg["signs"]
    state = dict(state, U=U)
    return state, {
        "pos": U.clamp(min=0).square().sum(0, dtype=torch.float64),
        "neg": U.clamp(max=0).square().sum(0, dtype=torch.float64),
    }


def _nndsvd_codes(X, state, msg):
    """The block's rows of the NNDSVD codes (formulas of
    :func:`~skpart._core._init._nndsvd`)."""
    U = state["U"]
    sign, scale, root_s0 = msg["sign"], msg["scale"], msg["root_s0"]
    W = (U * sign).clamp_(min=0).mul_(scale)
    W[:, 0] = root_s0 * U[:, 0].abs()
    W.masked_fill_(W < msg["eps"], 0)
    if msg["fill"] is not None:
        W.masked_fill_(W == 0, msg["fill"])
    state = {key: val for key, val in state.items() if key != "U"}
    return dict(state, W=W), {}


def initialize_blocks(
    blocks,
    n_components,
    init,
    *,
    summary,
    dtype,
    generator,
    eps=1e-6,
    normals=None,
    svd_normals=None,
    codes=True,
):
    """Starting factors for the blocks: the codes of every block in its state
    (``state["W"]``), the atoms returned.

    ``"nndsvd"`` and ``"nndsvda"`` are :func:`~skpart._core._init.initialize_nmf`
    done block-wise: the same randomized range finder (power iterations as
    summed ``X_b^T X_b Q``, the last orthonormalisation as a Cholesky QR in
    float64 on the summed ``Y^T Y``), the same SVD, sign rule and NNDSVD
    formulas, so the factors agree with the in-memory ones to rounding when
    the test matrix is the same (``svd_normals``). ``"random"`` draws the
    atoms as the in-memory init does and every block's codes from its own
    seed (so the codes differ from the in-memory draws). Needs ``n_rows >=
    n_cols`` for the NNDSVD ones. With ``codes=False`` only the atoms are
    computed (an online start needs nothing else): no pass over the blocks
    for the codes, and ``"random"`` draws only the atoms (from ``normals``
    when given, so ``generator`` is left as the in-memory init leaves it).
    """
    k, m, n = n_components, blocks.n_cols, blocks.n_rows
    avg = torch.as_tensor(float(summary["sum"]) / (n * m), dtype=dtype)

    def draw(shape):
        if normals is None:
            return torch.randn(shape, generator=generator, dtype=torch.float64).to(
                dtype
            )
        return normals(shape).to(dtype)

    if init == "random":
        scale = torch.sqrt(avg / k)
        H = draw((k, m)).abs_().mul_(scale)
        if codes:
            seed = int(torch.randint(0, 2**62, (), generator=generator))
            blocks.step(
                _random_codes,
                {"seed": seed, "k": k, "dtype": dtype, "scale": scale},
            )
        return H
    if init not in ("nndsvd", "nndsvda"):
        raise ValueError(f"Block-wise initialisation has no init={init!r}.")
    size = k + 10
    n_iter = 7 if k < 0.1 * min(n, m) else 4
    if svd_normals is None:
        Q = torch.randn((m, size), generator=generator, dtype=torch.float64)
    else:
        Q = svd_normals((m, size))
    Q = Q.to(dtype)
    for _ in range(n_iter):
        Q, _ = torch.linalg.qr(
            blocks.step(_power_step, {"Q": Q, "dtype": dtype})["XtXQ"]
        )
    YtY = blocks.step(_range_gram, {"Q": Q, "dtype": dtype})["YtY"]
    R = torch.linalg.cholesky(YtY).mT  # Y = Q R, R upper triangular
    Rinv = torch.linalg.solve_triangular(
        R, torch.eye(R.shape[0], dtype=R.dtype), upper=True
    )
    B = blocks.step(_range_project, {"Rinv": Rinv, "dtype": dtype})["QtX"]
    Uhat, S, Vh = torch.linalg.svd(B, full_matrices=False)
    S, Vh = S[:k], Vh[:k].contiguous()
    top = blocks.step(_left_vectors, {"Uhat": Uhat[:, :k].contiguous()})["argmax"]
    signs = torch.sign(top.value)
    signs = torch.where(signs == 0, torch.ones_like(signs), signs)
    Vh = Vh * signs.unsqueeze(1)
    norms = blocks.step(_part_norms, {"signs": signs})
    x_p_nrm, x_n_nrm = norms["pos"].sqrt().to(dtype), norms["neg"].sqrt().to(dtype)
    y_p_nrm = torch.linalg.vector_norm(Vh.clamp(min=0), dim=1)
    y_n_nrm = torch.linalg.vector_norm(Vh.clamp(max=0), dim=1)
    m_p, m_n = x_p_nrm * y_p_nrm, x_n_nrm * y_n_nrm
    use_p = m_p > m_n
    sigma = torch.where(use_p, m_p, m_n)
    x_nrm = torch.where(use_p, x_p_nrm, x_n_nrm)
    y_nrm = torch.where(use_p, y_p_nrm, y_n_nrm)
    x_nrm = torch.where(x_nrm > 0, x_nrm, torch.ones_like(x_nrm))
    y_nrm = torch.where(y_nrm > 0, y_nrm, torch.ones_like(y_nrm))
    lbd = torch.sqrt(S * sigma)
    sign = torch.where(use_p, 1.0, -1.0).to(dtype)
    H = (Vh * sign.unsqueeze(1)).clamp_(min=0).mul_((lbd / y_nrm).unsqueeze(1))
    root_s0 = torch.sqrt(S[0])
    H[0, :] = root_s0 * Vh[0, :].abs()
    H.masked_fill_(H < eps, 0)
    fill = avg if init == "nndsvda" else None
    if fill is not None:
        H.masked_fill_(H == 0, fill)
    if not codes:
        return H
    blocks.step(
        _nndsvd_codes,
        {
            "sign": sign,
            "scale": lbd / x_nrm,
            "root_s0": root_s0,
            "eps": eps,
            "fill": fill,
        },
    )
    return H


# -- full-batch fit: the extrapolated HALS ---------------------------------------
def _apply_decision(state, decision):
    """Apply the client's verdict on the last iteration to a block's codes:
    restart from the best codes, or accept the new ones (rescaled by
    ``d``)."""
    if decision is None:
        return state
    kind, d = decision
    state = dict(state)
    if kind == "restart":
        state["Wt"] = state["Wy"]
    else:
        Wn, Wy = state["Wn"], state["Wy_new"]
        if d is not None:
            Wn, Wy = Wn * d, Wy * d
        state["Wt"], state["Wy"] = Wn, Wy
    state.pop("Wn", None)
    state.pop("Wy_new", None)
    return state


def _codes_update(msg, step):
    """The codes' update of the fit (the one :func:`fit_nmf` builds), with
    the projected gradient's step sizes of this block."""
    return factor_update(
        solver=msg["solver"],
        sparseness=msg["sparseness_W"],
        codes=True,
        l1=msg["l1_W"],
        l2=msg["l2_W"],
        beta=msg.get("beta", 2.0),
        order=msg.get("order"),
        step=step,
    )


def _start_codes(state, sparseness_W):
    """A block's starting codes, transposed, in the cone when constrained."""
    Wt = state["W"].mT.contiguous()
    if sparseness_W is not None:
        Wt = cone_project(Wt.mT, sparseness_W).mT.contiguous()
    return {"index": state.get("index"), "Wt": Wt, "step": None}


def _hals_block(X, state, msg):
    """The codes' half of one :class:`~skpart._core._nmf.ExtrapolatedHALS`
    iteration on a block: HALS (or projected-gradient) update of the codes
    against the broadcast extrapolated atoms, extrapolation of the codes,
    and the statistics of the atoms' update."""
    X = as_tensor(X, msg["dtype"])
    stats = {}
    if msg["first"]:
        state = _start_codes(state, msg["sparseness_W"])
        state["Wy"] = state["Wt"]
    else:
        state = _apply_decision(state, msg["decision"])
    Hy, G = msg["Hy"], msg["G"]
    Wy = state["Wy"]
    Bt = Hy @ X.mT  # (k, n_b) = (X H_y^T)^T
    if msg["first"]:
        stats["cross0"] = _cross(Bt, Wy)
        stats["VVt0"] = Wy @ Wy.mT
        stats["sum0"], stats["sq0"] = _codes_penalty_sums(Wy)
    update = _codes_update(msg, state["step"])
    Wn, viol = update(Wy, G, Bt, msg["inner"], violation=msg["violation"])
    if msg["sparseness_W"] is not None:
        state["step"] = update.step
    Wy = Wn
    if msg["extrapolate_W"]:
        Wy = extrapolate(Wn, state["Wt"], msg["weight"], torch.diagonal(G))
    state["Wn"], state["Wy_new"] = Wn, Wy
    stats["WX"] = Wy @ X
    stats["G"] = Wy @ Wy.mT
    stats["sum"], stats["sq"] = _codes_penalty_sums(Wy)
    if msg["violation"]:
        stats["viol"] = viol.sum()
    if msg["norms"]:
        stats["Wn_sq"] = Wn.square().sum(1, keepdim=True)
    return state, stats


def _finish_block(X, state, msg):
    """Apply the last verdict; the best codes (``W_y``) become
    ``state["W"]``."""
    state = _apply_decision(state, msg["decision"])
    return {"index": state.get("index"), "W": state["Wy"].mT.contiguous()}, {}


class BlockHALS:
    """:class:`~skpart._core._nmf.ExtrapolatedHALS` on a block set.

    The same iteration: the codes' update and extrapolation on every block
    (:func:`_hals_block`), the atoms' update, the objective (the Gram formula
    on the summed statistics), the restart decision, the rebalancing and the
    atoms' extrapolation on the client. A block applies the verdict on its
    codes at the start of the next iteration.
    """

    def __init__(
        self,
        blocks,
        H,
        *,
        summary,
        dtype,
        updates_H,
        penalties,
        sparseness_W,
        sparseness_H,
        order,
        codes_params,
    ):
        n, m = blocks.n_rows, blocks.n_cols
        k = H.shape[0]
        self.blocks, self.penalties, self.update_H = blocks, penalties, updates_H
        self.half_sq_X = summary["half_sq"]
        per_row, per_col = summary["nnz"] / max(n, 1), summary["nnz"] / max(m, 1)
        least = 2 if per_row >= k else 1
        self.inner_W = max(least, n_inner_sweeps(n, per_row, k))
        self.inner_H = max(least, n_inner_sweeps(m, per_col, k))
        self.constrained = sparseness_W is not None or sparseness_H is not None
        self.balance = sparseness_W is None and not any(penalties)
        self.extrapolate_W = sparseness_W is None
        self.extrapolate_H = not self.constrained
        H = H.contiguous()
        if sparseness_H is not None:
            H = cone_project(H, sparseness_H)
        self.H = self.Hy = H
        self.weight = Extrapolation()
        self.best_obj = self.best_loss = None
        self.obj_prev = None
        self.noise = objective_noise(self.half_sq_X)
        self.initial_error = None
        self.order = order
        self.decision = None
        self.base = dict(
            codes_params,
            dtype=dtype,
            solver="cd",
            sparseness_W=sparseness_W,
            extrapolate_W=self.extrapolate_W,
            inner=self.inner_W,
        )

    @property
    def error(self):
        """Frobenius error of the best pair's objective."""
        return math.sqrt(2 * max(self.best_obj, 0.0))

    def _order(self, k):
        if self.order is None:
            return None
        return self.order()

    def iterate(self, n_iter, violation, plain=False):
        """One iteration; the summed violation when ``violation``. ``plain``
        as in :meth:`~skpart._core._nmf.ExtrapolatedHALS.iterate`."""
        plain = plain and not self.constrained
        first = self.best_obj is None
        G = self.Hy @ self.Hy.mT
        k = G.shape[0]
        msg = dict(
            self.base,
            first=first,
            decision=self.decision,
            Hy=self.Hy,
            G=G,
            weight=self.weight.weight,
            violation=violation,
            norms=self.balance and n_iter % BALANCE_EVERY == 1 and not plain,
            order=self._order(k),
        )
        if plain:
            msg.update(extrapolate_W=False, inner=1)
        s = self.blocks.step(_hals_block, msg)
        if first:
            loss = gram_loss(self.half_sq_X, s["cross0"], G, s["VVt0"])
            pen = _penalty_value(self.penalties, s["sum0"], s["sq0"], self.Hy)
            self.best_obj = self.obj_prev = float(loss + pen)
            self.best_loss = float(loss)
            self.initial_error = self.error
        G_W, WX = s["G"], s["WX"]
        inner_H = 1 if plain else self.inner_H
        Hn, viol_H = self.update_H(self.Hy, G_W, WX, inner_H, violation=violation)
        loss = gram_loss(self.half_sq_X, _cross(WX, Hn), G_W, Hn @ Hn.mT)
        obj = float(loss + _penalty_value(self.penalties, s["sum"], s["sq"], Hn))
        if obj > min(self.obj_prev, self.best_obj) + self.noise:  # restart
            self.Hy = self.H
            if not plain:
                self.weight.restart()
            self.decision = ("restart", None)
        else:
            d = None
            if self.balance and n_iter % BALANCE_EVERY == 1 and not plain:
                a = s["Wn_sq"].sqrt()
                b = torch.linalg.vector_norm(Hn, dim=1, keepdim=True)
                ok = (a > 0) & (b > 0)
                d = torch.where(ok, torch.sqrt(b / torch.where(ok, a, 1.0)), 1.0)
                Hn, self.H = Hn / d, self.H / d
            self.Hy = Hn
            if self.extrapolate_H and not plain:
                self.Hy = extrapolate(
                    Hn, self.H, self.weight.weight, torch.diagonal(G_W)
                )
            self.H = Hn
            if not plain:
                self.weight.accept()
            self.decision = ("accept", d)
        self.obj_prev = obj
        if obj <= self.best_obj + self.noise:
            self.best_obj, self.best_loss = min(obj, self.best_obj), float(loss)
        if violation:
            return s["viol"] + viol_H.sum()
        return None

    def step(self, n_iter, check, plain=False):
        """Iteration ``n_iter`` (:meth:`~skpart._core._nmf.ExtrapolatedHALS.step`)."""
        return self.iterate(n_iter, check and not self.constrained, plain)

    def block(self, check):
        """:data:`~skpart._core._nmf.CHECK_EVERY` iterations
        (:meth:`~skpart._core._nmf.ExtrapolatedHALS.block`)."""
        for i in range(1, CHECK_EVERY + 1):
            violation = self.step(i, check and i == CHECK_EVERY)
        return violation

    def finish(self):
        """Leave the best codes in every block's ``state["W"]``; returns the
        best atoms and the Frobenius error of the best pair."""
        self.blocks.step(_finish_block, {"decision": self.decision})
        return self.H, math.sqrt(2 * max(self.best_loss, 0.0))


def _fit_hals_blocks(run, *, max_iter, tol, verbose):
    """:func:`~skpart._core._nmf._fit_extrapolated` for a :class:`BlockHALS`."""
    n_iter, converged = run_extrapolated(
        run, max_iter=max_iter, tol=tol, verbose=verbose
    )
    H, error = run.finish()
    return H, n_iter, converged, error


# -- full-batch fit: multiplicative updates --------------------------------------
def _mu_block(X, state, msg):
    """The codes' half of one :class:`~skpart._core._nmf.MultiplicativeFit`
    iteration on a block, and the statistics of the atoms' update."""
    X = as_tensor(X, msg["dtype"])
    if msg["first"]:
        state = _start_codes(state, msg["sparseness_W"])
    state = dict(state)
    H, beta = msg["H"], msg["beta"]
    Wt = state["Wt"]
    update = _codes_update(msg, state["step"])
    stats = {}
    if beta == 2:
        Bt = H @ X.mT
        Wt, _ = update(Wt, msg["G"], Bt, 1)
        if msg["sparseness_W"] is not None:
            state["step"] = update.step
        stats["WX"], stats["G"] = Wt @ X, Wt @ Wt.mT
    else:
        op = DataOperator(X)
        num, den = mu_terms_codes(op, Wt.mT, H, beta)
        Wt = update.apply(Wt, num.mT, den.mT)
        if beta < 1:
            Wt = torch.where(Wt < _EPS64, 0.0, Wt)
        if beta == 1:
            stats["num"] = mu_terms_atoms(op, Wt.mT, H, beta)[0]
            stats["W_sum"] = Wt.sum(1)
        else:
            stats["num"], stats["den"] = mu_terms_atoms(op, Wt.mT, H, beta)
    state["Wt"] = Wt
    return state, stats


def _mu_start_stats(X, state, msg):
    """The statistics of the starting pair's error (beta = 2)."""
    X = as_tensor(X, msg["dtype"])
    Wt = _start_codes(state, msg["sparseness_W"])["Wt"]
    return state, {"WX": Wt @ X, "G": Wt @ Wt.mT}


def _divergence_block(X, state, msg):
    """The beta divergence of a block's rows and its codes (``Wt`` in its
    state, or the starting codes)."""
    X = as_tensor(X, msg["dtype"])
    if "Wt" in state:
        W = state["Wt"].mT
    else:
        W = _start_codes(state, msg["sparseness_W"])["Wt"].mT
    return state, {
        "div": divergence_rows(DataOperator(X), W, msg["H"], msg["beta"]).sum()
    }


def _final_codes(X, state, msg):
    return {"index": state.get("index"), "W": state["Wt"].mT.contiguous()}, {}


class BlockMU:
    """:class:`~skpart._core._nmf.MultiplicativeFit` on a block set."""

    def __init__(
        self,
        blocks,
        H,
        *,
        summary,
        dtype,
        beta,
        updates_H,
        sparseness_W,
        sparseness_H,
        codes_params,
    ):
        self.blocks, self.beta, self.update_H = blocks, beta, updates_H
        H = H.clone().contiguous()
        if sparseness_H is not None:
            H = cone_project(H, sparseness_H)
        self.H = H
        self.half_sq_X = summary["half_sq"]
        self.first = True
        self.last_stats = None
        self.base = dict(
            codes_params, dtype=dtype, solver="mu", beta=beta, sparseness_W=sparseness_W
        )

    def start_error(self):
        if self.beta == 2:
            s = self.blocks.step(_mu_start_stats, self.base)
            return self._gram_error(s)
        s = self.blocks.step(_divergence_block, dict(self.base, H=self.H))
        return float(torch.sqrt(2 * s["div"].clamp(min=0)))

    def _gram_error(self, s):
        loss = gram_loss(
            self.half_sq_X, _cross(s["WX"], self.H), s["G"], self.H @ self.H.mT
        )
        return float(torch.sqrt(2 * loss.clamp(min=0)))

    def iterate(self):
        msg = dict(self.base, first=self.first, H=self.H, G=self.H @ self.H.mT)
        self.first = False
        s = self.blocks.step(_mu_block, msg)
        if self.beta == 2:
            self.H, _ = self.update_H(self.H, s["G"], s["WX"], 1)
        else:
            if self.beta == 1:
                W_sum = s["W_sum"]
                den = torch.where(W_sum == 0, 1.0, W_sum).unsqueeze(1)
                den = den.expand_as(self.H)
            else:
                den = s["den"]
            self.H = self.update_H.apply(self.H, s["num"], den)
            if self.beta <= 1:
                self.H = torch.where(self.H < _EPS64, 0.0, self.H)
        self.last_stats = s

    def error(self):
        """``sqrt(2 D_beta(X, W H))`` of the current pair."""
        if self.beta == 2:
            return self._gram_error(self.last_stats)
        s = self.blocks.step(_divergence_block, dict(self.base, H=self.H))
        return float(torch.sqrt(2 * s["div"].clamp(min=0)))

    def finish(self):
        self.blocks.step(_final_codes, {})


def _fit_mu_blocks(run, *, max_iter, tol, verbose):
    """The loop of :func:`~skpart._core._nmf._fit_multiplicative`."""
    start_time = time.time()
    first = run.start_error() if tol > 0 else None
    plateau = ErrorPlateau(tol, first, stop_at_zero=False) if tol > 0 else None
    converged = False
    n_iter = 0
    error = None
    for n_iter in range(1, max_iter + 1):
        run.iterate()
        error = None
        if plateau is not None and n_iter % CHECK_EVERY == 0:
            error = run.error()
            if verbose:
                print_epoch(n_iter, start_time, error)
            if plateau(error):
                converged = True
                break
    if verbose and tol == 0:
        print_epoch(n_iter, start_time)
    if error is None:
        error = run.error()
    run.finish()
    return run.H, n_iter, converged, error


def fit_nmf_blocks(
    blocks,
    H,
    *,
    summary,
    dtype,
    solver="cd",
    beta_loss=2.0,
    max_iter=200,
    tol=1e-4,
    l1_reg_W=0.0,
    l1_reg_H=0.0,
    l2_reg_W=0.0,
    l2_reg_H=0.0,
    sparseness_W=None,
    sparseness_H=None,
    shuffle=False,
    generator=None,
    verbose=0,
):
    """:func:`~skpart._core._nmf.fit_nmf` on a block set whose states hold
    the starting codes (``state["W"]``, from :func:`initialize_blocks` or
    given).

    Same parameters and iterates as the in-memory fit; ``summary`` holds the
    data's ``half_sq`` (``0.5 ||X||^2``) and ``nnz``. The codes stay in the
    blocks; afterwards every block's state holds its codes of the fit in
    ``state["W"]`` (``ExtrapolatedHALS.result``'s for ``"cd"``, the last for ``"mu"``).

    Returns
    -------
    H : Tensor of shape (k, n_cols)
    n_iter : int
    converged : bool
    error : float
        ``sqrt(2 D_beta(X, W H))`` of the returned pair, from the summed
        statistics (the Frobenius error for ``beta_loss=2``).
    """
    beta = float(beta_loss)
    if (sparseness_W is not None or sparseness_H is not None) and beta != 2:
        raise ValueError("Sparseness constraints need the Frobenius loss (beta=2).")
    if solver == "cd" and beta != 2:
        raise ValueError("solver='cd' needs the Frobenius loss (beta=2).")
    k = H.shape[0]
    order = ShuffledOrder(k, generator) if shuffle else None
    common = {"solver": solver, "beta": beta, "order": order}
    update_H = factor_update(
        sparseness=sparseness_H, codes=False, l1=l1_reg_H, l2=l2_reg_H, **common
    )
    codes_params = {"l1_W": l1_reg_W, "l2_W": l2_reg_W}
    run = {"max_iter": max_iter, "tol": tol, "verbose": verbose}
    if solver == "cd":
        state = BlockHALS(
            blocks,
            H,
            summary=summary,
            dtype=dtype,
            updates_H=update_H,
            penalties=Penalties(l1_reg_W, l1_reg_H, l2_reg_W, l2_reg_H),
            sparseness_W=sparseness_W,
            sparseness_H=sparseness_H,
            order=order,
            codes_params=codes_params,
        )
        return _fit_hals_blocks(state, **run)
    state = BlockMU(
        blocks,
        H,
        summary=summary,
        dtype=dtype,
        beta=beta,
        updates_H=update_H,
        sparseness_W=sparseness_W,
        sparseness_H=sparseness_H,
        codes_params=codes_params,
    )
    return _fit_mu_blocks(state, **run)


# -- codes with the atoms fixed --------------------------------------------------
def _solve_block(X, state, msg):
    """:func:`~skpart._core._nmf.solve_codes` on a block; the codes in its
    state and, with ``msg["error"]``, the block's ``0.5 ||X - W H||^2``."""
    X = as_tensor(X, msg["dtype"])
    W, n_iter = solve_codes(X, msg["H"], **msg["params"])
    state = {"index": (state or {}).get("index"), "W": W}
    stats = {"n_iter": Max(n_iter)}
    if msg.get("error"):
        rows = divergence_rows(DataOperator(X), W, msg["H"], 2.0)
        stats["loss"] = rows.sum()
    return state, stats


def solve_codes_blocks(blocks, H, *, dtype, error=False, **params):
    """:func:`~skpart._core._nmf.solve_codes` on every block, the codes left
    in the states (``state["W"]``). Returns the largest iteration count of a
    block and, with ``error``, the summed ``0.5 ||X - W H||^2`` (else None)."""
    msg = {"H": H, "dtype": dtype, "params": params, "error": error}
    s = blocks.step(_solve_block, msg)
    return s["n_iter"].value, (float(s["loss"]) if error else None)


def codes_of(state):
    """The codes a block's state holds (the data of the next layer)."""
    return state["W"]


# -- multilayer fine-tuning ----------------------------------------------------------
def _fine_tune_block(X, state, msg):
    """The codes' half of a fine-tuning sweep on a block (or, with
    ``msg["start"]``, the statistics of the starting codes)."""
    X = as_tensor(X, msg["dtype"])
    state = dict(state)
    if msg["start"]:
        Wt = state.pop("W").mT.contiguous() * msg["scale"]
        state["step"] = None
        Bt = msg["B"] @ X.mT
    else:
        Wt = state["Wt"] * msg["scale"]
        Bt = msg["B"] @ X.mT
        update = factor_update(
            solver="cd",
            sparseness=msg["sparseness_W"],
            codes=True,
            rescale=False,
            step=state["step"],
        )
        Wt, _ = update(Wt, msg["BBt"], Bt, msg["inner"])
        if msg["sparseness_W"] is not None:
            state["step"] = update.step
    state["Wt"] = Wt
    return state, {"cross": _cross(Bt, Wt), "S": Wt @ Wt.mT, "WX": Wt @ X}


def fine_tune_blocks(
    blocks,
    layers,
    *,
    summary,
    dtype,
    max_iter=100,
    tol=1e-4,
    sparseness_codes=None,
    sparseness_components=None,
    verbose=0,
):
    """:func:`~skpart._core._multilayer.fine_tune` on a block set whose
    states hold the last layer's codes (``state["W"]``).

    One pass over the blocks per sweep: the blocks update their codes with
    the new effective atoms and return ``<X C^T, W>``, ``W^T W`` and
    ``W^T X``, from which the client propagates the layers' Gram matrices,
    updates the layers (the in-memory functions) and evaluates the loss.

    Returns
    -------
    layers : list of Tensor
    loss_curve : list of float
    n_iter : int
    """
    atoms_targets = sparseness_components or [None] * len(layers)
    n, m = blocks.n_rows, blocks.n_cols
    half_sq_X = summary["half_sq"]
    one = torch.ones((), dtype=dtype)
    _, layers, scale = _balance(one, list(layers))
    k_L = layers[-1].shape[0]
    inner_W = n_inner_sweeps(n, m, k_L)
    inner_H = n_inner_sweeps(m, n, layers[0].shape[0])
    update_H = factor_update(solver="cd", sparseness=atoms_targets[0], codes=False)
    C = effective_atoms(layers)[-1]
    CCt = C @ C.mT
    base = {"dtype": dtype, "sparseness_W": sparseness_codes, "inner": inner_W}
    s = blocks.step(_fine_tune_block, dict(base, start=True, scale=scale, B=C))
    S, WX = s["S"], s["WX"]
    loss = gram_loss(half_sq_X, s["cross"], CCt, S)
    loss_curve = [float(loss)]
    plateau = ErrorPlateau(tol, _half_error(loss_curve[0]), stop_at_zero=False)
    start_time = time.time()
    scale = torch.ones((), dtype=dtype)
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        grams, cross = [None] * len(layers), [None] * len(layers)
        grams[-1], cross[-1] = S, WX
        for idx in range(len(layers) - 1, 0, -1):
            H = layers[idx]
            grams[idx - 1] = H.mT @ grams[idx] @ H
            cross[idx - 1] = H.mT @ cross[idx]
        B, BBt = _update_layers(layers, grams, cross, update_H, inner_H, atoms_targets)
        msg = dict(base, start=False, scale=scale, B=B, BBt=BBt)
        s = blocks.step(_fine_tune_block, msg)
        S, WX = s["S"], s["WX"]
        loss_curve.append(float(gram_loss(half_sq_X, s["cross"], BBt, S)))
        _, layers, scale = _balance(one, layers)
        S, WX = S * (scale * scale), WX * scale
        if verbose:
            elapsed = time.time() - start_time
            print(
                f"Fine-tuning sweep {n_iter} after {elapsed:.3f} s, "
                f"loss: {loss_curve[-1]:f}"
            )
        if tol > 0 and plateau(_half_error(loss_curve[-1])):
            break
    return layers, loss_curve, n_iter


def _half_error(loss):
    """Frobenius error ``sqrt(2 loss)`` of a half squared error."""
    return math.sqrt(2 * max(loss, 0.0))


# -- online steps ---------------------------------------------------------------------
def _online_codes_block(X, state, msg):
    """The codes of a mini-batch block with the atoms fixed (as ``transform``
    computes them) and the statistics of the online atoms' update."""
    X = as_tensor(X, msg["dtype"])
    W, _ = solve_codes(X, msg["H"], **msg["params"])
    stats = dict(zip(_BATCH_STATS, batch_statistics(W, X)))
    stats["sum_W"], stats["sq_W"] = _codes_penalty_sums(W)
    return state, stats


#: The names of :func:`~skpart._core._online.batch_statistics`' values.
_BATCH_STATS = ("WtW", "WtX", "half_sq", "n")


def minibatch_step_blocks(
    state,
    blocks,
    *,
    rho,
    dtype,
    solver="cd",
    code_max_iter=200,
    tol=1e-4,
    l1_reg_W=0.0,
    l2_reg_W=0.0,
    l1_reg_H=0.0,
    l2_reg_H=0.0,
    sparseness_W=None,
    sparseness_H=None,
    order=None,
    balance=True,
):
    """:func:`~skpart._core._online.minibatch_step` on a mini-batch held in a
    block set: every block solves its codes with the atoms fixed and returns
    ``W^T W``, ``W^T X`` and ``0.5 ||X||^2``, and the atoms are updated from
    their sums exactly as :func:`~skpart._core._online.update_atoms` updates
    them from one batch. Returns ``(fit, objective, change)``."""
    params = {
        "solver": solver,
        "max_iter": code_max_iter,
        "tol": tol,
        "l1_reg_W": l1_reg_W,
        "l2_reg_W": l2_reg_W,
        "sparseness_W": sparseness_W,
    }
    s = blocks.step(
        _online_codes_block, {"H": state.H, "dtype": dtype, "params": params}
    )
    fit, change, dead = fold_statistics(
        state,
        s["WtW"],
        s["WtX"],
        s["half_sq"],
        s["n"],
        rho=rho,
        solver=solver,
        l1_reg_H=l1_reg_H,
        l2_reg_H=l2_reg_H,
        sparseness_H=sparseness_H,
        order=order,
    )
    fit, change = float(fit), float(change)
    penalised = l1_reg_W or l2_reg_W or l1_reg_H or l2_reg_H
    if balance and sparseness_W is None and not penalised:
        balance_atoms(state, dead=dead)
    objective = fit
    if l1_reg_W or l2_reg_W:
        objective += float(l1_reg_W * s["sum_W"] + 0.5 * l2_reg_W * s["sq_W"])
    return fit, objective, change


def _multilayer_codes_block(X, state, msg):
    """The codes of every layer of a mini-batch block with the atoms fixed
    and the statistics of the layers' online update
    (:func:`~skpart._core._online.multilayer_statistics`). The codes are
    not kept: the block's state is left with its index only."""
    X = as_tensor(X, msg["dtype"])
    _, layers, stack_WtX = multilayer_statistics(msg["layers"], X, **msg["params"])
    stats = {"stack_WtX": stack_WtX}
    for idx, values in enumerate(layers):
        stats.update({f"{name}_{idx}": v for name, v in zip(_BATCH_STATS, values)})
    return {"index": state.get("index")}, stats


def multilayer_step_blocks(
    states,
    blocks,
    *,
    rho,
    dtype,
    solver="cd",
    code_max_iter=200,
    tol=1e-4,
    sparseness_codes=None,
    sparseness_components=None,
):
    """:func:`~skpart._core._online.multilayer_step` on a mini-batch held in
    a block set: every block solves the codes of every layer with the atoms
    fixed and returns, per layer, ``W_l^T W_l``, ``W_l^T W_(l-1)`` and
    ``0.5 ||W_(l-1)||^2`` (``W_0 = X``), and ``W_L^T X``; the layers' atoms
    are updated from their sums by
    :func:`~skpart._core._online.fold_layers`, exactly as
    ``multilayer_step`` updates them from one batch. Returns ``(cost,
    change, stack_cost)`` as ``multilayer_step`` (without the codes, which
    stay on the workers and are dropped)."""
    params = {
        "solver": solver,
        "code_max_iter": code_max_iter,
        "tol": tol,
        "sparseness_codes": sparseness_codes,
    }
    msg = {"layers": [state.H for state in states], "dtype": dtype, "params": params}
    s = blocks.step(_multilayer_codes_block, msg)
    stats = [
        tuple(s[f"{name}_{idx}"] for name in _BATCH_STATS) for idx in range(len(states))
    ]
    return fold_layers(
        states,
        stats,
        s["stack_WtX"],
        rho=rho,
        solver=solver,
        sparseness_codes=sparseness_codes,
        sparseness_components=sparseness_components,
    )
