"""Beta divergences of ``X`` and ``W H`` and their multiplicative updates' terms."""

import torch

from ._operator import DataOperator, dense, gram_half_sq_error

#: Floor used by scikit-learn's multiplicative updates (float32 machine epsilon).
EPSILON = float(torch.finfo(torch.float32).eps)


def half_sq_rows(R):
    """Half the squared L2 norm of every row of ``R``, in float64."""
    return torch.linalg.vecdot(R, R).to(torch.float64) / 2


def _divergence_block(X, WH, beta):
    """Row sums of the beta divergence of dense blocks ``X`` and ``WH``
    (``beta != 2``).

    Same conventions as scikit-learn: entries with ``X <= EPSILON`` only
    contribute through the ``WH`` terms, ``WH`` is floored at ``EPSILON`` where
    it is divided by or logged.
    """
    mask = X > EPSILON
    x = torch.where(mask, X, 1.0)
    wh = WH.clamp(min=EPSILON)
    if beta == 1:
        term = torch.where(mask, X * torch.log(x / wh) - X, 0.0)
        return (term.sum(1, dtype=torch.float64)) + WH.sum(1, dtype=torch.float64)
    if beta == 0:
        div = torch.where(mask, x / wh, 0.0)
        term = torch.where(mask, div - torch.log(div.clamp(min=EPSILON)), 0.0)
        return term.sum(1, dtype=torch.float64) - X.shape[1]
    sum_wh_beta = (WH**beta).sum(1, dtype=torch.float64)
    x_wh = torch.where(mask, X * wh ** (beta - 1), 0.0).sum(1, dtype=torch.float64)
    x_beta = torch.where(mask, x**beta, 0.0).sum(1, dtype=torch.float64)
    return (x_beta - beta * x_wh + sum_wh_beta * (beta - 1)) / (beta * (beta - 1))


def divergence_rows(blocks, W, H, beta):
    """Beta divergence of every row of ``X`` and ``W @ H`` (float64, shape (n,)).

    ``blocks`` are ``X``'s row blocks (:meth:`DataOperator.row_blocks`); ``W``
    is ``(n, k)`` (any strides), ``H`` is ``(k, m)``. Only one dense block of
    ``W @ H`` exists at a time.
    """
    if beta == 2:  # X - W H in one fused product
        return torch.cat(
            [
                half_sq_rows(torch.addmm(dense(Xb), W[sl], H, alpha=-1))
                for sl, Xb in blocks
            ]
        )
    return torch.cat(
        [_divergence_block(dense(Xb), W[sl] @ H, beta) for sl, Xb in blocks]
    )


def beta_divergence(X, W, H, beta, *, square_root=False):
    """Beta divergence between ``X`` and ``W @ H``, as scikit-learn computes it.

    Parameters
    ----------
    X : Tensor of shape (n_samples, n_features)
        Dense or sparse CSR data.
    W : Tensor of shape (n_samples, n_components)
        Codes.
    H : Tensor of shape (n_components, n_features)
        Atoms.
    beta : float
        2 is half the squared Frobenius norm, 1 the generalised
        Kullback-Leibler divergence, 0 the Itakura-Saito divergence.
    square_root : bool, default=False
        Return ``sqrt(2 * divergence)`` (the Frobenius norm for ``beta=2``).

    Notes
    -----
    For ``beta=2`` and sparse ``X`` the divergence is computed from
    ``||X||^2``, ``W^T X`` and the Gram matrices, as scikit-learn does, never
    forming ``W H``; otherwise from row blocks of ``W H``.

    Returns
    -------
    Tensor
        0-d float64 tensor on ``X``'s device.
    """
    op = DataOperator(X)
    if float(beta) == 2 and op.sparse:
        # From Gram matrices, as scikit-learn does for sparse X: the cost is
        # that of the non-zeros, where row blocks of W H would be dense.
        Wt = W.mT
        res = gram_half_sq_error(op.half_sq_norm(), op.codes_product(Wt), H, Wt @ W)
    else:
        res = divergence_rows(op.row_blocks(), W, H, float(beta)).sum()
    return torch.sqrt(2 * res.clamp(min=0)) if square_root else res


def mu_exponent(beta):
    """Exponent of the maximisation-minimisation multiplicative updates of
    the beta divergence (Fevotte and Idier, 2011)."""
    if beta < 1:
        return 1.0 / (2.0 - beta)
    if beta > 2:
        return 1.0 / (beta - 1.0)
    return 1.0


def _ratio_and_power(X, WH, beta):
    """``X * WH^(beta - 2)`` and ``WH^(beta - 1)`` (``None`` for ``beta = 1``,
    where it is 1), with scikit-learn's floors."""
    wh_safe = WH.clamp(min=EPSILON) if beta < 2 else WH
    if beta == 1:
        ratio = X / wh_safe
    elif beta == 0:
        ratio = X / wh_safe**2
    else:
        ratio = X * wh_safe ** (beta - 2)
    if beta == 1:
        return ratio, None
    return ratio, (WH.clamp(min=EPSILON) if beta < 1 else WH) ** (beta - 1)


def mu_terms_codes(blocks, W, H, beta):
    """Numerator and denominator of the multiplicative update of the codes
    ``W`` for ``beta != 2``, both of shape ``(n, k)``.

    Only one dense block of ``W @ H`` exists at a time, where scikit-learn
    builds the whole ``n_samples x n_features`` product (dense input).
    """
    num, den = [], []
    for sl, Xb in blocks:
        ratio, power = _ratio_and_power(dense(Xb), W[sl] @ H, beta)
        num.append(ratio @ H.mT)
        if power is not None:
            den.append(power @ H.mT)
    num = torch.cat(num)
    if beta == 1:
        return num, H.sum(1).unsqueeze(0).expand_as(num)
    return num, torch.cat(den)


def mu_terms_atoms(blocks, W, H, beta):
    """Numerator and denominator of the multiplicative update of the atoms
    ``H`` for ``beta != 2``, both of shape ``(k, m)``, accumulated over the
    row blocks of ``X``."""
    num = torch.zeros_like(H)
    den = torch.zeros_like(H)
    for sl, Xb in blocks:
        Wb = W[sl]
        ratio, power = _ratio_and_power(dense(Xb), Wb @ H, beta)
        num += Wb.mT @ ratio
        if power is not None:
            den += Wb.mT @ power
    if beta == 1:
        W_sum = W.sum(0)
        den = torch.where(W_sum == 0, 1.0, W_sum).unsqueeze(1).expand_as(H)
    return num, den
