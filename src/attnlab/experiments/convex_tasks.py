"""Convex attention in practice (the convexifying paper's §4, ``shared/papers/
convex-attention.md``): a small student-teacher setting and modular division.

Student-teacher: the paper's frozen pretrained BERT layers are stood in for by the
embedding and first block of a 2-layer softmax classifier trained on SynthSent
(:func:`pretrained_classifier`), frozen; the last layer's attention input is the data
(:func:`frozen_features`). ``StudentTeacherConfig(features="random")`` keeps the earlier
setup (a randomly initialized frozen layer on random tokens)."""

from __future__ import annotations

import functools
import math
import time

import numpy as np
import torch

from .. import convex
from .._arrays import to_numpy, to_tensor
from .._validate import check_float_array, check_instance, check_int
from ..data import modular_division, synthsent, synthsent_vocab
from ..device import resolve_device
from ..kernels import DEFAULT_KERNEL, KERNEL_TABLE
from .config import MAX_EXAMPLES, ModelConfig, ModularConfig, StudentTeacherConfig, config_dict
from .models import TransformerClassifier, build_model
from .results import Result
from .training import check_run, device_meta, train_classifier

__all__ = ["run_modular", "run_student_teacher", "readout_attention", "frozen_features",
           "pretrained_classifier"]

# SynthSent vocabulary of the pretrained features (as in the synthsent "short" preset);
# seeds of its training / held-out sequences and of the student-teacher sequences
SS_WORDS, SS_FILLER = 2, 4
STANDARD = DEFAULT_KERNEL  # the kernel of the standard (nonconvex) attention layers here
_PRE_TRAIN_SEED, _PRE_TEST_SEED, _PRE_TEST_N = 0, 1, 1000


# ------------------------------------------------------------------ modular division
def run_modular(config: ModularConfig, *, device: str = "auto", seeds=None,
                progress: bool = True, out=None) -> Result:
    """``a / b = c (mod p)`` with 1- and 2-layer models, softmax or convex attention in
    every layer; the model reads ``(a, /, b, =)`` and predicts ``c`` at the last token.

    Arrays: ``"step" (T,)``; ``"L<depth>-<kernel>/{train,test}_{loss,acc}" (S, T)``.
    """
    # every argument is checked before any work
    dev, dev_note, seeds, out = check_run(config, ModularConfig, device=device, seeds=seeds,
                                          progress=progress, out=out)
    cfg = config
    md = modular_division(cfg.p, train_fraction=cfg.train_fraction, seed=0)
    tr, te = (torch.as_tensor(a, dtype=torch.long) for a in (md.train, md.test))
    data = tuple(t.to(dev) for t in (tr[:, :4], tr[:, 4], te[:, :4], te[:, 4]))
    arrays: dict[str, np.ndarray] = {}
    variants, stops, t0 = [], {}, time.perf_counter()
    for depth in cfg.depths:
        mcfg = type(cfg.model)(**{**cfg.model.__dict__, "layers": depth})
        for kernel in cfg.kernels:
            name = f"L{depth}-{kernel}"
            runs = []
            for s in seeds:
                model = build_model(mcfg, kernel, vocab=md.vocab_size, n_tokens=4,
                                    classes=cfg.p, seed=s).to(dev)
                runs.append(train_classifier(
                    model, data, optimizer="adamw", lr=cfg.lr, steps=cfg.steps,
                    log_every=cfg.eval_every, batch_size=cfg.batch_size, seed=s,
                    weight_decay=cfg.weight_decay, progress=progress, desc=f"{name} {s}"))
            for m in ("train_loss", "train_acc", "test_loss", "test_acc"):
                arrays[f"{name}/{m}"] = np.stack([getattr(r, m) for r in runs])
            arrays["step"] = runs[0].x
            variants.append(name)
            stops[name] = [r.stop for r in runs]
    note = (f"modular division mod {cfg.p}: {len(md.train)} train / {len(md.test)} test "
            f"equations (train fraction {cfg.train_fraction}, split seed 0)")
    meta = {"config": config_dict(cfg), **device_meta(dev, dev_note), "seeds": list(seeds),
            "variants": variants, "note": note, "stop": stops,
            "seconds": time.perf_counter() - t0, "chance": 1.0 / cfg.p,
            "threads": torch.get_num_threads()}
    res = Result("modular", arrays, meta)
    if out is not None:
        res.save(f"{out}/modular.npz")
    return res


