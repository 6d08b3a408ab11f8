"""NMF initialisations (random, NNDSVD and variants) and a seeded randomized SVD."""

import torch

from ._device import randn
from ._operator import as_operator

_INITS = ("random", "nndsvd", "nndsvda", "nndsvdar")


def _flip_signs(U, Vh):
    """Make the largest-magnitude entry of each column of ``U`` positive.

    This is scikit-learn's ``svd_flip`` decision as ``randomized_svd`` applies
    it (on the left singular vectors of the input, whichever side was used
    internally). Columns of ``U`` and rows of ``Vh`` are flipped together, in
    place.

    Parameters
    ----------
    U : torch.Tensor of shape (n_rows, k)
        Left singular vectors.
    Vh : torch.Tensor of shape (k, n_cols)
        Right singular vectors, one per row.

    Returns
    -------
    U, Vh : torch.Tensor
        The same tensors, sign-corrected.
    """
    idx = U.abs().argmax(dim=0, keepdim=True)
    signs = torch.sign(U.gather(0, idx)).squeeze(0)
    signs = torch.where(signs == 0, torch.ones_like(signs), signs)
    U.mul_(signs)
    Vh.mul_(signs.unsqueeze(1))
    return U, Vh


def _range_finder(op, size, n_iter, generator, normals=None):
    """Orthonormal basis approximating the range of ``A`` (Halko et al., alg. 4.4).

    Subspace (power) iteration from a Gaussian test matrix drawn from
    ``generator``. Each iteration is ``Q <- qr(A.T @ (A @ Q))``: the QR is taken
    on the ``n_cols``-row side only, and the ``n_rows``-row side is
    orthonormalised once, at the end. The span is the same as with
    scikit-learn's ``randomized_range_finder`` (QR after both products), and in
    float32 the singular values it yields agree with that variant to rounding
    on spectra decaying to 1e-6, while it saves one tall QR per iteration
    (callers put the longer dimension in ``n_rows``).

    Parameters
    ----------
    op : DataOperator of shape (n_rows, n_cols)
    size : int
        Number of basis vectors (``n_components + n_oversamples``).
    n_iter : int
        Number of power iterations.
    generator : torch.Generator
        CPU generator for the Gaussian test matrix.
    normals : callable or None, default=None
        Source of the test matrix instead of ``generator`` (see
        :func:`initialize_nmf`).

    Returns
    -------
    Q : torch.Tensor of shape (n_rows, min(size, n_rows))
        Orthonormal columns.
    """
    dtype, device = op.X.dtype, op.X.device
    if normals is None:
        Q = randn((op.shape[1], size), generator, dtype=dtype, device=device)
    else:
        Q = normals((op.shape[1], size)).to(dtype=dtype, device=device)
    for _ in range(n_iter):
        Q, _ = torch.linalg.qr(op.rmatmul(op @ Q))
    Q, _ = torch.linalg.qr(op @ Q)
    return Q


def randomized_svd(
    X, n_components, *, generator, n_oversamples=10, n_iter="auto", normals=None
):
    """Truncated SVD by randomized subspace iteration, seeded by a generator.

    The torch counterpart of scikit-learn's ``randomized_svd`` (Halko, Martinsson
    and Tropp, 2011): find an orthonormal basis ``Q`` of
    ``n_components + n_oversamples`` columns for the range of ``X`` with
    ``n_iter`` power iterations, then take the exact SVD of the small matrix
    ``Q.T @ X``. As in scikit-learn, the longer dimension is put on the rows
    internally, ``n_iter="auto"`` means 7 when
    ``n_components < 0.1 * min(X.shape)`` and 4 otherwise, and signs are fixed
    so that the largest-magnitude entry of each column of ``U`` is positive.
    Computation stays in the dtype of ``X``. The Gaussian test matrix is drawn
    from ``generator`` on the CPU, so a seed gives the same result on every
    device.

    Parameters
    ----------
    X : torch.Tensor or DataOperator of shape (n_samples, n_features)
        Dense, or sparse (COO, CSR or CSC; used through sparse-dense products
        only, never densified). An operator is used as it is: a fit that
        passes the same one on shares the ``X^T`` built here.
    n_components : int
        Number of singular triplets to return.
    generator : torch.Generator
        CPU generator for the random test matrix.
    n_oversamples : int, default=10
        Extra basis vectors beyond ``n_components``.
    n_iter : int or "auto", default="auto"
        Number of power iterations.
    normals : callable or None, default=None
        ``normals(shape)`` gives the Gaussian test matrix (standard normal
        draws, a CPU tensor) instead of ``generator``: with scikit-learn's
        draws, the same span as scikit-learn's ``randomized_svd``.

    Returns
    -------
    U : torch.Tensor of shape (n_samples, n_components)
        Left singular vectors.
    S : torch.Tensor of shape (n_components,)
        Singular values, in decreasing order.
    Vh : torch.Tensor of shape (n_components, n_features)
        Right singular vectors, one per row.
    """
    op = as_operator(X)
    n_samples, n_features = op.shape
    if n_iter == "auto":
        n_iter = 7 if n_components < 0.1 * min(n_samples, n_features) else 4
    transpose = n_samples < n_features
    if transpose:
        op = op.T
    Q = _range_finder(op, n_components + n_oversamples, n_iter, generator, normals)
    B = op.rmatmul(Q).mT
    Uhat, S, Vh = torch.linalg.svd(B, full_matrices=False)
    U = Q @ Uhat[:, :n_components]
    S, Vh = S[:n_components], Vh[:n_components]
    if transpose:
        U, Vh = Vh.mT.contiguous(), U.mT.contiguous()
    else:
        Vh = Vh.contiguous()
    U, Vh = _flip_signs(U, Vh)
    return U, S, Vh


