"""Stopping rules of the solvers' loops, as small objects that hold their state.

Each rule is called with the newest measurement and answers whether to stop.
The batch, codes, multilayer and online NMF loops and the autoencoder's
training loop share these rules instead of writing their tests inline.
"""

import math

import torch

#: Mini-batch steps without improvement of the smoothed batch cost after which
#: :class:`MiniBatchStopping` stops (scikit-learn's ``MiniBatchNMF`` default
#: of ``max_no_improvement``).
MAX_NO_IMPROVEMENT = 10


def _or(a, b):
    """``a or b`` for Python booleans, ``a | b`` for boolean tensors."""
    return a | b if torch.is_tensor(a) or torch.is_tensor(b) else a or b


class ErrorPlateau:
    """Stop when the error fell by less than ``tol`` times its first value
    since the previous check (scikit-learn's test for its multiplicative
    updates).

    Works on floats and, element-wise, on tensors of per-row errors (the codes'
    solver, where every sample is its own problem).

    Parameters
    ----------
    tol : float
    first : float or Tensor
        The error at the start, against which the decrease is measured.
    stop_at_zero : bool, default=True
        Stop when the first error is 0 (nothing left to fit). ``False`` keeps
        scikit-learn's behaviour of its multiplicative updates, which never
        stop on this test then (``0 / 0`` is not below ``tol``).
    """

    def __init__(self, tol, first, *, stop_at_zero=True):
        self.tol, self.first, self.previous = tol, first, first
        self.stop_at_zero = stop_at_zero

    def __call__(self, error):
        """Record ``error``; whether it fell too little since the last call."""
        done = (self.previous - error) < self.tol * self.first
        self.previous = error
        if self.stop_at_zero:
            done = _or(done, self.first == 0)
        return done

    def select(self, keep):
        """Keep the rows ``keep`` (a boolean mask) of a per-row rule."""
        self.first, self.previous = self.first[keep], self.previous[keep]


class ViolationRatio:
    """Stop when the projected-gradient violation is at most ``tol`` times its
    first value (scikit-learn's test for its coordinate descent).

    The first call records the reference and stops only where it is 0 (the
    start is already stationary). Works on floats and, element-wise, on
    tensors of per-row violations.
    """

    def __init__(self, tol):
        self.tol, self.first = tol, None

    def __call__(self, violation):
        """Record ``violation``; whether it is small enough to stop."""
        if self.first is None:
            self.first = violation
            return self.first == 0
        return _or(violation <= self.tol * self.first, self.first == 0)

    def select(self, keep):
        """Keep the rows ``keep`` (a boolean mask) of a per-row rule."""
        self.first = self.first[keep]


class NoImprovement:
    """Stop when a loss has not improved on its best by more than ``tol`` for
    more than ``patience`` consecutive checks (scikit-learn's MLP rule for
    ``n_iter_no_change``; pass a score negated, greater being better).

    Attributes
    ----------
    best : float
        Lowest loss seen.
    count : int
        Consecutive checks without an improvement.
    """

    def __init__(self, tol, patience):
        self.tol, self.patience = tol, patience
        self.best, self.count = math.inf, 0

    def __call__(self, loss):
        """Record ``loss``; whether the patience is exhausted."""
        if loss > self.best - self.tol:
            self.count += 1
        else:
            self.count = 0
        self.best = min(self.best, loss)
        return self.count > self.patience


class MiniBatchStopping:
    """scikit-learn's ``MiniBatchNMF`` stopping rules, step by step.

    The first step is ignored. Then the fit stops when the atoms change by at
    most ``tol`` (relative Frobenius norm) in one step, or when an
    exponentially weighted average of the per-sample batch cost (weight
    ``b / (n_samples + 1)`` for a batch of ``b``) has not reached a new
    minimum for :data:`MAX_NO_IMPROVEMENT` steps. ``tol=0`` disables both.
    """

    def __init__(self, n_samples, tol):
        self.n_samples, self.tol = n_samples, tol
        self.n_steps = 0
        self.ewa = self.ewa_min = None
        self.no_improvement = 0

    def __call__(self, cost, change, batch_size):
        """Record one step (``cost`` summed over its batch); ``True`` to stop."""
        self.n_steps += 1
        if self.n_steps == 1 or self.tol == 0:
            return False
        cost = cost / batch_size
        if self.ewa is None:
            self.ewa = cost
        else:
            alpha = min(batch_size / (self.n_samples + 1), 1.0)
            self.ewa = self.ewa * (1 - alpha) + cost * alpha
        if change <= self.tol:
            return True
        if self.ewa_min is None or self.ewa < self.ewa_min:
            self.no_improvement, self.ewa_min = 0, self.ewa
        else:
            self.no_improvement += 1
        return self.no_improvement >= MAX_NO_IMPROVEMENT
