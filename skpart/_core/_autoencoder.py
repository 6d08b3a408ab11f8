"""Shallow sparse autoencoder: the ``nn.Module``, its initialisers and training loop."""

import copy
import math
import time
from dataclasses import dataclass, field

import torch
from torch import nn

from ._device import rand, randn, randperm
from ._losses import bce_loss, decay_term, mse_loss, sparsity_term
from ._stopping import NoImprovement

_ACTIVATIONS = {
    "identity": lambda z: z,
    "sigmoid": torch.sigmoid,
    "relu": torch.relu,
}


class SparseAutoencoder(nn.Module):
    """``h = sigmoid(X W_e^T + b_e)``, ``X_hat = g(h W_d + b_d)``.

    Both weight matrices have shape ``(n_components, n_features)``: row ``j``
    of ``decoder_weight`` is the atom of hidden unit ``j`` and row ``j`` of
    ``encoder_weight`` its filter. Parameters are left uninitialised; see
    :func:`initialize_autoencoder`.
    """

    def __init__(
        self, n_features, n_components, decoder_activation="sigmoid", *, dtype, device
    ):
        super().__init__()
        kw = {"dtype": dtype, "device": device}
        self.encoder_weight = nn.Parameter(torch.zeros(n_components, n_features, **kw))
        self.encoder_bias = nn.Parameter(torch.zeros(n_components, **kw))
        self.decoder_weight = nn.Parameter(torch.zeros(n_components, n_features, **kw))
        self.decoder_bias = nn.Parameter(torch.zeros(n_features, **kw))
        self.decoder_activation = decoder_activation
        self._g = _ACTIVATIONS[decoder_activation]

    def encode(self, X):
        """Hidden code ``sigmoid(X W_e^T + b_e)``."""
        return torch.sigmoid(torch.addmm(self.encoder_bias, X, self.encoder_weight.t()))

    def decoder_logits(self, H):
        """Pre-activation output ``H W_d + b_d``."""
        return torch.addmm(self.decoder_bias, H, self.decoder_weight)

    def decode(self, H):
        """Reconstruction ``g(H W_d + b_d)``."""
        return self._g(self.decoder_logits(H))

    def forward(self, X):
        """Return the code ``h`` and the output logits."""
        H = self.encode(X)
        return H, self.decoder_logits(H)

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_g", None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._g = _ACTIVATIONS[self.decoder_activation]


# -- initialisation --------------------------------------------------------------


def _orthogonal(rows, cols, generator, *, dtype, device):
    """A (semi-)orthogonal ``rows x cols`` matrix from the QR of a Gaussian draw."""
    A = randn(
        (max(rows, cols), min(rows, cols)), generator, dtype=torch.float64, device="cpu"
    )
    Q, R = torch.linalg.qr(A)
    Q = Q * torch.sign(torch.diagonal(R)).masked_fill(torch.diagonal(R) == 0, 1.0)
    if rows < cols:
        Q = Q.t()
    return Q.contiguous().to(device=device, dtype=dtype)


def _nmf_factors(X, n_components, generator, max_iter):
    """NMF ``X ~ W H`` (HALS from NNDSVDa, or random when NNDSVD cannot apply)."""
    from ._init import initialize_nmf
    from ._nmf import fit_nmf

    init = "nndsvda" if n_components <= min(X.shape) else "random"
    W, H = initialize_nmf(X, n_components, init, generator=generator)
    W, H, _, _ = fit_nmf(X, W, H, solver="cd", max_iter=max_iter, generator=generator)
    return W, H


