"""Pathfinder-32 images (Linsley et al. 2018; LRA, Tay et al. 2021): generator and loader.

Task: a 32x32 grey image shows dashed curves and two round markers; the label says whether
the two markers sit on the two ends of one curve (1) or on two different curves (0). LRA
feeds the 1024 pixel values (0..255) to a sequence model as tokens (:func:`tokens`).

**Provenance.** No package ships Pathfinder, so this is our own batched NumPy generator
written from the description in ``shared/notes/data.md`` §3 (itself a description, in its
authors' words, of ``drewlinsley/pathfinder`` with LRA's 32-px settings); it reproduces none
of the original code. What follows data.md:

- LRA 32-px settings: dash length ``L = 2``, margin ``m = 1``, 1-px occupied border,
  seed distance 7, marker radius 1.5, continuity 1, contour length ``N = 6 / 9 / 14``
  (folders ``curv_baseline``, ``curv_contour_length_9``, ``curv_contour_length_14``),
  ``N // 3`` dashes per distractor and ``20 // (N // 3)`` distractors (10 / 6 / 5), target
  dashes at contrast 1.5, distractor dashes at 2 (the original's quirk), per-image min-max
  scaling to 8 bits.
- A contour is a random walk of dashes. Seed: heading uniform over integer degrees, the tail
  drawn uniformly from the pixels where the whole dash fits. Step: joint point
  ``q = end + m u(theta)``; candidates are the pixels at distance ``L + m`` from ``q`` on
  about 19 angles (1 px of arc apart); candidate ``c`` with direction ``phi`` and turn
  ``delta`` has weight ``cos^2(min(continuity * delta, pi/2)) * (1 - Dil(c))`` (``Dil``: the
  occupancy grey-dilated by a radius-``m`` disk); a total weight below 1e-4 is a dead end;
  the dash runs from ``c - L u(phi)`` to ``c`` and is accepted if
  ``max(occupancy + footprint) < 1.8`` (at most 3 samples), else the walk fails.
  Footprint = the dash dilated by radius ``m`` (soft edge). The footprint of the *previous*
  dash of the same contour is committed only after the next one is accepted, so consecutive
  dashes (which touch by construction) are never tested against each other.
- Two target contours A and B: A's tail in the central block (>= 14 px from every edge), B's
  tail 7 px away at a uniform angle; A and B grow alternately, ``N - 1`` steps each; any
  failure discards both and restarts (contours are never shortened). Then the distractors,
  each seeded in free space, at most 5 attempts, skipped on failure or when less than 1 % of
  the pixels are free. Markers: one on the start (seed tail) of a random target ``s``, the
  other on the far end of ``s`` (label 1) or of the other target (label 0).

Our own choices (simplifications, as in data.md's prototype): headings are quantised to 1
degree, pixel centres sit at integer coordinates (the original's ``floor``/``ceil`` on pixel
corners become ``round``), anti-aliasing is analytic instead of 2x drawing + Lanczos (a dash
pixel has intensity ``max(0, 1 - d)``, its footprint ``clip(m + 1/2 - d, 0, 1)``, a marker
``clip(1.5 + 1/2 - d, 0, 1)``, ``d`` the distance to the segment or centre), markers have
contrast 2, seed tails are drawn by rejection (up to 8 proposals per attempt), B's seed dash
is tested for collisions like any other dash, and the labels of a batch are exactly balanced
(a seeded permutation of ``n // 2`` zeros and ``n - n // 2`` ones) instead of independent
coin flips. Images depend on ``(n, difficulty, seed)``: a larger batch is not an extension
of a smaller one.

The loader :func:`load_lra_pathfinder` reads the real LRA files (``lra_release.gz``,
``pathfinder32/<difficulty folder>/metadata/*.npy`` text files plus PNGs).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from .._validate import check_bool, check_choice, check_finite, check_int, check_shape

__all__ = [
    "SIZE",
    "DIFFICULTIES",
    "LRA_FOLDERS",
    "PathfinderInfo",
    "generate_pathfinder",
    "tokens",
    "load_lra_pathfinder",
]

SIZE = 32
DIFFICULTIES = (6, 9, 14)
LRA_FOLDERS = {6: "curv_baseline", 9: "curv_contour_length_9", 14: "curv_contour_length_14"}

# LRA's 32-px settings (data.md §3.1)
DASH_LENGTH = 2.0
MARGIN = 1.0
SEED_DISTANCE = 7.0
MARKER_RADIUS = 1.5
CONTINUITY = 1.0
TARGET_CONTRAST = 1.5  # paddle_contrast 0.75 * snake_contrast 2
DISTRACTOR_CONTRAST = 2.0
MARKER_CONTRAST = 2.0  # our choice: as bright as the brightest dash
COLLISION = 1.8
DEAD_END = 1e-4

_N_CAND = 19  # candidate angles on the circle of radius L + m (about 1 px of arc apart)
_TRIES = 3  # samples per step before the walk fails
_SEED_PROPOSALS = 8  # rejection proposals for a distractor's seed
_DISTRACTOR_ATTEMPTS = 5
_R = 3  # dash / footprint patches are (2R+1)^2 around the anchor pixel
_PAD = 6  # padded map: every gather stays in bounds without clipping
_S = SIZE + 2 * _PAD
_S2 = _S * _S
# First-round guess of the target-pair success rate (later rounds use the measured rate).
_SUCCESS_GUESS = {6: 0.5, 9: 0.27, 14: 0.1}
_MAX_ATTEMPTS = 4096  # attempt slots per round (bounds memory: 2 maps of 44x44 float32 each)
_CHUNK = 4096  # images built at once (bounds memory for large n; same rng stream throughout)


@dataclass(frozen=True)
class PathfinderInfo:
    """Geometry behind a batch of images, in pixel coordinates ``(y, x)`` of the 32x32 window.

    Attributes:
        starts: ``(B, 2, 2)`` seed tails of the target contours A (index 0) and B (index 1).
        ends: ``(B, 2, 2)`` far ends (the last dash's end pixel) of A and B.
        markers: ``(B, 2, 2)`` marker centres; marker 0 is on ``starts[b, marked[b]]``.
        marked: ``(B,)`` which target carries marker 0.
        dash_anchor: ``(B, D, 2)`` end pixel of each dash; the dash is the segment from
            ``anchor - L (sin a, cos a)`` to ``anchor``, ``a = dash_angle`` in degrees.
        dash_angle: ``(B, D)`` degrees in ``[0, 360)``.
        dash_contour: ``(B, D)`` 0 = A, 1 = B, 2.. = distractors, -1 = unused slot.
            Dashes of one contour are stored in walk order.
        attempts: target-pair attempt slots used for the batch (each failed pair restarts
            in a new slot; a few surplus successes of the last round are included).
    """

    starts: np.ndarray
    ends: np.ndarray
    markers: np.ndarray
    marked: np.ndarray
    dash_anchor: np.ndarray
    dash_angle: np.ndarray
    dash_contour: np.ndarray
    attempts: int


# ---------------------------------------------------------------- geometry tables


def _unit(deg: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """``(sin, cos)`` of an angle in degrees: the unit vector in ``(y, x)`` order."""
    rad = np.deg2rad(deg)
    return np.sin(rad), np.cos(rad)


def _segment_distance(py, px, ay, ax, by, bx) -> np.ndarray:
    """Distance of points ``p`` to the segments ``a-b`` (all broadcastable)."""
    vy, vx = by - ay, bx - ax
    t = np.clip(((py - ay) * vy + (px - ax) * vx) / (vy * vy + vx * vx), 0.0, 1.0)
    return np.hypot(py - (ay + t * vy), px - (ax + t * vx))


@dataclass(frozen=True)
class _Tables:
    patch: np.ndarray  # (P,) flat offsets of the (2R+1)^2 patch in the padded map
    foot: np.ndarray  # (360, P) footprint of a dash anchored at 0 with heading a
    dash: np.ndarray  # (360, P) its drawn intensity
    marker_patch: np.ndarray  # (Q,) flat offsets of the marker patch
    marker: np.ndarray  # (Q,)
    cand: np.ndarray  # (2, 360, K) flat offsets of the step candidates from the anchor
    cand_phi: np.ndarray  # (2, 360, K) their headings (degrees)
    cand_w: np.ndarray  # (2, 360, K) their turn weights (0 = padding)


def _patch(radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    oy, ox = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    oy, ox = oy.ravel().astype(float), ox.ravel().astype(float)
    return oy, ox, (oy * _S + ox).astype(np.int64)


def _step_candidates(k: int, theta: int) -> tuple[list[int], list[int], list[float]]:
    """Candidates of one step; ``k = 0``: first step after a seed, ``k = 1``: later steps.

    The joint point ``q`` is ``m`` past the current dash's end: after a seed dash (tail at
    the anchor, end ``L`` ahead) ``q = (L + m) u(theta)``, later ``q = m u(theta)``.
    """
    qy, qx = _unit(theta)
    reach = DASH_LENGTH + MARGIN
    d = reach if k == 0 else MARGIN
    qy, qx = d * qy, d * qx
    offs, phis, ws = [], [], []
    for j in range(_N_CAND):
        ay, ax = _unit(theta + 360.0 * j / _N_CAND)
        cy, cx = int(np.rint(qy + reach * ay)), int(np.rint(qx + reach * ax))
        if cy * _S + cx in offs:
            continue
        phi = math.degrees(math.atan2(cy - qy, cx - qx))
        turn = abs((phi - theta + 180.0) % 360.0 - 180.0)
        w = math.cos(min(CONTINUITY * math.radians(turn), math.pi / 2)) ** 2
        if w > 1e-9:
            offs.append(cy * _S + cx)
            phis.append(int(np.rint(phi)) % 360)
            ws.append(w)
    return offs, phis, ws


@lru_cache(maxsize=1)
def _tables() -> _Tables:
    oy, ox, patch = _patch(_R)
    ang = np.arange(360.0)[:, None]
    uy, ux = _unit(ang)
    d = _segment_distance(oy, ox, -DASH_LENGTH * uy, -DASH_LENGTH * ux, 0.0 * uy, 0.0 * ux)
    foot = np.clip(MARGIN + 0.5 - d, 0.0, 1.0).astype(np.float32)
    dash = np.clip(1.0 - d, 0.0, 1.0).astype(np.float32)
    my, mx, marker_patch = _patch(2)
    marker = np.clip(MARKER_RADIUS + 0.5 - np.hypot(my, mx), 0.0, 1.0).astype(np.float32)
    rows = [[_step_candidates(k, t) for t in range(360)] for k in (0, 1)]
    K = max(len(r[0]) for rk in rows for r in rk)
    cand = np.zeros((2, 360, K), np.int64)
    cand_phi = np.zeros((2, 360, K), np.int64)
    cand_w = np.zeros((2, 360, K), np.float32)
    for k in (0, 1):
        for t, (offs, phis, ws) in enumerate(rows[k]):
            cand[k, t, :len(offs)] = offs
            cand_phi[k, t, :len(offs)] = phis
            cand_w[k, t, :len(offs)] = ws
    return _Tables(patch, foot, dash, marker_patch, marker, cand, cand_phi, cand_w)


def _empty_map() -> np.ndarray:
    """Occupancy of an empty image, flat ``(S*S,)``: 1 on the 1-px border and outside."""
    occ = np.ones((_S, _S), np.float32)
    occ[_PAD + 1:_PAD + SIZE - 1, _PAD + 1:_PAD + SIZE - 1] = 0.0
    return occ.ravel()


def _flat(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    return (y + _PAD) * _S + (x + _PAD)


def _yx(flat: np.ndarray) -> np.ndarray:
    return np.stack([flat // _S - _PAD, flat % _S - _PAD], axis=-1)


# ---------------------------------------------------------------- walk primitives


def _fits(occ: np.ndarray, base: np.ndarray, anchor: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Collision test: ``max(occupancy + footprint) < 1.8`` for dashes of any batch shape."""
    T = _tables()
    idx = (base + anchor)[..., None] + T.patch
    return (occ[idx] + T.foot[angle]).max(axis=-1) < COLLISION


