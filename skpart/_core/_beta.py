"""Beta divergences of ``X`` and ``W H`` and their multiplicative updates' terms."""

import torch

from ._operator import DataOperator

#: Floor used by scikit-learn's multiplicative updates (float32 machine epsilon).
EPSILON = float(torch.finfo(torch.float32).eps)


def half_sq_rows(R):
    """Half the squared L2 norm of every row of ``R``, in float64."""
    return torch.linalg.vecdot(R, R).to(torch.float64) / 2


def _data_terms(X, WH, beta):
    """The element-wise terms of the beta divergence (``beta != 2``) that
    involve ``X``, as a tuple of tensors shaped like ``X`` (dense blocks, or
    the values at a sparse ``X``'s stored entries, where they vanish
    elsewhere); :func:`_combine` turns their row sums into the divergence.

    Same conventions as scikit-learn: entries with ``X <= EPSILON`` only
    contribute through the ``WH`` terms, ``WH`` is floored at ``EPSILON`` where
    it is divided by or logged.
    """
    mask = X > EPSILON
    x = torch.where(mask, X, 1.0)
    wh = WH.clamp(min=EPSILON)
    if beta == 1:
        return (torch.where(mask, X * torch.log(x / wh) - X, 0.0),)
    if beta == 0:
        div = torch.where(mask, x / wh, 0.0)
        return (torch.where(mask, div - torch.log(div.clamp(min=EPSILON)), 0.0),)
    x_wh = torch.where(mask, X * wh ** (beta - 1), 0.0)
    return torch.where(mask, x**beta, 0.0), x_wh


def _combine(sums, wh_sums, n_cols, beta):
    """Per-row beta divergence (``beta != 2``) from the row sums of
    :func:`_data_terms` and of ``W H``'s own term (``sum_j (WH)_ij`` for
    ``beta = 1``, ``sum_j (WH)_ij^beta`` for ``beta`` not 0 or 1)."""
    if beta == 1:
        return sums[0] + wh_sums
    if beta == 0:
        return sums[0] - n_cols
    x_beta, x_wh = sums
    return (x_beta - beta * x_wh + wh_sums * (beta - 1)) / (beta * (beta - 1))


def _dense_divergence_rows(op, W, H, beta):
    """:func:`divergence_rows` of a dense ``X``, one block of ``W H`` at a time."""
    f64 = torch.float64
    out = []
    for sl, Xb in op.row_blocks():
        if beta == 2:  # X - W H in one fused product
            out.append(half_sq_rows(torch.addmm(Xb, W[sl], H, alpha=-1)))
            continue
        WH = W[sl] @ H
        sums = [t.sum(1, dtype=f64) for t in _data_terms(Xb, WH, beta)]
        wh_sums = None
        if beta == 1:
            wh_sums = WH.sum(1, dtype=f64)
        elif beta != 0:
            wh_sums = (WH**beta).sum(1, dtype=f64)
        out.append(_combine(sums, wh_sums, op.shape[1], beta))
    return torch.cat(out)


def _sparse_divergence_rows(op, W, H, beta):
    """:func:`divergence_rows` of a CSR ``X``: the data terms at the stored
    entries (:meth:`~DataOperator.sampled_product`), ``W H``'s own term in
    closed form (``beta`` 0, 1, 2) or over dense row blocks of ``W H``."""
    f64 = torch.float64
    x, wh = op.X.values(), op.sampled_product(W, H)
    if beta == 2:  # 0.5 |x_i|^2 - <x_i, w_i H> + 0.5 w_i H H^T w_i^T
        G = H @ H.mT  # (W H H^T) by row blocks: no second codes-sized array
        quad = torch.cat(
            [torch.linalg.vecdot(W[sl] @ G, W[sl]) for sl in op.row_slices(G.shape[0])]
        ).to(f64)
        return 0.5 * op.row_sq_norms() - op.row_sums(x * wh, f64) + 0.5 * quad
    sums = [op.row_sums(t, f64) for t in _data_terms(x, wh, beta)]
    wh_sums = None
    if beta == 1:
        wh_sums = W.to(f64) @ H.sum(1, dtype=f64)
    elif beta != 0:
        wh_sums = torch.cat(
            [((W[sl] @ H) ** beta).sum(1, dtype=f64) for sl in op.row_slices()]
        )
    return _combine(sums, wh_sums, op.shape[1], beta)


