"""The sweep primitive: one batched call over RunConfig values, equal to separate runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import attnlab as al
from attnlab import dynamics as dy

SMALL = dy.RunConfig(N=3, n=3, D=12, d=3, H=1, init_scale=0.5, value_scale=2.0, lr=0.1,
                     steps=40, log_every=5, track_sigma_min=False)


def test_runs_start_from_bit_identical_data_and_agree_with_single_runs(one_thread):
    cfg = SMALL.replace(data="teacher", lr=1.0, lr_rule="curvature")
    res = dy.sweep(cfg, seeds=range(4), keep=True, kernel=al.KERNELS, delta=(0.5, 1.0),
                   D=(9, 12))
    assert res.calls == 1 and res.shape == (2, 2, 2, 4)
    prob = res.problems[0]
    for m, run in enumerate(res.runs):
        one = dy.make_problem(run)
        D = run.D
        X = prob.X[m] if prob.X.ndim == 4 else prob.X
        assert torch.equal(X[..., :D], one.X[0] if one.X.ndim == 4 else one.X)
        assert torch.equal(prob.y[m], one.y[0])
        assert torch.equal(prob.params.W_Q[m, :, :D], one.params.W_Q[0])
        assert torch.equal(prob.params.W_V[m, :, :D], one.params.W_V[0])
        # trajectories: the same to rounding (a batched contraction sums in another order)
        single = dy.run_config(run).history.loss[0]
        got = res.loss[np.unravel_index(m, res.shape)]
        assert got[-1] < got[0]  # a stable run: rounding differences do not grow
        np.testing.assert_allclose(got, single, rtol=1e-11, atol=0)


def test_axes_order_at_and_counts():
    res = dy.sweep(SMALL.replace(data="teacher", lr=1.0, lr_rule="curvature"), seeds=range(3),
                   kernel=al.KERNELS, init_scale=(0.3, 0.6))
    assert list(res.axes) == ["kernel", "init_scale", "seed"]
    i = res.at(kernel=al.KERNELS[1], init_scale=0.6)
    assert res.loss[i].shape == (3, len(res.steps))
    m = np.ravel_multi_index((1, 1, 2), res.shape)
    assert res.runs[m].kernel == al.KERNELS[1] and res.runs[m].init_scale == 0.6
    assert res.runs[m].seed == 2
    # the curvature rule: lr = c / lambda_max(J0 J0^T), per run
    prob = dy.make_problem(res.runs[m])
    assert res.lr[1, 1, 2] == pytest.approx(dy.curvature_lr(prob.X, prob.params,
                                                            prob.kernel, 1.0)[0], rel=1e-12)
    ok = res.ratio < 0.5
    c = res.count(ok, kernel=al.KERNELS[0], init_scale=0.3)
    assert (c.k, c.n) == (int(ok[0, 0].sum()), 3) and c.lo <= c.rate <= c.hi
    assert res.counts(ok).shape == (2, 2)
    s = res.spread(res.final_loss, kernel=al.KERNELS[0], init_scale=0.3)
    assert s.median == pytest.approx(np.median(res.final_loss[0, 0]))
    with pytest.raises(ValueError, match="not on the axis"):
        res.at(init_scale=0.7)
    with pytest.raises(ValueError, match="not axes"):
        res.at(delta=1.0)


def test_batching_follows_the_shapes():
    two = dy.sweep(SMALL, seeds=range(2), train=(("W_Q",), ("W_Q", "W_V")))
    assert two.calls == 2  # the trained matrices split engine calls
    split = dy.sweep(SMALL, seeds=range(2), batch_by=("kernel",), kernel=al.KERNELS)
    joint = dy.sweep(SMALL, seeds=range(2), kernel=al.KERNELS)
    assert (split.calls, joint.calls) == (2, 1)
    np.testing.assert_allclose(split.loss, joint.loss, rtol=1e-11)


def test_a_diverging_batch_keeps_its_shape_and_says_so():
    # a huge step diverges every run of the first batch; the second batch completes
    res = dy.sweep(SMALL.replace(steps=60, train=("W_V",)), seeds=range(2), lr=(1e5, 0.01),
                   batch_by=("lr",))
    assert res.loss.shape == (2, 2, len(res.steps))
    assert res.diverged[0].all() and not res.diverged[1].any()
    assert np.isnan(res.final_loss[0]).all() and np.isfinite(res.final_loss[1]).all()
    with pytest.raises(ValueError, match="finite"):
        res.spread(res.final_loss, lr=1e5)


def test_bad_sweeps_name_the_problem():
    with pytest.raises(TypeError, match="not a RunConfig field"):
        dy.sweep(SMALL, seeds=1, colour=("red",))
    with pytest.raises(ValueError, match="steps cannot be an axis"):
        dy.sweep(SMALL, seeds=1, steps=(1, 2))
    with pytest.raises(ValueError, match="use seeds="):
        dy.sweep(SMALL, seed=(1, 2))
    with pytest.raises(ValueError, match="seeds"):
        dy.sweep(SMALL, seeds=[])
    with pytest.raises(TypeError, match="init_scale must be a sequence"):
        dy.sweep(SMALL, seeds=1, init_scale=0.5)
    with pytest.raises(ValueError, match="init scale must be a positive"):
        dy.sweep(SMALL, seeds=1, init_scale=(0.0,))
    with pytest.raises(ValueError, match="automatic learning rate"):
        dy.sweep(SMALL.replace(lr=None), seeds=1)
    with pytest.raises(TypeError, match="config must be a RunConfig"):
        dy.sweep(None)


def test_presets_are_valid_and_the_threshold_is_one_helper():
    for name in ("C1", "C4", "C5", "C7", "C9", "GRAD_CHECK", "JOINT", "JOINT_RUN",
                 "TWO_STAGE", "TWO_STAGE_2"):
        cfg = getattr(dy, name)
        assert dy.config_problems(cfg) == [], name
    assert dy.C1.threshold_D == al.kernels.nn_threshold(8, 4, 2) == 16
    assert dy.C7.kernels == al.KERNELS