def _commit(occ: np.ndarray, base: np.ndarray, anchor: np.ndarray, angle: np.ndarray) -> None:
    """Add footprints to the occupancy maps (pixelwise max); one dash per map."""
    T = _tables()
    idx = (base + anchor)[:, None] + T.patch
    occ[idx] = np.maximum(occ[idx], T.foot[angle])


def _step(occ: np.ndarray, base: np.ndarray, anchor: np.ndarray, theta: np.ndarray, k: int,
          rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One walk step for ``n`` contours; each reads its own map at ``occ[base:base+S*S]``.

    Returns ``(ok (n,), new anchor (n,), new heading (n,))``.
    """
    T = _tables()
    offs = T.cand[k, theta]  # (n, K)
    c = anchor[:, None] + offs
    g = base[:, None] + c
    dil = np.maximum(np.maximum(occ[g], occ[g + 1]), occ[g - 1])
    dil = np.maximum(np.maximum(dil, occ[g + _S]), occ[g - _S])
    cs = np.cumsum(T.cand_w[k, theta] * (1.0 - dil), axis=1)
    total = cs[:, -1]
    r = rng.random((len(base), _TRIES)) * total[:, None]
    j = np.minimum((cs[:, None, :] <= r[:, :, None]).sum(-1), offs.shape[1] - 1)
    ci = np.take_along_axis(c, j, 1)
    phi = np.take_along_axis(T.cand_phi[k, theta], j, 1)
    fits = _fits(occ, base[:, None], ci, phi)  # (n, tries)
    first = fits.argmax(axis=1)
    rows = np.arange(len(base))
    ok = (total >= DEAD_END) & fits[rows, first]
    return ok, ci[rows, first], phi[rows, first]


# ---------------------------------------------------------------- target contours


def _target_round(W: int, N: int, rng: np.random.Generator):
    """``W`` independent attempts at the target pair; returns the successful ones.

    Attempt ``i`` keeps two maps (flat, at ``(2i + X) * S*S``): map X holds every committed
    footprint except contour X's latest dash (the one-step lag of data.md §3.3).
    """
    occ = np.tile(_empty_map(), 2 * W)
    anchor = np.zeros((W, 2), np.int64)
    theta = rng.integers(0, 360, size=(W, 2))
    tail = rng.integers(2 * int(SEED_DISTANCE), SIZE - 2 * int(SEED_DISTANCE), size=(W, 2))
    beta = rng.random(W) * 360.0
    by, bx = _unit(beta)
    tail_b = np.rint(tail + SEED_DISTANCE * np.stack([by, bx], 1)).astype(np.int64)
    anchor[:, 0] = _flat(tail[:, 0], tail[:, 1])
    anchor[:, 1] = _flat(tail_b[:, 0], tail_b[:, 1])
    rec_anchor = np.zeros((W, 2, N), np.int64)
    rec_angle = np.zeros((W, 2, N), np.int64)
    rec_anchor[:, :, 0] = anchor
    rec_angle[:, :, 0] = (theta + 180) % 360  # seed dash: from the tail, heading theta
    slots = np.arange(W)
    _commit(occ, (2 * slots + 1) * _S2, anchor[:, 0], rec_angle[:, 0, 0])
    act = slots[_fits(occ, (2 * slots + 1) * _S2, anchor[:, 1], rec_angle[:, 1, 0])]
    _commit(occ, (2 * act) * _S2, anchor[act, 1], rec_angle[act, 1, 0])
    for s in range(1, N):
        for X in (0, 1):
            base = (2 * act + X) * _S2
            ok, c, phi = _step(occ, base, anchor[act, X], theta[act, X], int(s > 1), rng)
            act, base, c, phi = act[ok], base[ok], c[ok], phi[ok]
            _commit(occ, base, rec_anchor[act, X, s - 1], rec_angle[act, X, s - 1])
            _commit(occ, (2 * act + 1 - X) * _S2, c, phi)
            anchor[act, X], theta[act, X] = c, phi
            rec_anchor[act, X, s], rec_angle[act, X, s] = c, phi
    # the final map of a success: map A plus A's last dash
    maps = occ.reshape(W, 2, _S2)[act, 0].copy().ravel()
    _commit(maps, np.arange(len(act)) * _S2, rec_anchor[act, 0, -1], rec_angle[act, 0, -1])
    return maps.reshape(len(act), _S2), rec_anchor[act], rec_angle[act]


def _targets(B: int, N: int, rng: np.random.Generator):
    """Target pairs for ``B`` images, by rounds of independent attempts (restart = new slot)."""
    maps, anchors, angles = [], [], []
    have = tried = 0
    rate = _SUCCESS_GUESS[N]
    while have < B:
        need = B - have
        W = min(_MAX_ATTEMPTS, int(math.ceil(need / max(rate, 0.02) * 1.15)) + 8)
        m, a, g = _target_round(W, N, rng)
        tried += W
        have_round = min(len(m), need)
        maps.append(m[:have_round])
        anchors.append(a[:have_round])
        angles.append(g[:have_round])
        have += have_round
        rate = max(have, 1) / tried
    return np.concatenate(maps), np.concatenate(anchors), np.concatenate(angles), tried


# ---------------------------------------------------------------- distractors


def _distractor(occ: np.ndarray, todo: np.ndarray, length: int, rng: np.random.Generator):
    """One attempt at a distractor of ``length`` dashes in the images ``todo``.

    Returns ``(ok (n,), anchors (n, length), angles (n, length))``; failed images get their
    maps restored.
    """
    n = len(todo)
    base = todo * _S2
    snapshot = occ.reshape(-1, _S2)[todo].copy()
    ty = rng.integers(1, SIZE - 1, size=(n, _SEED_PROPOSALS))
    tx = rng.integers(1, SIZE - 1, size=(n, _SEED_PROPOSALS))
    th = rng.integers(0, 360, size=(n, _SEED_PROPOSALS))
    a0 = _flat(ty, tx)
    fits = _fits(occ, base[:, None], a0, (th + 180) % 360)
    first = fits.argmax(axis=1)
    rows = np.arange(n)
    ok = fits[rows, first]
    anchors = np.zeros((n, length), np.int64)
    angles = np.zeros((n, length), np.int64)
    anchors[:, 0], angles[:, 0] = a0[rows, first], (th[rows, first] + 180) % 360
    theta = th[rows, first]
    live = np.flatnonzero(ok)
    for s in range(1, length):
        good, c, phi = _step(occ, base[live], anchors[live, s - 1], theta[live], int(s > 1), rng)
        ok[live[~good]] = False
        live = live[good]
        _commit(occ, base[live], anchors[live, s - 1], angles[live, s - 1])
        anchors[live, s], angles[live, s], theta[live] = c[good], phi[good], phi[good]
    _commit(occ, base[live], anchors[live, -1], angles[live, -1])
    occ.reshape(-1, _S2)[todo[~ok]] = snapshot[~ok]
    return ok, anchors, angles


def _distractors(occ: np.ndarray, B: int, N: int, rng: np.random.Generator):
    """All distractors; returns anchors and angles ``(B, K, L)`` and a mask ``(B, K)``."""
    length = N // 3
    K = 20 // length
    anchors = np.zeros((B, K, length), np.int64)
    angles = np.zeros((B, K, length), np.int64)
    placed = np.zeros((B, K), bool)
    inner = _empty_map() == 0
    for d in range(K):
        free = (occ.reshape(B, _S2)[:, inner] == 0).mean(axis=1)
        todo = np.flatnonzero(free >= 0.01)
        for _ in range(_DISTRACTOR_ATTEMPTS):
            if len(todo) == 0:
                break
            ok, a, g = _distractor(occ, todo, length, rng)
            anchors[todo[ok], d], angles[todo[ok], d] = a[ok], g[ok]
            placed[todo[ok], d] = True
            todo = todo[~ok]
    return anchors, angles, placed


# ---------------------------------------------------------------- rendering


def _render(B: int, anchor: np.ndarray, angle: np.ndarray, contour: np.ndarray,
            markers: np.ndarray) -> np.ndarray:
    """Dashes and markers -> float images ``(B, 32, 32)`` in [0, 1] (min-max scaled)."""
    T = _tables()
    img = np.zeros(B * _S2, np.float32)
    base = np.arange(B) * _S2
    for j in range(anchor.shape[1]):
        on = np.flatnonzero(contour[:, j] >= 0)
        contrast = np.where(contour[on, j] < 2, TARGET_CONTRAST, DISTRACTOR_CONTRAST)
        idx = (base[on] + anchor[on, j])[:, None] + T.patch
        val = contrast[:, None].astype(np.float32) * T.dash[angle[on, j]]
        img[idx] = np.maximum(img[idx], val)
    for j in range(2):
        idx = (base + markers[:, j])[:, None] + T.marker_patch
        img[idx] = np.maximum(img[idx], MARKER_CONTRAST * T.marker)
    img = img.reshape(B, _S, _S)[:, _PAD:_PAD + SIZE, _PAD:_PAD + SIZE]
    lo = img.min(axis=(1, 2), keepdims=True)
    hi = img.max(axis=(1, 2), keepdims=True)
    return (img - lo) / np.maximum(hi - lo, 1e-12)


def _chunk(labels: np.ndarray, marked: np.ndarray, N: int, rng: np.random.Generator):
    """Images for one chunk of labels: uint8 images and the geometry (see PathfinderInfo)."""
    n = len(labels)
    occ_maps, t_anchor, t_angle, attempts = _targets(n, N, rng)
    occ = occ_maps.ravel()
    d_anchor, d_angle, placed = _distractors(occ, n, N, rng)
    K, Ld = d_anchor.shape[1:]
    anchor = np.concatenate([t_anchor.reshape(n, 2 * N), d_anchor.reshape(n, K * Ld)], 1)
    angle = np.concatenate([t_angle.reshape(n, 2 * N), d_angle.reshape(n, K * Ld)], 1)
    contour = np.concatenate([
        np.repeat([0, 1], N)[None].repeat(n, 0),
        np.where(placed, np.arange(2, K + 2), -1).repeat(Ld, axis=1),
    ], 1)
    rows = np.arange(n)
    other = np.where(labels == 1, marked, 1 - marked)
    markers = np.stack([t_anchor[rows, marked, 0], t_anchor[rows, other, -1]], 1)
    img = np.rint(_render(n, anchor, angle, contour, markers) * 255.0).astype(np.uint8)
    return img, anchor, angle, contour, markers, t_anchor, attempts


# ---------------------------------------------------------------- public API


def generate_pathfinder(
    n: int,
    *,
    difficulty: int = 14,
    seed: int = 0,
    dtype: str = "uint8",
    return_info: bool = False,
) -> tuple[np.ndarray, np.ndarray] | tuple[np.ndarray, np.ndarray, PathfinderInfo]:
    """Generate ``n`` Pathfinder-32 images (algorithm and provenance: module docstring).

    Args:
        n: number of images ``B``.
        difficulty: contour length in dashes, 6 (LRA "easy"), 9 or 14 ("hard", used by
            Skyformer, S4 and the GD-dynamics paper).
        seed: seed of the ``np.random.default_rng`` stream; same ``(n, difficulty, seed)``
            -> same images.
        dtype: ``"uint8"`` (0..255, as the LRA PNGs) or ``"float32"`` (the same values / 255).
        return_info: also return a :class:`PathfinderInfo` with the geometry.

    Returns:
        ``images (B, 32, 32)``, ``labels (B,)`` int64 (1 = the markers are connected,
        exactly balanced: ``n // 2`` zeros), and the info if asked for.
    """
    n = check_int("n", n, min=1, max=10_000_000)  # 10 GB of uint8 images at most
    N = check_choice("difficulty", difficulty, DIFFICULTIES)
    seed = check_int("seed", seed, min=0)
    check_choice("dtype", dtype, ("uint8", "float32"))
    return_info = check_bool("return_info", return_info)
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) >= n // 2).astype(np.int64)
    marked = rng.integers(0, 2, size=n)
    # chunk by chunk into one preallocated array; the geometry is kept only when asked for
    # (it takes more memory than the images: about 1.4 KB per image at difficulty 14)
    img8 = np.empty((n, SIZE, SIZE), np.uint8)
    parts, attempts = [], 0
    for i in range(0, n, _CHUNK):
        part = _chunk(labels[i:i + _CHUNK], marked[i:i + _CHUNK], N, rng)
        img8[i:i + _CHUNK] = part[0]
        attempts += part[6]
        if return_info:
            parts.append(part[1:6])
    images = img8 if dtype == "uint8" else img8.astype(np.float32) / 255.0
    if not return_info:
        return images, labels
    anchor, angle, contour, markers, t_anchor = (
        np.concatenate([p[k] for p in parts]) for k in range(5))
    info = PathfinderInfo(
        starts=_yx(t_anchor[:, :, 0]), ends=_yx(t_anchor[:, :, -1]), markers=_yx(markers),
        marked=marked.astype(np.int64), dash_anchor=_yx(anchor), dash_angle=angle,
        dash_contour=contour.astype(np.int64), attempts=int(attempts),
    )
    return images, labels, info


def tokens(images: np.ndarray) -> np.ndarray:
    """Flatten images to LRA pixel tokens.

    Args:
        images: ``(B, H, W)`` uint8 in 0..255, or float in [0, 1] (scaled by 255, rounded).

    Returns:
        uint8 ``(B, H * W)`` in 0..255 (row-major, as LRA's ``reshape(-1)``); compact:
        convert a batch to int64 only where an embedding needs it.
    """
    check_shape("images", images, ("B", "H", "W"))
    x = np.asarray(images)
    if x.size == 0:
        raise ValueError(f"images must hold at least one pixel, got shape {x.shape}")
    if np.issubdtype(x.dtype, np.floating):
        check_finite("images", x)
        if x.size and (x.min() < 0.0 or x.max() > 1.0):
            raise ValueError("images must lie in [0, 1] when given as floats")
        x = np.rint(x * 255.0)
    elif x.dtype != np.uint8:
        raise TypeError(f"images must be uint8 or float, got dtype {x.dtype}")
    return x.reshape(len(x), -1).astype(np.uint8)


def _metadata_key(path: Path) -> tuple[int, str]:
    return (int(path.stem), "") if path.stem.isdigit() else (1 << 62, path.stem)


def load_lra_pathfinder(
    root: str | os.PathLike,
    difficulty: int = 14,
    *,
    limit: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Read the real LRA Pathfinder images (``lra_release.gz``, Tay et al. 2021).

    Args:
        root: the ``pathfinder32`` folder (holding ``curv_baseline``,
            ``curv_contour_length_9``, ``curv_contour_length_14``) or one difficulty folder
            itself (holding ``metadata/`` and ``imgs/``).
        difficulty: 6, 9 or 14, which folder to read when ``root`` is ``pathfinder32``.
        limit: read at most this many images (in metadata order: files ``0.npy``,
            ``1.npy``, ... and their lines).

    Each ``metadata/*.npy`` file is text despite its name: one line per image,
    ``imgs/<batch> sample_<i>.png <i> <label> ...``; the image is
    ``<folder>/imgs/<batch>/sample_<i>.png`` and the label is field 4. Empty PNG files (LRA
    has one, ``curv_baseline/imgs/0/sample_172.png``) are skipped, as LRA and S4 do.

    Returns:
        ``images (B, 32, 32)`` uint8 and ``labels (B,)`` int64.
    """
    N = check_choice("difficulty", difficulty, DIFFICULTIES)
    if limit is not None:
        limit = check_int("limit", limit, min=1, max=10_000_000)  # LRA has 200k per level
    if not isinstance(root, (str, os.PathLike)) or not str(root).strip():
        raise TypeError(f"root must be a non-empty path (str or PathLike), got "
                        f"{type(root).__name__} {root!r}")
    folder = Path(root)
    if not (folder / "metadata").is_dir():
        folder = folder / LRA_FOLDERS[N]
    if not (folder / "metadata").is_dir():
        raise FileNotFoundError(
            f"root: no LRA Pathfinder metadata under {Path(root)} (looked for metadata/ and "
            f"{LRA_FOLDERS[N]}/metadata/); extract pathfinder32/ from LRA's lra_release.gz "
            "(storage.googleapis.com/long-range-arena/lra_release.gz)")
    from PIL import Image  # a matplotlib dependency; imported only when reading files

    images, labels = [], []
    for meta in sorted(folder.joinpath("metadata").glob("*.npy"), key=_metadata_key):
        for line in meta.read_text(encoding="utf-8").splitlines():
            fields = line.split()
            if len(fields) < 4:
                continue
            path = folder / fields[0] / fields[1]
            if path.stat().st_size == 0:
                continue
            with Image.open(path) as im:
                images.append(np.asarray(im.convert("L"), dtype=np.uint8))
            labels.append(int(fields[3]))
            if limit is not None and len(images) >= limit:
                return np.stack(images), np.asarray(labels, np.int64)
    if not images:
        raise FileNotFoundError(f"root: no images listed in {folder / 'metadata'}")
    return np.stack(images), np.asarray(labels, np.int64)
