"""IMDB and Pathfinder, Softmax vs Gaussian attention, and the two-stage landscape
(the experiments of the GD-dynamics paper, ``shared/papers/gd-dynamics.md`` §4), plus the
same comparison on SynthSent, our synthetic negation-sentiment task (not the paper's)."""

from __future__ import annotations

import copy
import math
import time
from dataclasses import replace

import numpy as np
import torch
from torch import nn

from .._validate import (
    check_array,
    check_choice,
    check_instance,
    check_int,
    check_real,
    check_real_sequence,
)
from ..data import (
    build_vocab,
    encode_bytes,
    encode_words,
    generate_pathfinder,
    load_imdb,
    pathfinder_tokens,
    synthsent,
    synthsent_vocab,
)
from ..kernels import DEFAULT_KERNEL, KERNELS
from ..landscape import rescale_filters
from .config import LandscapeConfig, PathfinderConfig, SynthSentConfig, TextConfig, config_dict
from .models import TransformerClassifier, build_model
from .results import Result
from .training import (
    check_run,
    device_meta,
    evaluate,
    train_classifier,
    versions,
)

__all__ = ["imdb_data", "pathfinder_data", "pick_step", "synthsent_data", "bag_of_words_baselines",
           "run_imdb", "run_synthsent",
           "run_pathfinder", "run_landscape", "filter_normalized_direction"]

IMDB_SOURCES = ("auto", "huggingface", "offline")  # see attnlab.data.load_imdb


def imdb_data(cfg: TextConfig, *, source: str = "offline"):
    """Tokens ``(N, L)`` in a compact integer type (int16) and int64 labels for train and
    test, plus the data note. Byte tokens (LRA) or word tokens with a vocabulary built from
    the training split only (``cfg.tokens``)."""
    check_instance("cfg", cfg, TextConfig)
    check_choice("source", source, IMDB_SOURCES)
    d = load_imdb(source=source, max_train=cfg.max_train, max_test=cfg.max_test, seed=0)
    if cfg.tokens == "bytes":
        Xtr, _ = encode_bytes(d.train_text, cfg.max_length, pad_to=cfg.pad_to)
        Xte, _ = encode_bytes(d.test_text, cfg.max_length, pad_to=cfg.pad_to)
        how = f"UTF-8 bytes (LRA), {cfg.max_length} bytes per review"
    else:
        vocab = build_vocab(d.train_text, cfg.vocab_size)
        Xtr, _ = encode_words(d.train_text, vocab, cfg.max_length, truncate=cfg.truncate)
        Xte, _ = encode_words(d.test_text, vocab, cfg.max_length, truncate=cfg.truncate)
        which = "last" if cfg.truncate == "pre" else "first"
        how = (f"word tokens, the {len(vocab):,} most frequent words of the training split "
               f"(others: one unknown-word id), the {which} {cfg.max_length} words per review")
    arrays = (torch.as_tensor(Xtr), torch.as_tensor(d.train_labels, dtype=torch.long),
              torch.as_tensor(Xte), torch.as_tensor(d.test_labels, dtype=torch.long))
    return arrays, f"{d.note.rstrip('.')}; {how}."


def _vocab(cfg: TextConfig) -> int:
    """Embedding rows of a text model: 257 bytes, or the word vocabulary + pad + unknown."""
    return 257 if cfg.tokens == "bytes" else cfg.vocab_size + 2


def synthsent_data(cfg: SynthSentConfig):
    """SynthSent tokens ``(N, length)`` int64 and labels for train and test (one draw with
    seed 0, split in order), plus the data note."""
    check_instance("cfg", cfg, SynthSentConfig)
    n = cfg.n_train + cfg.n_test
    X, y = synthsent(n, cfg.length, k=cfg.k, n_words=cfg.n_words, n_filler=cfg.n_filler,
                     seed=0)
    X, y = torch.as_tensor(X), torch.as_tensor(y)
    tr, te = slice(0, cfg.n_train), slice(cfg.n_train, n)
    note = (f"SynthSent (synthetic, seed 0): {cfg.n_train} train / {cfg.n_test} test "
            f"sequences of {cfg.length} tokens, k = {cfg.k} sentiment words, "
            f"vocabulary {synthsent_vocab(n_words=cfg.n_words, n_filler=cfg.n_filler)['size']}")
    return (X[tr], y[tr], X[te], y[te]), note