def divergence_rows(op, W, H, beta):
    """Beta divergence of every row of ``X`` and ``W @ H`` (float64, shape (n,)).

    ``op`` is ``X``'s :class:`~skpart._core._operator.DataOperator`; ``W``
    is ``(n, k)`` (any strides), ``H`` is ``(k, m)``. For a dense ``X`` only
    one dense block of ``W @ H`` exists at a time; for a sparse ``X``, ``W H``
    is formed at ``X``'s stored entries only, and in dense row blocks only
    for a ``beta`` other than 0, 1 and 2 (the sum of ``(W H)^beta``).
    """
    if op.sparse:
        return _sparse_divergence_rows(op, W, H, beta)
    return _dense_divergence_rows(op, W, H, beta)


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
    For sparse ``X`` the cost is that of its non-zeros, as in scikit-learn:
    the terms with ``X`` come from ``W H`` at its stored entries; ``W H``'s
    own term from the Gram matrices (``beta=2``), in closed form (``beta``
    0 and 1) or over row blocks of ``W H``. No transposed copy of ``X`` is
    made. Dense ``X``: row blocks of ``W H`` (:func:`divergence_rows`).

    Returns
    -------
    Tensor
        0-d float64 tensor on ``X``'s device.
    """
    res = divergence_rows(DataOperator(X), W, H, float(beta)).sum()
    return torch.sqrt(2 * res.clamp(min=0)) if square_root else res


def mu_exponent(beta):
    """Exponent of the maximisation-minimisation multiplicative updates of
    the beta divergence (Fevotte and Idier, 2011)."""
    if beta < 1:
        return 1.0 / (2.0 - beta)
    if beta > 2:
        return 1.0 / (beta - 1.0)
    return 1.0


def _ratio(X, WH, beta):
    """``X * WH^(beta - 2)`` with scikit-learn's floors, element-wise (dense
    blocks, or the values at a sparse ``X``'s stored entries)."""
    wh_safe = WH.clamp(min=EPSILON) if beta < 2 else WH
    if beta == 1:
        return X / wh_safe
    if beta == 0:
        return X / wh_safe**2
    return X * wh_safe ** (beta - 2)


def _power(WH, beta):
    """``WH^(beta - 1)`` with scikit-learn's floor (``beta != 1``)."""
    return (WH.clamp(min=EPSILON) if beta < 1 else WH) ** (beta - 1)


def _sparse_ratio(op, W, H, beta):
    """:func:`_ratio` at the stored entries of a CSR ``X``, in its value
    order, written over ``W H``'s values there (the operator's scratch
    array, :meth:`~skpart._core._operator.DataOperator.sampled_product`):
    the same operations as :func:`_ratio`."""
    x, wh = op.X.values(), op.sampled_product(W, H)
    if beta < 2:
        wh.clamp_(min=EPSILON)
    if beta == 1:
        return torch.div(x, wh, out=wh)
    if beta == 0:
        return torch.div(x, wh.square_(), out=wh)
    return wh.pow_(beta - 2).mul_(x)


def mu_terms_codes(op, W, H, beta):
    """Numerator and denominator of the multiplicative update of the codes
    ``W`` for ``beta != 2``, both of shape ``(n, k)``.

    The numerator is ``(X * (W H)^(beta - 2)) H^T``: for a sparse ``X`` from
    ``W H`` at its stored entries and a sparse-dense product, as in
    scikit-learn; for a dense ``X`` one dense block of ``W H`` at a time
    (scikit-learn builds the whole ``n_samples x n_features`` product). The
    denominator is ``H`` summed over the features for ``beta = 1``, else
    ``(W H)^(beta - 1) H^T`` over row blocks.
    """
    if op.sparse:
        num = op.with_values(_sparse_ratio(op, W, H, beta)) @ H.mT
        den = None
        if beta != 1:
            den = torch.cat([_power(W[sl] @ H, beta) @ H.mT for sl in op.row_slices()])
    else:
        num, den = [], []
        for sl, Xb in op.row_blocks():
            WH = W[sl] @ H
            num.append(_ratio(Xb, WH, beta) @ H.mT)
            if beta != 1:
                den.append(_power(WH, beta) @ H.mT)
        num = torch.cat(num)
        den = torch.cat(den) if beta != 1 else None
    if beta == 1:
        return num, H.sum(1).unsqueeze(0).expand_as(num)
    return num, den


def mu_terms_atoms(op, W, H, beta):
    """Numerator and denominator of the multiplicative update of the atoms
    ``H`` for ``beta != 2``, both of shape ``(k, m)``: ``W^T (X * (W
    H)^(beta - 2))`` (for a sparse ``X`` a product with the transposed CSR
    ratio) and ``W`` summed over the samples (``beta = 1``) or ``W^T (W
    H)^(beta - 1)`` over row blocks."""
    if op.sparse:
        ratio_t = op.transposed_with(_sparse_ratio(op, W, H, beta), scratch=True)
        num = (ratio_t @ W).mT.contiguous()
    else:
        num = torch.zeros_like(H)
    den = torch.zeros_like(H)
    if not op.sparse or beta != 1:  # a dense block of W H is needed
        for sl in op.row_slices():
            Wb = W[sl]
            WH = Wb @ H
            if not op.sparse:
                num += Wb.mT @ _ratio(op.X[sl], WH, beta)
            if beta != 1:
                den += Wb.mT @ _power(WH, beta)
    if beta == 1:
        W_sum = W.sum(0)
        den = torch.where(W_sum == 0, 1.0, W_sum).unsqueeze(1).expand_as(H)
    return num, den