def _matching_encoder(module, X, A, B):
    """Encoder/decoder from non-negative factors with ``X A B ~ X``.

    The linear codes ``u = X A`` are scaled per unit into [0, 1] over ``X`` (the
    decoder rows ``B`` take the inverse scale) and the encoder is set so that
    ``sigmoid(4 u - 2)``, the sigmoid linearised around 0, is about ``u``. A
    sigmoid output is linearised the same way (decoder ``4 B``, bias -2).
    """
    scale = (X @ A).amax(dim=0)
    # A unit silent on all of X (e.g. it reads an always-zero pixel) keeps its
    # scale: dividing by ~0 would overflow the encoder weights.
    scale = torch.where(scale > torch.finfo(X.dtype).eps, scale, 1.0)
    A = A / scale
    B = B * scale[:, None]
    sigmoid_out = module.decoder_activation == "sigmoid"
    with torch.no_grad():
        module.encoder_weight.copy_(4.0 * A.t())
        module.encoder_bias.fill_(-2.0)
        module.decoder_weight.copy_(4.0 * B if sigmoid_out else B)
        module.decoder_bias.fill_(-2.0 if sigmoid_out else 0.0)


def _mean_output_bias(module, X):
    """Decoder bias whose output is the mean sample when the code is zero.

    ``g^{-1}(mean(X))``: the mean itself for the identity and ReLU outputs, its
    logit (the mean clipped into [0.001, 0.999]) for the sigmoid output.
    """
    mean = X.mean(dim=0)
    if module.decoder_activation == "sigmoid":
        return torch.logit(mean.clamp(1e-3, 1.0 - 1e-3))
    return mean


def initialize_autoencoder(module, X, init, *, generator, nmf_max_iter=100):
    """Initialise ``module``'s parameters in place.

    For the random methods the encoder bias starts at zero and the decoder bias
    at :func:`_mean_output_bias` (the output starts at the mean sample, so the
    first steps are not spent learning the background).

    - ``"glorot_uniform"``: U(-b, b) with ``b = sqrt(6 / (n_features +
      n_components))`` for both layers.
    - ``"he_normal"``: N(0, 2 / fan_in) (fan-in ``n_features`` for the encoder,
      ``n_components`` for the decoder).
    - ``"orthogonal"``: (semi-)orthogonal matrices.
    - ``"normal"``: N(0, 0.01^2).
    - ``"nmf"``: NMF of the data ``X ~ W H``; the decoder is ``H`` and the
      encoder the pseudo-inverse of the decoder, through the linearised sigmoid
      (:func:`_matching_encoder`).
    - ``"nmf_identity"``: NMF of the identity of size ``n_features``,
      ``I ~ A B``; the encoder is ``A`` and the decoder ``B`` (both non-negative),
      through the linearised sigmoid. With ``n_components >= n_features`` the
      factors are exact (identity blocks).

    All draws come from ``generator`` (on the CPU).
    """
    k, n = module.decoder_weight.shape
    kw = {"dtype": X.dtype, "device": X.device}
    with torch.no_grad():
        module.encoder_bias.zero_()
        if init == "glorot_uniform":
            bound = math.sqrt(6.0 / (n + k))
            for w in (module.encoder_weight, module.decoder_weight):
                w.copy_((2.0 * rand((k, n), generator, **kw) - 1.0) * bound)
        elif init == "he_normal":
            module.encoder_weight.copy_(
                randn((k, n), generator, **kw) * math.sqrt(2 / n)
            )
            module.decoder_weight.copy_(
                randn((k, n), generator, **kw) * math.sqrt(2 / k)
            )
        elif init == "orthogonal":
            module.encoder_weight.copy_(_orthogonal(k, n, generator, **kw))
            module.decoder_weight.copy_(_orthogonal(k, n, generator, **kw))
        elif init == "normal":
            module.encoder_weight.copy_(0.01 * randn((k, n), generator, **kw))
            module.decoder_weight.copy_(0.01 * randn((k, n), generator, **kw))
        elif init == "nmf":
            _, H = _nmf_factors(X, k, generator, nmf_max_iter)
            A = torch.linalg.pinv(H)
            _matching_encoder(module, X, A, H)
        elif init == "nmf_identity":
            if k >= n:
                # The identity factors exactly, I = [I 0] [I 0]^T. HALS from
                # the NNDSVD of the identity (all singular values equal: any
                # basis) ends in a local minimum that merges a few features.
                A, B = torch.eye(n, k, **kw), torch.eye(k, n, **kw)
            else:
                A, B = _nmf_factors(torch.eye(n, **kw), k, generator, nmf_max_iter)
            _matching_encoder(module, X, A, B)
        else:
            raise ValueError(f"Unknown weight_init {init!r}")
        if init not in ("nmf", "nmf_identity"):
            module.decoder_bias.copy_(_mean_output_bias(module, X))


