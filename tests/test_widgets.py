"""Headless tests of the live training widgets (no kernel): drive the controls through
``.value`` and ``.click()`` and check the returned histories, never Output contents."""

from __future__ import annotations

import importlib
import threading
import time

import numpy as np
import pytest
import torch

import attnlab.device as attnlab_device
from attnlab import available_devices
from attnlab.dynamics import (
    LR_RULES,
    RunConfig,
    config_problems,
    dashboard_log_every,
    make_problem,
    phase_diagram,
    resolve_device,
    run_config,
    step_sizes,
)
from attnlab.widgets import Dashboard, dashboard, phase_explorer

torch.set_num_threads(1)

SMALL = {"N": 4, "n": 4, "D": 16, "d": 4, "H": 1, "steps": 30, "device": "cpu", "init_scale": 1.0,
         "kernel": "softmax", "data": "random", "lr": 0.5}


def small_dash(**kw) -> Dashboard:
    return dashboard(background=False, **{**SMALL, **kw})


def log_ratio(res) -> np.ndarray:
    """log10(f_T / f_0) per kernel row of a single run."""
    return np.log10(res.history.final_loss / res.history.loss[:, 0])


def wait_for(pred, timeout: float = 20.0) -> None:
    t0 = time.perf_counter()
    while not pred():
        assert time.perf_counter() - t0 < timeout, "timed out"
        time.sleep(0.005)


# ----------------------------------------------------------------------------- dashboard
def test_train_click_runs_the_engine_with_the_controls():
    d = small_dash()
    d.train_button.click()
    res = d.result
    assert res is not None and res.history.stop_reason == "completed"
    assert res.history.steps[-1] == SMALL["steps"]
    # the widget is a thin layer: the same config through run_config gives the same numbers
    direct = run_config(d.config())
    np.testing.assert_array_equal(res.history.loss, direct.history.loss)
    assert np.all(np.isfinite(res.history.sigma_min))  # sigma_min(C) is tracked


def test_changing_init_scale_or_D_changes_the_run():
    d = small_dash()
    base = d.run()
    d.init_scale.value = 0.1
    scaled = d.run()
    assert scaled.config.init_scale == pytest.approx(0.1)
    assert not np.allclose(base.history.loss, scaled.history.loss)
    assert scaled.history.params.W_Q.abs().max() < base.history.params.W_Q.abs().max()
    d.D.value = 32
    wider = d.run()
    assert wider.history.params.W_Q.shape[2] == 32
    assert not np.allclose(scaled.history.loss, wider.history.loss)


def test_both_kernels_side_by_side_equal_single_runs():
    d = small_dash(kernel="both", data="teacher")
    res = d.run()
    assert res.history.loss.shape[0] == 2 and res.kernels == ("softmax", "gaussian")
    for m, k in enumerate(res.kernels):
        single = run_config(d.config().replace(kernel=k))
        np.testing.assert_allclose(res.history.loss[m], single.history.loss[0],
                                   rtol=1e-10, atol=1e-12)


def test_teacher_data_is_realizable_and_differs_from_random():
    d = small_dash(data="teacher", steps=1)
    teacher = d.run()
    d.data.value = "random"
    rand = d.run()
    assert teacher.history.loss[0, 0] != rand.history.loss[0, 0]


def test_stop_ends_a_background_run_early_and_second_click_is_ignored():
    d = dashboard(background=True, **{**SMALL, "steps": 100_000})
    d.train_button.click()
    wait_for(lambda: d.last_step >= 2)
    assert d.running and d.train_button.disabled and not d.stop_button.disabled
    thread, run_id = d._thread, d._run_id
    d.train_button.click()  # a second click during the run does nothing
    d.init_scale.value = 0.2  # nor does a slider change
    assert d._thread is thread and d._run_id == run_id and d.train_button.disabled
    d.stop_button.click()
    res = d.wait(timeout=20)
    assert not d.running and not d.train_button.disabled and d.stop_button.disabled
    assert res.stopped and res.stop_reasons == {"softmax": "stopped"}
    assert 0 < res.steps_done < 100_000
    assert res.config.init_scale == pytest.approx(1.0)  # the run kept its own settings
    assert "Stop" in d.status.value