def _nndsvd(U, S, Vh, eps):
    """NNDSVD factors from singular triplets (Boutsidis and Gallopoulos, 2008).

    The leading triplet is used in absolute value. For each other triplet
    ``(x, y)`` the positive parts ``(x+, y+)`` and negative parts ``(x-, y-)``
    are compared by ``|x+| |y+|`` against ``|x-| |y-|``, and the larger pair,
    normalised and scaled by ``sqrt(S_j * sigma)``, becomes the column of ``W``
    and row of ``H``. Flipping the sign of a triplet swaps the two pairs, so the
    result does not depend on the sign convention of the SVD (ties excepted).
    Entries below ``eps`` are set to zero.

    Parameters
    ----------
    U : torch.Tensor of shape (n_samples, k)
        Left singular vectors.
    S : torch.Tensor of shape (k,)
        Singular values.
    Vh : torch.Tensor of shape (k, n_features)
        Right singular vectors, one per row.
    eps : float
        Entries below this are truncated to zero.

    Returns
    -------
    W : torch.Tensor of shape (n_samples, k)
    H : torch.Tensor of shape (k, n_features)
    """
    # One (n, k) temporary at a time: the parts are formed as norms first,
    # then only the chosen part of every column (the factors of a large
    # sparse X are the largest arrays of the fit).
    x_p_nrm = torch.linalg.vector_norm(U.clamp(min=0), dim=0)
    x_n_nrm = torch.linalg.vector_norm(U.clamp(max=0), dim=0)
    y_p_nrm = torch.linalg.vector_norm(Vh.clamp(min=0), dim=1)
    y_n_nrm = torch.linalg.vector_norm(Vh.clamp(max=0), dim=1)
    m_p, m_n = x_p_nrm * y_p_nrm, x_n_nrm * y_n_nrm
    use_p = m_p > m_n
    sigma = torch.where(use_p, m_p, m_n)
    # A part with zero norm only arises with sigma == 0; divide by 1 there so
    # the factor is 0 instead of scikit-learn's 0/0 = NaN.
    x_nrm = torch.where(use_p, x_p_nrm, x_n_nrm)
    y_nrm = torch.where(use_p, y_p_nrm, y_n_nrm)
    x_nrm = torch.where(x_nrm > 0, x_nrm, torch.ones_like(x_nrm))
    y_nrm = torch.where(y_nrm > 0, y_nrm, torch.ones_like(y_nrm))
    lbd = torch.sqrt(S * sigma)
    # The positive part of the column, or of its negation (exact).
    sign = torch.where(use_p, 1.0, -1.0).to(U.dtype)
    W = (U * sign).clamp_(min=0).mul_(lbd / x_nrm)
    H = (Vh * sign.unsqueeze(1)).clamp_(min=0).mul_((lbd / y_nrm).unsqueeze(1))
    root_s0 = torch.sqrt(S[0])
    W[:, 0] = root_s0 * U[:, 0].abs()
    H[0, :] = root_s0 * Vh[0, :].abs()
    W.masked_fill_(W < eps, 0)
    H.masked_fill_(H < eps, 0)
    return W, H


