"""NMF drivers: the full-batch fit and the codes with the atoms fixed."""

import functools
import math
import time
from typing import NamedTuple

import torch

from ._beta import divergence_rows, mu_terms_atoms, mu_terms_codes
from ._device import sync_free
from ._graphs import GraphedBlock, can_capture
from ._hals import n_inner_sweeps
from ._hoyer import best_scale, cone_project
from ._operator import DataOperator, as_operator, gram_half_sq_error
from ._stopping import ErrorPlateau, ViolationRatio
from ._updates import (
    HALSUpdate,
    MultiplicativeUpdate,
    ShuffledOrder,
    add_ridge,
    factor_update,
)

#: Convergence is checked every this many iterations (one host sync each).
CHECK_EVERY = 10
#: The extrapolated HALS rebalances the scale of its factors this often.
BALANCE_EVERY = 10
#: The first this many iterations of the extrapolated HALS are plain
#: (:meth:`ExtrapolatedHALS.iterate` with ``plain``): scikit-learn's own
#: coordinate descent iterations. At most :data:`CHECK_EVERY`, so that they
#: all run before the first block of iterations.
WARM_UP = 10
#: Objective changes below this many float32 ulps of the data's
#: ``0.5 ||X||^2`` (and at least ``_NOISE_ULPS_64`` float64 ulps, the rounding
#: of the Gram formula's float64 sums) are rounding noise: they neither
#: trigger a restart nor decide which pair is the best. float32 ulps in every
#: dtype, so that float32 and float64 fits decide alike.
_NOISE_ULPS = 4
_NOISE_ULPS_64 = 64
#: Codes smaller than this are set to 0 by the multiplicative updates of a
#: beta divergence below 1 (atoms: up to 1), as scikit-learn does.
_EPS64 = float(torch.finfo(torch.float64).eps)


class Penalties(NamedTuple):
    """Scaled L1 and L2 penalties of the codes ``W`` and the atoms ``H``."""

    l1_W: float = 0.0
    l1_H: float = 0.0
    l2_W: float = 0.0
    l2_H: float = 0.0

    def value(self, Wt, H):
        """``l1_W |W|_1 + 0.5 l2_W |W|^2 + l1_H |H|_1 + 0.5 l2_H |H|^2``
        (float64; 0 without penalties)."""
        out = 0.0
        for U, l1, l2 in ((Wt, self.l1_W, self.l2_W), (H, self.l1_H, self.l2_H)):
            if l1:
                out = out + l1 * U.sum().double()
            if l2:
                out = out + 0.5 * l2 * torch.linalg.vecdot(U.flatten(), U.flatten())
        return out


class Extrapolation:
    """Weight of the extrapolation of HALS with restarts (Ang and Gillis, 2019).

    The weight grows (times ``growth``, up to a ceiling that itself grows
    towards 1) while the objective decreases, and shrinks (divided by
    ``shrink``, the ceiling falling to the last accepted weight) on a restart.
    The defaults are the paper's: larger ones (0.75, 1.05, 1.01) reached the
    weight's useful range sooner but amplified rounding, so that the float32
    and float64 fits of the same data ended further apart.

    The state is Python floats, or 0-d float64 tensors on ``device`` for the
    sync-free fit (:meth:`update` with a tensor decision, kept in place so
    that a captured CUDA graph reads the same memory at every replay).
    """

    def __init__(
        self, start=0.5, shrink=1.5, growth=1.01, ceiling_growth=1.005, device=None
    ):
        self.weight, self.accepted, self.ceiling = start, start, 1.0
        if device is not None:
            self.weight, self.accepted, self.ceiling = (
                torch.tensor(v, dtype=torch.float64, device=device)
                for v in (start, start, 1.0)
            )
        self.shrink, self.growth, self.ceiling_growth = shrink, growth, ceiling_growth

    def restart(self):
        """The objective increased: smaller weight, lower ceiling."""
        self.ceiling, self.weight = self.accepted, self.weight / self.shrink

    def accept(self):
        """The objective decreased: larger weight."""
        self.accepted = self.weight
        self.weight = min(self.ceiling, self.growth * self.weight)
        self.ceiling = min(1.0, self.ceiling_growth * self.ceiling)

    def update(self, accepted):
        """:meth:`accept` where the 0-d bool tensor ``accepted`` holds,
        :meth:`restart` elsewhere, as tensor arithmetic written in place."""
        weight = torch.where(
            accepted,
            torch.minimum(self.ceiling, self.growth * self.weight),
            self.weight / self.shrink,
        )
        ceiling = torch.where(
            accepted, (self.ceiling_growth * self.ceiling).clamp(max=1.0), self.accepted
        )
        self.accepted.copy_(torch.where(accepted, self.weight, self.accepted))
        self.weight.copy_(weight)
        self.ceiling.copy_(ceiling)


def objective_noise(half_sq_X):
    """Rounding noise of the Gram-formula objective of data with
    ``0.5 ||X||^2 = half_sq_X``, in any dtype (a float)."""
    ulps = max(
        _NOISE_ULPS * torch.finfo(torch.float32).eps,
        _NOISE_ULPS_64 * torch.finfo(torch.float64).eps,
    )
    return ulps * float(half_sq_X)