def test_reset_stops_and_restores_defaults():
    d = dashboard(background=True, **{**SMALL, "steps": 100_000})
    d.D.value = 20
    d.train_button.click()
    wait_for(lambda: d.last_step >= 1)
    d.reset_button.click()
    assert not d.running and d.result is None
    fresh = dashboard(**{**SMALL, "steps": 100_000})
    assert d.D.value == SMALL["D"] and d.config() == fresh.config()


def test_diverging_learning_rate_gives_a_message_not_an_exception():
    d = small_dash(train=("W_V",), lr=100.0, steps=200)
    res = d.run()
    assert res.diverged and res.history.stop_reason.startswith("diverged")
    assert "smaller learning rate" in res.status()
    assert "smaller learning rate" in d.status.value
    assert not d.train_button.disabled  # ready for the next try
    d.lr.value = 0.01
    assert not d.run().diverged


def test_growing_loss_is_flagged_before_it_overflows():
    auto = run_config(RunConfig(**{**SMALL, "train": ("W_V",), "lr": None, "steps": 1}))
    lr = 2.1 * float(auto.history.lr[0])  # just above 2 / sigma_max(C)^2: slow growth
    res = run_config(RunConfig(**{**SMALL, "train": ("W_V",), "lr": lr, "steps": 50}))
    assert not res.diverged and res.history.loss[0, -1] > res.history.loss[0, 0]
    assert "loss grew: try a smaller learning rate" in res.status()


def test_one_kernel_diverging_is_reported_for_that_kernel():
    # GD on W_V alone diverges iff lr > 2 / sigma_max(C)^2; here that bound is about 0.89
    # for softmax and 0.37 for the Gaussian kernel (separate runs), so lr = 0.6 splits them
    cfg = RunConfig(**{**SMALL, "steps": 3000, "kernel": "both", "train": ("W_V",),
                       "lr": 0.6})
    res = run_config(cfg)
    assert res.stop_reasons["softmax"] == "completed"
    assert res.stop_reasons["gaussian"].startswith("diverged")
    assert "smaller learning rate" in res.status() and np.isfinite(res.final_loss["softmax"])


@pytest.mark.parametrize(
    "change, words",
    [
        ({"W_Q": False}, "at least one matrix"),
        ({"D": 0}, "embedding dimension D"),
        ({"D": 5000}, "embedding dimension D"),
        ({"lr_auto": True}, "only for W_V-only"),
        ({"seed": -1}, "seed"),
    ],
)
def test_invalid_combinations_disable_train_with_an_explanation(change, words):
    d = small_dash()
    assert not d.train_button.disabled
    for key, value in change.items():
        if key in d.train_toggles:
            d.train_toggles[key].value = value
        else:
            getattr(d, key).value = value
    assert d.train_button.disabled
    assert words in d.status.value and words in " ".join(d.problems())
    assert d.run() is None  # the synchronous path refuses too


def test_auto_lr_is_allowed_for_W_V_only():
    d = small_dash()
    d.train_toggles["W_Q"].value = False
    d.train_toggles["W_V"].value = True
    d.lr_auto.value = True
    assert not d.train_button.disabled
    res = d.run()
    assert res.config.lr is None and res.history.lr[0] > 0


def test_the_step_rule_control_gives_each_kernel_its_curvature_step():
    d = small_dash(kernel="both", train=("W_Q",), lr=1.0)
    assert [v for _, v in d.lr_rule.options] == list(LR_RULES)
    fixed = d.run().history.lr
    assert fixed[0] == fixed[1] == 1.0 and d.lr.description == "learning rate"
    d.lr_rule.value = "curvature"
    assert d.config().lr_rule == "curvature" and d.lr.description.startswith("c ")
    res = d.run()
    cfg = res.config.replace(kernel="softmax")
    for i, k in enumerate(res.config.kernels):  # lr / lambda_max(J_0 J_0^T) of each kernel
        prob = make_problem(cfg.replace(kernel=k))
        assert res.history.lr[i] == pytest.approx(step_sizes(prob)[0], rel=1e-12)
    assert res.history.lr[0] != pytest.approx(res.history.lr[1], rel=1e-3)
    d.train_toggles["W_Q"].value, d.train_toggles["W_V"].value = False, True
    assert d.train_button.disabled and "curvature in W_Q" in d.status.value


