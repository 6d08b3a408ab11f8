"""Hoyer's projected gradient: a quadratic with rows at a fixed sparseness."""

import torch

from ._device import sync_free
from ._hals import inverse_diagonal, one_thread
from ._projections import l1_for_sparseness, project_l1_l2


def cone_project(V, sparseness):
    """Euclidean projection of every row of ``V`` onto the non-negative cone of
    vectors with Hoyer sparseness ``sparseness``.

    The direction ``u`` is the projection onto unit L2 norm and the matching L1
    norm (:func:`~skpart._core._projections.project_l1_l2`, exact), which
    maximises ``<v, u>`` over the cone's unit sphere; the length is
    ``<v, u>``, floored at machine epsilon so that every row keeps the target
    sparseness.
    """
    k = V.shape[1]
    u = project_l1_l2(V, l1_for_sparseness(sparseness, k, 1.0), 1.0)
    scale = torch.linalg.vecdot(V, u).clamp(min=torch.finfo(V.dtype).eps)
    return u * scale.unsqueeze(1)


def best_scale(V, VG, B):
    """Rescale every row of ``V`` (and of ``VG = V @ G``) to the minimiser of
    ``0.5 <a v, a v G> - <a v, b>`` over the scale ``a``.

    Scaling keeps a row's Hoyer sparseness, so this is an exact line search
    along the ray of each row inside the sparseness cone. The scale is floored
    so that the row keeps an L2 norm of at least machine epsilon (a zero row
    has no sparseness).
    """
    eps = torch.finfo(V.dtype).eps
    curv = torch.linalg.vecdot(V, VG).clamp(min=torch.finfo(V.dtype).tiny)
    a = torch.linalg.vecdot(V, B) / curv
    floor = eps / torch.linalg.vector_norm(V, dim=1).clamp(min=eps)
    a = torch.maximum(a, floor).unsqueeze(1)
    return V * a, VG * a


#: Squarings behind :func:`perron_bound`: the power ``G^(2^10)``.
_SQUARINGS = 10


def top_eigenvalue(G):
    """Largest eigenvalue of the symmetric PSD ``G`` with non-negative
    entries (a Gram matrix of non-negative factors), or where the solvers
    run sync-free (:func:`~skpart._core._device.sync_free`) an upper bound of
    it equal to it up to rounding on such matrices (:func:`perron_bound`):
    ``eigvalsh`` waits for a GPU, as torch checks its status on the host."""
    if sync_free(G.device):
        return perron_bound(G)
    return torch.linalg.eigvalsh(G)[-1].clamp(min=torch.finfo(G.dtype).tiny)


def perron_bound(G):
    """An upper bound of the largest eigenvalue of the symmetric ``G`` with
    non-negative entries, with no read-back to the host.

    For any positive vector ``v``, ``max_i (G v)_i / v_i`` bounds the largest
    eigenvalue from above (Collatz-Wielandt), and it tends to it as ``v``
    tends to the Perron vector. ``v`` is the power ``G^(2^10)`` (by
    :data:`_SQUARINGS` squarings, each rescaled to a largest entry of 1)
    applied to the ones vector: the other eigenvectors are damped by the
    1024th power of their ratio to the largest eigenvalue. A floor keeps
    ``v`` positive (a zero row of ``G`` then gives 0).
    """
    tiny = torch.finfo(G.dtype).tiny
    M = G
    for _ in range(_SQUARINGS):
        M = M @ M
        M = M / M.amax().clamp(min=tiny)
    v = M.sum(dim=1, keepdim=True)
    v = (v / v.amax().clamp(min=tiny)).clamp(min=torch.finfo(G.dtype).eps)
    return ((G @ v) / v).amax().clamp(min=tiny)


def lipschitz_step(G):
    """``1 / ||G||_2``: a step size that always decreases the quadratic
    (``G`` a Gram matrix of non-negative factors, :func:`top_eigenvalue`)."""
    return 1.0 / top_eigenvalue(G).clamp(min=torch.finfo(G.dtype).tiny)


class Quadratic:
    """``f(U) = 0.5 <U, U G> - <U, B> (+ const)`` for one factor.

    With ``per_row`` every row of ``U`` is its own problem (the codes: one
    sample per row, quadratic ``U @ G``, one value per row); otherwise the rows
    are coupled through ``G`` (the atoms: quadratic ``G @ U``, one value).

    Parameters
    ----------
    G : Tensor of shape (c, c) (``per_row``) or (r, r)
    B : Tensor of shape (r, c)
    per_row : bool
    const : Tensor of shape (r,) or None, default=None
        Per-row constant (``0.5 ||x_i||^2``), so that the value is the
        data-fit term.
    """

    def __init__(self, G, B, *, per_row, const=None):
        self.G, self.B, self.per_row, self.const = G, B, per_row, const

    def product(self, V):
        """The quadratic's matrix applied to ``V``."""
        return V @ self.G if self.per_row else self.G @ V

    def value(self, V, VG):
        """``f(V)`` (float64) from ``V`` and ``VG = product(V)``."""
        rows = 0.5 * torch.linalg.vecdot(V, VG) - torch.linalg.vecdot(V, self.B)
        rows = rows.to(torch.float64)
        if self.const is not None:
            rows = rows + self.const
        return rows if self.per_row else rows.sum()