def initialize_nmf(
    X, n_components, init, *, generator, eps=1e-6, normals=None, svd_normals=None
):
    """Starting factors ``W`` and ``H`` for an NMF of ``X``, with ``X ~ W @ H``.

    Same methods and semantics as scikit-learn's
    ``sklearn.decomposition._nmf._initialize_nmf``, in its orientation: ``W``
    holds the codes (one row per sample) and ``H`` the components (one row per
    atom).

    - ``"random"``: ``|N(0, 1)|`` entries scaled by
      ``sqrt(X.mean() / n_components)`` (``H`` drawn first, then ``W``).
    - ``"nndsvd"``: Nonnegative Double SVD from the leading
      ``n_components`` singular triplets of :func:`randomized_svd`; entries
      below ``eps`` are zero (good for sparse factors).
    - ``"nndsvda"``: NNDSVD with the zeros filled with ``X.mean()``.
    - ``"nndsvdar"``: NNDSVD with the zeros filled with
      ``|N(0, 1)| * X.mean() / 100`` (``W``'s zeros first, then ``H``'s).

    The caller validates ``X`` (non-negative), ``init`` (resolving ``None``)
    and that ``n_components <= min(X.shape)`` for the NNDSVD methods. The
    normal draws of ``"random"`` and of the fill of ``"nndsvdar"`` come from
    ``normals``, the SVD's test matrix from ``svd_normals``, when they are
    given (SparseNMF passes scikit-learn's NumPy draws there, each from its
    own generator as scikit-learn's ``_initialize_nmf`` does, so that a seed
    gives scikit-learn's start), otherwise from ``generator`` (the SVD's test
    matrix first). With scikit-learn's draws, ``"nndsvd"`` and ``"nndsvda"``
    agree with scikit-learn's up to the accuracy of the randomized SVD.

    Parameters
    ----------
    X : torch.Tensor or DataOperator of shape (n_samples, n_features)
        Non-negative data, dense or sparse (COO, CSR or CSC; sparse input is
        used through its values and sparse-dense products, never densified),
        or its operator (see :func:`randomized_svd`).
    n_components : int
        Number of components ``k``.
    init : {"random", "nndsvd", "nndsvda", "nndsvdar"}
        Initialisation method.
    generator : torch.Generator
        CPU generator for every random draw.
    eps : float, default=1e-6
        NNDSVD entries below this are truncated to zero.
    normals, svd_normals : callable or None, default=None
        ``normals(shape)`` returns standard normal draws of that shape as a
        CPU tensor, in the order of the calls; ``None`` draws from
        ``generator``.

    Returns
    -------
    W : torch.Tensor of shape (n_samples, n_components)
        Non-negative codes, with the dtype and device of ``X``, as the
        transpose of a contiguous ``(n_components, n_samples)`` tensor: the
        layout the solvers work in, so that they take ``W`` without a copy
        (on a large sparse ``X`` the codes are the largest arrays of a fit).
    H : torch.Tensor of shape (n_components, n_features)
        Non-negative components, with the dtype and device of ``X``.

    References
    ----------
    C. Boutsidis, E. Gallopoulos: SVD based initialization: A head start for
    nonnegative matrix factorization. Pattern Recognition, 41(4), 2008.
    """
    if init not in _INITS:
        raise ValueError(f"Invalid init {init!r}; expected one of {_INITS}.")
    op = as_operator(X)
    n_samples, n_features = op.shape
    dtype, device = op.dtype, op.device
    avg = op.mean()

    def draw(shape):
        if normals is None:
            return randn(shape, generator, dtype=dtype, device=device)
        return normals(shape).to(dtype=dtype, device=device)

    if init == "random":
        scale = torch.sqrt(avg / n_components)
        H = draw((n_components, n_features))
        W = draw((n_samples, n_components))
        return _solver_layout(W.abs_().mul_(scale)), H.abs_().mul_(scale)

    U, S, Vh = randomized_svd(
        op, n_components, generator=generator, normals=svd_normals
    )
    W, H = _nndsvd(U, S, Vh, eps)

    if init == "nndsvda":
        W.masked_fill_(W == 0, avg)
        H.masked_fill_(H == 0, avg)
    elif init == "nndsvdar":
        for M in (W, H):
            zeros = M == 0
            n_zeros = int(zeros.sum())
            fill = draw((n_zeros,))
            M[zeros] = (avg * fill / 100).abs()
    return _solver_layout(W), H


def _solver_layout(W):
    """``W`` as the transpose of a contiguous tensor (the solvers' layout);
    the ``(n, k)`` original is freed when the caller drops it."""
    return W.mT.contiguous().mT