# -- training --------------------------------------------------------------------


@dataclass
class Objective:
    """Penalties of the training objective, already resolved to plain values."""

    loss: str = "mse"
    sparsity: str | None = "kl"
    sparsity_target: float = 0.05
    sparsity_weight: float = 1e-3
    epsilon: float = 1e-6
    nonnegativity: str | None = "projection"
    decay_weight: float = 0.0
    decay_ratio: float = 0.0
    decay_norm: str = "l2"
    nonnegative_encoder: bool = False

    def constrained(self, module):
        """The weights that must be non-negative."""
        if self.nonnegative_encoder:
            return [module.decoder_weight, module.encoder_weight]
        return [module.decoder_weight]

    def __call__(self, module, X):
        """Return ``(objective, reconstruction loss, code)`` on the batch ``X``."""
        H, Z = module(X)
        if self.loss == "bce":
            rec = bce_loss(Z, X)
        else:
            rec = mse_loss(module._g(Z), X)
        total = rec
        if self.sparsity is not None and self.sparsity_weight > 0:
            total = total + sparsity_term(
                H,
                self.sparsity,
                self.sparsity_target,
                self.sparsity_weight,
                self.epsilon,
            )
        if self.nonnegativity == "asymmetric_decay" and self.decay_weight > 0:
            for w in self.constrained(module):
                total = total + decay_term(
                    w,
                    self.decay_weight,
                    self.decay_ratio,
                    self.decay_norm,
                    self.epsilon,
                )
        return total, rec, H

    def project(self, module):
        """Clip the constrained weights to >= 0 in place (projection only),
        all of them in one operation."""
        if self.nonnegativity == "projection":
            with torch.no_grad():
                torch._foreach_clamp_min_(self.constrained(module), 0.0)


def make_optimizer(module, solver, learning_rate_init, momentum=0.9):
    """The torch optimiser for ``solver`` ("adam", "sgd" or "lbfgs").

    Adam and SGD are torch's fused implementations: one operation updates
    every parameter, and Adam's step count stays a device tensor (the
    single-tensor Adam reads it back to the host at every step), so a step
    never waits for the device and can be captured in a CUDA graph.
    L-BFGS takes unit initial steps with a strong-Wolfe line search (its
    ``learning_rate_init`` is not used), one iteration per :func:`train` epoch.
    """
    params = list(module.parameters())
    if solver == "adam":
        return torch.optim.Adam(params, lr=learning_rate_init, fused=True)
    if solver == "sgd":
        return torch.optim.SGD(
            params, lr=learning_rate_init, momentum=momentum, fused=True
        )
    if solver == "lbfgs":
        return torch.optim.LBFGS(
            params,
            lr=1.0,
            max_iter=1,
            history_size=20,
            tolerance_grad=0.0,
            tolerance_change=0.0,
            line_search_fn="strong_wolfe",
        )
    raise ValueError(f"Unknown solver {solver!r}")


_SOLVERS = {
    torch.optim.Adam: "adam",
    torch.optim.SGD: "sgd",
    torch.optim.LBFGS: "lbfgs",
}


def copy_training_state(module, optimizer):
    """Independent copies of ``module`` and of ``optimizer``, the copy
    optimising the copied module from the same state (moments, step counts,
    curvature pairs).

    Training the copies leaves the originals as they were, so a call that
    fails can be abandoned. (``copy.deepcopy`` of an L-BFGS optimiser loses
    its parameter list; a new optimiser loading a deep copy of the state dict
    does not.)
    """
    module_copy = copy.deepcopy(module)
    defaults = optimizer.defaults
    optimizer_copy = make_optimizer(
        module_copy,
        _SOLVERS[type(optimizer)],
        defaults["lr"],
        defaults.get("momentum", 0.9),
    )
    optimizer_copy.load_state_dict(copy.deepcopy(optimizer.state_dict()))
    return module_copy, optimizer_copy


