"""The explorables (attnlab.explore): a cell of each grid equals the single run (or single
solve) with the same settings, the spec holds every grid point, the stored numbers are the
computed ones to the stored rounding, and the controls are native, labelled inputs.

Small grids and few steps, so the whole file runs in seconds (float64, stable settings:
batched and single runs agree to rounding, about 1e-15 per step)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("altair")

from attnlab import dynamics as dy  # noqa: E402
from attnlab import explore  # noqa: E402
from attnlab.convex import fit, predict  # noqa: E402
from attnlab.kernels import KERNELS, attention_matrix  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RTOL = 1e-10
ROUND = 6e-4  # 4 significant digits after float32


def datasets(ex):
    return ex.spec()["datasets"]


def params(ex):
    return {p["name"]: p for p in ex.spec()["params"]}


def assert_same_run(a, b, f0):
    """Batched vs single run: equal to 1e-10 relative (absolute 1e-10 f_0 near zero)."""
    np.testing.assert_allclose(a, b, rtol=RTOL, atol=RTOL * f0)


def assert_rounded(stored, exact):
    exact = np.asarray(exact, dtype=float)
    stored = np.asarray([np.nan if v is None else v for v in stored], dtype=float)
    ok = np.isfinite(exact)
    assert np.array_equal(np.isfinite(stored), ok)
    np.testing.assert_allclose(stored[ok], exact[ok], rtol=ROUND, atol=0)


@pytest.fixture(scope="module")
def wv():
    return explore.training_wv(dy.C1.replace(steps=60, log_every=1), (-1.0, 0.0, 1.0),
                               points=20)


@pytest.fixture(scope="module")
def init():
    cfg = explore.INIT_CONFIG.replace(steps=60)
    return explore.init_scale(cfg, (-1.0, -0.5, 0.0), points=20)


@pytest.fixture(scope="module")
def wq():
    return explore.training_wq(dy.C7.replace(steps=25, log_every=1), log2_scales=(-1.0, 0.0),
                               dims=(8, 16), seeds=range(3), points=12)


@pytest.fixture(scope="module")
def sparse():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 6, 3))
    Z = np.zeros((6, 3))
    Z[[1, 4]] = rng.normal(size=(2, 3))
    y = predict(Z, X) + 0.1 * rng.normal(size=20)
    return explore.sparsity(X, y, log10_ratios=(-2.0, -1.0, -0.5, 0.0), planted=(1, 4))


@pytest.fixture(scope="module")
def phase():
    cfg = dy.default_phase_config().replace(N=4, n=4, H=2, steps=40)
    return explore.playground(cfg, init_scales=(0.3, 1.0), dims=(4, 8, 16))


def test_training_wv_cell_is_the_single_run(wv):
    cfg, Ds = wv.data["config"], wv.data["Ds"]
    j, k = 2, KERNELS[-1]
    single = dy.run_config(cfg.replace(kernel=k, D=Ds[j], track_sigma_min=True)).history
    sw = wv.data["sweeps"][k]
    assert_same_run(sw.loss[j], single.loss[0], single.loss[0, 0])
    # sigma_min(C) of the chart (measured at init) = the engine's tracked value
    np.testing.assert_allclose(sw.sigma_min[j], single.sigma_min[0, 0], rtol=1e-8)
    rec = next(r for r in datasets(wv)["curves"] if r["x"] == 1.0 and r["kernel"] == "Gaussian")
    assert rec["t"] == wv.data["steps"].tolist()
    assert_rounded(rec["f"], single.loss[0, wv.data["index"]])


def test_init_scale_cell_is_the_single_run(init):
    cfg, res = init.data["config"], init.data["sweep"]
    i = 1
    s = init.axes["init_scale"][i]
    single = dy.run_config(cfg.replace(kernel=KERNELS[0], init_scale=s, track_sigma_min=True))
    h = single.history
    assert_same_run(res.loss[0, i, 0], h.loss[0], h.loss[0, 0])
    st = init.data["stats"][KERNELS[0]]
    np.testing.assert_allclose(st.sigma_min[i, 0], h.sigma_min[0, 0], rtol=1e-8)
    # row entropy, recomputed from the run's own initial attention with NumPy
    prob = dy.make_problem(cfg.replace(kernel=KERNELS[0], init_scale=s))
    S = attention_matrix(prob.X, prob.params.W_Q, prob.params.W_K, KERNELS[0]).numpy()
    P = S / S.sum(-1, keepdims=True)
    np.testing.assert_allclose(st.entropy[i, 0], -(P * np.log(P)).sum(-1).mean(), rtol=1e-10)
    row = next(r for r in datasets(init)["table"]
               if r["u"] == init.axes["u"][i] and r["kernel"] == "Softmax")
    assert_rounded([row["ent"]], [st.entropy[i, 0] / np.log(cfg.n)])


def test_training_wq_median_is_the_median_of_single_runs(wq):
    cfg, rule = wq.data["config"], "curvature"
    run = cfg.replace(**wq.data["rules"][rule], init_scale=1.0, D=16, kernel=KERNELS[0])
    singles = [dy.run_config(run.replace(seed=s)).history for s in wq.axes["seed"]]
    res = wq.data["sweeps"][rule]
    for m, h in enumerate(singles):  # each seed of the cell = its single run
        assert_same_run(res.loss[0, 1, 1, m], h.loss[0], h.loss[0, 0])
    med = np.median([h.loss[0, wq.data["index"]] for h in singles], axis=0)
    rec = next(r for r in datasets(wq)["curves"]
               if (r["v"], r["D"], r["rule"], r["kernel"]) == (0.0, 16, rule, "Softmax"))
    assert_rounded(rec["f"], med)


def test_sparsity_cell_is_the_single_solve(sparse):
    X, y, tol = sparse.data["X"], sparse.data["y"], sparse.data["tol"]
    j = 1
    beta = sparse.data["betas"][j]
    path_fit, single = sparse.data["path"][j], fit(X, y, beta, tol=tol)
    scale = np.abs(single.Z).max()
    np.testing.assert_allclose(path_fit.Z, single.Z, rtol=0, atol=RTOL * scale)
    # both certify the same optimum: |P_path - P_single| <= gap_path + gap_single
    assert abs(path_fit.primal - single.primal) <= path_fit.gap + single.gap + 1e-12
    rows = [r for r in datasets(sparse)["tokens"] if r["w"] == sparse.axes["w"][j]]
    assert_rounded([r["norm"] for r in rows], np.linalg.norm(single.Z, axis=1))
    assert {r["token"] for r in rows if r["state"] == "active"} == {
        f"{k} (planted)" if k in (1, 4) else str(k) for k in single.active}
    heads = [r for r in datasets(sparse)["heads"] if r["w"] == sparse.axes["w"][j]]
    assert len(heads) == len(single.active)  # one recovered head per active token
    for r in heads:  # one-hot on an active token
        assert sorted(r["a"]) == [0.0] * (len(r["a"]) - 1) + [1.0]


def test_playground_cell_is_the_single_run_and_matches_the_phase_diagram(phase):
    cfg, res = phase.data["config"], phase.data["sweep"]
    i, j, ki = 1, 2, 1
    s, D = phase.axes["init_scale"][i], phase.axes["D"][j]
    h = dy.run_config(cfg.replace(kernel=KERNELS[ki], init_scale=s, D=D,
                                  log_every=res.runs[0].log_every)).history
    assert_same_run(res.loss[ki, j, i, 0], h.loss[0], h.loss[0, 0])
    pr = dy.phase_diagram(phase.axes["init_scale"], phase.axes["D"], kernels=KERNELS,
                          config=cfg)
    np.testing.assert_allclose(phase.data["log_ratio"].transpose(0, 2, 1), pr.log_ratio,
                               rtol=0, atol=1e-10)


@pytest.mark.parametrize("name", ["wv", "init", "wq", "sparse", "phase"])
def test_spec_holds_every_grid_point(name, request):
    ex = request.getfixturevalue(name)
    data = datasets(ex)
    if name == "wv":
        got = {(r["x"], r["kernel"]) for r in data["curves"]}
        want = {(x, k) for x in ex.axes["x"] for k in ("Softmax", "Gaussian")}
    elif name == "init":
        got = {(r["u"], r["kernel"]) for r in data["curves"]}
        want = {(u, k) for u in ex.axes["u"] for k in ("Softmax", "Gaussian")}
    elif name == "wq":
        got = {(r["v"], r["D"], r["rule"], r["kernel"]) for r in data["curves"]}
        want = {(v, D, rule, k) for v in ex.axes["v"] for D in ex.axes["D"]
                for rule in ex.axes["rule"] for k in ("Softmax", "Gaussian")}
    elif name == "sparse":
        got = {r["w"] for r in data["table"]}
        want = set(ex.axes["w"])
        assert len(data["tokens"]) == len(want) * ex.data["X"].shape[1]
    else:
        got = {(r["i"], r["j"], r["kernel"]) for r in data["curves"]}
        want = {(i, j, k) for i in range(len(ex.axes["init_scale"]))
                for j in range(len(ex.axes["D"])) for k in ("Softmax", "Gaussian")}
        assert {(r["i"], r["j"], r["kernel"]) for r in data["cells"]} == want
    assert got == want
    # the default selection is a grid point, and it is what the page shows first
    sel = params(ex)["pick"]
    assert sel["value"] == [ex.default]
    assert ex.figure() is not None


@pytest.mark.parametrize("name", ["wv", "init", "wq", "sparse", "phase"])
def test_controls_are_native_labelled_inputs_with_alt_text(name, request):
    ex = request.getfixturevalue(name)
    sel = params(ex)["pick"]
    binds = sel["bind"] if "input" not in sel["bind"] else {"": sel["bind"]}
    for b in binds.values():  # <input type=range|radio>, <select>: Tab + arrow keys
        assert b["input"] in ("range", "select", "radio") and b["name"].strip()
        if b["input"] == "range":  # every grid value is a slider position
            field = sel["select"]["fields"][0]
            vals = sorted(set(ex.axes[{"x": "x", "u": "u", "w": "w"}.get(field, field)]))
            grid = np.arange(b["min"], b["max"] + b["step"] / 2, b["step"])
            assert np.allclose(vals, grid[np.isin(np.round(grid, 9), np.round(vals, 9))])
            assert np.all(np.isin(np.round(vals, 9), np.round(grid, 9)))
    page = ex.html(local=None)
    assert ex.alt_text and ex.caption
    assert f'aria-label="{ex.alt_text}' in page and "<figcaption>" in page
    assert ex.spec()["description"] == ex.alt_text


def test_budget_and_storage(phase, wq):
    for ex in (phase, wq):
        raw, gz = ex.page_bytes()
        assert raw <= 1_000_000 or gz <= 300_000
    rec = datasets(phase)["curves"][0]
    assert all(v is None or len(f"{v:.10g}".lstrip("-").replace(".", "").lstrip("0")
                                .split("e")[0]) <= explore.SIG for v in rec["f"])


def test_steps_sampling():
    idx = explore.sample_steps(2001, 60)
    assert idx[0] == 0 and idx[-1] == 2000 and len(idx) <= 60
    assert np.all(np.diff(idx) > 0) and idx[1] == 1  # log-spaced: the first steps are kept
    assert explore.sample_steps(10, 60).tolist() == list(range(10))


def test_bad_input():
    with pytest.raises(ValueError, match="log2_ratios"):
        explore.training_wv(log2_ratios=(0.3,))
    with pytest.raises(ValueError, match="log10_scales"):
        explore.init_scale(log10_scales=(0.1,))
    with pytest.raises(ValueError, match="log10_ratios"):
        explore.sparsity(np.zeros((2, 3, 1)), np.ones(2), log10_ratios=(0.5,))
    with pytest.raises(TypeError, match="points"):
        explore.sample_steps(10, 2.5)


def test_local_scripts_are_found_from_a_chapter_folder(tmp_path):
    (tmp_path / "_config.yml").write_text("title: x\n")
    (tmp_path / "_extra" / "vega").mkdir(parents=True)
    chapter = tmp_path / "book" / "dynamics"
    chapter.mkdir(parents=True)
    assert explore._local_prefix(chapter) == "../../vega/"
    assert explore._local_prefix(tmp_path) == "vega/"
    assert explore._local_prefix(Path("/")) is None
    for lib in explore.VEGA_VERSIONS:  # the book ships them
        assert (ROOT / "_extra" / "vega" / f"{lib}.min.js").is_file()
    # served as they are (html_extra_path), not auto-added to every page (_static/*.js)
    assert "html_extra_path" in (ROOT / "_config.yml").read_text()
    assert not list(ROOT.glob("_static/**/vega*.js"))


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = """<pre id="result"></pre><script>
function texts() { return Array.from(document.querySelectorAll('svg text'))
  .map(function(t) { return t.textContent; }).join('|'); }