def test_W_O_trains_with_the_output_projection():
    res = small_dash(train=("W_V", "W_O"), lr=0.05).run()
    assert res.history.params.W_O is not None and not res.diverged


def test_device_list_has_only_available_devices():
    d = small_dash()
    assert list(d.device.options) == available_devices()
    assert "cpu" in d.device.options
    for dev in d.device.options:
        torch.zeros(1, device=dev)  # each listed device works


def test_missing_gpu_falls_back_to_cpu_with_a_note(monkeypatch):
    monkeypatch.setattr(attnlab_device, "available_devices", lambda: ["cpu"])
    dev, note = resolve_device("cuda")
    assert dev == "cpu" and "not available" in note
    res = run_config(RunConfig(**{**SMALL, "device": "cuda", "steps": 2}))
    assert res.device == "cpu" and "not available" in res.note and "not available" in res.status()


def test_dashboard_asked_for_a_missing_gpu_trains_on_cpu_with_a_note(monkeypatch):
    # the module, not the function ``attnlab.widgets.dashboard`` that shadows it
    dash_module = importlib.import_module("attnlab.widgets.dashboard")

    monkeypatch.setattr(attnlab_device, "available_devices", lambda: ["cpu"])
    monkeypatch.setattr(dash_module, "available_devices", lambda: ["cpu"])
    d = small_dash(device="cuda")
    assert list(d.device.options) == ["cpu"] and d.device.value == "cpu"
    assert "not available" in d.status.value and not d.train_button.disabled
    res = d.run()
    assert res.device == "cpu" and "not available" in res.note


def test_config_problems_for_library_use():
    assert config_problems(RunConfig()) == []
    with pytest.raises(ValueError, match="at least one matrix"):
        run_config(RunConfig(train=()))
    with pytest.raises(TypeError):
        run_config({"D": 4})  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- phase diagram
@pytest.mark.parametrize(
    "batching, cfg",
    [
        ("dim", RunConfig(**{**SMALL, "train": ("W_V",), "lr": None})),
        ("kernel", RunConfig(**{**SMALL, "train": ("W_Q",), "lr": 0.5, "data": "teacher"})),
        ("all", RunConfig(**{**SMALL, "train": ("W_Q", "W_V"), "lr": 0.1})),
    ],
)
def test_phase_diagram_equals_separate_single_runs(batching, cfg):
    scales, dims = [0.3, 2.0], [8, 24]  # H D below and above N n = 16
    res = phase_diagram(scales, dims, kernels=("softmax", "gaussian"), config=cfg,
                        batching=batching)
    assert res.log_ratio.shape == (2, 2, 2) and np.all(np.isfinite(res.log_ratio))
    for k, kern in enumerate(res.kernels):
        for i in range(2):
            for j in range(2):
                single = run_config(res.cell_config(kern, i, j))
                assert single.config.D == dims[j] and single.config.kernel == kern
                np.testing.assert_allclose(res.log_ratio[k, i, j], log_ratio(single)[0],
                                           rtol=0, atol=1e-10)


def test_phase_diagram_batched_equals_loop_and_marks_divergence():
    cfg = RunConfig(**{**SMALL, "train": ("W_V",), "lr": 0.9, "steps": 1500})
    batched = phase_diagram([0.5, 1.0], [4, 32], config=cfg, batching="dim")
    loop = phase_diagram([0.5, 1.0], [4, 32], config=cfg, batching="none")
    assert batched.calls == 2 and loop.calls == 4
    np.testing.assert_allclose(batched.log_ratio, loop.log_ratio, atol=1e-10)
    np.testing.assert_array_equal(batched.diverged, loop.diverged)
    # lr = 0.9 > 2 / sigma_max(C)^2 for D = 4 (about 0.75 and 0.62) but not for D = 32
    # (about 1.26 and 1.02), from separate runs with the engine's default lr = 1/sigma_max^2
    np.testing.assert_array_equal(batched.diverged[0], [[True, False], [True, False]])
    assert np.all(np.isnan(batched.log_ratio[batched.diverged]))
    assert np.all(np.isfinite(batched.log_ratio[~batched.diverged]))


def test_phase_diagram_rejects_bad_grids():
    with pytest.raises(ValueError, match="init_scales"):
        phase_diagram([-1.0], [4], config=RunConfig(**SMALL))
    with pytest.raises(ValueError, match="dims"):
        phase_diagram([1.0], [0], config=RunConfig(**SMALL))
    with pytest.raises(ValueError, match="batching"):
        phase_diagram([1.0], [4], config=RunConfig(**SMALL), batching="fast")