def _patches(images: np.ndarray, k: int) -> np.ndarray:
    """``(B, 32, 32)`` uint8 -> ``(B, (32/k)^2, k*k)`` float32 in [0, 1]."""
    B, S = len(images), images.shape[1]
    x = images.astype(np.float32).reshape(B, S // k, k, S // k, k) / 255.0
    return x.transpose(0, 1, 3, 2, 4).reshape(B, (S // k) ** 2, k * k)


def pathfinder_data(cfg: PathfinderConfig):
    """Generated images (seed 0) as pixel tokens ``(N, 1024)`` uint8 (``patch = 0``, LRA)
    or patch tokens ``(N, (32/k)^2, k^2)`` float32; returns tensors, a note and the images."""
    check_instance("cfg", cfg, PathfinderConfig)
    n = cfg.n_train + cfg.n_test
    images, labels = generate_pathfinder(n, difficulty=cfg.difficulty, seed=0)
    k = cfg.model.patch
    X = torch.as_tensor(_patches(images, k)) if k else torch.as_tensor(
        pathfinder_tokens(images))
    y = torch.as_tensor(labels, dtype=torch.long)
    tr, te = slice(0, cfg.n_train), slice(cfg.n_train, n)
    how = f"{k}x{k} patch tokens" if k else "1024 pixel tokens"
    note = (f"generated Pathfinder-32, difficulty {cfg.difficulty}, {cfg.n_train} train / "
            f"{cfg.n_test} test images (seed 0), {how}")
    # copies: a view would keep every image alive in the result
    return (X[tr], y[tr], X[te], y[te]), note, images[:64].copy(), labels[:64].copy()


def _model_for(cfg: TextConfig | PathfinderConfig | SynthSentConfig, kernel: str, seed: int,
               X: torch.Tensor) -> TransformerClassifier:
    text = isinstance(cfg, TextConfig)
    if isinstance(cfg, SynthSentConfig):  # no padding: every token is a real token
        vocab = synthsent_vocab(n_words=cfg.n_words, n_filler=cfg.n_filler)["size"]
        return build_model(cfg.model, kernel, vocab=vocab, n_tokens=X.shape[1], classes=2,
                           seed=seed)
    return build_model(cfg.model, kernel, vocab=_vocab(cfg) if text else 256,
                       n_tokens=X.shape[1],
                       classes=2, seed=seed, patch_dim=X.shape[2] if X.ndim == 3 else 0,
                       pad_mask=text)


def _train(model, data, cfg, epochs: int, seed: int, progress: bool, desc: str,
           lr: float | None = None, evals_per_epoch: int | None = None):
    per_epoch = math.ceil(len(data[0]) / min(cfg.batch_size, len(data[0])))
    evals = cfg.evals_per_epoch if evals_per_epoch is None else evals_per_epoch
    log_every = max(per_epoch // evals, 1)
    return train_classifier(model, data, optimizer=cfg.optimizer,
                            lr=cfg.lr if lr is None else lr, steps=epochs * per_epoch,
                            log_every=log_every, batch_size=cfg.batch_size, seed=seed,
                            momentum=cfg.momentum, weight_decay=cfg.weight_decay, per="epoch",
                            eval_train=cfg.eval_train, progress=progress, desc=desc)


def _nan_sequence(name: str, values, n: int, hi: float | None) -> np.ndarray:
    """``n`` real numbers in ``[0, hi]``, NaN allowed (a failed run), as a float array."""
    if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple, np.ndarray,
                                                                   torch.Tensor)):
        raise TypeError(f"{name} must be a sequence of numbers, got {type(values).__name__}")
    out = np.array([v if isinstance(v, float) and math.isnan(v)
                    else check_real(name, v, min=0.0, max=hi) for v in values], float)
    if out.shape != (n,):
        raise ValueError(f"{name} must hold one value per step of grid ({n}), got {len(out)}")
    return out


def pick_step(grid, val_acc, val_loss) -> float:
    """The step of ``grid`` with the highest validation accuracy; ties go to the lower
    validation loss, then to the smaller step. Failed runs (NaN) never win unless all
    failed (then the smallest step)."""
    g = np.asarray(check_real_sequence("grid", grid, min=0.0, strict_min=True))
    acc, loss = (_nan_sequence(name, v, len(g), hi) for name, v, hi in
                 (("val_acc", val_acc, 1.0), ("val_loss", val_loss, None)))
    acc = np.nan_to_num(acc, nan=-np.inf)
    loss = np.nan_to_num(loss, nan=np.inf)
    order = np.lexsort((g, loss, -acc))  # last key sorts first
    return float(g[order[0]])


def _sweep(name, cfg, data, dev, progress) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Every kernel with every step of ``cfg.lr_grid``: train on (the first ``sweep_train``
    of) the training split minus its last ``n_val`` examples, evaluate on those (never on
    the test split)."""
    X, y = data[0], data[1]
    m = len(X) - cfg.n_val if cfg.sweep_train is None else min(cfg.sweep_train,
                                                                 len(X) - cfg.n_val)
    sub = (X[:m], y[:m], X[-cfg.n_val:], y[-cfg.n_val:])
    arrays: dict[str, np.ndarray] = {"sweep/lr": np.asarray(cfg.lr_grid, float)}
    best: dict[str, float] = {}
    for kernel in cfg.kernels:
        acc, loss = [], []
        for lr in cfg.lr_grid:
            model = _model_for(cfg, kernel, cfg.sweep_seed, X).to(dev)
            c = _train(model, sub, cfg, cfg.sweep_epochs, cfg.sweep_seed, progress,
                       f"{name} sweep {kernel} lr {lr:g}", lr=lr)
            acc.append(c.test_acc[-1])
            loss.append(c.test_loss[-1])
        arrays[f"sweep/{kernel}/val_acc"] = np.array(acc)
        arrays[f"sweep/{kernel}/val_loss"] = np.array(loss)
        best[kernel] = pick_step(cfg.lr_grid, acc, loss)
    return arrays, best


def _compare(name: str, cfg, data, note: str, *, dev: torch.device, dev_note: str, seeds,
             progress, data_seconds: float = 0.0) -> Result:
    """Each kernel with its step (``cfg.lr``, or the sweep's choice), one model per seed;
    with a sweep, also every other kernel with Softmax's step (variant ``<kernel>-shared``).
    """
    data = tuple(t.to(dev) for t in data)
    t0 = time.perf_counter()
    arrays: dict[str, np.ndarray] = {}
    steps = {k: cfg.lr for k in cfg.kernels}
    if cfg.lr_grid:
        sweep, steps = _sweep(name, cfg, data, dev, progress)
        arrays.update(sweep)
    sweep_seconds = time.perf_counter() - t0
    plan = [(k, k, steps[k]) for k in cfg.kernels]
    if cfg.lr_grid and DEFAULT_KERNEL in steps:
        plan += [(f"{k}-shared", k, steps[DEFAULT_KERNEL]) for k in cfg.kernels
                 if k != DEFAULT_KERNEL]
    stops: dict[str, list[str]] = {}
    timing = {"train_seconds": 0.0, "batch_seconds": 0.0, "examples": 0}
    done: dict[tuple[str, float], str] = {}
    for variant, kernel, lr in plan:
        if (kernel, lr) in done:  # the shared step is this kernel's own: same runs
            src = done[kernel, lr]
            for m in ("train_loss", "train_acc", "test_loss", "test_acc", "seconds"):
                arrays[f"{variant}/{m}"] = arrays[f"{src}/{m}"]
            stops[variant] = stops[src]
            continue
        runs = []
        for s in seeds:
            model = _model_for(cfg, kernel, s, data[0]).to(dev)
            runs.append(_train(model, data, cfg, cfg.epochs, s, progress,
                               f"{name} {variant} {s}", lr=lr))
        for m in ("train_loss", "train_acc", "test_loss", "test_acc"):
            arrays[f"{variant}/{m}"] = np.stack([getattr(r, m) for r in runs])
        arrays[f"{variant}/seconds"] = np.array([r.seconds for r in runs])
        arrays["epoch"] = runs[0].x
        stops[variant] = [r.stop for r in runs]
        done[kernel, lr] = variant
        timing["train_seconds"] += sum(r.train_seconds for r in runs)
        timing["batch_seconds"] += sum(r.data_seconds for r in runs)
        timing["examples"] += sum(r.examples for r in runs)
    n_tokens = int(data[0].shape[1])
    tps = timing["examples"] * n_tokens / max(timing["train_seconds"], 1e-9)
    perf = {"data_seconds": data_seconds, "sweep_seconds": sweep_seconds,
            "tokens_per_example": n_tokens, "train_tokens_per_s": tps,
            "batch_share": timing["batch_seconds"] / max(timing["train_seconds"], 1e-9),
            **timing}
    meta = {"config": config_dict(cfg), **device_meta(dev, dev_note), "seeds": list(seeds),
            "variants": [v for v, _, _ in plan], "kernels": {v: k for v, k, _ in plan},
            "lr": {v: lr for v, _, lr in plan}, "note": note, "stop": stops,
            "perf": perf, "versions": versions(), "seconds": time.perf_counter() - t0}
    return Result(name, arrays, meta)


def run_imdb(config: TextConfig, *, device: str = "auto", seeds=None, progress: bool = True,
             out=None, source: str = "offline") -> Result:
    """IMDB sentiment (bytes), one model per kernel and seed; curves over epochs.

    Returns a :class:`Result` with ``"<kernel>/{train,test}_{loss,acc}" (S, T)`` and
    ``"epoch" (T,)``; saved to ``out/imdb.npz`` when ``out`` is given.
    """
    # every argument is checked before hours of data preparation and training, not after
    dev, dev_note, seeds, out = check_run(config, TextConfig, device=device, seeds=seeds,
                                          progress=progress, out=out)
    check_choice("source", source, IMDB_SOURCES)
    t0 = time.perf_counter()
    data, note = imdb_data(config, source=source)
    res = _compare("imdb", config, data, note, dev=dev, dev_note=dev_note, seeds=seeds,
                   progress=progress, data_seconds=time.perf_counter() - t0)
    if out is not None:
        res.save(f"{out}/imdb.npz")
    return res


def run_synthsent(config: SynthSentConfig, *, device: str = "auto", seeds=None,
                  progress: bool = True, out=None) -> Result:
    """SynthSent (our synthetic negation-sentiment task), one model per kernel and seed;
    curves over epochs. Same arrays as :func:`run_imdb`; saved to ``out/synthsent.npz``."""
    dev, dev_note, seeds, out = check_run(config, SynthSentConfig, device=device, seeds=seeds,
                                          progress=progress, out=out)
    data, note = synthsent_data(config)
    res = _compare("synthsent", config, data, note, dev=dev, dev_note=dev_note, seeds=seeds,
                   progress=progress)
    if out is not None:
        res.save(f"{out}/synthsent.npz")
    return res


def bag_of_words_baselines(X_train, y_train, X_test, y_test, vocab_size: int, *,
                           l2: float = 1e-3) -> dict[str, float]:
    """Test accuracy of two classifiers that see only the token counts (bag of words).

    ``X_* (N, L)`` int token ids in ``[0, vocab_size)``, ``y_* (N,)`` labels 0/1.

    - ``"logreg"``: L2-regularized logistic regression on standardized counts (L-BFGS);
    - ``"table"``: a lookup table, which can represent *any* function of the counts: the
      majority training label of each count vector, the overall majority for unseen ones;
    - ``"distinct"``: the number of distinct count vectors in the training set.
    """
    vocab_size = check_int("vocab_size", vocab_size, min=1, max=100_000)
    l2 = check_real("l2", l2, min=0.0)
    Xs, ys = [], []
    for name, a, out in (("X_train", X_train, Xs), ("X_test", X_test, Xs),
                         ("y_train", y_train, ys), ("y_test", y_test, ys)):
        check_array(name, a)
        kind = a.dtype.kind if isinstance(a, np.ndarray) else (
            "i" if not (a.is_floating_point() or a.is_complex() or a.dtype == torch.bool)
            else "f")
        if kind not in "iu":
            raise TypeError(f"{name} must hold integers, got dtype {a.dtype}")
        out.append(torch.as_tensor(np.asarray(a.detach().cpu() if isinstance(a, torch.Tensor)
                                              else a), dtype=torch.long))
    for name, y in (("y_train", ys[0]), ("y_test", ys[1])):
        if y.numel() and (y.min() < 0 or y.max() > 1):
            raise ValueError(f"{name} must hold labels 0 or 1")
    for name, yname, X, y in (("X_train", "y_train", Xs[0], ys[0]),
                              ("X_test", "y_test", Xs[1], ys[1])):
        if X.ndim != 2 or y.shape != X.shape[:1] or not len(X):
            raise ValueError(f"{name} must be (N, L) with N >= 1 and {yname} (N,), got "
                             f"{tuple(X.shape)} and {tuple(y.shape)}")
        if X.numel() and (X.min() < 0 or X.max() >= vocab_size):
            raise ValueError(f"{name}: token ids must lie in [0, vocab_size={vocab_size})")
    C_tr, C_te = (nn.functional.one_hot(X, vocab_size).sum(1).double() for X in Xs)
    mu, sd = C_tr.mean(0), C_tr.std(0).clamp_min(1e-6)
    ones = [torch.ones(len(C), 1, dtype=torch.float64) for C in (C_tr, C_te)]
    A_tr, A_te = (torch.cat([(C - mu) / sd, o], 1) for C, o in zip((C_tr, C_te), ones, strict=True))
    w = torch.zeros(vocab_size + 1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w], max_iter=200)

    def closure():
        opt.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(A_tr @ w, ys[0].double())
        loss = loss + l2 * w[:-1].square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        logreg = float(((A_te @ w > 0).long() == ys[1]).double().mean())
    votes: dict[tuple, list[int]] = {}
    for c, lab in zip(map(tuple, C_tr.long().tolist()), ys[0].tolist(), strict=True):
        votes.setdefault(c, []).append(lab)
    majority = int(ys[0].double().mean() > 0.5)
    vote = {c: int(np.mean(v) > 0.5) for c, v in votes.items()}
    pred = [vote.get(c, majority) for c in map(tuple, C_te.long().tolist())]
    table = float(np.mean(np.array(pred) == ys[1].numpy()))
    return {"logreg": logreg, "table": table, "distinct": len(votes)}


def run_pathfinder(config: PathfinderConfig, *, device: str = "auto", seeds=None,
                   progress: bool = True, out=None) -> Result:
    """Generated Pathfinder, one model per kernel and seed; curves over epochs.

    Same arrays as :func:`run_imdb`, plus ``"images" (<=64, 32, 32)`` and ``"labels"``.
    """
    dev, dev_note, seeds, out = check_run(config, PathfinderConfig, device=device,
                                          seeds=seeds, progress=progress, out=out)
    t0 = time.perf_counter()
    data, note, images, labels = pathfinder_data(config)
    res = _compare("pathfinder", config, data, note, dev=dev, dev_note=dev_note, seeds=seeds,
                   progress=progress, data_seconds=time.perf_counter() - t0)
    res.arrays["images"], res.arrays["labels"] = images, labels
    if out is not None:
        res.save(f"{out}/pathfinder.npz")
    return res


# ------------------------------------------------------------------ two-stage landscape
def filter_normalized_direction(model: nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """Random Gaussian direction, each filter rescaled to its weight's norm (Li et al. 2018).

    A filter is a slice along the first axis of a weight in PyTorch's ``(out, in)`` layout
    (a row of a Linear weight, a token row of an embedding, a head of the convex logits);
    1-D parameters (biases, LayerNorm) get a zero direction, as in Li et al.
    The rescaling is :func:`attnlab.landscape.rescale_filters`, shared with Part II.
    """
    check_instance("model", model, nn.Module)
    g = torch.Generator().manual_seed(check_int("seed", seed, min=0))
    out = {}
    for name, w in model.named_parameters():
        if w.ndim < 2:
            out[name] = torch.zeros_like(w)
            continue
        d = torch.randn(w.shape, generator=g).to(w.device, w.dtype)
        out[name] = rescale_filters(d, w, tuple(range(1, w.ndim)))
    return out


@torch.no_grad()
def _slice(model: nn.Module, direction, alphas: np.ndarray, X, y) -> np.ndarray:
    """Cross-entropy at ``theta + a d`` for each ``a`` (parameters restored afterwards)."""
    params = dict(model.named_parameters())
    theta = {k: p.detach().clone() for k, p in params.items()}
    losses = []
    for a in alphas:
        for k, p in params.items():
            p.copy_(theta[k] + float(a) * direction[k])
        losses.append(evaluate(model, X, y)[0])
    for k, p in params.items():
        p.copy_(theta[k])
    return np.array(losses)


def run_landscape(config: LandscapeConfig, *, device: str = "auto", seeds=None,
                  progress: bool = True, out=None) -> Result:
    """Two-stage landscape: Softmax for ``stage1_epochs``, then from that checkpoint
    ``stage2_epochs`` more with Softmax or with Gaussian attention (same weights, kernel
    switched), then 1-D training-loss slices through each stage-2 model along the same
    seeded filter-normalized directions.

    Arrays: ``"alpha" (P,)``; ``"<kernel>/slice" (S, n_directions, P)``;
    ``"<kernel>/test_acc"`` and ``"<kernel>/test_loss" (S,)`` after stage 2;
    ``"stage1/test_acc" (S,)``; ``"{stage1,<kernel>}/diverged" (S,)`` bool.

    A stage whose loss stops being finite is a stop reason, never an exception:
    ``meta["stop"]`` holds one reason per seed for ``"stage1"`` and each kernel
    (``"completed"`` or why not; :attr:`Result.stop_reason` sums them up), and the numbers
    of a diverged model (its accuracy, loss and slices) are NaN.
    """
    dev, dev_note, seeds, out = check_run(config, LandscapeConfig, device=device,
                                          seeds=seeds, progress=progress, out=out)
    cfg, base = config, config.base
    if config.task == "imdb":
        data, note = imdb_data(base)
    else:
        data, note, *_ = pathfinder_data(base)
    data = tuple(t.to(dev) for t in data)
    m = min(cfg.eval_examples, len(data[0]))
    Xe, ye = data[0][:m], data[1][:m]
    alphas = np.linspace(-cfg.radius, cfg.radius, cfg.points)
    t0 = time.perf_counter()
    acc = {k: [] for k in ("stage1/test_acc", *(f"{k}/test_acc" for k in KERNELS),
                           *(f"{k}/test_loss" for k in KERNELS))}
    slices: dict[str, list[np.ndarray]] = {k: [] for k in KERNELS}
    # a diverged stage is a stop reason: its model's numbers are NaN, said in meta["stop"]
    stops: dict[str, list[str]] = {k: [] for k in ("stage1", *KERNELS)}
    nan_slice = np.full((cfg.n_directions, cfg.points), np.nan)
    stage1 = DEFAULT_KERNEL
    for s in seeds:
        model = _model_for(replace(base, kernels=(stage1,)), stage1, s, data[0]).to(dev)
        c1 = _train(model, data, base, cfg.stage1_epochs, s, progress, f"stage 1, seed {s}")
        stops["stage1"].append(c1.stop)
        acc["stage1/test_acc"].append(evaluate(model, data[2], data[3])[1]
                                      if c1.stop == "completed" else np.nan)
        for i, kernel in enumerate(KERNELS):
            if c1.stop != "completed":  # nothing to continue from
                stops[kernel].append(f"not run: stage 1 {c1.stop}")
                acc[f"{kernel}/test_acc"].append(np.nan)
                acc[f"{kernel}/test_loss"].append(np.nan)
                slices[kernel].append(nan_slice)
                continue
            m2 = copy.deepcopy(model)
            m2.set_kernel(kernel)
            lr = cfg.stage2_lr[i] if cfg.stage2_lr else base.lr
            c2 = _train(m2, data, base, cfg.stage2_epochs, s + 1, progress,
                        f"stage 2 {kernel}", lr=lr)
            stops[kernel].append(c2.stop)
            if c2.stop != "completed":
                acc[f"{kernel}/test_acc"].append(np.nan)
                acc[f"{kernel}/test_loss"].append(np.nan)
                slices[kernel].append(nan_slice)
                continue
            loss, a = evaluate(m2, data[2], data[3])
            acc[f"{kernel}/test_acc"].append(a)
            acc[f"{kernel}/test_loss"].append(loss)
            dirs = [filter_normalized_direction(m2, 1000 * s + r)
                    for r in range(cfg.n_directions)]
            slices[kernel].append(np.stack([_slice(m2, d, alphas, Xe, ye) for d in dirs]))
    arrays = {"alpha": alphas, **{k: np.array(v) for k, v in acc.items()},
              **{f"{k}/slice": np.stack(v) for k, v in slices.items()},
              **{f"{k}/diverged": np.array([r != "completed" for r in stops[k]])
                 for k in stops}}
    meta = {"config": config_dict(cfg), **device_meta(dev, dev_note), "seeds": list(seeds),
            "variants": list(KERNELS), "note": note, "versions": versions(), "stop": stops,
            "seconds": time.perf_counter() - t0}
    res = Result("landscape", arrays, meta)
    if out is not None:
        res.save(f"{out}/landscape.npz")
    return res
