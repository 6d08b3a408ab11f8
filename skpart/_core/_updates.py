"""Factor updates behind one interface, and the one rule that picks a factor's update.

Every update improves one factor ``F`` of shape ``(k, r)`` (the atoms ``H``,
or the codes transposed, ``W^T``: by symmetry the same code serves both, as
scikit-learn's ``_update_coordinate_descent`` does) on the quadratic

    0.5 <F, G F> - <B, F> + l1 |F|_1 + 0.5 l2 |F|_F^2,

given ``G`` (``k x k``, the other factor's Gram matrix) and ``B`` (``k x r``,
the cross term with the data). ``update(F, G, B, n_steps)`` returns the new
factor in the memory layout of ``F`` (the argument is not modified) and, for
HALS when asked, the projected-gradient violation of its first sweep. State
that an update carries from call to call (the projected gradient's step sizes)
lives in the update object.
"""

import torch

from ._beta import EPSILON, mu_exponent
from ._hals import hals_sweeps
from ._hoyer import pg_steps


def add_ridge(G, l2):
    """``G + l2 I`` (``G`` itself for ``l2 = 0``)."""
    if not l2:
        return G
    return G + l2 * torch.eye(G.shape[0], dtype=G.dtype, device=G.device)


def _minus(B, l1):
    """``B - l1`` (``B`` itself for ``l1 = 0``)."""
    return B - l1 if l1 else B


class ShuffledOrder:
    """A new random order of ``k`` components at every call (HALS sweeps)."""

    def __init__(self, k, generator):
        self.k, self.generator = k, generator

    def __call__(self):
        return torch.randperm(self.k, generator=self.generator).tolist()


class HALSUpdate:
    """HALS sweeps: the exact minimiser of one component's row at a time
    (:func:`~skpart._core._hals.hals_sweeps`, scikit-learn's coordinate
    descent).

    Parameters
    ----------
    l1, l2 : float, default=0.0
    order : list of int, callable or None, default=None
        Order of the components in a sweep; a callable (e.g.
        :class:`ShuffledOrder`) is asked at every update. ``None``: natural.
    """

    def __init__(self, l1=0.0, l2=0.0, order=None):
        self.l1, self.l2, self.order = l1, l2, order

    def _order(self, k):
        if self.order is None:
            return list(range(k))
        return self.order() if callable(self.order) else self.order

    def __call__(self, F, G, B, n_steps, *, violation=False):
        F = F.clone()
        viol = hals_sweeps(
            F,
            add_ridge(G, self.l2),
            _minus(B, self.l1),
            n_steps,
            self._order(F.shape[0]),
            violation,
        )
        return F, viol


class MultiplicativeUpdate:
    """The multiplicative update ``F * (num / den) ** exponent`` with
    scikit-learn's penalties (in the denominator) and floors.

    For the Frobenius loss ``num = B`` and ``den = G F``; for another beta
    divergence the caller computes ``num`` and ``den`` from the data
    (:mod:`~skpart._core._beta`) and calls :meth:`apply`.
    """

    def __init__(self, l1=0.0, l2=0.0, exponent=1.0):
        self.l1, self.l2, self.exponent = l1, l2, exponent

    def __call__(self, F, G, B, n_steps=1, *, violation=False):
        """One multiplicative update, whatever ``n_steps`` (scikit-learn's
        solver alternates single updates)."""
        return self.apply(F, B, G @ F), None

    def apply(self, F, num, den):
        """``F * (num / (den + l1 + l2 F)) ** exponent``."""
        den = den + self.l1 if self.l1 > 0 else den
        if self.l2 > 0:
            den = den + self.l2 * F
        den = torch.where(den == 0, EPSILON, den)
        delta = num / den
        if self.exponent != 1:
            delta = delta**self.exponent
        return F * delta


class HoyerUpdate:
    """Hoyer's projected gradient (:func:`~skpart._core._hoyer.pg_steps`)
    with every code vector (``per_sample``: a column of ``F``, its own step
    size) or every atom (a row of ``F``, one Jacobi-preconditioned step size)
    at Hoyer sparseness ``sparseness``.

    Attributes
    ----------
    step : Tensor or None
        Step sizes carried from call to call (``None`` before the first).
    objective : Tensor or None
        Objective after the last call (per sample with ``per_sample``).
    const : Tensor of shape (r,) or None
        Per-sample constant of the objective (``0.5 ||x_i||^2``), so that
        :attr:`objective` is the data-fit term.
    """

    def __init__(
        self, sparseness, *, per_sample, l1=0.0, l2=0.0, rescale=False, step=None
    ):
        self.sparseness, self.per_sample = sparseness, per_sample
        self.l1, self.l2, self.rescale, self.step = l1, l2, rescale, step
        self.objective = self.const = None

    def __call__(self, F, G, B, n_steps, *, violation=False):
        G, B = add_ridge(G, self.l2), _minus(B, self.l1)
        if not self.per_sample:
            F, self.step, self.objective = pg_steps(
                F, G, B, self.sparseness, self.step, n_steps, per_row=False
            )
            return F, None
        U, self.step, self.objective = pg_steps(
            F.mT,
            G,
            B.mT,
            self.sparseness,
            self.step,
            n_steps,
            per_row=True,
            const=self.const,
            rescale=self.rescale,
        )
        # The codes come back in the layout they came in: (k, r) contiguous,
        # or the transpose of a contiguous (r, k) (the codes' solver).
        return (U.mT if F.mT.is_contiguous() else U.mT.contiguous()), None

    def evaluate(self, F, G, B):
        """The objective at ``F`` (no step taken, no state changed)."""
        G, B = add_ridge(G, self.l2), _minus(B, self.l1)
        return pg_steps(
            F.mT, G, B.mT, self.sparseness, None, 0, per_row=True, const=self.const
        )[2]

    def select(self, keep):
        """Keep the samples ``keep`` (a boolean mask) of a per-sample state."""
        if self.step is not None:
            self.step = self.step[keep]
        if self.const is not None:
            self.const = self.const[keep]


def factor_update(
    *,
    solver,
    sparseness,
    codes,
    l1=0.0,
    l2=0.0,
    beta=2.0,
    order=None,
    rescale=True,
    step=None,
):
    """The update a factor gets: the one place where this is decided.

    Hoyer's projected gradient when the factor has a sparseness target (with
    the codes' best-scale line search when ``rescale``); otherwise HALS for
    ``solver="cd"`` and the multiplicative update for ``solver="mu"``.

    Parameters
    ----------
    solver : {"cd", "mu"}
    sparseness : float or None
    codes : bool
        Whether the factor is the codes (constraint per sample) or the atoms
        (constraint per atom).
    l1, l2 : float, default=0.0
        Scaled penalties of the factor.
    beta : float, default=2.0
        Beta divergence (the multiplicative update's exponent).
    order : list of int, callable or None, default=None
        Component order of the HALS sweeps.
    rescale : bool, default=True
        Line search along each code's ray (:func:`~skpart._core._hoyer.best_scale`).
    step : Tensor or None, default=None
        Step sizes of the projected gradient carried over from an earlier
        update (online fitting).
    """
    if sparseness is not None:
        return HoyerUpdate(
            sparseness,
            per_sample=codes,
            l1=l1,
            l2=l2,
            rescale=rescale and codes,
            step=step,
        )
    if solver == "cd":
        return HALSUpdate(l1, l2, order)
    return MultiplicativeUpdate(l1, l2, mu_exponent(beta))