@dataclass
class History:
    """Training record carried across :func:`train` calls (``partial_fit``).

    ``stopping`` is the ``n_iter_no_change`` rule on the epoch objective or,
    with a validation set, on the negated validation score: its best value and
    count of epochs without improvement carry over to the next call.
    ``best_state`` holds the parameters of the best validation score.
    """

    loss_curve: list = field(default_factory=list)
    validation_scores: list = field(default_factory=list)
    stopping: NoImprovement | None = None
    best_state: dict | None = None
    n_iter: int = 0
    converged: bool = False

    def stopping_rule(self, tol, n_iter_no_change):
        """The carried stopping rule, with this call's ``tol`` and patience.

        ``set_params`` may change both between ``partial_fit`` calls; the best
        value and the count stay those of the earlier calls.
        """
        if self.stopping is None:
            self.stopping = NoImprovement(tol, n_iter_no_change)
        self.stopping.tol, self.stopping.patience = tol, n_iter_no_change
        return self.stopping


def _weight_bound(dtype):
    """Largest magnitude a trained weight may reach: the square root of the
    dtype's largest number (1.3e154 in float64, 1.8e19 in float32).

    The data the module sees lies in [-1, 1]; a weight beyond this bound is a
    diverged step, and squaring it (L2 decay, Adam's second moment) overflows.
    """
    return math.sqrt(torch.finfo(dtype).max)


@torch.no_grad()
def reconstruction_mse(module, X, batch_size=4096):
    """Mean squared reconstruction error of ``module`` on ``X``, as a float."""
    total = torch.zeros((), dtype=torch.float64, device=X.device)
    for start in range(0, X.shape[0], batch_size):
        xb = X[start : start + batch_size]
        total += (module.decode(module.encode(xb)) - xb).square().sum().double()
    return float(total) / X.numel()


def _gather(X, perm, start, stop, out=None):
    """Rows ``start:stop`` of ``X`` (of ``X[perm]`` when ``perm`` is given),
    gathered on ``X``'s device, into ``out`` when given."""
    if perm is None:
        xb = X[start:stop]
    elif torch.is_tensor(X):
        return torch.index_select(X, 0, perm[start:stop], out=out)
    else:
        xb = X[perm[start:stop]]  # streamed rows: read from disk
    return xb if out is None else out.copy_(xb)