def extrapolate(new, old, weight, partner_diag, out=None):
    """``max(0, new + weight (new - old))`` row by row, in one fused pass
    (written into ``out``, which may be ``old``, when given).

    Rows whose partner component is zero (``partner_diag == 0``: the updates
    left them alone) are not extrapolated, or they would grow without end:
    their interpolation weight is 1, which gives ``new`` exactly. The weight
    (a float, or a 0-d tensor in the sync-free fit) goes into a tensor per
    row, so no host sync decides which rows are live.
    """
    one = torch.ones((), dtype=new.dtype, device=new.device)
    if isinstance(weight, torch.Tensor):
        step = (1.0 + weight).to(new.dtype)
    else:
        step = torch.full((), 1.0 + weight, dtype=new.dtype, device=new.device)
    row_weight = torch.where(partner_diag > 0, step, one)
    return torch.lerp(old, new, row_weight.unsqueeze(1), out=out).clamp_(min=0)


def balancing_scale(Ut, V):
    """Per-component factor ``d`` (shape ``(k, 1)``) with which the rows of
    ``Ut * d`` and of ``V / d`` have equal L2 norms (1 where either is zero)."""
    a = torch.linalg.vector_norm(Ut, dim=1, keepdim=True)
    b = torch.linalg.vector_norm(V, dim=1, keepdim=True)
    ok = (a > 0) & (b > 0)
    return torch.where(ok, torch.sqrt(b / torch.where(ok, a, 1.0)), 1.0)


def _project_start(Wt, H, sparseness_W, sparseness_H):
    """The starting pair with every constrained row moved into its cone."""
    if sparseness_W is not None:
        Wt = cone_project(Wt.mT, sparseness_W).mT.contiguous()
    if sparseness_H is not None:
        H = cone_project(H, sparseness_H)
    return Wt, H


