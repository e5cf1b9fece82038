"""Device, seed, validation, fast-mode and book helpers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import attnlab
from attnlab import _validate as v
from attnlab import device as device_mod
from attnlab.book import api_markdown, fmt, glue, glue_all


# --- device -----------------------------------------------------------------------------
def test_get_device_cpu_and_auto():
    assert attnlab.get_device("cpu") == torch.device("cpu")
    assert attnlab.get_device().type == attnlab.available_devices()[0]
    assert attnlab.available_devices()[-1] == "cpu"


def test_get_device_env_override(monkeypatch):
    monkeypatch.setenv("ATTNLAB_DEVICE", "cpu")
    assert attnlab.get_device() == torch.device("cpu")


def test_get_device_rejects_unknown_and_unavailable(monkeypatch):
    with pytest.raises(ValueError, match="device"):
        attnlab.get_device("tpu")
    monkeypatch.setattr(device_mod, "available_devices", lambda: ["cpu"])
    with pytest.raises(ValueError, match="not available"):
        attnlab.get_device("cuda")
    with pytest.raises(TypeError, match="device"):
        attnlab.get_device(3)


def test_float64_falls_back_to_cpu_on_mps(monkeypatch):
    monkeypatch.setattr(device_mod, "available_devices", lambda: ["mps", "cpu"])
    assert attnlab.get_device("mps", dtype=torch.float64) == torch.device("cpu")
    assert attnlab.get_device("mps", dtype=torch.float32) == torch.device("mps")
    assert attnlab.get_device("auto", dtype=torch.float64) == torch.device("cpu")


def test_cuda_index_is_kept(monkeypatch):
    monkeypatch.setattr(device_mod, "available_devices", lambda: ["cuda", "cpu"])
    assert attnlab.get_device("cuda:1") == torch.device("cuda:1")


# --- seed -------------------------------------------------------------------------------
def test_same_seed_same_numbers_different_seed_different():
    a = torch.randn(5, generator=attnlab.make_generator(3))
    b = torch.randn(5, generator=attnlab.make_generator(3))
    c = torch.randn(5, generator=attnlab.make_generator(4))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_seed_everything_seeds_global_state():
    attnlab.seed_everything(11)
    x1, n1 = torch.rand(3), np.random.rand(3)
    attnlab.seed_everything(11)
    x2, n2 = torch.rand(3), np.random.rand(3)
    assert torch.equal(x1, x2) and np.array_equal(n1, n2)


@pytest.mark.parametrize("bad", [-1, 2**63])
def test_seed_out_of_range(bad):
    with pytest.raises(ValueError, match="seed"):
        attnlab.make_generator(bad)


@pytest.mark.parametrize("bad", [1.5, "3", None, True])
def test_seed_wrong_type(bad):
    with pytest.raises(TypeError, match="seed"):
        attnlab.make_generator(bad)


# --- validation -------------------------------------------------------------------------
def test_check_int():
    assert v.check_int("D", 4, min=1) == 4
    assert v.check_int("D", np.int64(4), min=1) == 4
    with pytest.raises(ValueError, match=r"D must be >= 1, got 0"):
        v.check_int("D", 0, min=1)
    with pytest.raises(ValueError, match=r"H must be <= 3"):
        v.check_int("H", 4, max=3)
    with pytest.raises(TypeError, match="D must be an integer"):
        v.check_int("D", 2.0)


def test_check_real():
    assert v.check_real("lr", 0.5, min=0, strict_min=True) == 0.5
    with pytest.raises(ValueError, match=r"lr must be > 0"):
        v.check_real("lr", 0.0, min=0, strict_min=True)
    with pytest.raises(ValueError, match=r"init_scale must be >= 0"):
        v.check_real("init_scale", -1.0, min=0)
    with pytest.raises(ValueError, match="beta must be finite"):
        v.check_real("beta", float("nan"))
    with pytest.raises(TypeError, match="beta must be a real number"):
        v.check_real("beta", "1")


def test_check_choice_and_finite_and_shape():
    assert v.check_choice("kernel", "softmax", ("softmax", "gaussian")) == "softmax"
    with pytest.raises(ValueError, match="kernel must be one of 'softmax', 'gaussian'"):
        v.check_choice("kernel", "relu", ("softmax", "gaussian"))
    with pytest.raises(ValueError, match="X contains NaN"):
        v.check_finite("X", np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="y contains NaN or inf"):
        v.check_finite("y", torch.tensor([np.inf]))
    v.check_shape("X", np.zeros((2, 3, 4)), ("N", "n", 4))
    with pytest.raises(ValueError, match=r"X must have shape \(N, n, D\)"):
        v.check_shape("X", np.zeros((2, 3)), ("N", "n", "D"))
    with pytest.raises(ValueError, match="axis 2 = 5"):
        v.check_shape("X", np.zeros((2, 3, 4)), ("N", "n", 5))
    with pytest.raises(TypeError, match="X must be a numpy.ndarray or torch.Tensor"):
        v.check_shape("X", [[1.0]], ("a", "b"))


# --- fast mode --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "expected"), [("1", True), ("yes", True), ("0", False), ("", False)]
)
def test_fast_mode_and_pick(monkeypatch, value, expected):
    monkeypatch.setenv("ATTNLAB_FAST", value)
    assert attnlab.fast_mode() is expected
    assert attnlab.pick(full=100, fast=5) == (5 if expected else 100)


# --- book helpers -----------------------------------------------------------------------
def test_fmt():
    assert fmt(0.123456) == "0.123"
    assert fmt(1.5e-7) == "1.50e-07"
    assert fmt(0) == "0"


def test_glue_all_formats_each_value(monkeypatch):
    import myst_nb

    seen = {}
    monkeypatch.setattr(myst_nb, "glue",
                        lambda name, value, display=False: seen.update({name: value}))
    glue_all("p_", steps=3000, gap=1.5e-7, share=0.123456, count="3/32")
    assert seen == {"p_steps": "3000", "p_gap": "1.50e-07", "p_share": "0.123", "p_count": "3/32"}
    glue_all("q_", 2, x=np.float64(0.98765), k=np.int64(7))
    assert seen["q_x"] == "0.99" and seen["q_k"] == "7"
    with pytest.raises(ValueError, match="values"):
        glue_all("p_")
    with pytest.raises(TypeError, match="flag"):
        glue_all("p_", flag=True)
    with pytest.raises(TypeError, match="prefix"):
        glue_all(3, x=1)
    with pytest.raises(ValueError, match="digits"):
        glue_all("p_", 0, x=1)


def test_glue_rejects_empty_name():
    with pytest.raises(ValueError, match="name"):
        glue("", 1)


def test_api_markdown_documents_every_public_name():
    text = api_markdown(attnlab)
    public = [n for n in attnlab.__all__ if not n.startswith("__")]
    for name in public:
        assert f"### `{name}`" in text
    assert "(no docstring)" not in text, "every public name needs a docstring"
    with pytest.raises(ValueError, match="no attribute"):
        api_markdown(attnlab, ["not_a_function"])


def test_public_functions_have_type_hints():
    import inspect

    for name in attnlab.__all__:
        obj = getattr(attnlab, name)
        if inspect.isfunction(obj):
            sig = inspect.signature(obj)
            missing = [p for p, par in sig.parameters.items() if par.annotation is par.empty]
            missing = [p for p in missing if p not in {"self", "args", "kwargs"}]
            assert not missing, f"{name}: parameters without type hints: {missing}"


# --- one device fallback, one generator check, one thread limiter ------------------------
def test_resolve_device_falls_back_with_a_note(monkeypatch):
    monkeypatch.setattr(device_mod, "available_devices", lambda: ["cpu"])
    assert device_mod.resolve_device("cpu") == ("cpu", "")
    assert device_mod.resolve_device("auto") == ("cpu", "")
    dev, note = device_mod.resolve_device("cuda")
    assert dev == "cpu" and "cuda is not available" in note
    monkeypatch.setattr(device_mod, "available_devices", lambda: ["mps", "cpu"])
    assert device_mod.resolve_device("mps", "float32") == ("mps", "")
    dev, note = device_mod.resolve_device("mps", "float64")
    assert dev == "cpu" and "mps has no float64" in note
    with pytest.raises(ValueError, match="device"):
        device_mod.resolve_device("tpu")
    with pytest.raises(ValueError, match="dtype"):
        device_mod.resolve_device("cpu", "float16")


def test_experiments_fall_back_like_the_widgets(monkeypatch):
    from attnlab.experiments.training import device_meta, run_device

    monkeypatch.setattr(device_mod, "available_devices", lambda: ["cpu"])
    dev, note = run_device("cuda")
    assert dev == torch.device("cpu") and note
    assert device_meta(dev, note) == {"device": "cpu", "device_note": note}
    assert device_meta(*run_device("cpu")) == {"device": "cpu"}


def test_make_generator_names_an_unavailable_device():
    with pytest.raises(ValueError, match="device 'tpu'"):
        attnlab.make_generator(0, "tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device 'cuda' is not available"):
            attnlab.make_generator(0, device="cuda")
    with pytest.raises(TypeError, match="device"):
        attnlab.make_generator(0, device=[1])


def test_limit_threads_restores_on_error_and_nests():
    from attnlab._threads import limit_threads

    n0 = torch.get_num_threads()
    with pytest.raises(RuntimeError, match="boom"), limit_threads(1):
        assert torch.get_num_threads() == 1
        raise RuntimeError("boom")
    assert torch.get_num_threads() == n0
    with limit_threads(1):
        with limit_threads(2):
            assert torch.get_num_threads() == 2
        assert torch.get_num_threads() == 1
        with limit_threads(None):
            assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == n0
    with pytest.raises(ValueError, match="k must be"):
        with limit_threads(0):
            pass


def test_limit_threads_limits_numpys_blas_when_asked():
    """With blas=True, NumPy's and SciPy's BLAS (the convex solvers' dense algebra) follow the
    limit and are restored (a pool that ignored it would spin beside torch's on a busy
    machine); without it their setting is left alone (widgets train in worker threads)."""
    from attnlab import _threads
    from attnlab._threads import limit_threads

    libs = _threads._libraries()
    if not libs:
        pytest.skip("no BLAS library visible to threadpoolctl")

    def blas() -> list[int]:
        return [lib.num_threads for lib in libs]

    before = blas()
    # a single-threaded build (e.g. SCS's OpenBLAS, loaded with cvxpy) stays at 1 thread
    multi = [b >= 2 for b in before]
    with limit_threads(1, blas=True):
        assert blas() == [1] * len(libs)
        with limit_threads(2, blas=True):
            assert [n for n, m in zip(blas(), multi, strict=True) if m] == [2] * sum(multi)
        assert blas() == [1] * len(libs)
    assert blas() == before
    other = 2 if torch.get_num_threads() == 1 else 1
    with limit_threads(other):
        assert torch.get_num_threads() == other and blas() == before
        with limit_threads(1, blas=True):
            assert blas() == [1] * len(libs)
        assert blas() == before
    assert blas() == before


def test_limit_threads_from_two_threads_keeps_the_setting():
    """Thread A enters, B enters, A leaves while B is inside, B leaves: nobody changes the
    setting under another thread's feet, and the original is back at the end."""
    import threading

    from attnlab._threads import limit_threads

    torch.set_num_threads(2)
    try:
        a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
        seen = {}

        def a():
            with limit_threads(1):
                a_in.set()
                b_in.wait(5)
                seen["a"] = torch.get_num_threads()
            a_out.set()

        def b():
            a_in.wait(5)
            with limit_threads(2):  # A is inside: B leaves the setting alone
                b_in.set()
                a_out.wait(5)
                seen["b"] = torch.get_num_threads()  # A has left, B still inside
        ts = [threading.Thread(target=f) for f in (a, b)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(10)
        assert seen == {"a": 1, "b": 1}
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(2)


def test_one_adam_matches_torch_optim():
    from attnlab._optim import Adam, Optimizer

    g = torch.Generator().manual_seed(0)
    p0 = torch.randn(3, 4, generator=g, dtype=torch.float64)
    grads = [torch.randn(3, 4, generator=g, dtype=torch.float64) for _ in range(5)]
    ref = p0.clone().requires_grad_()
    opt = torch.optim.Adam([ref], lr=0.1)
    mine, eng = p0.clone().requires_grad_(), p0.clone()
    ad = Adam([mine], 0.1)
    en = Optimizer([eng], torch.full((3,), 0.1, dtype=torch.float64), "adam", (0.9, 0.999),
                   1e-8)
    for t, gr in enumerate(grads):
        ref.grad, mine.grad = gr.clone(), gr.clone()
        opt.step()
        ad.step()
        en.step([eng], [gr], t)
    torch.testing.assert_close(mine.detach(), ref.detach(), rtol=1e-13, atol=1e-15)
    torch.testing.assert_close(eng, ref.detach(), rtol=1e-13, atol=1e-15)


def test_integer_ticks_labels_whole_cells_only():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from attnlab.book import integer_ticks

    fig, ax = plt.subplots()
    ax.imshow(np.arange(16.0).reshape(4, 4))
    assert any(t % 1 for t in ax.get_xticks())  # matplotlib's default labels half-cells
    integer_ticks(ax)
    fig.canvas.draw()
    for ticks in (ax.get_xticks(), ax.get_yticks()):
        assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks)
    plt.close(fig)
    with pytest.raises(ValueError, match="axes"):
        integer_ticks()
    with pytest.raises(TypeError, match="Axes"):
        integer_ticks("not an axes")