def test_phase_explorer_cell_click_replays_the_run_in_the_dashboard():
    d = small_dash()
    ex = phase_explorer(d, background=False, init_scales=[0.5, 2.0], dims=[8, 24],
                        kernels="softmax",
                        config=RunConfig(**{**SMALL, "train": ("W_V",), "lr": None}))
    ex.compute_button.click()
    res = ex.result
    assert res is not None and res.log_ratio.shape == (1, 2, 2)
    # grid: header row, then init scales from the largest (top) to the smallest
    cell = ex.grid.children[0].children[1].children[2]  # s = 2.0, D = 24
    cell.click()
    replay = d.result
    assert replay.config.init_scale == pytest.approx(2.0) and replay.config.D == 24
    assert replay.config.train == ("W_V",) and replay.config.lr is None
    np.testing.assert_allclose(log_ratio(replay)[0], res.log_ratio[0, 1, 1], atol=1e-10)
    assert d.D.value == 24 and d.lr_auto.value and not d.train_toggles["W_Q"].value


# ----------------------------------------------------------------------------- gc safety
@pytest.mark.parametrize("make", ["dashboard", "explorer"])
def test_layout_repr_survives_garbage_collection_of_the_closed_bar(monkeypatch, make):
    """Regression: tqdm's notebook bar keeps only a weak proxy in its widget. After the
    closed bar was collected, showing the layout (what a book build does) raised
    ReferenceError, about 1 build in 4. Deterministic here through ``gc.collect()``."""
    import gc

    import tqdm.auto
    from tqdm.notebook import tqdm_notebook

    monkeypatch.setattr(tqdm.auto, "tqdm", tqdm_notebook)  # what a Jupyter kernel gets
    if make == "dashboard":
        w = small_dash()
        w.run()
    else:
        w = phase_explorer(background=False, run=True, init_scales=[0.5, 1.0], dims=[8, 16],
                           N=4, n=4, d=4, H=1, steps=10, kernels="softmax")
    gc.collect()
    text = repr(w.widget)  # raised ReferenceError before the fix
    assert "training" in text or "phase diagram" in text
    w.widget._repr_mimebundle_()


@pytest.mark.parametrize("make", ["dashboard", "explorer"])
def test_layout_shows_itself_through_display_on_any_ipywidgets(monkeypatch, make):
    """Regression: the wrappers delegated to the layout's ``_repr_mimebundle_``, which
    ipywidgets 7 (Colab's) lacks: showing a dashboard there raised AttributeError."""
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda obj, **kw: shown.append(obj))
    if make == "dashboard":
        w = small_dash()
    else:
        w = phase_explorer(background=False, run=False, init_scales=[0.5, 1.0], dims=[8, 16],
                           N=4, n=4, d=4, H=1, steps=10, kernels="softmax")
    assert not hasattr(type(w), "_repr_mimebundle_")
    w._ipython_display_()
    assert shown == [w.widget]


# ----------------------------------------------------------------------------- robustness
def _dash_module():
    return importlib.import_module("attnlab.widgets.dashboard")


def test_stop_before_the_first_step_gives_a_status_not_an_exception():
    res = run_config(RunConfig(**SMALL), should_stop=lambda: True)
    assert res.stopped and res.steps_done == 0 and len(res.history.steps) == 0
    assert "before the first step" in res.status()


@pytest.mark.parametrize("background", [True, False])
def test_dashboard_survives_a_stop_before_the_first_step(monkeypatch, background):
    """The Stop click lands after Train claimed the run but before the engine's first step
    (deterministic: the engine call clicks Stop first). Before the fix the worker died in
    the status line and every later control change raised."""
    d = dashboard(background=background, **SMALL)
    real = run_config

    def stop_first(cfg, **kw):
        d.stop_button.click()
        return real(cfg, **kw)

    monkeypatch.setattr(_dash_module(), "run_config", stop_first)
    d.train_button.click()
    res = d.wait(timeout=20)
    assert res.steps_done == 0 and not d.running
    assert "before the first step" in d.status.value and "Training on" not in d.status.value
    assert not d.train_button.disabled and d.stop_button.disabled
    d.D.value = 8  # a later control change works
    monkeypatch.setattr(_dash_module(), "run_config", real)
    d.train_button.click()
    assert d.wait(timeout=20).steps_done == SMALL["steps"] and d.result.config.D == 8


