"""Headless tests of the live training widgets (no kernel): drive the controls through
``.value`` and ``.click()`` and check the returned histories, never Output contents."""

from __future__ import annotations

import importlib
import time

import numpy as np
import pytest
import torch

import attnlab.phase as phase
from attnlab import available_devices
from attnlab.phase import RunConfig, config_problems, phase_diagram, resolve_device, run_config
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
    monkeypatch.setattr(phase, "available_devices", lambda: ["cpu"])
    dev, note = resolve_device("cuda")
    assert dev == "cpu" and "not available" in note
    res = run_config(RunConfig(**{**SMALL, "device": "cuda", "steps": 2}))
    assert res.device == "cpu" and "not available" in res.note and "not available" in res.status()


def test_dashboard_asked_for_a_missing_gpu_trains_on_cpu_with_a_note(monkeypatch):
    # the module, not the function ``attnlab.widgets.dashboard`` that shadows it
    dash_module = importlib.import_module("attnlab.widgets.dashboard")

    monkeypatch.setattr(phase, "available_devices", lambda: ["cpu"])
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
