"""Reconstruction losses, sparsity penalties and non-negativity penalties (torch)."""

import torch
import torch.nn.functional as F

# -- reconstruction --------------------------------------------------------------


def mse_loss(output, X):
    """Mean squared error over samples and features.

    .. math:: \\frac{1}{n m} \\sum_{i, f} (\\hat x_{if} - x_{if})^2

    for ``n`` samples of ``m`` features.
    """
    return F.mse_loss(output, X)


def bce_loss(logits, X):
    """Binary cross-entropy over samples and features, from the output logits.

    .. math:: -\\frac{1}{n m} \\sum_{i, f} x_{if} \\log \\hat x_{if}
        + (1 - x_{if}) \\log (1 - \\hat x_{if}),
        \\quad \\hat x = \\operatorname{sigmoid}(\\text{logits}).

    Computed from the logits, which is exact and finite where the sigmoid has
    saturated. ``X`` must lie in [0, 1].
    """
    return F.binary_cross_entropy_with_logits(logits, X)


# -- sparsity of the hidden code -------------------------------------------------
#
# Every penalty takes the mean activation ``t`` of each hidden unit over a batch
# (shape (n_components,)) and the target ``p``, and returns the sum over hidden
# units of a divergence between ``p`` and ``t_j``.


def kl_sparsity(t, p):
    """Kullback-Leibler divergence between Bernoulli(``p``) and Bernoulli(``t_j``).

    .. math:: \\sum_j p \\log \\frac{p}{t_j}
        + (1 - p) \\log \\frac{1 - p}{1 - t_j}

    ``t`` is clamped into ``[eps, 1 - eps]`` (``eps`` the machine epsilon of its
    dtype), so the value stays finite when a unit is saturated.
    """
    eps = torch.finfo(t.dtype).eps
    t = t.clamp(eps, 1.0 - eps)
    return (p * torch.log(p / t) + (1.0 - p) * torch.log((1.0 - p) / (1.0 - t))).sum()


def l2_sparsity(t, p):
    """Squared distance to the target: :math:`\\sum_j (p - t_j)^2`."""
    return (p - t).square().sum()


def epsilon_l1_sparsity(t, p, epsilon):
    """Smoothed absolute distance: :math:`\\sum_j \\sqrt{(p - t_j)^2 + \\epsilon}`."""
    return torch.sqrt((p - t).square() + epsilon).sum()


def log_sparsity(t, p):
    """Log penalty: :math:`\\sum_j \\log(1 + (p - t_j)^2)`."""
    return torch.log1p((p - t).square()).sum()


def sparsity_penalty(kind, t, p, epsilon):
    """Dispatch to the sparsity penalty named ``kind`` ("kl", "l2", "epsilon_l1",
    "log"); returns the sum over hidden units."""
    if kind == "kl":
        return kl_sparsity(t, p)
    if kind == "l2":
        return l2_sparsity(t, p)
    if kind == "epsilon_l1":
        return epsilon_l1_sparsity(t, p, epsilon)
    if kind == "log":
        return log_sparsity(t, p)
    raise ValueError(f"Unknown sparsity penalty {kind!r}")


def _sparsity_derivative(kind, t, p, epsilon):
    """``dS(p, t_j) / dt_j`` of :func:`sparsity_penalty`, elementwise.

    For ``"kl"`` it is that of the clamped ``t`` (zero where the clamp
    binds), :math:`(t_j - p) / (t_j (1 - t_j))`.
    """
    if kind == "kl":
        eps = torch.finfo(t.dtype).eps
        tc = t.clamp(eps, 1.0 - eps)
        d = (tc - p) / (tc * (1.0 - tc))
        return torch.where(tc == t, d, 0.0)
    diff = t - p
    if kind == "l2":
        return 2.0 * diff
    if kind == "epsilon_l1":
        return diff / torch.sqrt(diff.square() + epsilon)
    if kind == "log":
        return 2.0 * diff / (1.0 + diff.square())
    raise ValueError(f"Unknown sparsity penalty {kind!r}")


