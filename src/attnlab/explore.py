"""Explorables: interactive figures that work on the static page, with no kernel and no
server. Each one trains a grid of runs at build time (the batched engine, through
:func:`attnlab.dynamics.sweep`, or Part I's regularization path) and returns a Vega-Lite
chart whose sliders, menus and clicks only *select* among the precomputed runs.

The five explorables of the book, each with the claim it makes visible:

* :func:`training_wv` (Part II, Training W_V): D across the threshold H D = N n x kernel;
  the loss curve with its least-squares floor, and sigma_min(C).
* :func:`init_scale` (Part II, Initialization scale): ~9 log-spaced init scales x kernel;
  the loss curve, sigma_min(C) and the row entropy of the attention.
* :func:`training_wq` (Part II, Training W_Q): init scale x D x kernel x step rule, 32
  seeds per setting; the median loss and PL ratio with a quartile band.
* :func:`sparsity` (Part I, Sparsity across tokens): beta along the regularization path;
  the active tokens, the attention map of the recovered heads and the duality gap.
* :func:`playground` (Playground): the phase diagram; hovering over or clicking a cell
  shows that cell's loss curves.

Each returns an :class:`Explorable`: display it in a notebook cell (it renders as HTML),
call :meth:`Explorable.figure` for the static matplotlib figure of its default selection
(print, no JavaScript), and read :attr:`Explorable.caption` / :attr:`Explorable.alt_text`.
The live ipywidgets dashboard (:mod:`attnlab.widgets`) stays for Colab, Binder and Jupyter,
where it trains anything; the explorables are for the page.

Storage. Curves are kept at reduced resolution: about 60 logged steps (half log-spaced,
half linear, always the first and the last), float32 rounded to 4 significant digits. Every
number of the chart is in the page; the float64 arrays behind it stay on the Python object
(:attr:`Explorable.data`) for tests and for the static figure.

Why Vega-Lite (Altair) and not Plotly. Compared on the three points that matter here:

* Page weight. The chart is a JSON spec plus its data (5-61 KB gzipped here). The
  JavaScript is vega + vega-lite + vega-embed: 830 KB minified, 280 KB gzipped, loaded on
  the pages with an explorable and then cached. plotly.min.js (plotly 7.1) is 4.8 MB
  minified, 1.47 MB gzipped: more than the whole 300 KB budget by itself; Plotly's
  "notebook" renderer would also inline it into the page.
* Interaction without code. Vega-Lite parameters bound to input elements filter the data;
  several independent controls (D, init scale, step rule) compose with no JavaScript, and a
  click or hover on one view (a phase-diagram cell) selects in the others. Plotly sliders
  step through frames or restyle traces: two sliders overwrite each other's visibility,
  and linking a heatmap click to a second plot needs a hand-written JavaScript callback.
* Accessibility. Vega-Lite's bound controls are native HTML ``<input type="range">``,
  ``<select>`` and radio buttons: reachable with Tab and moved with the arrow keys, labelled
  for screen readers. The chart's ``description`` becomes the SVG's ``aria-label``. Plotly's
  sliders and menus are drawn in SVG and are not focusable with the keyboard.

Offline use. The page loads the three scripts from the book's own site: they live in
``_extra/vega/`` (pinned versions, BSD-3-Clause licences beside them), which Sphinx's
``html_extra_path`` copies to ``vega/`` at the root of the built site. (Not ``_static/``:
Jupyter Book 1 adds every ``.js`` file under ``_static/`` to every page, which would load
830 KB on pages without a chart, in the wrong order.) So the static site needs no
third-party CDN, also when a downloaded copy of the built HTML is read offline. When that
copy is not there (Jupyter, Colab, a notebook opened outside the book), the same loader
falls back to the jsDelivr CDN at the pinned versions, which needs a network. With
require.js on the page (the ipywidgets pages of the book load it), the scripts are loaded
through require.js with the same local-then-CDN paths.
"""

from __future__ import annotations

import gzip
import hashlib
import html as html_lib
import itertools
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import convex
from . import dynamics as dy
from ._validate import check_int
from .config import pick
from .kernels import KERNEL_TABLE, KERNELS, expand_kernels

__all__ = ["Explorable", "VEGA_VERSIONS", "training_wv", "init_scale", "training_wq",
           "sparsity", "playground"]

# Pinned to what Altair 6.3 targets (vega-lite 6.4.1); the files in _extra/vega/.
VEGA_VERSIONS = {"vega": "6.4.0", "vega-lite": "6.4.1", "vega-embed": "7.3.0"}
_CDN = "https://cdn.jsdelivr.net/npm/{lib}@{version}/build/{lib}.min"
# Where the book keeps the scripts (Sphinx ``html_extra_path``: copied to the site's root
# as they are; not under _static/, whose .js files Jupyter Book would add to every page).
_SOURCE = "_extra/vega"
_URL = "vega/"
POINTS = 60  # stored points per curve
SIG = 4  # significant digits of the stored numbers


def _alt() -> Any:
    import altair as alt  # imported lazily: the rest of attnlab does not need it

    return alt