function paths() { return Array.from(document.querySelectorAll('svg path'))
  .map(function(p) { return p.getAttribute('d') || ''; }).join('|'); }
setTimeout(function() {
  var before = [texts(), paths()];
  var inp = document.querySelector('input[type=range]');
  inp.value = inp.min; inp.dispatchEvent(new Event('input', {bubbles: true}));
  setTimeout(function() {
    document.getElementById('result').textContent = JSON.stringify({
      svg: document.querySelectorAll('svg').length,
      inputs: document.querySelectorAll('input').length,
      textChanged: texts() !== before[0], pathsChanged: paths() !== before[1]});
  }, 1500);
}, 3000);
</script>"""


@pytest.mark.skipif(CHROMIUM is None, reason="needs a headless chromium")
def test_slider_changes_the_plot_in_a_browser_with_no_kernel(wv, tmp_path):
    page = tmp_path / "page.html"
    local = (ROOT / "_extra" / "vega").as_uri() + "/"
    page.write_text("<!DOCTYPE html><html><head><meta charset='utf-8'></head><body>"
                    + wv.html(local=local) + DRIVER + "</body></html>")
    out = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
         "--allow-file-access-from-files", "--virtual-time-budget=10000", "--dump-dom",
         page.as_uri()], capture_output=True, text=True, timeout=120).stdout
    result = json.loads(out.split('<pre id="result">')[1].split("</pre>")[0])
    assert result["svg"] >= 1 and result["inputs"] >= 1
    assert result["textChanged"] and result["pathsChanged"]