class _SparsityTerm(torch.autograd.Function):
    """``weight * sparsity_penalty(kind, H.mean(0), p, epsilon)`` with its
    gradient in closed form: a handful of elementwise operations on the
    ``k`` mean activations, where differentiating the formula takes about
    twenty for the KL divergence."""

    @staticmethod
    def forward(ctx, H, kind, p, epsilon, weight):
        t = H.mean(dim=0)
        ctx.save_for_backward(t)
        ctx.kind, ctx.p, ctx.epsilon, ctx.weight = kind, p, epsilon, weight
        ctx.n = H.shape[0]
        return weight * sparsity_penalty(kind, t, p, epsilon)

    @staticmethod
    def backward(ctx, grad):
        (t,) = ctx.saved_tensors
        d = _sparsity_derivative(ctx.kind, t, ctx.p, ctx.epsilon)
        # d(mean)/dH = 1/n for every sample: one row, broadcast (a view).
        row = d * (grad * (ctx.weight / ctx.n))
        return row.expand(ctx.n, -1), None, None, None, None


def sparsity_term(H, kind, p, weight, epsilon):
    """The weighted sparsity penalty of the codes ``H`` (one row per sample):
    ``weight * sparsity_penalty(kind, H.mean(0), p, epsilon)``, differentiable
    in ``H`` with the gradient in closed form."""
    return _SparsityTerm.apply(H, kind, p, epsilon, weight)


# -- non-negativity --------------------------------------------------------------


def _elementwise_norm(w, norm, epsilon):
    """``g(w)`` of :func:`asymmetric_decay`, elementwise."""
    if norm == "l2":
        return w.square()
    if norm == "l1":
        return w.abs()
    if norm == "l1_l2":
        return torch.sqrt(w.square() + epsilon) - epsilon**0.5 + w.square()
    raise ValueError(f"Unknown decay norm {norm!r}")


def asymmetric_decay(w, ratio, norm="l2", epsilon=1e-6):
    """Asymmetric weight decay that pushes weights towards non-negative values.

    .. math:: \\frac{1}{2} \\sum_{ij} f(w_{ij}), \\qquad
        f(w) = \\begin{cases} g(w) & w < 0 \\\\
        \\text{ratio} \\cdot g(w) & w \\ge 0 \\end{cases}

    with :math:`g(w) = w^2` (``norm="l2"``, Hosseini-Asl et al.'s NCAE when
    ``ratio=0``), :math:`g(w) = |w|` (``"l1"``) or the smoothed L1 + L2
    :math:`g(w) = \\sqrt{w^2 + \\epsilon} - \\sqrt{\\epsilon} + w^2`
    (``"l1_l2"``). With ``ratio=1`` and ``norm="l2"`` this is plain weight
    decay :math:`\\frac{1}{2} \\|w\\|^2`. The caller multiplies by the weight.
    """
    g = _elementwise_norm(w, norm, epsilon)
    if ratio == 1.0:
        return 0.5 * g.sum()
    return 0.5 * torch.where(w < 0, g, ratio * g).sum()


def _half_decay_derivative(w, ratio, norm, epsilon):
    """``d f(w) / dw`` of :func:`asymmetric_decay` (``f`` with its 1/2),
    elementwise."""
    if norm == "l2":
        dg = w
    elif norm == "l1":
        dg = 0.5 * torch.sign(w)
    elif norm == "l1_l2":
        dg = 0.5 * (w / torch.sqrt(w.square() + epsilon)) + w
    else:
        raise ValueError(f"Unknown decay norm {norm!r}")
    if ratio == 1.0:
        return dg
    return torch.where(w < 0, dg, ratio * dg)


class _DecayTerm(torch.autograd.Function):
    """``weight * asymmetric_decay(w, ratio, norm, epsilon)`` with its gradient
    in closed form."""

    @staticmethod
    def forward(ctx, w, weight, ratio, norm, epsilon):
        ctx.save_for_backward(w)
        ctx.weight, ctx.ratio, ctx.norm, ctx.epsilon = weight, ratio, norm, epsilon
        return weight * asymmetric_decay(w, ratio, norm, epsilon)

    @staticmethod
    def backward(ctx, grad):
        (w,) = ctx.saved_tensors
        d = _half_decay_derivative(w, ctx.ratio, ctx.norm, ctx.epsilon)
        return d * (grad * ctx.weight), None, None, None, None


def decay_term(w, weight, ratio, norm="l2", epsilon=1e-6):
    """The weighted asymmetric decay of ``w``: ``weight *
    asymmetric_decay(w, ratio, norm, epsilon)``, differentiable in ``w`` with
    the gradient in closed form."""
    return _DecayTerm.apply(w, weight, ratio, norm, epsilon)