# ----------------------------------------------------------------------------- storage
def sample_steps(T: int, points: int = POINTS) -> np.ndarray:
    """Indices into ``T`` logged steps: half log-spaced, half linear, with 0 and T - 1."""
    points = check_int("points", points, min=2)
    if T <= points:
        return np.arange(T)
    lin = np.linspace(0, T - 1, points // 2)
    log = np.geomspace(1, T - 1, points - points // 2)
    return np.unique(np.r_[0, T - 1, np.round(lin), np.round(log)].astype(int))


def _num(v: float) -> float | None:
    """float32, then SIG significant digits; None (JSON null) for NaN/inf."""
    v = float(np.float32(v))
    return float(f"{v:.{SIG}g}") if np.isfinite(v) else None


def _nums(a: Any) -> list[float | None]:
    return [_num(v) for v in np.asarray(a, dtype=float).reshape(-1)]


def _disp(kernel: str) -> str:
    return KERNEL_TABLE[kernel].display


def _color_scale(kernels: Sequence[str]) -> Any:
    alt = _alt()
    return alt.Scale(domain=[_disp(k) for k in kernels],
                     range=[KERNEL_TABLE[k].color for k in kernels])


# ----------------------------------------------------------------------------- the figure
_HTML = """<figure class="attnlab-explorable" id="{id}-fig" aria-label="{alt}">
<div id="{id}" style="width:100%"></div>
<noscript>This interactive figure needs JavaScript; the static figure below shows its
default selection.</noscript>
<figcaption>{caption}</figcaption>
</figure>
<script type="text/javascript">
(function(spec, opt, el, local, cdn) {{
  function show(vegaEmbed) {{
    vegaEmbed(el, spec, opt).catch(function(e) {{ el.textContent = "Chart error: " + e; }});
  }}
  function fail(e) {{ el.textContent = "Could not load the chart library: " + e; }}
  var libs = ["vega", "vega-lite", "vega-embed"];
  if (typeof define === "function" && define.amd && typeof requirejs === "function") {{
    var paths = {{}};
    libs.forEach(function(l) {{ paths[l] = local ? [local + l + ".min", cdn[l]] : cdn[l]; }});
    requirejs.config({{paths: paths}});
    require(["vega-embed"], show, fail);
    return;
  }}
  function load(src) {{
    return new Promise(function(ok, no) {{
      var s = document.createElement("script");
      s.src = src + ".js"; s.onload = ok; s.onerror = function() {{ no(src); }};
      document.head.appendChild(s);
    }});
  }}
  function loadAll(i) {{
    if (i === libs.length) return Promise.resolve();
    var l = libs[i];
    var first = local ? load(local + l + ".min") : Promise.reject();
    return first.catch(function() {{ return load(cdn[l]); }})
      .then(function() {{ return loadAll(i + 1); }});
  }}
  window.attnlabVega = window.attnlabVega || (window.vegaEmbed ? Promise.resolve() : loadAll(0));
  window.attnlabVega.then(function() {{ show(window.vegaEmbed); }}, fail);
}})({spec}, {opt}, document.getElementById("{id}"), {local}, {cdn});
</script>"""


def _local_prefix(start: Path | None = None) -> str | None:
    """The page's relative URL of the site's ``vega/`` folder, when the code runs inside
    the book (a folder above holds ``_config.yml`` and ``_extra/vega``); else None.

    Jupyter Book executes a chapter in its own folder and writes its page at the same
    relative place in the built site, so the path from the chapter's folder to the book's
    root is the path from the page to the site's root.
    """
    here = (start or Path.cwd()).resolve()
    for root in (here, *here.parents):
        if (root / "_config.yml").is_file():
            if (root / _SOURCE).is_dir():
                rel = os.path.relpath(root, here).replace(os.sep, "/")
                return ("" if rel == "." else rel + "/") + _URL
            return None
    return None


@dataclass
class Explorable:
    """A precomputed interactive figure.

    Attributes: ``name`` (the page it is for); ``chart`` (an Altair chart; ``spec()`` is its
    Vega-Lite JSON); ``caption``, ``alt_text``; ``axes`` (the grid: name -> values, every
    one of which is in the spec); ``default`` (the selection shown first and in
    :meth:`figure`); ``data`` (the float64 results behind the chart); ``seconds`` (build
    time: training and chart); ``draw`` (draws the static figure).
    """

    name: str
    chart: Any
    caption: str
    alt_text: str
    axes: dict[str, tuple]
    default: dict[str, Any]
    data: dict[str, Any] = field(repr=False)
    seconds: float = 0.0
    draw: Callable[[Explorable], Any] | None = field(default=None, repr=False)

    def spec(self) -> dict:
        """The Vega-Lite specification (data inline)."""
        return self.chart.to_dict(validate=False)

    def html(self, local: str | None | bool = True) -> str:
        """The HTML fragment the page gets. ``local``: True = the site's ``vega/`` when run
        inside the book (:func:`_local_prefix`), a URL prefix, or None/False (CDN only)."""
        prefix = _local_prefix() if local is True else (local or None)
        spec = json.dumps(self.spec(), separators=(",", ":"), allow_nan=False)
        cdn = {lib: _CDN.format(lib=lib, version=v) for lib, v in VEGA_VERSIONS.items()}
        uid = f"attnlab-{self.name}-{hashlib.sha1(spec.encode()).hexdigest()[:8]}"
        return _HTML.format(
            id=uid, alt=html_lib.escape(self.alt_text, quote=True),
            caption=html_lib.escape(self.caption), spec=spec,
            opt=json.dumps({"actions": False, "renderer": "svg"}),
            local=json.dumps(prefix), cdn=json.dumps(cdn),
        )

    def page_bytes(self) -> tuple[int, int]:
        """Bytes the explorable adds to its page: (raw, gzip-compressed)."""
        raw = self.html(local=None).encode()
        return len(raw), len(gzip.compress(raw, 9))

    def figure(self) -> Any:
        """Static matplotlib figure of the default selection (for print, no JavaScript)."""
        if self.draw is None:
            raise ValueError(f"explorable {self.name!r} has no static figure")
        return self.draw(self)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict:
        return {"text/html": self.html(), "text/plain": f"<Explorable {self.name}: "
                f"{self.caption}>"}


def _finish(ex: Explorable, t0: float, datasets: dict[str, list]) -> Explorable:
    ex.chart = (ex.chart.properties(description=ex.alt_text, datasets=datasets)
                .configure_view(stroke=None).configure_legend(orient="top"))
    ex.seconds = time.perf_counter() - t0
    return ex


def _curve_scale(domain: Sequence[float] | None, log: bool = True) -> Any:
    kw: dict[str, Any] = {"type": "log"} if log else {}
    if domain is not None:
        kw["domain"] = [float(v) for v in domain]
        kw["clamp"] = True
    return _alt().Scale(**kw)


def _log_domain(*arrays: np.ndarray, floor_ratio: float = 1e-16) -> tuple[float, float]:
    """A fixed log-axis range for every selection: from the smallest positive value
    (not below ``floor_ratio`` times the largest) to the largest."""
    v = np.concatenate([np.asarray(a, dtype=float).reshape(-1) for a in arrays])
    v = v[np.isfinite(v) & (v > 0)]
    hi = float(v.max())
    lo = max(float(v.min()), hi * floor_ratio)
    return _num(lo * 0.8), _num(hi * 1.25)


def _curves_layer(curves: Any, sel: Any, kernels: Sequence[str], *, y: str, title: str,
                  domain: Sequence[float] | None, band: tuple[str, str] | None = None,
                  width: int = 280, height: int = 200) -> Any:
    """Lines (one per kernel) of ``y`` against the step, for the selected grid point."""
    alt = _alt()
    cols = ["t", y, *(band or ())]
    base = (alt.Chart(curves).transform_filter(sel).transform_flatten(cols)
            .transform_calculate(v=f"datum['{y}']"))
    scale = _curve_scale(domain)
    ycol = alt.Y("v:Q", title=title, scale=scale)
    color = alt.Color("kernel:N", scale=_color_scale(kernels), title="kernel")
    line = base.mark_line(strokeWidth=2).encode(
        x=alt.X("t:Q", title="step"), y=ycol, color=color,
        tooltip=[alt.Tooltip("kernel:N"), alt.Tooltip("t:Q", title="step"),
                 alt.Tooltip("v:Q", title=title, format=".3g")])
    layers = [line]
    if band is not None:
        lo, hi = band
        area = base.transform_filter(f"isValid(datum['{lo}']) && isValid(datum['{hi}'])"
                                     ).mark_area(opacity=0.2).encode(
            x="t:Q", y=alt.Y(f"{lo}:Q", scale=scale), y2=f"{hi}:Q", color=color)
        layers.insert(0, area)
    return alt.layer(*layers).properties(width=width, height=height, title=title)


def _label_row(points: Any, sel: Any, width: int = 560) -> Any:
    """A text line that states the selected grid point and its key numbers."""
    alt = _alt()
    return (alt.Chart(points).transform_filter(sel).transform_aggregate(
        label="min(label)").mark_text(align="left", baseline="top", fontSize=12, x=0, y=0,
                                      lineBreak="\n")
        .encode(text="label:N").properties(width=width, height=34))


# ----------------------------------------------------------------------------- training_wv
WV_CONFIG = dy.C1.replace(steps=pick(full=2000, fast=300), log_every=1)
WV_RATIOS = tuple(float(v) for v in np.arange(-2.0, 2.01, 0.5))  # log2(H D / N n)


def training_wv(config: dy.RunConfig = WV_CONFIG, log2_ratios: Sequence[float] = WV_RATIOS,
                *, kernels: str | Sequence[str] = KERNELS, points: int = POINTS
                ) -> Explorable:
    """W_V-only gradient descent for embedding dimensions across H D = N n, every kernel.

    ``log2_ratios``: values of ``log2(H D / N n)`` on a grid of step 0.5 (the slider);
    ``D = round(N n / H * 2^x)``. Each kernel is one :func:`dy.threshold_sweep` (one batched
    engine call): the loss, the least-squares floor and sigma_min(C) of every D.
    """
    alt = _alt()
    t0 = time.perf_counter()
    dy.check_config(config)
    kernels = expand_kernels(kernels, "kernels")
    xs = tuple(float(x) for x in log2_ratios)
    if not xs or any((2 * x) % 1 for x in xs):
        raise ValueError("log2_ratios must be a non-empty sequence of multiples of 0.5")
    Nn, H = config.N * config.n, config.H
    Ds = [max(1, int(round(config.threshold_D * 2.0**x))) for x in xs]
    if len(set(Ds)) != len(Ds):
        raise ValueError(f"log2_ratios give repeated dimensions D = {Ds}")
    sweeps = {k: dy.threshold_sweep(config.replace(kernel=k), Ds) for k in kernels}
    idx = sample_steps(len(sweeps[kernels[0]].steps), points)
    steps = sweeps[kernels[0]].steps[idx]
    curves, table = [], []
    for j, (x, D) in enumerate(zip(xs, Ds, strict=True)):
        parts = []
        for k in kernels:
            sw = sweeps[k]
            curves.append({"x": x, "kernel": _disp(k), "t": steps.tolist(),
                           "f": _nums(sw.loss[j, idx]), "floor": _num(sw.floor[j])})
            table.append({"x": x, "kernel": _disp(k), "smin": _num(sw.sigma_min[j]),
                          "floor": _num(sw.floor[j])})
            parts.append(f"{_disp(k)} floor {sw.floor[j]:.2g}, sigma_min {sw.sigma_min[j]:.2g}")
        for row in table[-len(kernels):]:
            row["label"] = (f"D = {D}, HD/Nn = {H * D / Nn:.3g}:\n" + "; ".join(parts))
    default = {"x": 0.0 if 0.0 in xs else xs[len(xs) // 2]}
    sel = alt.selection_point(
        name="pick", fields=["x"], value=[default], on="click", clear=False,
        bind=alt.binding_range(min=min(xs), max=max(xs), step=0.5,
                               name="log2(H D / N n), 0 = threshold: "))
    cdata, tdata = alt.Data(name="curves"), alt.Data(name="table")
    all_f = np.concatenate([sweeps[k].loss[:, idx] for k in kernels])
    loss = _curves_layer(cdata, sel, kernels, y="f", title="loss f", domain=_log_domain(all_f))
    floor = (alt.Chart(cdata).transform_filter(sel)
             .transform_filter(f"datum.floor > {_log_domain(all_f)[0]}")
             .mark_rule(strokeDash=[5, 4]).encode(
                 y=alt.Y("floor:Q", scale=alt.Scale(type="log")),
                 color=alt.Color("kernel:N", scale=_color_scale(kernels), legend=None)))
    smin = _overview(tdata, sel, kernels, x="x", y="smin", xtitle="log2(H D / N n)",
                     ytitle="sigma_min(C) at init")
    chart = alt.vconcat(_label_row(tdata, sel), alt.hconcat(alt.layer(loss, floor), smin))
    ex = Explorable(
        "training_wv", chart,
        caption=(f"W_V alone, lr = 1/sigma_max(C)^2, N n = {Nn}, H = {H}, seed "
                 f"{config.seed}, {config.steps} steps. Move the slider (or click a point on "
                 "the right) to change D; dashed: the least-squares floor, which the loss "
                 "cannot pass. Below the threshold (negative values) the floor is positive; "
                 "above it there is no floor and the loss keeps falling, at a rate set by "
                 "sigma_min(C), which is smallest at the threshold."),
        alt_text=("Left: loss against step for Softmax and Gaussian attention at the selected "
                  "embedding dimension, with dashed least-squares floors. Right: sigma_min of "
                  "the feature matrix against log2(HD/Nn) for both kernels, lowest at the "
                  "threshold. A slider selects log2(HD/Nn) from "
                  f"{min(xs):g} to {max(xs):g}."),
        axes={"kernel": kernels, "D": tuple(Ds), "x": xs}, default=default,
        data={"sweeps": sweeps, "Ds": Ds, "steps": steps, "index": idx, "config": config},
        draw=_draw_wv,
    )
    return _finish(ex, t0, {"curves": curves, "table": table})


def _overview(data: Any, sel: Any, kernels: Sequence[str], *, x: str, y: str, xtitle: str,
              ytitle: str, ylog: bool = True, xlog: bool = False, width: int = 200,
              height: int = 200, extra: Sequence[Any] = (), select: bool = True) -> Any:
    """A value per grid point against the slider axis, both kernels; the selected point is
    marked by a rule and points are clickable (the selection ``sel`` lives here)."""
    alt = _alt()
    color = alt.Color("kernel:N", scale=_color_scale(kernels), title="kernel")
    xs = alt.X(f"{x}:Q", title=xtitle, scale=alt.Scale(type="log" if xlog else "linear",
                                                       zero=False))
    ys = alt.Y(f"{y}:Q", title=ytitle, scale=alt.Scale(type="log" if ylog else "linear"))
    base = alt.Chart(data)
    line = base.mark_line(point=False).encode(x=xs, y=ys, color=color)
    pts = base.mark_point(filled=True, size=60, cursor="pointer").encode(
        x=xs, y=ys, color=color,
        tooltip=[alt.Tooltip("kernel:N"), alt.Tooltip(f"{x}:Q", title=xtitle),
                 alt.Tooltip(f"{y}:Q", title=ytitle, format=".3g")])
    if select:
        pts = pts.add_params(sel)
    rule = base.transform_filter(sel).mark_rule(color="black", strokeDash=[2, 2]).encode(
        x=f"{x}:Q")
    return alt.layer(line, pts, rule, *extra).properties(width=width, height=height,
                                                          title=ytitle)


def _draw_wv(ex: Explorable) -> Any:
    import matplotlib.pyplot as plt

    d, x0 = ex.data, ex.default["x"]
    j = ex.axes["x"].index(x0)
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6), constrained_layout=True)
    for k in ex.axes["kernel"]:
        sw, c = d["sweeps"][k], KERNEL_TABLE[k].color
        a.semilogy(sw.steps, sw.loss[j], color=c, label=_disp(k))
        if sw.floor[j] > 1e-20 * sw.loss[j, 0]:
            a.axhline(sw.floor[j], color=c, ls="--", lw=1)
        b.semilogy(ex.axes["x"], sw.sigma_min, "o-", color=c, label=_disp(k))
    b.axvline(x0, color="k", ls=":")
    a.set(xlabel="step", ylabel="loss f", title=f"D = {d['Ds'][j]} (dashed: floor)")
    b.set(xlabel="log2(H D / N n)", ylabel="sigma_min(C) at init", title="sigma_min(C)")
    a.legend()
    return fig


# ----------------------------------------------------------------------------- init_scale
INIT_CONFIG = dy.C4.replace(train=("W_V",), lr=None, steps=pick(full=2000, fast=300),
                            log_every=1, track_sigma_min=False)
INIT_LOG10 = tuple(float(v) for v in np.arange(-1.5, 0.51, 0.25))  # log10 s


def init_scale(config: dy.RunConfig = INIT_CONFIG, log10_scales: Sequence[float] = INIT_LOG10,
               *, kernels: str | Sequence[str] = KERNELS, points: int = POINTS
               ) -> Explorable:
    """W_V-only training from init scales ``s = 10^u`` (``u`` on a grid of step 0.25, the
    slider), every kernel: one :func:`dy.sweep` (one engine call) for the loss curves, and
    :func:`dy.sigma_min_vs_scale` (no training) for sigma_min(C) and the row entropy of the
    attention at initialization (constant during W_V-only training)."""
    alt = _alt()
    t0 = time.perf_counter()
    dy.check_config(config)
    kernels = expand_kernels(kernels, "kernels")
    us = tuple(float(u) for u in log10_scales)
    if not us or any((4 * u) % 1 for u in us):
        raise ValueError("log10_scales must be a non-empty sequence of multiples of 0.25")
    scales = [10.0**u for u in us]
    res = dy.sweep(config, [config.seed], kernel=kernels, init_scale=scales)
    stats = {k: dy.sigma_min_vs_scale(config.replace(kernel=k), scales, seeds=[config.seed])
             for k in kernels}
    idx = sample_steps(len(res.steps), points)
    steps = res.steps[idx]
    log_n = float(np.log(config.n))
    curves, table = [], []
    for i, u in enumerate(us):
        parts = []
        for ki, k in enumerate(kernels):
            st = stats[k]
            curves.append({"u": u, "kernel": _disp(k), "t": steps.tolist(),
                           "f": _nums(res.loss[ki, i, 0, idx])})
            table.append({"u": u, "kernel": _disp(k), "smin": _num(st.sigma_min[i, 0]),
                          "ent": _num(st.entropy[i, 0] / log_n)})
            parts.append(f"{_disp(k)} sigma_min {st.sigma_min[i, 0]:.2g}, entropy "
                         f"{st.entropy[i, 0] / log_n:.2f} log n")
        for row in table[-len(kernels):]:
            row["label"] = f"s = {scales[i]:.3g}:\n" + "; ".join(parts)
    # default: the scale where sigma_min(C) of the first kernel is largest (computed)
    default = {"u": us[int(np.argmax(stats[kernels[0]].sigma_min[:, 0]))]}
    sel = alt.selection_point(
        name="pick", fields=["u"], value=[default], on="click", clear=False,
        bind=alt.binding_range(min=min(us), max=max(us), step=0.25, name="log10 s: "))
    cdata, tdata = alt.Data(name="curves"), alt.Data(name="table")
    all_f = res.loss[..., idx]
    loss = _curves_layer(cdata, sel, kernels, y="f", title="loss f", domain=_log_domain(all_f),
                         width=500, height=180)
    smin = _overview(tdata, sel, kernels, x="u", y="smin", xtitle="log10 s",
                     ytitle="sigma_min(C) at init", width=210, height=170)
    ent = _overview(tdata, sel, kernels, x="u", y="ent", xtitle="log10 s",
                    ytitle="row entropy / log n", ylog=False, width=210, height=170,
                    select=False)
    chart = alt.vconcat(_label_row(tdata, sel), loss, alt.hconcat(smin, ent))
    ex = Explorable(
        "init_scale", chart,
        caption=(f"W_V alone from W_Q, W_K ~ N(0, s^2), lr = 1/sigma_max(C)^2, N = {config.N}, "
                 f"n = {config.n}, D = {config.D}, H = {config.H}, seed {config.seed}. Move "
                 "the slider (or click a point) to change s. At small s the attention is "
                 "uniform (entropy log n), at large s Softmax rows turn one-hot and Gaussian "
                 "rows vanish; at both ends sigma_min(C) collapses and the loss stalls."),
        alt_text=("Three panels. Left: loss against step for Softmax and Gaussian attention at "
                  "the selected initialization scale. Middle: sigma_min of the feature matrix "
                  "against log10 s, largest at moderate s. Right: mean row entropy of the "
                  "attention divided by log n against log10 s, falling from 1 as s grows. A "
                  f"slider selects log10 s from {min(us):g} to {max(us):g}."),
        axes={"kernel": kernels, "init_scale": tuple(scales), "u": us}, default=default,
        data={"sweep": res, "stats": stats, "steps": steps, "index": idx, "config": config},
        draw=_draw_init,
    )
    return _finish(ex, t0, {"curves": curves, "table": table})


def _draw_init(ex: Explorable) -> Any:
    import matplotlib.pyplot as plt

    d, u0 = ex.data, ex.default["u"]
    i = ex.axes["u"].index(u0)
    res, us = d["sweep"], ex.axes["u"]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4), constrained_layout=True)
    log_n = np.log(d["config"].n)
    for ki, k in enumerate(ex.axes["kernel"]):
        c, st = KERNEL_TABLE[k].color, d["stats"][k]
        axes[0].semilogy(res.steps, res.loss[ki, i, 0], color=c, label=_disp(k))
        axes[1].semilogy(us, st.sigma_min[:, 0], "o-", color=c)
        axes[2].plot(us, st.entropy[:, 0] / log_n, "o-", color=c)
    for ax in axes[1:]:
        ax.axvline(u0, color="k", ls=":")
        ax.set_xlabel("log10 s")
    axes[0].set(xlabel="step", ylabel="loss f", title=f"s = {ex.axes['init_scale'][i]:.3g}")
    axes[1].set(ylabel="sigma_min(C) at init", title="sigma_min(C)")
    axes[2].set(ylabel="row entropy / log n", title="row entropy")
    axes[0].legend()
    return fig