def pg_steps(U, G, B, sparseness, step, n_steps, *, per_row, const=None, rescale=False):
    """Hoyer's projected gradient with step-size adaptation on
    ``min_U 0.5 <U G, U> - <U, B>`` with every row of ``U`` in the sparseness
    cone.

    A step ``U - mu * grad`` is projected (:func:`cone_project`) and kept only
    if the objective does not increase; a kept step multiplies ``mu`` by 1.2, a
    rejected one halves it (Hoyer, 2004). The objective is evaluated exactly
    from ``G`` and ``B`` (no product with the data). With ``per_row`` every
    row has its own step size and acceptance (see :class:`Quadratic`),
    otherwise one step size for the whole matrix.

    Without ``per_row`` the gradient of row ``i`` is also divided by
    ``G[i, i]`` (a Jacobi preconditioner). Each row is projected on its own,
    so the projection in that diagonal metric is still the Euclidean
    projection of each row; with ``mu = 1`` the step moves every row to the
    minimiser of its own quadratic with the others fixed (the HALS target),
    where the plain gradient's step ``1 / ||G||_2`` is set by the largest
    eigenvalue of ``G``.

    Parameters
    ----------
    U : Tensor of shape (r, c)
        Current factor (rows already in the cone).
    G : Tensor of shape (c, c) (``per_row``) or (r, r)
    B : Tensor of shape (r, c)
    sparseness : float
    step : Tensor of shape (r, 1) or 0-d, or None
        Step sizes, carried from call to call. ``None`` starts from
        ``1 / ||G||_2`` for every row (``per_row``, a step that always
        decreases the objective) or from 1 (times the preconditioner); it
        stays ``None`` with ``n_steps=0`` (an objective evaluation).
    n_steps : int
        Projected-gradient steps to try.
    per_row : bool
    const : Tensor of shape (r,) or None
        Per-row constant added to the objective (``0.5 * ||x_i||^2``), so that
        the returned objective is the data-fit term.
    rescale : bool, default=False
        With ``per_row``, move every projected candidate to the best point on
        its ray (:func:`best_scale`) before the acceptance test. The
        projection alone picks the Euclidean best length, which can be far
        from the best length for an ill-conditioned ``G``.

    Returns
    -------
    U : Tensor of shape (r, k)
    step : Tensor
    obj : Tensor of shape (r,) (``per_row``) or 0-d
        Objective at the returned ``U`` (float64).

    Notes
    -----
    A step is tensor arithmetic throughout (acceptance, step sizes and the
    choice of iterate by ``torch.where``), and with the sync-free projection
    (:func:`~skpart._core._projections.project_l1_l2` off the CPU) it reads
    nothing back from the device: the steps queue without waiting.
    """
    quad = Quadratic(G, B, per_row=per_row, const=const)
    if per_row:
        if step is None and n_steps:
            step = lipschitz_step(G).expand(U.shape[0]).unsqueeze(1).clone()
        precond = 1.0
    else:
        if step is None and n_steps:
            step = torch.ones((), dtype=U.dtype, device=U.device)
        precond = inverse_diagonal(G).unsqueeze(1) if n_steps else None
    with one_thread(U.device):
        UG = quad.product(U)
        obj = quad.value(U, UG)
        for _ in range(n_steps):
            U, UG, obj, step = _pg_step(
                quad, U, UG, obj, step, precond, sparseness, rescale
            )
    return U, step, obj


def _pg_step(quad, U, UG, obj, step, precond, sparseness, rescale):
    """One trial step of :func:`pg_steps`; returns the new ``U``, ``UG``,
    objective and step sizes."""
    cand = cone_project(U - (step * precond) * (UG - quad.B), sparseness)
    cand_G = quad.product(cand)
    if rescale and quad.per_row:
        cand, cand_G = best_scale(cand, cand_G, quad.B)
    cand_obj = quad.value(cand, cand_G)
    ok = cand_obj <= obj
    okc = ok.unsqueeze(1) if quad.per_row else ok
    U = torch.where(okc, cand, U)
    UG = torch.where(okc, cand_G, UG)
    obj = torch.where(ok, cand_obj, obj)
    step = torch.where(okc, step * 1.2, step * 0.5)
    return U, UG, obj, step