def _explorer(d, lr=0.5, **kw):
    cfg = RunConfig(**{**SMALL, "train": ("W_Q",), "lr": lr, "steps": 10})
    return phase_explorer(d, background=False, kernels="softmax", config=cfg,
                          **{"init_scales": [0.5, 2.0], "dims": [8, 24], **kw})


def _cell(ex, i, j, k=0):
    """The button of cell (init scale i, dim j) of kernel row k (largest s on top)."""
    rows = ex.grid.children[k].children
    return rows[len(rows) - 1 - i].children[1 + j]


def test_double_click_on_a_cell_keeps_replays_working(monkeypatch):
    d = dashboard(background=True, **SMALL)
    ex = _explorer(d)
    ex.compute()
    real = run_config
    first = [True]

    def slow_start(cfg, *, should_stop, **kw):  # the first replay waits for the second click
        if first[0]:
            first[0] = False
            wait_for(should_stop)
        return real(cfg, should_stop=should_stop, **kw)

    monkeypatch.setattr(_dash_module(), "run_config", slow_start)
    _cell(ex, 0, 0).click()
    _cell(ex, 0, 0).click()  # the double-click: stops the first replay before its first step
    res = d.wait(timeout=20)
    assert res.steps_done == 10 and res.config == ex.result.cell_config("softmax", 0, 0)
    _cell(ex, 1, 1).click()  # replay still works
    res = d.wait(timeout=20)
    assert res.config == ex.result.cell_config("softmax", 1, 1) and res.steps_done == 10


def test_replay_runs_the_cells_exact_config_outside_the_slider_ranges():
    d = small_dash()
    lo_lr, lo_s, hi_s = 2e-4, 0.004, 25.0  # sliders: lr in [1e-3, 100], s in [0.01, 10]
    ex = _explorer(d, init_scales=[lo_s, hi_s], dims=[8], lr=lo_lr)
    ex.compute()
    for i, s in enumerate((lo_s, hi_s)):
        _cell(ex, i, 0).click()
        cell = ex.result.cell_config("softmax", i, 0).replace(device=d.device.value)
        assert d.result.config == cell and d.config() == cell
        assert d.result.config.lr == lo_lr and d.result.config.init_scale == s
        assert d.lr.value == lo_lr and d.init_scale.value == s  # the controls show it
    big = ex.result.cell_config("softmax", 0, 0).replace(lr=3e3, device="cpu")
    d.set_config(big)
    assert d.config() == big and d.run().config.lr == 3e3
    d.reset()  # Reset restores the slider ranges too
    assert (d.lr.min, d.lr.max, d.init_scale.min, d.init_scale.max) == (-3, 2, -2, 1)
    assert d.config() == small_dash().config()


@pytest.mark.parametrize(
    "change, words",
    [({"lr": -1.0}, "lr must be a positive"), ({"lr": float("nan")}, "lr must be"),
     ({"init_scale": 0.0}, "init_scale must be"), ({"steps": 0}, "steps must be from 1"),
     ({"kernel": "cosine"}, "kernel must be one of"), ({"train": ("W_X",)}, "train must")],
)
def test_set_config_rejects_values_no_control_can_show(change, words):
    d = small_dash()
    before = d.config()
    with pytest.raises(ValueError, match=words):
        d.set_config(before.replace(**change))
    assert d.config() == before  # nothing changed


def test_the_control_table_round_trips_every_config_field_it_names():
    from attnlab.dynamics import DATA_CHOICES, MATRICES
    from attnlab.kernels import KERNEL_CHOICES

    controls = _dash_module().CONTROLS
    d = small_dash()
    rng = np.random.default_rng(0)
    for _ in range(20):
        train = tuple(m for m in MATRICES if rng.random() < 0.5) or ("W_V",)
        lr = None if train == ("W_V",) and rng.random() < 0.5 else float(10 ** rng.uniform(-5, 4))
        steps = int(rng.integers(1, 500))
        cfg = d.config().replace(
            init_scale=float(10 ** rng.uniform(-3, 2)), D=int(rng.integers(0, 2000)),
            kernel=str(rng.choice(KERNEL_CHOICES)), data=str(rng.choice(DATA_CHOICES)),
            train=train, lr=lr, lr_rule=str(rng.choice(LR_RULES)), steps=steps,
            seed=int(rng.integers(-2, 1000)),
            log_every=dashboard_log_every(steps))
        d.set_config(cfg)
        assert d.config() == cfg
    for c in controls:  # every row is a dashboard attribute setting a RunConfig field
        assert hasattr(d, c.name) and c.field in RunConfig.__dataclass_fields__