# ----------------------------------------------------------------------------- training_wq
WQ_CONFIG = dy.C7.replace(steps=pick(full=200, fast=60), log_every=1)
WQ_RULES = {"fixed": {"lr": 0.5, "lr_rule": "fixed"},
            "curvature": {"lr": 1.0, "lr_rule": "curvature"}}
WQ_LOG2_SCALES = (-2.0, -1.0, 0.0, 1.0)  # log2 s
WQ_DIMS = (8, 16, 32, 64)
CONVERGED = 1e-8  # f_T / f_0 below this counts as converged


def training_wq(config: dy.RunConfig = WQ_CONFIG, *,
                log2_scales: Sequence[float] = WQ_LOG2_SCALES, dims: Sequence[int] = WQ_DIMS,
                rules: dict[str, dict[str, Any]] | None = None,
                kernels: str | Sequence[str] = KERNELS,
                seeds: Sequence[int] | range | None = None, points: int = POINTS
                ) -> Explorable:
    """W_Q-only training toward a same-kernel teacher (C7) over init scale ``2^v`` x D x
    kernel x step rule, ``seeds`` per setting (default 32, 8 in fast mode): per setting the
    median loss and PL ratio over the seeds with a 25-75 % band, and how many seeds reach
    ``f_T / f_0 < 1e-8`` (Wilson 95 % interval). One :func:`dy.sweep` per step rule.

    ``rules``: name -> RunConfig changes; default ``fixed`` (lr 0.5 for every run, the naive
    shared step) and ``curvature`` (lr = 1 / lambda_max(J_0 J_0^T) per run).
    """
    from .stats import count

    alt = _alt()
    t0 = time.perf_counter()
    dy.check_config(config)
    kernels = expand_kernels(kernels, "kernels")
    rules = dict(WQ_RULES if rules is None else rules)
    seeds = list(range(pick(full=32, fast=8)) if seeds is None else seeds)
    vs = tuple(float(v) for v in log2_scales)
    if not vs or any(v % 1 for v in vs):
        raise ValueError("log2_scales must be a non-empty sequence of integers")
    Ds = tuple(check_int("dims", D, min=1) for D in dims)
    scales = [2.0**v for v in vs]
    Nn, H = config.N * config.n, config.H
    results = {name: dy.sweep(config.replace(**ch), seeds, kernel=kernels, init_scale=scales,
                              D=list(Ds)) for name, ch in rules.items()}
    r0 = next(iter(results.values()))
    idx = sample_steps(len(r0.steps), points)
    steps = r0.steps[idx]
    curves, table = [], []
    for (rule, res), (i, v), (j, D) in itertools.product(
            results.items(), enumerate(vs), enumerate(Ds)):
        parts = []
        for ki, k in enumerate(kernels):
            rec = {"v": v, "D": D, "rule": rule, "kernel": _disp(k), "t": steps.tolist()}
            for key, arr in (("f", res.loss), ("p", res.pl_ratio)):
                lo, med, hi = _quartiles(arr[ki, i, j][:, idx])
                rec.update({key: _nums(med), key + "lo": _nums(lo), key + "hi": _nums(hi)})
            curves.append(rec)
            ok = ~res.diverged[ki, i, j] & (res.ratio[ki, i, j] < CONVERGED)
            c = count(ok)
            parts.append(f"{_disp(k)} {c.k}/{c.n} (95% CI {c.lo:.2f}-{c.hi:.2f})")
        table.append({"v": v, "D": D, "rule": rule,
                      "label": f"s = {2.0**v:g}, D = {D} (HD/Nn = {H * D / Nn:g}), {rule} "
                               f"step; seeds with f_T/f_0 < {CONVERGED:g}:\n" + ", ".join(parts)})
    names = tuple(rules)
    default = {"v": vs[min(1, len(vs) - 1)], "D": Ds[-2] if len(Ds) > 1 else Ds[0],
               "rule": names[-1]}
    sel = alt.selection_point(
        name="pick", fields=["v", "D", "rule"], value=[default], clear=False, bind={
            "v": alt.binding_range(min=min(vs), max=max(vs), step=1, name="log2 s: "),
            "D": alt.binding_select(options=list(Ds), name="D: ",
                                    labels=[f"{D} (HD/Nn = {H * D / Nn:g})" for D in Ds]),
            "rule": alt.binding_radio(options=list(names), name="step rule: ",
                                      labels=[_rule_label(rules[n]) for n in names])})
    cdata, tdata = alt.Data(name="curves"), alt.Data(name="table")
    all_f = np.concatenate([r.loss[..., idx].reshape(-1) for r in results.values()])
    all_p = np.concatenate([r.pl_ratio[..., idx].reshape(-1) for r in results.values()])
    loss = _curves_layer(cdata, sel, kernels, y="f", title="loss f (median, 25-75 %)",
                         domain=_log_domain(all_f, floor_ratio=1e-20), band=("flo", "fhi"),
                         width=230)
    pl = _curves_layer(cdata, sel, kernels, y="p", title="PL ratio |grad f|^2 / f (median)",
                       domain=_log_domain(all_p, floor_ratio=1e-12), band=("plo", "phi"),
                       width=230)
    chart = alt.vconcat(_label_row(tdata, sel),
                        alt.hconcat(loss.add_params(sel), pl))
    rule_text = "; ".join(f"{n}: {_rule_label(rules[n])}" for n in names)
    ex = Explorable(
        "training_wq", chart,
        caption=(f"W_Q alone toward a same-kernel teacher (delta = {config.delta:g}), N = "
                 f"{config.N}, n = {config.n}, H = {H}, value scale {config.value_scale:g}, "
                 f"{config.steps} steps, seeds {seeds[0]}-{seeds[-1]} ({len(seeds)} per "
                 f"setting). Lines: median over the seeds; bands: 25-75 % quantiles. Step "
                 f"rules: {rule_text}. Choose the init scale, D and the step rule; the line "
                 "above the plots counts the seeds that converge."),
        alt_text=("Two panels: the median loss and the median PL ratio against step, with "
                  "quartile bands, for Softmax and Gaussian attention trained in W_Q toward "
                  "a teacher. Controls: a slider for log2 of the init scale, a menu for the "
                  "embedding dimension D and radio buttons for the step rule; a text line "
                  "gives the number of converged seeds with a 95 % interval."),
        axes={"kernel": kernels, "init_scale": tuple(scales), "v": vs, "D": Ds,
              "rule": names, "seed": tuple(seeds)}, default=default,
        data={"sweeps": results, "steps": steps, "index": idx, "config": config,
              "rules": rules},
        draw=_draw_wq,
    )
    return _finish(ex, t0, {"curves": curves, "table": table})