class ExtrapolatedHALS:
    """State of the full-batch ``solver="cd"`` fit (Frobenius loss): block
    updates with extrapolation and restarts (Ang and Gillis, 2019, "HER").

    Each :meth:`iterate` updates ``W`` with the extrapolated atoms ``H_y``
    fixed, extrapolates ``W_y = max(0, W_n + b (W_n - W))``, updates ``H``
    with ``W_y`` fixed and extrapolates ``H_y`` the same way. The weight ``b``
    (:class:`Extrapolation`) grows while the objective of ``(W_y, H_n)``
    decreases and shrinks when it increases; the iteration then restarts from
    the best pair met, the last accepted ``(W_y, H_n)``, which is also the
    fit's result (:attr:`result`), so the objective never ends above its
    starting value. (Ang and Gillis restart from the last accepted ``(W_n,
    H_n)``: that pair would be one more codes-sized array to keep.)

    Memory: an iteration holds three codes-sized arrays, the best codes
    (where the update starts), the new ones and their extrapolation, which
    is written over the previous accepted codes (its origin): once it is
    formed, neither an acceptance nor a restart reads them again. On a tall
    sparse ``X`` the codes are the largest arrays of the fit.

    A factor is updated as :func:`~skpart._core._updates.factor_update`
    decides: HALS sweeps when it is free (the same fixed points as
    scikit-learn's coordinate descent), Hoyer's projected gradient when it has
    a sparseness target. A constrained factor is not extrapolated (the
    extrapolated point would need one more projection), and nothing is when
    the codes are constrained: the codes' projected gradient then progresses
    faster against atoms that move smoothly. Without constraints, the first
    :data:`WARM_UP` iterations are plain (:func:`run_extrapolated`): one
    sweep per factor, no extrapolation, no rebalancing, which are
    scikit-learn's iterations from the same start.
    """

    def __init__(self, op, W, H, *, updates, penalties, sparseness_W, sparseness_H):
        n, m = op.shape
        k = H.shape[0]
        self.op, self.penalties = op, penalties
        self.update_W, self.update_H = updates
        self.half_sq_X = op.half_sq_norm()
        # The sweeps per block update grow with the cost of the products,
        # counted in the non-zeros of X (the same work in any container). At
        # least two when a row of X has as many non-zeros as there are
        # components: with the extrapolation, one sweep made each iteration
        # too inexact to pay for its products. With fewer, the products cost
        # less than a sweep and one is best (random CSR 50 000 x 20 000 at
        # density 0.001, k = 50: sklearn's 50-iteration error in 3.7 s with
        # one sweep, 4.8 s with two, 16 s with four).
        per_row, per_col = op.mean_entries()
        least = 2 if per_row >= k else 1
        self.inner_W = max(least, n_inner_sweeps(n, per_row, k))
        self.inner_H = max(least, n_inner_sweeps(m, per_col, k))
        self.constrained = sparseness_W is not None or sparseness_H is not None
        # Rescaling the components would change every sample's code sparseness
        # and the penalties.
        self.balance = sparseness_W is None and not any(penalties)
        self.extrapolate_W = sparseness_W is None
        self.extrapolate_H = not self.constrained
        Wt, H = _project_start(
            W.mT.contiguous(), H.contiguous(), sparseness_W, sparseness_H
        )
        # Off the CPU the accept/restart decision stays on the device: every
        # pair then lives in its own buffer, written in place (a captured
        # CUDA graph reads the same memory at each replay). On the CPU the
        # pairs are shared by reference, with no copies of the codes.
        self.sync_free = sync_free(Wt.device)
        if self.sync_free:
            # Own copies: the starting Wt may share the caller's memory.
            self.Wt, self.H = Wt.clone(), H.clone()  # accepted pair
            self.Wy, self.Hy = Wt.clone(), H.clone()  # extrapolated pair
            self.weight = Extrapolation(device=Wt.device)
        else:
            self.Wt, self.H = Wt, H  # accepted pair, W transposed
            self.Wy, self.Hy = Wt, H  # extrapolated pair
            self.weight = Extrapolation()
        self.best_obj = None
        self.noise = objective_noise(self.half_sq_X)
        self.initial_error = None

    def objective(self, P, V, Q, Wt, H):
        """The penalised loss of ``(Wt, H)`` from the products at hand
        (:func:`~skpart._core._operator.gram_half_sq_error`), a 0-d float64
        tensor."""
        loss = gram_half_sq_error(self.half_sq_X, P, V, Q)
        return loss + self.penalties.value(Wt, H)

    @property
    def result(self):
        """The best pair met ``(W^T, H)``, where the next iteration starts
        (the accepted ``W_y`` and ``H_n``)."""
        return self.Wy, self.H

    @property
    def error(self):
        """Frobenius error of the best pair met (a float: one host sync)."""
        return math.sqrt(2 * max(float(self.best_obj), 0.0))

    def iterate(self, rebalance, violation, plain=False):
        """One iteration; with ``rebalance`` an accepted pair is rebalanced
        (:func:`balancing_scale`). Returns the HALS sweeps' summed
        projected-gradient violation when ``violation`` is true (``None``
        otherwise).

        A ``plain`` iteration updates each factor with one sweep and
        extrapolates nothing (the weight is left as it is): from the same
        start, these are scikit-learn's coordinate descent iterates (one
        sweep over the components of ``W``, then of ``H``). The early
        iterations decide which of the many local minima the fit ends in;
        the extrapolated, multi-sweep iterations, started at once, can take
        another one than scikit-learn's, with a higher error. Plain HALS
        never increases the objective, so a plain pair is always accepted.
        A fit with a sparseness target has no plain iterations (there are no
        scikit-learn iterations to follow).

        Restart or accept: the new pair is accepted when its objective is at
        most the best one's plus the rounding noise. (With the best objective
        never above the previous one, this is Ang and Gillis's test against
        the previous objective, and an accepted pair is always the new best:
        ``(W_y, H)`` is the best pair between iterations.)
        Changes within the rounding noise decide nothing: otherwise the same
        data in another container (dense or CSR: other rounding) or another
        dtype would restart elsewhere and end at another of the many equally
        good factorisations. Sync-free off the CPU (:meth:`_decide_on_device`).
        """
        plain = plain and not self.constrained
        rebalance = rebalance and not plain
        G = self.Hy @ self.Hy.mT
        if self.best_obj is None:  # W_y, H_y are the starting pair
            self.best_obj = self._start_objective(G)
            self.initial_error = self.error
        Wn, viol_W = self._update_codes(G, violation, 1 if plain else self.inner_W)
        Wy = Wn
        if self.extrapolate_W and not plain:
            # Into the accepted codes' buffer unless they are the best ones
            # (after a restart); the sync-free state has its own buffers.
            out = None if self.Wt is self.Wy else self.Wt
            Wy = extrapolate(Wn, self.Wt, self.weight.weight, torch.diagonal(G), out)
        WX = self.op.codes_product(Wy)  # (k, m) = W_y^T X
        G = Wy @ Wy.mT
        inner_H = 1 if plain else self.inner_H
        Hn, viol_H = self.update_H(self.Hy, G, WX, inner_H, violation=violation)
        obj = self.objective(WX, Hn, G, Wy, Hn)
        accepted = obj <= self.best_obj + self.noise
        if self.sync_free:
            self._decide_on_device(accepted, obj, rebalance, plain, Wn, Wy, Hn, G)
        elif bool(accepted):
            self._accept(rebalance, plain, Wn, Wy, Hn, torch.diagonal(G))
            self.best_obj = torch.minimum(obj, self.best_obj)
        else:  # restart from the best pair, which is also the next origin
            self.Wt, self.Hy = self.Wy, self.H
            if not plain:
                self.weight.restart()
        return viol_W.sum() + viol_H.sum() if violation else None

    def step(self, n_iter, check, plain=False):
        """Iteration ``n_iter`` of the fit: rebalanced every
        :data:`BALANCE_EVERY` iterations, with the violation when ``check``
        (and the factors are free); ``plain`` as in :meth:`iterate`."""
        rebalance = n_iter % BALANCE_EVERY == 1
        return self.iterate(rebalance, check and not self.constrained, plain)

    def block(self, check):
        """Iterations ``10 j + 1`` to ``10 j + 10`` (:data:`CHECK_EVERY`),
        the same computation for every ``j``; returns the last one's
        violation when ``check``."""
        for i in range(1, CHECK_EVERY + 1):
            violation = self.step(i, check and i == CHECK_EVERY)
        return violation

    def _decide_on_device(self, accepted, obj, rebalance, plain, Wn, Wy, Hn, G):
        """:meth:`iterate`'s accept/restart as tensor arithmetic: every state
        tensor gets ``torch.where(accepted, new, old)``, in place."""
        d = None
        if self.balance and rebalance:  # rescaled only if accepted
            one = torch.ones((), dtype=Wn.dtype, device=Wn.device)
            d = torch.where(accepted, balancing_scale(Wn, Hn), one)
        Hn, Hy = self._new_pair(d, plain, Wn, Wy, Hn, torch.diagonal(G))
        # W_y may be self.Wt's buffer (iterate): read before it is written.
        Wt_next = torch.where(accepted, Wn, self.Wy)
        Hy_next = torch.where(accepted, Hy, self.H)
        self.Wy.copy_(torch.where(accepted, Wy, self.Wy))
        self.H.copy_(torch.where(accepted, Hn, self.H))
        self.Wt.copy_(Wt_next)
        self.Hy.copy_(Hy_next)
        self.best_obj.copy_(
            torch.where(accepted, torch.minimum(obj, self.best_obj), self.best_obj)
        )
        if not plain:
            self.weight.update(accepted)

    def _start_objective(self, G):
        """The objective of the starting pair (``W_y``, ``H_y``)."""
        if self.op.blocked:
            P = self.op.codes_product(self.Wy)
            return self.objective(P, self.Hy, self.Wy @ self.Wy.mT, self.Wy, self.Hy)
        Bt = self.op.atoms_product_t(self.Hy)
        return self.objective(Bt, self.Wy, G, self.Wy, self.Hy)

    def _update_codes(self, G, violation, inner):
        """The codes' block update against ``H_y`` (``inner`` sweeps);
        returns ``(W_n, violation)``.

        HALS on a tall sparse ``X`` goes one row block at a time (the rows'
        problems are independent), so that the cross term ``X H_y^T``, as
        large as the codes, never exists whole: the peak of such a fit is
        then the codes' own copies. Other updates keep state per row and
        take the whole cross term.
        """
        if not (self.op.blocked and isinstance(self.update_W, HALSUpdate)):
            Bt = self.op.atoms_product_t(self.Hy)  # (k, n) = (X H_y^T)^T
            return self.update_W(self.Wy, G, Bt, inner, violation=violation)
        Wn = torch.empty_like(self.Wy)
        viol = torch.zeros((), dtype=torch.float64, device=Wn.device)
        for sl, Bt in self.op.atoms_product_t_blocks(self.Hy):
            part, v = self.update_W(self.Wy[:, sl], G, Bt, inner, violation=violation)
            Wn[:, sl] = part
            if violation:
                viol += v.sum()
        return Wn, (viol if violation else None)

    def _accept(self, rebalance, plain, Wn, Wy, Hn, diag_W):
        """Take the new pair (rescaled when the factors are rebalanced) and
        extrapolate the atoms (not when ``plain``)."""
        d = balancing_scale(Wn, Hn) if self.balance and rebalance else None
        Hn, self.Hy = self._new_pair(d, plain, Wn, Wy, Hn, diag_W)
        self.Wt, self.H, self.Wy = Wn, Hn, Wy
        if not plain:
            self.weight.accept()

    def _new_pair(self, d, plain, Wn, Wy, Hn, diag_W):
        """The new pair as it is accepted: rebalanced by ``d`` (``None``: not
        this iteration) and the atoms extrapolated from the accepted ones
        (not when ``plain``).
        Returns ``(H_n, H_y)``; ``W_n`` and ``W_y``, this iteration's own
        tensors, are scaled in place (no copies of the codes).

        Extrapolating both factors drifts along the scale invariance
        ``W D, D^-1 H``; every pair in play is rescaled by the same ``D`` (the
        products and the objective are unchanged). The accepted ``W`` is
        about to be replaced, so only the accepted ``H``, which ``H``'s
        extrapolation reads, is rescaled with them.
        """
        H_old = self.H
        if d is not None:
            Wn.mul_(d)
            if Wy is not Wn:
                Wy.mul_(d)
            Hn, H_old = Hn / d, H_old / d
        Hy = Hn
        if self.extrapolate_H and not plain:
            Hy = extrapolate(Hn, H_old, self.weight.weight, diag_W)
        return Hn, Hy


