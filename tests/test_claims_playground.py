"""The playground's and the intro's Softmax-versus-Gaussian sentences, at the dashboard's
size over 32 seeds: each can fail if the claim were false."""

from __future__ import annotations

import numpy as np
import pytest

from attnlab import dynamics as dy
from attnlab.kernels import KERNELS
from attnlab.stats import count

SEEDS = range(32)


@pytest.fixture(scope="module")
def runs(one_thread_module):
    cfg = dy.default_dashboard_config(device="cpu", steps=500).replace(
        log_every=500, track_sigma_min=False)
    out = {}
    rules = {"common": dict(lr=0.5), "curvature": dict(lr=1.0, lr_rule="curvature")}
    for rule, kw in rules.items():
        res = dy.sweep(cfg.replace(**kw), SEEDS, kernel=KERNELS, init_scale=(0.5, 1.0))
        out[rule] = np.nan_to_num(res.ratio, nan=np.inf) < 1e-6  # [kernel, s, seed]
    return out


@pytest.fixture(scope="module")
def one_thread_module():
    from attnlab._threads import limit_threads

    with limit_threads(1):
        yield


def test_the_common_step_favours_the_gaussian_at_the_defaults(runs):
    c = runs["common"]
    assert count(c[1, 0] & ~c[0, 0]).lo > 0.3  # the Gaussian alone converges, often


def test_with_curvature_steps_both_converge_at_moderate_scale(runs):
    c = runs["curvature"]
    assert count(c[0, 0]).lo > 0.8 and count(c[1, 0]).lo > 0.8
    assert count(c[1, 0] & ~c[0, 0]).hi < 0.15


def test_at_scale_one_the_gaussian_stalls_under_both_rules(runs):
    for rule in ("common", "curvature"):
        c = runs[rule]
        assert count(c[1, 1]).hi < 0.15 < count(c[0, 1]).lo