def _rule_label(changes: dict[str, Any]) -> str:
    if changes.get("lr_rule", "fixed") == "curvature":
        return f"lr = {changes.get('lr', 1.0):g} / lambda_max(J0 J0^T)"
    return f"fixed lr = {changes.get('lr')}"


def _quartiles(a: np.ndarray) -> np.ndarray:
    """25 %, 50 %, 75 % quantiles over the seeds (axis 0); a diverged run (NaN) counts as
    +inf, so a quantile that reaches into the diverged runs is infinite (null in the page)."""
    a = np.where(np.isnan(a), np.inf, a)
    with np.errstate(invalid="ignore"):
        return np.quantile(a, [0.25, 0.5, 0.75], axis=0)


def _draw_wq(ex: Explorable) -> Any:
    import matplotlib.pyplot as plt

    d, sel = ex.data, ex.default
    res = d["sweeps"][sel["rule"]]
    i, j = ex.axes["v"].index(sel["v"]), ex.axes["D"].index(sel["D"])
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), constrained_layout=True)
    for ki, k in enumerate(ex.axes["kernel"]):
        c = KERNEL_TABLE[k].color
        for ax, arr in zip(axes, (res.loss, res.pl_ratio), strict=True):
            lo, med, hi = _quartiles(arr[ki, i, j])
            ax.fill_between(res.steps, lo, hi, color=c, alpha=0.2, lw=0)
            ax.semilogy(res.steps, med, color=c, label=_disp(k))
    axes[0].set(xlabel="step", ylabel="loss f", title=(
        f"s = {2.0**sel['v']:g}, D = {sel['D']}, {sel['rule']} step: median, 25-75 %"))
    axes[1].set(xlabel="step", ylabel="PL ratio", title="PL ratio |grad f|^2 / f")
    axes[0].legend()
    return fig