def _fit_extrapolated(op, start, *, max_iter, tol, verbose, **state):
    """:func:`fit_nmf` for ``solver="cd"``: :class:`ExtrapolatedHALS` run by
    :func:`run_extrapolated`. Returns ``(W, H, n_iter, converged)``."""
    run = ExtrapolatedHALS(op, *start, **state)
    start.clear()
    capture = _capturable(op, run.update_W, run.update_H)
    n_iter, converged = run_extrapolated(
        run, max_iter=max_iter, tol=tol, verbose=verbose, capture=capture
    )
    Wt, H = run.result
    run = None  # the other pairs go before the codes are copied out
    return Wt.mT.contiguous(), H, n_iter, converged


def run_extrapolated(run, *, max_iter, tol, verbose, capture=False):
    """The iterations and stopping rules of the extrapolated HALS.

    ``run`` is :class:`ExtrapolatedHALS` or its block-wise twin
    (``_distributed.BlockHALS``): ``step(n_iter, check, plain)``,
    ``block(check)``, ``error``, ``initial_error`` and ``constrained``. The
    first :data:`CHECK_EVERY` iterations go one by one, the first
    :data:`WARM_UP` of them plain (scikit-learn's iterations, which settle
    which local minimum the fit goes to), then whole blocks, all of them the
    same accelerated computation (replayed as a CUDA graph with ``capture``,
    :class:`GraphedBlock`), the remainder one by one. Stops when the error
    decreases by less than ``tol`` times the initial error over
    :data:`CHECK_EVERY` iterations (:class:`ErrorPlateau`, the test of
    ``"mu"``) and, without constraints, scikit-learn's test of its
    coordinate descent also holds
    (:class:`ViolationRatio`): the extrapolated sweeps shrink the violation
    long before the error settles, so the violation test alone stops too
    early. Returns ``(n_iter, converged)``.
    """
    start_time = time.time()
    plateau, ratio = None, ViolationRatio(tol)
    converged = False
    blocks = GraphedBlock(functools.partial(run.block, tol > 0), capture)
    n_iter = 0
    while n_iter < max_iter:
        whole = n_iter >= CHECK_EVERY and max_iter - n_iter >= CHECK_EVERY
        n_iter += CHECK_EVERY if whole else 1
        check = tol > 0 and (n_iter == 1 or n_iter % CHECK_EVERY == 0)
        if whole:
            violation = blocks()
        else:
            violation = run.step(n_iter, check, plain=n_iter <= WARM_UP)
        if not check:
            continue
        if plateau is None:
            plateau = ErrorPlateau(tol, run.initial_error)
        slow = n_iter % CHECK_EVERY == 0 and plateau(run.error)
        if verbose and n_iter % CHECK_EVERY == 0:
            print_epoch(n_iter, start_time, run.error)
        if run.constrained:
            if slow:
                converged = True
                break
            continue
        done = ratio(float(violation))
        if verbose:
            print("violation:", float(violation) / max(ratio.first, _EPS64))
        if ratio.first == 0 or (done and slow):
            if verbose:
                print("Converged at iteration", n_iter)
            converged = True
            break
    if verbose:
        print_epoch(n_iter, start_time)
    return n_iter, converged


