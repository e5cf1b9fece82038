"""Divergence is always a stop reason (issue 12): every experiment returns its result with
the reason and curves cut at the divergence (NaN after it), never an exception or NaN
without a word. Each test forces divergence with a huge step."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from attnlab import dynamics as dy
from attnlab.data import synthsent_vocab
from attnlab.experiments import (
    ModelConfig,
    build_model,
    frozen_features,
    get_config,
    run_landscape,
    run_student_teacher,
)
from attnlab.experiments.convex_tasks import SS_FILLER, SS_WORDS
from attnlab.experiments.training import train_classifier


def _landscape(**base):
    cfg = get_config("landscape", "test", stage1_epochs=1, stage2_epochs=1, n_directions=1,
                     points=5)
    return replace(cfg, base=replace(cfg.base, **base))


def test_run_landscape_reports_a_diverged_stage_1():
    res = run_landscape(_landscape(optimizer="sgd", lr=1e12), progress=False)
    assert res.meta["stop"]["stage1"][0].startswith("diverged at step")
    assert "stage1 (seed 0): diverged" in res.stop_reason
    assert all(r.startswith("not run: stage 1 diverged") for k in ("softmax", "gaussian")
               for r in res.meta["stop"][k])
    assert res["stage1/diverged"].all() and res["gaussian/diverged"].all()
    assert res["softmax/slice"].shape == (1, 1, 5) and np.isnan(res["softmax/slice"]).all()


def test_run_landscape_reports_one_diverged_kernel_and_keeps_the_other():
    cfg = replace(_landscape(optimizer="sgd", lr=1e-3), stage2_lr=(1e-3, 1e12))
    res = run_landscape(cfg, progress=False)
    stop = res.meta["stop"]
    assert stop["stage1"] == ["completed"] and stop["softmax"] == ["completed"]
    assert stop["gaussian"][0].startswith("diverged at step")
    assert np.isfinite(res["softmax/slice"]).all() and np.isnan(res["gaussian/slice"]).all()
    assert np.isfinite(res["softmax/test_acc"]).all() and np.isnan(res["gaussian/test_acc"]).all()
    assert res.stop_reason.startswith("gaussian (seed 0): diverged")


def test_run_student_teacher_reports_a_diverged_pretraining():
    cfg = get_config("student_teacher", "test", pretrain_lr=1e12, pretrain_epochs=1)
    res = run_student_teacher(cfg, progress=False)  # used to raise "X contains NaN"
    assert res.meta["stop"]["pretrain"][0].startswith("diverged at step")
    assert res.meta["pretrain_acc"] is None
    assert res.stop_reason.startswith("pretrain (seed 0): diverged")
    for k in ("gd/train_err", "convex/test_err", "heads/w"):
        assert np.isnan(res[k]).all()
    assert res["gd/train_err"].shape == (1, len(res["step"]))
    assert res["heads/objective"].shape == (1, 0)


def test_run_student_teacher_completes_with_reasons():
    cfg = get_config("student_teacher", "test", features="random", gd_steps=20,
                     heads_steps=20)
    res = run_student_teacher(cfg, progress=False)
    assert res.stop_reason == "completed"
    assert set(res.meta["stop"]) == {"gd", "heads"}


def test_frozen_features_of_a_diverged_model_is_bad_input():
    cfg = get_config("student_teacher", "test")
    mcfg = ModelConfig(D=cfg.D, hidden=2 * cfg.D, heads=cfg.heads, head_dim=cfg.head_dim,
                       dropout=0.0)
    vocab = synthsent_vocab(n_words=SS_WORDS, n_filler=SS_FILLER)["size"]
    model = build_model(mcfg, "softmax", vocab=vocab, n_tokens=cfg.n, classes=2, seed=0)
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] = math.nan
    with pytest.raises(ValueError, match="model gives non-finite features"):
        frozen_features(cfg, 4, 0, model=model)


def test_train_classifier_on_nan_weights_says_so_not_smaller_step():
    cfg = get_config("synthsent", "test")
    model = build_model(cfg.model, "softmax", vocab=32, n_tokens=4, classes=2, seed=0)
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] = math.nan
    X = torch.randint(0, 32, (8, 4))
    y = torch.randint(0, 2, (8,))
    with pytest.raises(ValueError, match="NaN or inf before training") as err:
        train_classifier(model, (X, y, X, y), optimizer="adam", lr=1e-3, steps=2,
                         log_every=1, batch_size=4, seed=0)
    assert "learning rate" not in str(err.value)


def test_freeze_comparison_keeps_its_shape_when_runs_diverge():
    # used to crash with NumPy's "all input arrays must have the same shape"
    fc = dy.freeze_comparison(dy.JOINT.replace(steps=40, lr=1e6), seeds=[0, 1],
                              groups=(("W_Q",), ("W_V",)))
    assert fc.loss.shape == (2, 2, len(fc.steps))
    assert (fc.diverged_at[1] > 0).all()  # W_V alone diverges at this step ...
    assert (fc.diverged_at[0] == -1).all()  # ... W_Q alone does not
    assert np.isfinite(fc.loss[0]).all()


def test_joint_run_diverged_says_so_with_shortened_curves():
    jr = dy.joint_run(dy.JOINT_RUN.replace(steps=40, lr=1e6), seeds=[0, 1])
    assert jr.stop_reason.startswith("diverged at step")
    assert jr.loss.shape == (2, len(jr.steps)) and jr.steps[-1] < 40
    assert all(b.shape == jr.loss.shape for b in jr.block.values())