# ----------------------------------------------------------------------------- sparsity
SPARSITY_LOG10 = tuple(float(v) for v in np.arange(-3.5, 0.001, 0.125))  # log10(beta/b_max)


def sparsity(X: Any, y: Any, *, log10_ratios: Sequence[float] = SPARSITY_LOG10,
             planted: Sequence[int] = (), tol: float = 1e-12) -> Explorable:
    """The token group lasso along its regularization path (Part I).

    ``beta = beta_max * 10^w`` for ``w`` on a grid of step 0.125 (the slider, 29 values by
    default); one :func:`convex.regularization_path` (warm-started, relative duality gap
    ``tol``). Per beta: the row norms ``||z_k||`` and which tokens are active, the attention
    of the heads recovered from Z (:func:`convex.recover_heads`: one head per active token,
    ``w = e_k``), and the certified relative duality gap. ``planted``: tokens to mark.

    Args: X ``(N, n, d)``, y ``(N,)``.
    """
    alt = _alt()
    t0 = time.perf_counter()
    ws = tuple(float(w) for w in log10_ratios)
    if not ws or any((8 * w) % 1 for w in ws) or max(ws) > 0:
        raise ValueError("log10_ratios must be a non-empty sequence of multiples of 0.125, "
                         "all <= 0")
    X, y = np.asarray(X, dtype=float), np.asarray(y, dtype=float)
    n = X.shape[1]
    planted = [check_int("planted", k, min=0, max=n - 1) for k in planted]
    bmax = float(convex.beta_max(X, y))
    betas = [bmax * 10.0**w for w in ws]
    path = convex.regularization_path(X, y, betas, tol=tol)
    tok = [f"{k} (planted)" if k in planted else str(k) for k in range(n)]
    tokens, heads, table = [], [], []
    for w, r in zip(ws, path, strict=True):
        norms = np.linalg.norm(r.Z, axis=1)
        act = set(r.active.tolist())
        for k in range(n):
            tokens.append({"w": w, "token": tok[k], "norm": _num(norms[k]),
                           "cert": _num(r.certificate[k] / r.beta),
                           "state": "active" if k in act else "inactive"})
        hw, _, _ = convex.recover_heads(r.Z)
        for h, row in enumerate(np.asarray(hw)):
            heads.append({"w": w, "head": f"head {h + 1}", "token": tok, "a": _nums(row)})
        table.append({"w": w, "n_active": len(act), "gap": _num(r.rel_gap), "label": (
            f"beta = {10.0**w:.3g} beta_max:\n{len(act)} active token(s) "
            f"{sorted(act)}, {len(act)} recovered head(s), relative duality gap "
            f"{r.rel_gap:.1e}, objective {r.primal:.4g}")})
    default = {"w": min(ws, key=lambda v: abs(v + 1.0))}  # beta = 0.1 beta_max
    sel = alt.selection_point(
        name="pick", fields=["w"], value=[default], on="click", clear=False,
        bind=alt.binding_range(min=min(ws), max=max(ws), step=0.125,
                               name="log10(beta / beta_max): "))
    tdata, kdata, hdata = alt.Data(name="table"), alt.Data(name="tokens"), alt.Data(name="heads")
    xw = alt.X("w:Q", title="log10(beta / beta_max)")
    order = alt.Sort(tok)
    bars = (alt.Chart(kdata).transform_filter(sel).mark_bar().encode(
        x=alt.X("token:N", sort=order, title="token k"),
        y=alt.Y("norm:Q", title="row norm ||z_k||"),
        color=alt.Color("state:N", scale=alt.Scale(domain=["active", "inactive"],
                                                   range=["#1f77b4", "#c7c7c7"])),
        tooltip=["token:N", "state:N", alt.Tooltip("norm:Q", format=".3g"),
                 alt.Tooltip("cert:Q", title="certificate c_k / beta", format=".4f")])
        .properties(width=220, height=180, title="Active tokens: row norms of Z"))
    heat = (alt.Chart(hdata).transform_filter(sel).transform_flatten(["token", "a"])
            .mark_rect().encode(
                x=alt.X("token:N", sort=order, title="token k"),
                y=alt.Y("head:N", title="recovered head"),
                color=alt.Color("a:Q", title="attention", scale=alt.Scale(
                    domain=[0, 1], scheme="greys")),
                tooltip=["head:N", "token:N", alt.Tooltip("a:Q", title="attention")])
            .properties(width=220, height=180,
                        title="Attention of the recovered heads (w = e_k)"))
    base = alt.Chart(tdata)
    rule = base.transform_filter(sel).mark_rule(color="black", strokeDash=[2, 2]).encode(
        x="w:Q")
    count_ = alt.layer(base.mark_line(interpolate="step").encode(x=xw, y=alt.Y(
        "n_active:Q", title="active tokens")), base.mark_point(
        filled=True, cursor="pointer").encode(x=xw, y="n_active:Q", tooltip=[
            "label:N"]).add_params(sel), rule).properties(
        width=220, height=150, title="Number of active tokens along the path")
    gap = alt.layer(base.transform_filter("datum.gap > 0").mark_line(point=True).encode(
        x=xw, y=alt.Y("gap:Q", scale=alt.Scale(type="log"), title="relative duality gap")),
        rule).properties(width=220, height=150, title="Certified relative duality gap")
    chart = alt.vconcat(_label_row(tdata, sel), alt.hconcat(bars, heat),
                        alt.hconcat(count_, gap))
    N, _, d = X.shape
    ex = Explorable(
        "sparsity", chart,
        caption=(f"The token group lasso on N = {N} sequences of n = {n} tokens (d = {d}) "
                 f"along its regularization path, {len(ws)} values of beta from "
                 f"10^{min(ws):g} beta_max to 10^{max(ws):g} beta_max, each solved to a "
                 f"relative duality gap below {tol:g}. Move the slider or click a point on "
                 "the path. Tokens drop out as beta grows; each recovered head attends to "
                 "exactly one active token."),
        alt_text=("Four panels for the selected regularization strength beta: a bar chart of "
                  "the row norms of Z per token, coloured active or inactive; a heatmap of "
                  "the attention of the recovered heads over the tokens, one-hot rows; the "
                  "number of active tokens against log10(beta / beta_max), falling to zero; "
                  "and the certified relative duality gap along the path. A slider selects "
                  "log10(beta / beta_max)."),
        axes={"w": ws, "beta": tuple(betas)}, default=default,
        data={"path": path, "X": X, "y": y, "betas": betas, "beta_max": bmax, "tol": tol,
              "planted": planted},
        draw=_draw_sparsity,
    )
    return _finish(ex, t0, {"table": table, "tokens": tokens, "heads": heads})