def _capturable(op, *updates):
    """Whether a fit's blocks of iterations are replayed as CUDA graphs: on
    CUDA, for dense data and updates with no host-side state (HALS in the
    natural order, multiplicative updates). Sparse products and the
    projected gradient run eagerly, still without host syncs."""
    plain = all(
        isinstance(u, MultiplicativeUpdate)
        or (isinstance(u, HALSUpdate) and u.order is None)
        for u in updates
    )
    return plain and not op.sparse and can_capture(op.X.device)


def print_epoch(n_iter, start_time, error=None):
    """scikit-learn's progress line of its NMF solvers."""
    line = f"Epoch {n_iter:02d} reached after {time.time() - start_time:.3f} seconds"
    print(line + ("." if error is None else f", error: {error:f}"))


class MultiplicativeFit:
    """State of the full-batch ``solver="mu"`` fit: alternating
    multiplicative updates of any beta divergence (scikit-learn's
    ``_fit_multiplicative_update``), with Hoyer's projected gradient (one step
    an iteration, as in Hoyer's ``nmfsc``) for a factor with a sparseness
    target (Frobenius loss only)."""

    def __init__(self, op, W, H, *, beta, updates, sparseness_W, sparseness_H):
        self.op, self.beta = op, beta
        self.update_W, self.update_H = updates
        self.Wt, self.H = _project_start(
            W.mT.clone().contiguous(),
            H.clone().contiguous(),
            sparseness_W,
            sparseness_H,
        )
        self.half_sq_X = op.half_sq_norm() if beta == 2 else None
        # Off the CPU the factors are overwritten in place (a captured CUDA
        # graph reads the same memory at each replay).
        self.in_place = sync_free(self.Wt.device)

    def _set(self, name, value):
        """``self.name = value``, in place in the sync-free fit."""
        if self.in_place:
            getattr(self, name).copy_(value)
        else:
            setattr(self, name, value)

    def iterate(self):
        """Update the codes, then the atoms."""
        if self.beta == 2:
            Bt = self.op.atoms_product_t(self.H)  # (k, n) = (X H^T)^T
            self._set("Wt", self.update_W(self.Wt, self.H @ self.H.mT, Bt, 1)[0])
            Bt = self.op.codes_product(self.Wt)  # (k, m) = W^T X
            self._set("H", self.update_H(self.H, self.Wt @ self.Wt.mT, Bt, 1)[0])
            return
        num, den = mu_terms_codes(self.op, self.Wt.mT, self.H, self.beta)
        Wt = self.update_W.apply(self.Wt, num.mT, den.mT)
        if self.beta < 1:
            Wt = torch.where(Wt < _EPS64, 0.0, Wt)
        self._set("Wt", Wt)
        num, den = mu_terms_atoms(self.op, self.Wt.mT, self.H, self.beta)
        H = self.update_H.apply(self.H, num, den)
        if self.beta <= 1:
            H = torch.where(H < _EPS64, 0.0, H)
        self._set("H", H)

    def block(self):
        """:data:`CHECK_EVERY` iterations (the unit replayed on CUDA)."""
        for _ in range(CHECK_EVERY):
            self.iterate()

    def error(self):
        """``sqrt(2 D_beta(X, W H))`` as a float."""
        W = self.Wt.mT
        if self.beta == 2:
            P = self.op.codes_product(self.Wt)
            res = gram_half_sq_error(self.half_sq_X, P, self.H, self.Wt @ W)
        else:
            res = divergence_rows(self.op, W, self.H, self.beta).sum()
        return float(torch.sqrt(2 * res.clamp(min=0)))


