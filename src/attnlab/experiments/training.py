"""The training loop shared by the Part III classification experiments."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .._validate import (
    check_bool,
    check_choice,
    check_instance,
    check_int,
    check_real,
    check_seeds,
)
from ..device import resolve_device

__all__ = ["Curves", "evaluate", "train_classifier", "make_optimizer", "versions"]


@dataclass
class Curves:
    """Logged metrics at ``T`` log points (index 0 = before training).

    ``x (T,)`` epochs or steps; ``train_loss, train_acc, test_loss, test_acc (T,)``;
    ``stop``: ``"completed"`` or why training stopped (non-finite loss). ``seconds``: the
    whole call; ``train_seconds``: the optimizer steps only (no evaluation), of which
    ``data_seconds`` went to drawing the minibatches; ``examples``: examples trained on.
    """

    x: np.ndarray
    train_loss: np.ndarray
    train_acc: np.ndarray
    test_loss: np.ndarray
    test_acc: np.ndarray
    stop: str
    seconds: float
    train_seconds: float = 0.0
    data_seconds: float = 0.0
    examples: int = 0


def make_optimizer(model: nn.Module, name: str, lr: float, *, momentum: float = 0.0,
                   weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """``"sgd"`` (with momentum), ``"adam"`` or ``"adamw"`` (betas 0.9, 0.98 for AdamW as
    in Power et al.'s grokking code)."""
    check_choice("optimizer", name, ("sgd", "adam", "adamw"))
    params = model.parameters()
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.98), weight_decay=weight_decay)


# Largest attention tensor (B, H, n, n) an evaluation batch may make: 2^27 floats (512 MB in
# float32). The full presets' long sequences (4096 bytes, 1024 pixels) would otherwise build
# 34 GB matrices per layer at 256 sequences a batch.
EVAL_ATTENTION_ELEMENTS = 2**27