def _draw_sparsity(ex: Explorable) -> Any:
    import matplotlib.pyplot as plt

    d, w0 = ex.data, ex.default["w"]
    j = ex.axes["w"].index(w0)
    r = d["path"][j]
    n = r.Z.shape[0]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4), constrained_layout=True)
    norms = np.linalg.norm(r.Z, axis=1)
    act = np.isin(np.arange(n), r.active)
    axes[0].bar(np.arange(n), norms, color=np.where(act, "#1f77b4", "#c7c7c7"))
    axes[0].set(xlabel="token k", ylabel="||z_k||",
                title=f"beta = {10.0**w0:.3g} beta_max: {act.sum()} active")
    hw, _, _ = convex.recover_heads(r.Z)
    hw = np.asarray(hw)
    axes[1].imshow(hw if hw.size else np.zeros((1, n)), cmap="Greys", vmin=0, vmax=1,
                   aspect="auto")
    axes[1].set(xlabel="token k", ylabel="recovered head", title="Attention of the heads")
    axes[1].set_xticks(range(n))
    axes[1].set_yticks(range(max(1, len(hw))))
    gaps = np.array([p.rel_gap for p in d["path"]])
    ok = gaps > 0
    axes[2].semilogy(np.asarray(ex.axes["w"])[ok], gaps[ok], "o-")
    axes[2].axvline(w0, color="k", ls=":")
    axes[2].set(xlabel="log10(beta / beta_max)", ylabel="relative duality gap",
                title="Certified duality gap")
    return fig