class TrainingStep:
    """The mini-batch training step of ``module``, eager or replayed as a CUDA
    graph.

    One step is the forward pass, the objective with its penalties, the
    backward pass, the optimiser step and the projection (with the asymmetric
    decay, part of the objective, nothing is projected); it adds ``n_B`` times
    (objective, reconstruction loss, mean activation) of the batch to
    :attr:`acc`. No operation of it reads a value back to the host, so within
    an epoch the host never waits for the device.

    On the CPU, or with ``cuda_graph=False``, every step runs eagerly. On CUDA
    the full batches of ``batch_size`` rows go through a static batch buffer:
    the first :attr:`WARMUP` steps run eagerly on a side stream (they create
    the optimiser state and the libraries' workspaces), the next one is
    captured once as a :class:`torch.cuda.CUDAGraph` and every later full batch
    replays it. A ragged last batch runs the same step eagerly; so does
    everything when the capture fails. A replay computes what the eager step
    computes, on the same tensors.
    """

    #: Eager steps before the capture.
    WARMUP = 3

    def __init__(self, module, optimizer, objective, *, batch_size, device, cuda_graph):
        self.module, self.optimizer, self.objective = module, optimizer, objective
        self.batch_size = batch_size
        self.acc = None
        self.graph = None
        self.use_graph = cuda_graph and torch.device(device).type == "cuda"
        self._device = device
        self._static_x = None
        self._warm = 0

    def __call__(self, xb):
        """One eager step on the batch ``xb`` (the unit that is captured)."""
        self.optimizer.zero_grad(set_to_none=True)
        total, rec, H = self.objective(self.module, xb)
        total.backward()
        self.optimizer.step()
        self.objective.project(self.module)
        with torch.no_grad():
            stats = torch.stack([total.detach(), rec.detach(), H.detach().mean()])
            self.acc.add_(stats, alpha=xb.shape[0])

    def epoch(self, X, perm):
        """One pass over the rows of ``X`` (in the order ``perm``, if given);
        returns the on-device means (objective, reconstruction, activation).

        The sums stay on the device, so the epoch does not wait for the host.
        """
        n = X.shape[0]
        if self.acc is None:
            self.acc = torch.zeros(3, dtype=X.dtype, device=self._device)
        else:
            self.acc.zero_()
        for start in range(0, n, self.batch_size):
            stop = min(start + self.batch_size, n)
            if self.use_graph and stop - start == self.batch_size:
                self._graph_step(X, perm, start, stop)
            else:
                self(_gather(X, perm, start, stop))
        return self.acc / n

    def _graph_step(self, X, perm, start, stop):
        """A full batch on CUDA: warm-up, capture or replay."""
        if self._static_x is None:
            self._static_x = torch.empty(
                (self.batch_size, X.shape[1]), dtype=X.dtype, device=self._device
            )
        _gather(X, perm, start, stop, out=self._static_x)
        if self.graph is None and self._warm >= self.WARMUP:
            self.graph = self._capture()
        if self.graph is not None:
            self.graph.replay()
            return
        if not self.use_graph:  # the capture failed
            self(self._static_x)
            return
        side = torch.cuda.Stream(self._device)
        side.wait_stream(torch.cuda.current_stream(self._device))
        with torch.cuda.stream(side):
            self(self._static_x)
        torch.cuda.current_stream(self._device).wait_stream(side)
        self._warm += 1

    def _capture(self):
        """The step on the static batch, captured; None (and eager steps from
        then on) when the capture fails. A capture runs nothing, so a failed
        one leaves the parameters and the optimiser state as they were."""
        groups = [g for g in self.optimizer.param_groups if "capturable" in g]
        # Adam refuses a capture unless its groups say capturable; the fused
        # implementation computes the same with or without the flag.
        for group in groups:
            group["capturable"] = True
        self.optimizer.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                self(self._static_x)
        except RuntimeError:
            self.use_graph, graph = False, None
            self.optimizer.zero_grad(set_to_none=True)
        finally:
            for group in groups:
                group["capturable"] = False
        return graph


class _LbfgsClosure:
    """The closure that L-BFGS calls to evaluate the objective and its gradient.

    ``first`` holds ``(loss, rec, act)`` of the first evaluation, the one at
    the iterate where the step starts.
    """

    def __init__(self, module, optimizer, objective, X):
        self.module = module
        self.optimizer = optimizer
        self.objective = objective
        self.X = X
        self.first = None

    def __call__(self):
        self.optimizer.zero_grad(set_to_none=True)
        total, rec, H = self.objective(self.module, self.X)
        total.backward()
        if self.first is None:
            self.first = torch.stack([total.detach(), rec.detach(), H.detach().mean()])
        return total


def _run_lbfgs_iteration(module, optimizer, objective, X):
    """One full-batch L-BFGS iteration; returns (loss, rec, act) at its start."""
    closure = _LbfgsClosure(module, optimizer, objective, X)
    optimizer.step(closure)
    before = [w.detach().clone() for w in objective.constrained(module)]
    objective.project(module)
    clipped = any(
        not torch.equal(b, w) for b, w in zip(before, objective.constrained(module))
    )
    if clipped:
        # The projection moved the iterate: the curvature pairs no longer
        # describe the path, so L-BFGS restarts from a gradient step.
        optimizer.state.clear()
    return closure.first


