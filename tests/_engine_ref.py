"""Independent reference implementations for the engine tests: plain NumPy loops, written
from the formulas in gd-dynamics.md, sharing no code with attnlab."""

from __future__ import annotations

import math

import numpy as np


def ref_attention(X, W_Q, W_K, kernel, normalize=False, scale=None):
    """S[h, i, k, j] by explicit loops; X (N, n, D), W (H, D, d)."""
    N, n, _ = X.shape
    H, _, d = W_Q.shape
    sc = 1.0 / math.sqrt(d) if scale is None else scale
    S = np.zeros((H, N, n, n))
    for h in range(H):
        for i in range(N):
            Q = X[i] @ W_Q[h]
            K = X[i] @ W_K[h]
            for k in range(n):
                row = np.zeros(n)
                for j in range(n):
                    if kernel == "softmax":
                        row[j] = math.exp(sc * float(Q[k] @ K[j]))
                    else:
                        row[j] = math.exp(-sc * float(np.sum((Q[k] - K[j]) ** 2)) / 2)
                if kernel == "softmax" or normalize:
                    row /= row.sum()
                S[h, i, k] = row
    return S


def ref_output(X, W_Q, W_K, W_V, kernel, normalize=False):
    """out[i, k] = sum_h sum_j S[h,i,k,j] <x_ij, W_V[h]>; W_V (H, D)."""
    S = ref_attention(X, W_Q, W_K, kernel, normalize)
    H, N, n, _ = S.shape
    out = np.zeros((N, n))
    for h in range(H):
        for i in range(N):
            u = X[i] @ W_V[h]
            for k in range(n):
                out[i, k] += sum(S[h, i, k, j] * u[j] for j in range(n))
    return out


def ref_loss(X, W_Q, W_K, W_V, y, kernel, normalize=False):
    return 0.5 * float(np.sum((ref_output(X, W_Q, W_K, W_V, kernel, normalize) - y) ** 2))


def ref_feature_matrix(X, S):
    """C[(i,k), (h,a)] = sum_j S[h,i,k,j] X[i,j,a] by loops."""
    H, N, n, _ = S.shape
    D = X.shape[2]
    C = np.zeros((N * n, H * D))
    for i in range(N):
        for k in range(n):
            for h in range(H):
                for a in range(D):
                    C[i * n + k, h * D + a] = sum(S[h, i, k, j] * X[i, j, a] for j in range(n))
    return C


def central_fd(fun, W, eps=1e-5):
    """Central finite-difference gradient of the scalar ``fun`` at array ``W``."""
    G = np.zeros_like(W)
    for idx in np.ndindex(W.shape):
        Wp = W.copy()
        Wm = W.copy()
        Wp[idx] += eps
        Wm[idx] -= eps
        G[idx] = (fun(Wp) - fun(Wm)) / (2 * eps)
    return G


def rel_err(a, b):
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))