def eval_batch_size(model: nn.Module, X: torch.Tensor, batch_size: int) -> int:
    """``batch_size``, lowered so one attention tensor of ``model`` on ``X (N, n, ...)``
    holds at most :data:`EVAL_ATTENTION_ELEMENTS` numbers (at least 1 sequence)."""
    cfg = getattr(model, "cfg", None)
    if cfg is None or X.ndim < 2:
        return batch_size
    per = cfg.heads * X.shape[1] ** 2
    return max(1, min(batch_size, EVAL_ATTENTION_ELEMENTS // per))


@torch.no_grad()
def evaluate(model: nn.Module, X: torch.Tensor, y: torch.Tensor,
             batch_size: int = 256) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` on ``X (N, ...)``, ``y (N,)``, in batches
    of ``batch_size`` (fewer for long sequences: :func:`eval_batch_size`)."""
    was = model.training
    model.eval()
    batch_size = eval_batch_size(model, X, batch_size)
    loss, correct = 0.0, 0
    for i in range(0, len(X), batch_size):
        logits = model(X[i:i + batch_size])
        yy = y[i:i + batch_size]
        loss += float(nn.functional.cross_entropy(logits, yy, reduction="sum"))
        correct += int((logits.argmax(-1) == yy).sum())
    model.train(was)
    return loss / len(X), correct / len(X)


def train_classifier(model: nn.Module, data: tuple[torch.Tensor, ...], *, optimizer: str,
                     lr: float, steps: int, log_every: int, batch_size: int, seed: int,
                     momentum: float = 0.0, weight_decay: float = 0.0, per: str = "step",
                     eval_batch: int = 256, eval_train: int | None = None,
                     progress: bool = False, desc: str = "") -> Curves:
    """Minibatch training with cross-entropy; logs train/test loss and accuracy.

    Args:
        model: maps ``X (B, ...)`` to logits ``(B, classes)``.
        data: ``(X_train, y_train, X_test, y_test)`` tensors on the model's device.
        steps: optimizer steps; log_every: steps between log points.
        batch_size: minibatch size (``>= N_train`` = full batch); batches come from a
            seeded permutation per pass over the data.
        per: the x axis: ``"step"`` or ``"epoch"`` (steps / batches per epoch).
        eval_train: training metrics on the first ``eval_train`` examples (None = all).

    Returns:
        :class:`Curves`. A non-finite loss stops training with a reason (no raise); the
        remaining log points are NaN.
    """
    Xtr, ytr, Xte, yte = data
    # non-finite weights or inputs are bad input, not a divergence (no "smaller step" hint)
    for name, p in model.named_parameters():
        if not bool(torch.isfinite(p.detach()).all()):
            raise ValueError(f"model: parameter {name} holds NaN or inf before training "
                             "(did an earlier training diverge?)")
    for name, t in (("data[0] (X_train)", Xtr), ("data[2] (X_test)", Xte)):
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} holds NaN or inf values (it must be finite)")
    steps = check_int("steps", steps, min=1)
    log_every = check_int("log_every", log_every, min=1)
    check_real("lr", lr, min=0.0, strict_min=True)
    check_choice("per", per, ("step", "epoch"))
    N = len(Xtr)
    n_eval = N if eval_train is None else min(check_int("eval_train", eval_train, min=1), N)
    bs = min(check_int("batch_size", batch_size, min=1), N)
    per_epoch = math.ceil(N / bs)
    opt = make_optimizer(model, optimizer, lr, momentum=momentum, weight_decay=weight_decay)
    g = torch.Generator().manual_seed(check_int("seed", seed, min=0))
    T = steps // log_every + 1
    rec = np.full((4, T), np.nan)
    t0, stop, order, pos = time.perf_counter(), "completed", torch.empty(0, dtype=torch.long), 0

    def log(t: int) -> None:
        rec[0, t], rec[1, t] = evaluate(model, Xtr[:n_eval], ytr[:n_eval], eval_batch)
        rec[2, t], rec[3, t] = evaluate(model, Xte, yte, eval_batch)

    log(0)
    model.train()
    bar = tqdm(total=steps, desc=desc, disable=not progress, leave=False)
    t_train = t_data = 0.0
    seen = 0
    for step in range(1, steps + 1):
        ta = time.perf_counter()
        if pos >= len(order):
            order, pos = torch.randperm(N, generator=g).to(Xtr.device), 0
        idx = order[pos:pos + bs]
        pos += bs
        xb, yb = Xtr[idx], ytr[idx]
        tb = time.perf_counter()
        loss = nn.functional.cross_entropy(model(xb), yb)
        if not torch.isfinite(loss):
            stop = (f"diverged at step {step}: training loss is {float(loss.detach())}; "
                    "try a smaller learning rate")
            break
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        t_data += tb - ta
        t_train += time.perf_counter() - ta
        seen += len(idx)
        bar.update(1)
        if step % log_every == 0:
            log(step // log_every)
    bar.close()
    x = np.arange(T) * log_every
    x = x / per_epoch if per == "epoch" else x
    return Curves(x.astype(float), *rec, stop=stop, seconds=time.perf_counter() - t0,
                  train_seconds=t_train, data_seconds=t_data, examples=seen)


def run_seeds(cfg, seeds) -> list[int]:
    """The seeds of a run: ``seeds``, or the config's ``cfg.seeds`` when None."""
    return check_seeds("seeds", cfg.seeds if seeds is None else seeds)


def run_device(device: str, dtype: str = "float32") -> tuple[torch.device, str]:
    """The device of a run and a note when it differs from the request (an unavailable
    device, or MPS with float64, falls back to the CPU: see ``attnlab.device.resolve_device``).
    """
    name, note = resolve_device(device, dtype)
    return torch.device(name), note


def check_run(config, cls: type, *, device: str, seeds, progress: bool, out,
              dtype: str = "float32") -> tuple[torch.device, str, list[int], Path | None]:
    """Every argument of a ``run_*`` call, checked before any data is made or any model is
    trained: ``config`` an instance of ``cls``, the device, the seeds, ``progress`` and the
    output folder (created). Returns the device, its note, the seeds and the folder."""
    from .results import check_out_dir

    check_instance("config", config, cls)
    dev, note = run_device(device, dtype)
    seeds = run_seeds(config, seeds)
    check_bool("progress", progress)
    return dev, note, seeds, (None if out is None else check_out_dir(out))


def device_meta(dev: torch.device, note: str) -> dict[str, str]:
    """The ``meta`` entries of a run's device (the note only when there is one)."""
    return {"device": str(dev), **({"device_note": note} if note else {})}


def versions() -> dict[str, str]:
    """Versions of Python, torch, NumPy and attnlab, the platform and torch's CPU threads:
    stored with each run so a shipped result says what made it."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    try:
        ours = version("attnlab")
    except PackageNotFoundError:  # a source checkout that is not installed
        ours = "0+unknown"
    return {"python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__, "attnlab": ours,
            "platform": platform.platform(), "cpu": platform.processor() or platform.machine(),
            "torch_threads": str(torch.get_num_threads())}