def test_kernel_names_come_from_the_kernel_table():
    """No kernel name is spelled out in the widget code (docstrings and comments aside)."""
    import ast
    from pathlib import Path

    import attnlab.widgets as widgets
    from attnlab.kernels import KERNEL_CHOICES, KERNEL_TABLE

    for path in Path(widgets.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        docs = {id(n.body[0].value) for n in ast.walk(tree)
                if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef))
                and n.body and isinstance(n.body[0], ast.Expr)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and id(node) not in docs:
                assert node.value not in KERNEL_TABLE, f"{path.name}:{node.lineno}"
    d = small_dash()
    assert [v for _, v in d.kernel.options] == list(KERNEL_CHOICES)
    assert [lab for lab, _ in d.kernel.options][:-1] == [s.display for s in KERNEL_TABLE.values()]


# ----------------------------------------------------------------------------- state machine
TINY = {"N": 2, "n": 2, "D": 4, "d": 2, "H": 1, "steps": 6, "device": "cpu", "init_scale": 1.0,
        "kernel": "softmax", "data": "random", "lr": 0.5, "train": ("W_Q",)}


class _Machine:
    """Drives a Dashboard and a PhaseExplorer over it through random reader events and
    checks the invariants after each one."""

    def __init__(self, background: bool, monkeypatch, seed: int = 0) -> None:
        from attnlab.dynamics import DATA_CHOICES, MATRICES
        from attnlab.kernels import KERNEL_CHOICES

        self.rng = np.random.default_rng(seed)
        self.d = Dashboard(RunConfig(**TINY), background=background, redraw_interval=0.0)
        cells = RunConfig(**{**TINY, "train": ("W_V",), "lr": None})
        # grid values outside the sliders' ranges, and W_Q cells with lr below the lr slider
        self.ex = phase_explorer(self.d, background=background, init_scales=[0.004, 0.7, 30.0],
                                 dims=[2, 5], config=cells, kernels="both", lr=3e-4)
        self.initial = self.d.config()
        self.ran: list[RunConfig] = []
        self.expected: RunConfig | None = None  # the config of the last run that started
        self.active = self.max_active = 0
        self.stop_first = False
        self.count_lock = threading.Lock()
        real = run_config

        def counted(cfg, **kw):
            with self.count_lock:
                self.active += 1
                self.max_active = max(self.max_active, self.active)
                self.ran.append(cfg)
            try:
                if self.stop_first:  # a Stop click that lands before the first step
                    self.d.stop_button.click()
                return real(cfg, **kw)
            finally:
                with self.count_lock:
                    self.active -= 1

        monkeypatch.setattr(_dash_module(), "run_config", counted)
        self.values = {
            "init_scale": [0.05, 0.3, 1.0, 3.0, 50.0], "D": [0, -3, 1, 2, 8, 5000],
            "kernel": list(KERNEL_CHOICES), "data": list(DATA_CHOICES),
            "lr": [1e-4, 0.01, 0.5, 5.0, 1e3], "lr_auto": [True, False],
            "lr_rule": list(LR_RULES),
            "steps": [0, 1, 3, 12, 40], "seed": [-1, 0, 7], "device": list(self.d.device.options),
        }
        self.matrices = MATRICES
        self.ex_values = {"kernels": list(KERNEL_CHOICES), "data": list(DATA_CHOICES),
                          "train_choice": [v for _, v in self.ex.train_choice.options]}

    # -------------------------------------------------------------- events
    def click_train(self) -> None:
        d = self.d
        with d._lock:
            cfg, startable = d.config(), not d.running and not d.problems()
            run_id = d._run_id
        d.train_button.click()
        assert (d._run_id != run_id) == startable  # Train starts exactly when it may
        if startable:
            self.expected = cfg

    def train_stop_first(self) -> None:
        self.d.wait()
        self.stop_first = True
        try:
            self.click_train()
            self.d.wait()
        finally:
            self.stop_first = False

    def reset(self) -> None:
        self.d.reset_button.click()
        assert self.d.result is None and self.d.config() == self.initial
        self.expected = None

    def set_value(self) -> None:
        if self.rng.random() < 0.15:
            m = self.matrices[self.rng.integers(len(self.matrices))]
            t = self.d.train_toggles[m]
            t.value = not t.value
            return
        name = list(self.values)[self.rng.integers(len(self.values))]
        opts = self.values[name]
        getattr(self.d, name).value = opts[self.rng.integers(len(opts))]

    def set_explorer_value(self) -> None:
        name = list(self.ex_values)[self.rng.integers(len(self.ex_values))]
        opts = self.ex_values[name]
        getattr(self.ex, name).value = opts[self.rng.integers(len(opts))]

    def replay(self, clicks: int = 1) -> None:
        res = self.ex.result
        if res is None:
            return
        k = int(self.rng.integers(len(res.kernels)))
        i, j = int(self.rng.integers(res.init_scales.size)), int(self.rng.integers(res.dims.size))
        for _ in range(clicks):  # a double-click: the second stops the first and replays
            run_id = self.d._run_id
            _cell(self.ex, i, j, k).click()
            assert self.d._run_id != run_id, "a replay click did not start a run"
            self.expected = res.cell_config(res.kernels[k], i, j).replace(
                device=self.d.device.value)

    def compute(self) -> None:
        self.ex.compute_button.click()
        self.ex.wait(timeout=30)

    def step(self) -> str:
        events = {
            "train": (self.click_train, 8), "train_stop_first": (self.train_stop_first, 2),
            "stop": (self.d.stop_button.click, 3),
            "stop_twice": (lambda: [self.d.stop_button.click() for _ in range(2)], 2),
            "reset": (self.reset, 1), "wait": (self.d.wait, 3), "set": (self.set_value, 12),
            "set_explorer": (self.set_explorer_value, 1), "replay": (self.replay, 3),
            "double_replay": (lambda: self.replay(2), 2), "compute": (self.compute, 0.3),
        }
        names = list(events)
        p = np.array([w for _, w in events.values()], dtype=float)
        name = names[self.rng.choice(len(names), p=p / p.sum())]
        events[name][0]()
        if name in ("wait", "reset", "train_stop_first"):
            self.check_idle()
        self.check()
        return name

    # -------------------------------------------------------------- invariants
    def check(self) -> None:
        d, ex = self.d, self.ex
        assert self.max_active <= 1, "two runs at once"
        with d._lock:
            running = d.running
            assert d.train_button.disabled == (running or bool(d.problems()))
            assert d.stop_button.disabled == (not running)
            if not running:
                assert "Training on" not in d.status.value
                if d.result is not None:
                    assert d.result.config == self.expected == self.ran[-1]
        with ex._lock:
            assert ex.compute_button.disabled == ex._running
        assert all(not config_problems(c) for c in self.ran)  # never runs an invalid config

    def check_idle(self) -> None:
        res = self.d.wait(timeout=30)
        assert not self.d.running and (self.d._thread is None or not self.d._thread.is_alive())
        assert res is self.d.result


@pytest.mark.parametrize("background", [True, False])
def test_random_reader_events_keep_the_widgets_consistent(monkeypatch, caplog, background):
    import logging

    errors: list[BaseException] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: errors.append(args.exc_value))
    caplog.set_level(logging.WARNING)
    before = set(threading.enumerate())
    m = _Machine(background, monkeypatch)
    m.compute()
    seen = set()
    for _ in range(400):
        seen.add(m.step())
    m.check_idle()
    m.ex.wait(timeout=30)
    m.check()
    assert not errors, errors  # no worker thread died
    swallowed = [r.getMessage() for r in caplog.records if "Exception in callback" in
                 r.getMessage()]
    assert not swallowed, swallowed  # no click handler raised (ipywidgets only logs those)
    leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()
              and type(t).__name__ != "TMonitor"]  # tqdm's own monitor thread is global
    assert not leaked, leaked
    assert len(m.ran) > 30 and seen >= {"train", "stop_twice", "double_replay", "reset"}