# ------------------------------------------------------------------ student-teacher
def readout_attention(X: torch.Tensor, W_Q: torch.Tensor, W_K: torch.Tensor,
                      W_V: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Scalar-output attention layer read at token 0 (a [CLS]-style readout).

    ``X (N, n, D)``, ``W_Q, W_K (H, D, d)``, ``W_V (H, D)`` -> outputs ``(N,)`` and the
    attention rows ``s (H, N, n)``: ``s_h = softmax(q_0 K^T / sqrt d)`` of token 0,
    ``out = sum_h s_h^T X W_V[h]``. With input-independent rows ``w_j`` in place of ``s_h``
    this is the head model of the convex program (``out = <X, Z>``).
    """
    kw = dict(grad="keep", allow_int=False)
    X = check_float_array("X", X, shape=("N", "n", "D"), **kw)
    N, n, D = X.shape
    W_Q = check_float_array("W_Q", W_Q, shape=("H", D, "d"), **kw)
    H, _, d = W_Q.shape
    W_K = check_float_array("W_K", W_K, shape=(H, D, d), **kw)
    W_V = check_float_array("W_V", W_V, shape=(H, D), **kw)
    for name, t in (("X", X), ("W_Q", W_Q), ("W_K", W_K), ("W_V", W_V)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor (readout_attention is "
                            f"differentiable), got {type(t).__name__}")
    dt = functools.reduce(torch.promote_types, (t.dtype for t in (X, W_Q, W_K, W_V)))
    X, W_Q, W_K, W_V = (t.to(dt) for t in (X, W_Q, W_K, W_V))
    Q = torch.einsum("nd,hde->hne", X[:, 0], W_Q).unsqueeze(2)  # (H, N, 1, d)
    K = torch.einsum("nkd,hde->hnke", X, W_K)  # (H, N, n, d)
    S = KERNEL_TABLE[STANDARD].forward(Q, K, 1.0 / math.sqrt(W_Q.shape[-1]), False)
    s = S[:, :, 0]  # (H, N, n)
    vals = torch.einsum("nkd,hd->hnk", X, W_V)
    return (s * vals).sum((0, 2)), s


def pretrained_classifier(cfg: StudentTeacherConfig, *, seed: int = 0,
                          ) -> tuple[TransformerClassifier, float]:
    """The frozen "pretrained" network of the student-teacher setting.

    A 2-layer softmax classifier (``cfg.D``, ``cfg.heads`` x ``cfg.head_dim``, FFN width
    ``2 D``, ``pos_std = 1``, no dropout) trained by Adam (``cfg.pretrain_lr``, batches of
    64, ``cfg.pretrain_epochs`` epochs) on ``cfg.pretrain_n`` SynthSent sequences of
    ``cfg.n`` tokens with ``cfg.k`` sentiment words (vocabulary ``SS_WORDS``, ``SS_FILLER``;
    data seed 0), then put in eval mode with every parameter frozen.

    Returns the model and its accuracy on ``1000`` held-out SynthSent sequences (seed 1);
    the accuracy is NaN when the pretraining diverged (see :func:`run_student_teacher`).
    """
    model, acc, _ = _pretrain(cfg, seed)
    return model, acc


def _pretrain(cfg: StudentTeacherConfig, seed: int = 0,
              ) -> tuple[TransformerClassifier, float, str]:
    """:func:`pretrained_classifier` and the stop reason of its training."""
    check_instance("cfg", cfg, StudentTeacherConfig)
    seed = check_int("seed", seed, min=0)
    kw = dict(k=cfg.k, n_words=SS_WORDS, n_filler=SS_FILLER)
    vocab = synthsent_vocab(n_words=SS_WORDS, n_filler=SS_FILLER)["size"]
    tr = synthsent(cfg.pretrain_n, cfg.n, seed=_PRE_TRAIN_SEED, **kw)
    te = synthsent(_PRE_TEST_N, cfg.n, seed=_PRE_TEST_SEED, **kw)
    data = tuple(torch.as_tensor(a, dtype=torch.long) for a in (*tr, *te))
    mcfg = ModelConfig(D=cfg.D, hidden=2 * cfg.D, heads=cfg.heads, head_dim=cfg.head_dim,
                       layers=2, dropout=0.0, pos_std=1.0)
    model = build_model(mcfg, STANDARD, vocab=vocab, n_tokens=cfg.n, classes=2, seed=seed)
    bs = 64
    steps = cfg.pretrain_epochs * math.ceil(cfg.pretrain_n / bs)
    curves = train_classifier(model, data, optimizer="adam", lr=cfg.pretrain_lr, steps=steps,
                              log_every=steps, batch_size=bs, seed=seed)
    model.eval().requires_grad_(False)
    return model, float(curves.test_acc[-1]), curves.stop


def _synthsent_tokens(cfg: StudentTeacherConfig, N: int, seed: int,
                      exclude: np.ndarray | None = None) -> np.ndarray:
    """``N`` SynthSent sequences ``(N, n)``, none of them a row of ``exclude``."""
    kw = dict(k=cfg.k, n_words=SS_WORDS, n_filler=SS_FILLER)
    tokens = synthsent(2 * N if exclude is not None else N, cfg.n, seed=seed, **kw)[0]
    if exclude is not None:
        seen = {r.tobytes() for r in exclude}
        tokens = tokens[[r.tobytes() not in seen for r in tokens]]
        if len(tokens) < N:
            raise ValueError(f"only {len(tokens)} of the {N} test sequences differ from the "
                             f"training ones; use a longer n or fewer sequences")
    return tokens[:N]


def frozen_features(cfg: StudentTeacherConfig, N: int, seed: int, *,
                    model: TransformerClassifier | None = None,
                    N_test: int = 0) -> torch.Tensor:
    """Inputs ``X (N + N_test, n, D)`` float64 of the last attention layer.

    ``cfg.features == "trained"``: SynthSent sequences through ``model`` (default:
    :func:`pretrained_classifier` ``(cfg)``), read at the input of its last attention
    layer (:meth:`~attnlab.experiments.models.TransformerClassifier.attention_input`).
    The first ``N`` sequences use data seed ``1000 + 2 seed``, the last ``N_test`` seed
    ``1001 + 2 seed``, with any sequence that also occurs among the first ``N`` dropped.

    ``cfg.features == "random"``: random token sequences (``cfg.vocab``, seed ``seed``)
    through a frozen, randomly initialized embedding + one softmax transformer block
    (+ LayerNorm); ``model`` must be None.

    The features are a deterministic function of ``(cfg, N, seed, N_test)`` (and ``model``).
    """
    check_instance("cfg", cfg, StudentTeacherConfig)
    N = check_int("N", N, min=1, max=MAX_EXAMPLES)
    seed = check_int("seed", seed, min=0, max=2**62)
    N_test = check_int("N_test", N_test, min=0, max=MAX_EXAMPLES)
    check_instance("model", model, TransformerClassifier, allow_none=True)
    if cfg.features == "random" and model is not None:
        raise ValueError("model must be None with cfg.features == 'random' (the random "
                         "features come from their own frozen layer)")
    if cfg.features == "trained":
        if model is None:
            model = pretrained_classifier(cfg)[0]
        tokens = _synthsent_tokens(cfg, N, 1000 + 2 * seed)
        if N_test:
            test = _synthsent_tokens(cfg, N_test, 1001 + 2 * seed, exclude=tokens)
            tokens = np.concatenate([tokens, test])
        with torch.no_grad():
            X = model.attention_input(torch.as_tensor(tokens), -1).double()
        if not bool(torch.isfinite(X).all()):
            raise ValueError("model gives non-finite features (its weights hold NaN or inf: "
                             "did its pretraining diverge?)")
        return X
    N = N + N_test
    g = np.random.default_rng(seed)
    tokens = torch.as_tensor(g.integers(0, cfg.vocab, size=(N, cfg.n)))
    mcfg = ModelConfig(D=cfg.D, hidden=2 * cfg.D, heads=cfg.heads, head_dim=cfg.head_dim,
                       layers=1, dropout=0.0)
    body = build_model(mcfg, STANDARD, vocab=cfg.vocab, n_tokens=cfg.n, classes=2, seed=0)
    with torch.no_grad():
        return body.features(tokens)[0].double()


def _rel_err(yhat: torch.Tensor, y: torch.Tensor) -> float:
    """``||yhat - y||^2 / ||y - mean(y)||^2`` (1 = predicting the mean)."""
    return float(((yhat - y) ** 2).sum() / ((y - y.mean()) ** 2).sum())


def _teacher(cfg: StudentTeacherConfig, seed: int):
    g = torch.Generator().manual_seed(10_000 + seed)
    H, D, d = cfg.heads, cfg.D, cfg.head_dim
    W_Q = cfg.teacher_scale * torch.randn(H, D, d, generator=g, dtype=torch.float64) / D ** .5
    W_K = cfg.teacher_scale * torch.randn(H, D, d, generator=g, dtype=torch.float64) / D ** .5
    W_V = torch.randn(H, D, generator=g, dtype=torch.float64)
    return W_Q, W_K, W_V


def _gd_student(cfg, X, y, Xt, yt, seed):
    """The standard layer trained by full-batch Adam on 1/2 mean squared error."""
    g = torch.Generator().manual_seed(20_000 + seed)
    H, D, d = cfg.heads, cfg.D, cfg.head_dim
    ps = [torch.randn(H, D, d, generator=g, dtype=torch.float64) / D ** .5,
          torch.randn(H, D, d, generator=g, dtype=torch.float64) / D ** .5,
          torch.randn(H, D, generator=g, dtype=torch.float64) / D ** .5]
    for p in ps:
        p.requires_grad_(True)
    opt = torch.optim.Adam(ps, lr=cfg.gd_lr)
    log = max(cfg.gd_steps // 50, 1)
    T = cfg.gd_steps // log + 1
    tr, te = np.full(T, np.nan), np.full(T, np.nan)  # log points after a divergence: NaN
    stop = "completed"
    for step in range(cfg.gd_steps + 1):
        out = readout_attention(X, *ps)[0]
        loss = 0.5 * ((out - y) ** 2).mean()
        if not torch.isfinite(loss):
            stop = (f"diverged at step {step}: training loss is {float(loss.detach())}; "
                    f"try a smaller gd_lr (got {cfg.gd_lr:g})")
            break
        if step % log == 0:
            with torch.no_grad():
                tr[step // log] = _rel_err(out, y)
                te[step // log] = _rel_err(readout_attention(Xt, *ps)[0], yt)
        if step == cfg.gd_steps:
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        s = readout_attention(Xt, *ps)[1].mean(1)  # (H, n)
    if stop != "completed":
        s = torch.full_like(s, math.nan)
    return tr, te, np.arange(T) * log, s.numpy(), stop


def _nan_arrays(cfg: StudentTeacherConfig, S: int) -> dict[str, np.ndarray]:
    """The arrays of :func:`run_student_teacher` when no student could train (its
    pretraining diverged): every number NaN, every curve without log points."""
    H, n, h = cfg.heads, cfg.n, cfg.convex_heads
    log = max(cfg.gd_steps // 50, 1)
    T = cfg.gd_steps // log + 1
    nan = (lambda *shape: np.full(shape, np.nan))
    return {"gd/train_err": nan(S, T), "gd/test_err": nan(S, T), "teacher/attn": nan(S, H, n),
            "gd/attn": nan(S, H, n), "convex/train_err": nan(S), "convex/test_err": nan(S),
            "convex/primal": nan(S), "convex/token_norm": nan(S, n),
            "convex/active": nan(S), "heads/train_err": nan(S), "heads/test_err": nan(S),
            "heads/objective": nan(S, 0), "heads/w": nan(S, h, n),
            "step": np.arange(T, dtype=float) * log}


def run_student_teacher(config: StudentTeacherConfig, *, device: str = "cpu", seeds=None,
                        progress: bool = True, out=None) -> Result:
    """Student-teacher with frozen inputs to the last attention layer.

    Per seed: features ``X`` from the frozen earlier layers (:func:`frozen_features`; with
    ``features="trained"`` one SynthSent classifier, :func:`pretrained_classifier`, is
    trained once per run and frozen; train and test sequences are disjoint),
    targets from a random softmax readout teacher (:func:`readout_attention`, scaled to
    unit variance), then three students of the last layer on the same ``X``:
    ``gd`` (the standard layer, Adam), ``convex`` (:func:`attnlab.convex.fit`,
    ``beta = config.beta * beta_max``) and ``heads`` (:func:`attnlab.convex.train_heads`,
    the nonconvex heads of the same objective). Errors are relative squared errors
    (1 = predicting the mean).

    Arrays: ``gd/train_err, gd/test_err (S, T)``, ``step (T,)``; ``convex/...`` and
    ``heads/...`` ``(S,)``; ``heads/objective (S, T2)``, ``convex/primal (S,)``; maps:
    ``teacher/attn, gd/attn (S, H, n)`` (mean attention row of token 0 over the test
    set), ``convex/token_norm (S, n)`` (``||z_k||``), ``heads/w (S, h, n)``.

    Meta: ``features`` and ``pretrain_acc`` (the pretrained classifier's held-out SynthSent
    accuracy; ``None`` with ``features="random"`` or when the pretraining diverged);
    ``stop``: ``"pretrain"`` (one reason), ``"gd"`` and ``"heads"`` (one per seed),
    ``"completed"`` or why a training stopped (:attr:`Result.stop_reason` sums them up).
    A diverged training is a stop reason, never an exception: its log points after the
    divergence are NaN; when the pretraining diverges no student trains and every number
    is NaN.
    """
    dev, dev_note, seeds, out = check_run(config, StudentTeacherConfig, device=device,
                                          seeds=seeds, progress=progress, out=out,
                                          dtype="float64")
    cfg = config
    keys = ("gd/train_err", "gd/test_err", "teacher/attn", "gd/attn", "convex/train_err",
            "convex/test_err", "convex/primal", "convex/token_norm", "convex/active",
            "heads/train_err", "heads/test_err", "heads/objective", "heads/w")
    acc: dict[str, list] = {k: [] for k in keys}
    t0 = time.perf_counter()
    from tqdm.auto import tqdm

    model, pre_acc, pre_stop = (_pretrain(cfg) if cfg.features == "trained"
                                else (None, None, "completed"))
    stops: dict[str, list[str]] = {"pretrain": [pre_stop]} if cfg.features == "trained" else {}
    stops |= {"gd": [], "heads": []}
    if pre_stop != "completed":  # no features to learn from: every number is NaN
        stops["gd"] = stops["heads"] = [f"not run: pretraining {pre_stop}"] * len(seeds)
        seeds_run: list[int] = []
        pre_acc = None
    else:
        seeds_run = seeds
    for s in tqdm(seeds_run, disable=not progress, desc="student-teacher"):
        X = frozen_features(cfg, cfg.N_train, seed=s, model=model, N_test=cfg.N_test)
        W = _teacher(cfg, s)
        y, attn = readout_attention(X, *W)
        y = y / y.std()
        y = y + cfg.noise * torch.randn(len(y), generator=torch.Generator().manual_seed(s),
                                        dtype=y.dtype)
        X, Xt, y, yt = X[:cfg.N_train], X[cfg.N_train:], y[:cfg.N_train], y[cfg.N_train:]
        acc["teacher/attn"].append(attn[:, cfg.N_train:].mean(1).numpy())
        tr, te, steps, s_gd, gd_stop = _gd_student(cfg, X, y, Xt, yt, s)
        stops["gd"].append(gd_stop)
        acc["gd/train_err"].append(tr)
        acc["gd/test_err"].append(te)
        acc["gd/attn"].append(s_gd)
        beta = cfg.beta * convex.beta_max(X, y)
        fit = convex.fit(X, y, beta, device=resolve_device(dev.type, "float64")[0])
        Z = to_tensor(to_numpy(fit.Z))
        acc["convex/train_err"].append(_rel_err(convex.predict(Z, X), y))
        acc["convex/test_err"].append(_rel_err(convex.predict(Z, Xt), yt))
        acc["convex/primal"].append(fit.primal)
        acc["convex/token_norm"].append(Z.norm(dim=1).numpy())
        acc["convex/active"].append(len(fit.active))
        hr = convex.train_heads(X, y, beta, cfg.convex_heads, steps=cfg.heads_steps, lr=0.05,
                                seed=s)
        Zh = torch.as_tensor(convex.heads_to_Z(hr.w, hr.v, hr.b))
        acc["heads/train_err"].append(_rel_err(convex.predict(Zh, X), y))
        acc["heads/test_err"].append(_rel_err(convex.predict(Zh, Xt), yt))
        acc["heads/objective"].append(hr.objective)
        acc["heads/w"].append(hr.w)
        stops["heads"].append(hr.stop_reason)
    if seeds_run:
        T2 = max(len(o) for o in acc["heads/objective"])  # a diverged run ends early: NaN
        acc["heads/objective"] = [np.pad(np.asarray(o, float), (0, T2 - len(o)),
                                         constant_values=np.nan)
                                  for o in acc["heads/objective"]]
        arrays = {k: np.array(v) for k, v in acc.items()} | {"step": steps.astype(float)}
    else:
        arrays = _nan_arrays(cfg, len(seeds))
    if model is None:
        first = "frozen random first layer"
    elif pre_stop != "completed":
        first = f"a SynthSent classifier whose pretraining {pre_stop}"
    else:
        first = f"frozen first block of a SynthSent classifier (test accuracy {pre_acc:.3f})"
    meta = {"config": config_dict(cfg), **device_meta(dev, dev_note), "seeds": list(seeds),
            "variants": ["gd"], "seconds": time.perf_counter() - t0,
            "features": cfg.features, "pretrain_acc": pre_acc, "stop": stops,
            "note": (f"{first}, random softmax readout teacher; "
                     f"{cfg.N_train} train / {cfg.N_test} test sequences of {cfg.n} tokens, "
                     f"D = {cfg.D}")}
    res = Result("student_teacher", arrays, meta)
    if out is not None:
        res.save(f"{out}/student_teacher.npz")
    return res