# ----------------------------------------------------------------------------- playground
def playground(config: dy.RunConfig | None = None, *,
               init_scales: Sequence[float] | None = None, dims: Sequence[int] | None = None,
               kernels: str | Sequence[str] = KERNELS, points: int = POINTS) -> Explorable:
    """The playground's phase diagram (``log10(f_T / f_0)`` over init scale x D, one
    heatmap per kernel) with every cell's loss curve: hovering over or clicking a cell, or
    choosing it in the two menus, shows its curves.

    Same cells as :func:`dy.phase_diagram` (same defaults, same batching: one engine call
    per kernel), trained by :func:`dy.sweep` with the losses logged along the way.
    """
    alt = _alt()
    t0 = time.perf_counter()
    cfg = config or dy.default_phase_config()
    dy.check_config(cfg)
    scales = [float(s) for s in (np.logspace(-1, 1, pick(full=8, fast=4))
                                 if init_scales is None else init_scales)]
    Ds = [int(v) for v in (dy.default_dims(cfg.N, cfg.n, cfg.H, pick(full=8, fast=4))
                           if dims is None else dims)]
    kernels = expand_kernels(kernels, "kernels")
    run = cfg.replace(track_sigma_min=False, kernel=KERNELS[0],
                      log_every=max(1, cfg.steps // 200))
    res = dy.sweep(run, [cfg.seed], batch_by=dy.BATCHING["kernel"], kernel=kernels, D=Ds,
                   init_scale=scales)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.log10(res.final_loss[..., 0] / res.loss[..., 0, 0])  # (kernel, D, scale)
    ratio[~np.isfinite(ratio)] = np.nan
    idx = sample_steps(len(res.steps), points)
    steps = res.steps[idx]
    cells, curves = [], []
    s_lab = [f"{s:.3g}" for s in scales]
    star = cfg.threshold_D
    for (ki, k), (j, D), (i, _) in itertools.product(
            enumerate(kernels), enumerate(Ds), enumerate(scales)):
        cells.append({"kernel": _disp(k), "i": i, "j": j, "s": s_lab[i], "D": D,
                      "r": _num(ratio[ki, j, i]), "side": "HD >= Nn" if D >= star else
                      "HD < Nn"})
        curves.append({"kernel": _disp(k), "i": i, "j": j, "t": steps.tolist(),
                       "f": _nums(res.loss[ki, j, i, 0, idx])})
    table = [{"i": i, "j": j, "label": f"s = {s_lab[i]}, D = {D} (HD/Nn = "
              f"{D / star:.3g}):\nlog10(f_T/f_0) = " + ", ".join(
                  f"{_disp(k)} {ratio[ki, j, i]:.2f}" for ki, k in enumerate(kernels))}
             for (i, _), (j, D) in itertools.product(enumerate(scales), enumerate(Ds))]
    default = {"i": len(scales) // 2, "j": len(Ds) - 1}
    sel = alt.selection_point(
        name="pick", fields=["i", "j"], value=[default], on="click, pointerover",
        clear=False, nearest=False, bind={
            "i": alt.binding_select(options=list(range(len(scales))), labels=s_lab,
                                    name="init scale s: "),
            "j": alt.binding_select(options=list(range(len(Ds))), labels=[str(D) for D in Ds],
                                    name="D: ")})
    lo = float(np.nanmin(ratio)) if np.isfinite(ratio).any() else -1.0
    cdata, hdata, tdata = alt.Data(name="cells"), alt.Data(name="curves"), alt.Data(
        name="table")
    enc = {"x": alt.X("D:O", title=f"D (H D = N n at D = {star:g})"),
           "y": alt.Y("s:O", sort=s_lab[::-1], title="init scale s")}
    rect = alt.Chart().mark_rect(cursor="pointer").encode(
        **enc, color=alt.Color("r:Q", title="log10(f_T/f_0)", scale=alt.Scale(
            scheme="viridis", reverse=True, domain=[_num(min(lo, -1e-3)), 0.01], clamp=True)),
        stroke=alt.condition(sel, alt.value("black"), alt.value(None)),
        strokeWidth=alt.condition(sel, alt.value(3), alt.value(0)),
        tooltip=["kernel:N", "s:N", "D:O", alt.Tooltip("r:Q", title="log10(f_T/f_0)",
                                                        format=".2f"), "side:N"]
    ).add_params(sel)
    text = alt.Chart().mark_text(fontSize=9).encode(
        **enc, text=alt.Text("r:Q", format=".1f"),
        color=alt.condition(f"datum.r < {_num(lo / 2)}", alt.value("black"),
                            alt.value("white")))
    heat = alt.layer(rect, text, data=cdata).properties(width=210, height=200).facet(
        column=alt.Column("kernel:N", title=None, sort=[_disp(k) for k in kernels]))
    all_f = res.loss[..., idx]
    loss = _curves_layer(hdata, sel, kernels, y="f", title="loss f of the selected cell",
                         domain=_log_domain(all_f), width=460, height=180)
    chart = alt.vconcat(heat, _label_row(tdata, sel), loss)
    ex = Explorable(
        "playground", chart,
        caption=(f"Phase diagram: log10(f_T / f_0) after {cfg.steps} steps of training "
                 f"{'+'.join(cfg.train)} (lr = "
                 + ("1/sigma_max(C)^2" if cfg.lr is None else f"{cfg.lr:g}")
                 + f", {cfg.data} targets, N n = {cfg.N * cfg.n}, H = {cfg.H}, seed "
                 f"{cfg.seed}). Hover over or click a cell (or use the two menus) to see its "
                 "loss curves below, both kernels."),
        alt_text=("Two heatmaps, Softmax and Gaussian, of log10 of the final over the initial "
                  "loss against the embedding dimension D (columns) and the init scale s "
                  "(rows); the darker the cell, the larger the decrease of the loss. "
                  "Below, the loss curves of the selected cell for both kernels. Two menus "
                  "select the init scale and D."),
        axes={"kernel": kernels, "init_scale": tuple(scales), "D": tuple(Ds)},
        default=default,
        data={"sweep": res, "log_ratio": ratio, "steps": steps, "index": idx, "config": cfg},
        draw=_draw_playground,
    )
    return _finish(ex, t0, {"cells": cells, "curves": curves, "table": table})


def _draw_playground(ex: Explorable) -> Any:
    import matplotlib.pyplot as plt

    d, sel = ex.data, ex.default
    res, ratio = d["sweep"], d["log_ratio"]
    K = len(ex.axes["kernel"])
    fig, axes = plt.subplots(1, K + 1, figsize=(4.2 * (K + 1), 3.6), constrained_layout=True)
    finite = ratio[np.isfinite(ratio)]
    vmin = min(float(finite.min()) if finite.size else -1.0, -1e-3)
    for ki, k in enumerate(ex.axes["kernel"]):
        ax = axes[ki]
        ax.imshow(ratio[ki].T, origin="lower", aspect="auto", cmap="viridis_r", vmin=vmin,
                  vmax=0.01)
        ax.add_patch(plt.Rectangle((sel["j"] - 0.5, sel["i"] - 0.5), 1, 1, fill=False,
                                   ec="black", lw=2))
        ax.set_xticks(range(len(ex.axes["D"])), [str(D) for D in ex.axes["D"]])
        ax.set_yticks(range(len(ex.axes["init_scale"])),
                      [f"{s:.2g}" for s in ex.axes["init_scale"]])
        ax.set(xlabel="D", ylabel="init scale s", title=f"{_disp(k)}: log10(f_T/f_0)")
        axes[-1].semilogy(res.steps, res.loss[ki, sel["j"], sel["i"], 0],
                          color=KERNEL_TABLE[k].color, label=_disp(k))
    axes[-1].set(xlabel="step", ylabel="loss f", title=(
        f"cell s = {ex.axes['init_scale'][sel['i']]:.2g}, D = {ex.axes['D'][sel['j']]}"))
    axes[-1].legend()
    return fig