def train(
    module,
    optimizer,
    objective,
    X,
    *,
    history,
    max_iter,
    batch_size=64,
    solver="adam",
    X_val=None,
    tol=1e-4,
    n_iter_no_change=10,
    shuffle=True,
    generator=None,
    verbose=0,
    incremental=False,
    cuda_graph=True,
):
    """Train ``module`` on ``X`` for up to ``max_iter`` epochs, in place.

    Each epoch shuffles ``X`` (one permutation from ``generator``), takes one
    optimiser step per mini-batch and, with projection, clips the constrained
    weights after every step; L-BFGS does one full-batch iteration per epoch.
    Stopping follows scikit-learn's MLP: without ``X_val``, training stops when
    the epoch's mean objective has not improved on the best by ``tol`` for more
    than ``n_iter_no_change`` epochs; with ``X_val`` the validation score
    (negative reconstruction MSE) takes its place and the best parameters are
    restored at the end. ``incremental`` runs one epoch (``partial_fit``).

    ``X`` and ``X_val`` are tensors or, for data streamed from disk, objects
    with a tensor's ``shape``, ``dtype``, ``device`` and ``numel()`` whose
    rows, indexed by a slice or an index tensor, come back as tensors: only
    the mini-batch being used is then in memory.

    The mini-batch steps are those of :class:`TrainingStep`: on CUDA, with
    ``cuda_graph``, the full batches replay one captured CUDA graph.

    The only host synchronisation is once per epoch. An objective that is not
    finite, or weights out of :func:`_weight_bound` (NaN included), at the
    end of an epoch raise ``FloatingPointError``; ``module``, ``optimizer``
    and ``history`` are then left part-way (train copies when the caller must
    keep the originals, see :func:`copy_training_state`). Returns
    ``history``, updated.
    """
    n = X.shape[0]
    batch_size = max(1, min(batch_size, n))
    stopping = history.stopping_rule(tol, n_iter_no_change)
    params = list(module.parameters())
    bound = _weight_bound(X.dtype)
    if solver != "lbfgs":
        step = TrainingStep(
            module,
            optimizer,
            objective,
            batch_size=batch_size,
            device=X.device,
            cuda_graph=cuda_graph,
        )
    t0 = time.perf_counter()
    for _ in range(1 if incremental else max_iter):
        if solver == "lbfgs":
            stats = _run_lbfgs_iteration(module, optimizer, objective, X)
        else:
            perm = randperm(n, generator, device=X.device) if shuffle else None
            stats = step.epoch(X, perm)
        # One host synchronisation for the statistics and the weights' check:
        # a step can throw the weights out of range with a finite objective
        # (the last one of the epoch, or saturated sigmoids).
        in_range = torch.stack([(p.abs() <= bound).all() for p in params])
        stats = torch.cat([stats, in_range.all().to(stats.dtype).reshape(1)])
        loss, rec, act, weights_ok = stats.tolist()
        if not math.isfinite(loss):
            raise FloatingPointError(
                f"The training objective became {loss} at epoch {history.n_iter + 1}."
            )
        if not weights_ok:
            raise FloatingPointError(
                f"The weights left the range [-{bound:.3g}, {bound:.3g}] at "
                f"epoch {history.n_iter + 1}."
            )
        history.n_iter += 1
        history.loss_curve.append(loss)
        line = (
            f"Iteration {history.n_iter}, loss = {loss:.8f}, reconstruction = "
            f"{rec:.8f}, mean activation = {act:.4f}"
        )
        if X_val is None:
            stop = stopping(loss)
        else:
            score = -reconstruction_mse(module, X_val)
            history.validation_scores.append(score)
            line += f", validation score = {score:.8f}"
            # The rule holds the scores negated: this one beats the best so far.
            if -score < stopping.best:
                history.best_state = {
                    k: v.detach().clone() for k, v in module.state_dict().items()
                }
            stop = stopping(-score)
        if verbose:
            print(f"{line}, time = {time.perf_counter() - t0:.2f}s", flush=True)
        if stop:
            history.converged = True
            if verbose:
                what = "Validation score" if X_val is not None else "Training loss"
                print(
                    f"{what} did not improve more than tol={tol} for "
                    f"{n_iter_no_change} consecutive epochs. Stopping."
                )
            break
    if X_val is not None and history.best_state is not None and not incremental:
        module.load_state_dict(history.best_state)
    return history