def _fit_multiplicative(op, start, *, max_iter, tol, verbose, **state):
    """:func:`fit_nmf` for ``solver="mu"``; stops on :class:`ErrorPlateau`
    (scikit-learn's rule, which never stops on an initial error of 0).
    Returns ``(W, H, n_iter, converged)``."""
    start_time = time.time()
    run = MultiplicativeFit(op, *start, **state)
    start.clear()
    plateau = ErrorPlateau(tol, run.error(), stop_at_zero=False) if tol > 0 else None
    converged = False
    blocks = GraphedBlock(run.block, _capturable(op, run.update_W, run.update_H))
    n_iter = 0
    while n_iter < max_iter:
        # Whole blocks between the checks (replayed as a CUDA graph on
        # CUDA), the remainder one by one.
        if n_iter % CHECK_EVERY == 0 and max_iter - n_iter >= CHECK_EVERY:
            blocks()
            n_iter += CHECK_EVERY
        else:
            run.iterate()
            n_iter += 1
        if plateau is not None and n_iter % CHECK_EVERY == 0:
            error = run.error()
            if verbose:
                print_epoch(n_iter, start_time, error)
            if plateau(error):
                converged = True
                break
    if verbose and tol == 0:
        print_epoch(n_iter, start_time)
    return run.Wt.mT.contiguous(), run.H, n_iter, converged


