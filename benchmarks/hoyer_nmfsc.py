"""Plain NumPy transcription of Hoyer's (2004) ``nmfsc.m``, the reference.

Hoyer factorises ``V (n_features x n_samples) ~ W H`` with the atoms as the
columns of ``W``. This follows his MATLAB code line by line: projected
gradient on the constrained factor with his step-size rule (halve until the
objective does not increase, then grow by 1.2), a per-vector projection loop
(``projfunc``), and the multiplicative update (with renormalisation of ``H``'s
rows) for an unconstrained ``H``.
"""

import numpy as np


def projfunc(s, k1, k2, nn=True):
    """Hoyer's projection: closest ``v >= 0`` with ``sum(v) = k1`` and
    ``sum(v**2) = k2`` to the vector ``s`` (his ``projfunc.m``)."""
    N = len(s)
    if nn:
        s = np.abs(s)
    v = s + (k1 - s.sum()) / N
    zerocoeff = np.zeros(N, dtype=bool)
    while True:
        midpoint = np.full(N, k1 / (N - zerocoeff.sum()))
        midpoint[zerocoeff] = 0
        w = v - midpoint
        a = np.sum(w**2)
        b = 2 * w @ v
        c = np.sum(v**2) - k2
        alphap = (-b + np.real(np.sqrt(complex(b * b - 4 * a * c)))) / (2 * a)
        v = alphap * w + v
        if np.all(v >= 0):
            break
        zerocoeff = v <= 0
        v[zerocoeff] = 0
        tempsum = v.sum()
        v = v + (k1 - tempsum) / (N - zerocoeff.sum())
        v[zerocoeff] = 0
    return v


def nmfsc(V, W, H, sW=None, sH=None, n_iter=20):
    """Run ``n_iter`` iterations of Hoyer's nmfsc from ``(W, H)``.

    Returns ``W, H, objective history`` (``0.5 * ||V - W H||_F^2`` after each
    iteration, the first entry at the start).
    """
    vdim, samples = V.shape
    rdim = W.shape[1]
    W, H = W.copy(), H.copy()
    H = H / np.sqrt((H**2).sum(1))[:, None]
    if sW is not None:
        L1a = np.sqrt(vdim) - (np.sqrt(vdim) - 1) * sW
        for i in range(rdim):
            W[:, i] = projfunc(W[:, i], L1a, 1, True)
    if sH is not None:
        L1s = np.sqrt(samples) - (np.sqrt(samples) - 1) * sH
        for i in range(rdim):
            H[i, :] = projfunc(H[i, :], L1s, 1, True)
    objhistory = [0.5 * np.sum((V - W @ H) ** 2)]
    stepsizeW = stepsizeH = 1.0
    for _ in range(n_iter):
        # ----- H ----------------------------------------------------------
        if sH is not None:
            dH = W.T @ (W @ H - V)
            begobj = objhistory[-1]
            while True:
                Hnew = H - stepsizeH * dH
                for i in range(rdim):
                    Hnew[i, :] = projfunc(Hnew[i, :], L1s, 1, True)
                newobj = 0.5 * np.sum((V - W @ Hnew) ** 2)
                if newobj <= begobj:
                    break
                stepsizeH /= 2
                if stepsizeH < 1e-200:
                    return W, H, objhistory
            stepsizeH *= 1.2
            H = Hnew
        else:
            H = H * (W.T @ V) / (W.T @ W @ H + 1e-9)
            norms = np.sqrt((H**2).sum(1))
            H = H / norms[:, None]
            W = W * norms[None, :]
        # ----- W ----------------------------------------------------------
        if sW is not None:
            dW = (W @ H - V) @ H.T
            begobj = 0.5 * np.sum((V - W @ H) ** 2)
            while True:
                Wnew = W - stepsizeW * dW
                norms = np.sqrt((Wnew**2).sum(0))
                for i in range(rdim):
                    Wnew[:, i] = projfunc(
                        Wnew[:, i], L1a * norms[i], norms[i] ** 2, True
                    )
                newobj = 0.5 * np.sum((V - Wnew @ H) ** 2)
                if newobj <= begobj:
                    break
                stepsizeW /= 2
                if stepsizeW < 1e-200:
                    return W, H, objhistory
            stepsizeW *= 1.2
            W = Wnew
        else:
            W = W * (V @ H.T) / (W @ H @ H.T + 1e-9)
        objhistory.append(0.5 * np.sum((V - W @ H) ** 2))
    return W, H, objhistory