def fit_nmf(
    X,
    W=None,
    H=None,
    *,
    start=None,
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
    """Alternating NMF ``X ~ W @ H`` from a starting point, optionally with
    Hoyer sparseness constraints.

    Minimises scikit-learn's objective

    ``D_beta(X, W H) + l1_reg_W |W|_1 + l1_reg_H |H|_1
    + 0.5 l2_reg_W |W|_F^2 + 0.5 l2_reg_H |H|_F^2``

    (``D_2`` is ``0.5 |X - W H|_F^2``) over non-negative ``W`` and ``H``,
    alternating between ``W`` and ``H``. The penalties arrive already scaled
    (scikit-learn's ``_compute_regularization``). Each factor gets the update
    :func:`~skpart._core._updates.factor_update` decides; the loop is

    - ``solver="cd"``: :class:`ExtrapolatedHALS` (Frobenius loss);
    - ``solver="mu"``: :class:`MultiplicativeFit` (any beta divergence).

    Convergence is tested every :data:`CHECK_EVERY` iterations (the only host
    syncs).

    Parameters
    ----------
    X : Tensor or DataOperator of shape (n_samples, n_features)
        Non-negative data, dense or sparse CSR, or its operator (shared with
        :func:`~skpart._core._init.initialize_nmf`: ``X^T`` built once).
    W : Tensor of shape (n_samples, n_components)
        Starting codes (non-negative; with ``sparseness_W`` they are projected).
    H : Tensor of shape (n_components, n_features)
        Starting atoms.
    start : list or None, default=None
        ``[W, H]`` instead of ``W`` and ``H``: the list is emptied once the
        fit's state holds the factors, so that a caller that passes its only
        references has the starting codes freed as soon as the fit has moved
        past them (on a tall sparse ``X`` the codes are the largest arrays of
        the fit; arguments passed directly stay referenced by the caller).
    solver : {"cd", "mu"}, default="cd"
    beta_loss : float, default=2.0
    max_iter : int, default=200
    tol : float, default=1e-4
    l1_reg_W, l1_reg_H, l2_reg_W, l2_reg_H : float, default=0.0
        Scaled penalties.
    sparseness_W : float in [0, 1] or None, default=None
        Hoyer sparseness of every row of ``W`` (one sample's code).
    sparseness_H : float in [0, 1] or None, default=None
        Hoyer sparseness of every row of ``H`` (one atom).
    shuffle : bool, default=False
        Visit the components in a random order in each HALS sweep.
    generator : torch.Generator or None, default=None
        CPU generator for ``shuffle``.
    verbose : int, default=0

    Returns
    -------
    W : Tensor of shape (n_samples, n_components)
    H : Tensor of shape (n_components, n_features)
    n_iter : int
        Number of outer iterations done.
    converged : bool
        Whether the stopping rule ended the fit (``False``: it ran
        ``max_iter`` iterations without the rule holding).
    """
    beta = float(beta_loss)
    if start is None:
        start = [W, H]
    del W, H
    if (sparseness_W is not None or sparseness_H is not None) and beta != 2:
        raise ValueError("Sparseness constraints need the Frobenius loss (beta=2).")
    if solver == "cd" and beta != 2:
        raise ValueError("solver='cd' needs the Frobenius loss (beta=2).")
    op = as_operator(X)
    order = ShuffledOrder(start[1].shape[0], generator) if shuffle else None
    penalties = Penalties(l1_reg_W, l1_reg_H, l2_reg_W, l2_reg_H)
    common = {"solver": solver, "beta": beta, "order": order}
    updates = (
        factor_update(
            sparseness=sparseness_W, codes=True, l1=l1_reg_W, l2=l2_reg_W, **common
        ),
        factor_update(
            sparseness=sparseness_H, codes=False, l1=l1_reg_H, l2=l2_reg_H, **common
        ),
    )
    state = {
        "updates": updates,
        "sparseness_W": sparseness_W,
        "sparseness_H": sparseness_H,
    }
    run = {"max_iter": max_iter, "tol": tol, "verbose": verbose}
    if solver == "cd":
        return _fit_extrapolated(op, start, penalties=penalties, **state, **run)
    return _fit_multiplicative(op, start, beta=beta, **state, **run)


class ActiveRows:
    """The rows of :func:`solve_codes` still iterating: their data, codes
    (transposed, ``(k, n_active)``) and cross term ``(X H^T)^T``, compacted
    whenever rows finish, so later iterations cannot touch finished rows."""

    def __init__(self, op, Wt, Bt, beta):
        self.op, self.Wt, self.Bt, self.beta = op, Wt, Bt, beta
        self.index = torch.arange(op.shape[0], device=Wt.device)

    def divergence(self, H):
        """Per-row error ``sqrt(2 D_beta(x_i, w_i H))`` of the active rows."""
        obj = divergence_rows(self.op, self.Wt.mT, H, self.beta)
        return torch.sqrt(2 * obj.clamp(min=0))

    def retire(self, done, out, per_row_state):
        """Write the rows ``done`` (a mask) to ``out`` and drop them from the
        active rows and from every per-row state object (``.select``)."""
        keep = ~done
        out[self.index[done]] = self.Wt[:, done].mT
        self.index = self.index[keep]
        for obj in per_row_state:
            obj.select(keep)
        if len(self.index) == 0:
            return
        self.Wt = _keep_columns(self.Wt, keep)
        if self.Bt is not None:
            self.Bt = _keep_columns(self.Bt, keep)
        self.op = self.op.take_rows(keep.nonzero().squeeze(1))


def _keep_columns(F, keep):
    """The columns ``keep`` of ``F``, in ``F``'s layout: contiguous, or the
    transpose of a contiguous matrix."""
    if F.mT.is_contiguous() and not F.is_contiguous():
        return F.mT[keep].mT
    return F[:, keep].contiguous()


def _default_codes(op, H, *, solver, sparseness_W, **solver_params):
    """Starting codes of :func:`solve_codes` when none are given.

    With a sparseness target, the unconstrained codes (HALS), projected and
    rescaled later: the projected gradient on the non-convex constraint set
    then starts next to a good local minimum, far better than from the
    projection of zeros. For ``"mu"``, ``sqrt(mean(x_i) / k)`` for sample
    ``i`` (scikit-learn uses the mean of the whole batch). Otherwise zeros.
    """
    n, k = op.shape[0], H.shape[0]
    if sparseness_W is not None:
        return solve_codes(op.X, H, solver="cd", **solver_params)[0]
    if solver == "mu":
        start = torch.sqrt(op.row_means() / k).to(H.dtype)
        return start.unsqueeze(1).expand(n, k)
    return torch.zeros((n, k), dtype=H.dtype, device=H.device)


def _codes_step(rows, update, H, G, inner, violation):
    """One update of the active codes; the HALS violation when asked."""
    if rows.beta == 2:
        rows.Wt, viol = update(rows.Wt, G, rows.Bt, inner, violation=violation)
        return viol
    num, den = mu_terms_codes(rows.op, rows.Wt.mT, H, rows.beta)
    rows.Wt = update.apply(rows.Wt, num.mT, den.mT)
    if rows.beta < 1:
        rows.Wt = torch.where(rows.Wt < _EPS64, 0.0, rows.Wt)
    return None


def solve_codes(
    X,
    H,
    W=None,
    *,
    solver="cd",
    beta_loss=2.0,
    max_iter=200,
    tol=1e-4,
    l1_reg_W=0.0,
    l2_reg_W=0.0,
    sparseness_W=None,
    generator=None,
):
    """Codes ``W >= 0`` with ``X ~ W @ H`` for fixed atoms ``H``, row by row.

    Minimises ``D_beta(X, W H) + l1_reg_W |W|_1 + 0.5 l2_reg_W |W|_F^2`` over
    ``W`` alone (non-negative least squares for ``beta=2``) with the update
    :func:`~skpart._core._updates.factor_update` picks for the codes. Every
    sample's code depends on that sample only: the update's step sizes and
    the stopping rule are per row, and a row stops being updated once its own
    test holds (tested every :data:`CHECK_EVERY` iterations; the rows still
    iterating are :class:`ActiveRows`). So the codes of a sample do not
    depend on the other samples of the batch (with ``sparseness_W``, up to
    rounding: the projection's sums round differently with the shape of its
    row block, about 1e-16, which the projected gradient can amplify to
    1e-9).

    - ``solver="cd"``: HALS sweeps; a row stops on :class:`ViolationRatio`.
    - ``solver="mu"``: multiplicative updates for any ``beta_loss``; a row
      stops on :class:`ErrorPlateau`.
    - ``sparseness_W``: Hoyer's projected gradient with a step size per row
      (Frobenius loss); a row stops like with ``"mu"``.

    Parameters
    ----------
    X : Tensor of shape (n_samples, n_features)
        Non-negative data, dense or sparse CSR.
    H : Tensor of shape (n_components, n_features)
        Fixed atoms.
    W : Tensor of shape (n_samples, n_components) or None, default=None
        Starting codes (``None``: see :func:`_default_codes`).
    solver : {"cd", "mu"}, default="cd"
    beta_loss : float, default=2.0
    max_iter : int, default=200
    tol : float, default=1e-4
        ``0`` runs exactly ``max_iter`` iterations.
    l1_reg_W, l2_reg_W : float, default=0.0
        Scaled penalties.
    sparseness_W : float in [0, 1] or None, default=None
        Hoyer sparseness of every code vector (row of ``W``).
    generator : torch.Generator or None, default=None
        Unused (the solvers here are deterministic); kept for symmetry with
        :func:`fit_nmf`.

    Returns
    -------
    W : Tensor of shape (n_samples, n_components)
    n_iter : int
        Largest number of iterations any row needed.
    """
    beta = float(beta_loss)
    constrained = sparseness_W is not None
    if constrained and beta != 2:
        raise ValueError("Sparseness constraints need the Frobenius loss (beta=2).")
    op = DataOperator(X)
    H = H.contiguous()
    penalties = {"l1_reg_W": l1_reg_W, "l2_reg_W": l2_reg_W}
    if W is None:
        W = _default_codes(
            op,
            H,
            solver=solver,
            sparseness_W=sparseness_W,
            max_iter=max_iter,
            tol=tol,
            **penalties,
        )
    G = H @ H.mT
    update = factor_update(
        solver=solver,
        sparseness=sparseness_W,
        codes=True,
        l1=l1_reg_W,
        l2=l2_reg_W,
        beta=beta,
    )
    hals = solver == "cd" and not constrained
    # HALS sweeps a contiguous (k, n); the other updates work on the rows of
    # the codes, kept contiguous as (n, k) and passed transposed.
    Bt = (op @ H.mT).mT if beta == 2 else None  # (k, n)
    out = W.clone().contiguous()
    if constrained:
        update.const = 0.5 * op.row_sq_norms()
        out = _project_codes(out, G, Bt, sparseness_W, **penalties)
    Wt = out.mT.clone(memory_format=torch.contiguous_format) if hals else out.mT
    if hals and Bt is not None:
        Bt = Bt.contiguous()
    rows = ActiveRows(op, Wt, Bt, beta)
    # Sweeps by the shape alone (not by the batch's non-zeros), so that a
    # sample's codes do not depend on the other samples of its batch.
    inner = n_inner_sweeps(*op.shape, H.shape[0]) if solver == "cd" else 1
    rule = None
    if tol > 0:
        first = None if hals else _row_errors(rows, update, H, G, constrained, True)
        rule = ViolationRatio(tol) if hals else ErrorPlateau(tol, first)
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        check = rule is not None and (n_iter == 1 or n_iter % CHECK_EVERY == 0)
        violation = _codes_step(rows, update, H, G, inner, hals and check)
        if not check or (n_iter == 1 and not hals):
            continue
        if hals:
            done = rule(violation)
        else:
            done = rule(_row_errors(rows, update, H, G, constrained, False))
        if bool(done.any()):
            rows.retire(done, out, [rule, update] if constrained else [rule])
            if len(rows.index) == 0:
                break
    if len(rows.index):
        out[rows.index] = rows.Wt.mT
    return out, n_iter


def _project_codes(W, G, Bt, sparseness_W, *, l1_reg_W, l2_reg_W):
    """Starting codes moved into the sparseness cone, each at the best
    length along its ray."""
    W = cone_project(W, sparseness_W)
    return best_scale(W, W @ add_ridge(G, l2_reg_W), Bt.mT - l1_reg_W)[0]


def _row_errors(rows, update, H, G, constrained, evaluate):
    """Per-row error ``sqrt(2 * objective)`` of the active codes: from the
    projected gradient's objective (evaluated afresh with ``evaluate``, else
    the one of its last step) or from the beta divergence."""
    if not constrained:
        return rows.divergence(H)
    obj = update.evaluate(rows.Wt, G, rows.Bt) if evaluate else update.objective
    return torch.sqrt(2 * obj.clamp(min=0))
