"""A tiny SVG chart kit for the live dashboard, and the helpers that put a figure into an
``Output`` widget.

Hand-written SVG instead of matplotlib because a live redraw must cost about a millisecond
(a three-panel matplotlib PNG costs ~100 ms, more than a whole default run's budget).
"""

from __future__ import annotations

import base64
import math

import ipywidgets as W
import numpy as np

from .._validate import check_int, check_real
from ..dynamics.plots import _check_series
from ..kernels import KERNEL_TABLE

__all__ = ["svg_curves"]


def _color(kernel: str) -> str:
    """The kernel's colour from the kernel table (black for a name outside it)."""
    spec = KERNEL_TABLE.get(kernel)
    return spec.color if spec is not None else "black"


def _nice_step(span: float, target: int = 5) -> float:
    """A 1-2-5 step giving about ``target`` ticks over ``span``."""
    raw = max(span, 1e-12) / target
    mag = 10.0 ** math.floor(math.log10(raw))
    return next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _svg_panel(x0: float, w: float, h: float, title: str, xmax: float,
               curves: list[tuple[str, np.ndarray, np.ndarray]], empty: str) -> list[str]:
    """One log-y panel: frame, decade grid, x ticks, one polyline per (color, x, y)."""
    L, R, T, B = x0 + 52, x0 + w - 10, 44, h - 32
    out = [f'<text x="{(L + R) / 2:.1f}" y="{T - 8}" text-anchor="middle" '
           f'font-size="13">{_esc(title)}</text>',
           f'<rect x="{L}" y="{T}" width="{R - L:.1f}" height="{B - T}" fill="none" '
           f'stroke="#888"/>']
    pos = [(c, x[(y > 0) & np.isfinite(y)], np.log10(y[(y > 0) & np.isfinite(y)]))
           for c, x, y in curves]
    pos = [p for p in pos if p[1].size]
    xstep = _nice_step(xmax)
    for t in np.arange(0, xmax + 0.5 * xstep, xstep):
        px = L + (R - L) * t / xmax
        out.append(f'<text x="{px:.1f}" y="{B + 15}" text-anchor="middle" font-size="11">'
                   f"{t:g}</text>")
    out.append(f'<text x="{(L + R) / 2:.1f}" y="{B + 28}" text-anchor="middle" '
               f'font-size="11">step</text>')
    if not pos:
        out.append(f'<text x="{(L + R) / 2:.1f}" y="{(T + B) / 2:.1f}" text-anchor="middle" '
                   f'font-size="12" fill="#888">{_esc(empty)}</text>')
        return out
    lo = math.floor(min(float(p[2].min()) for p in pos))
    hi = max(math.ceil(max(float(p[2].max()) for p in pos)), lo + 1)
    every = max(1, int(_nice_step(hi - lo, 5)))  # decades between ticks: 1, 2, 5, 10, ...
    lo, hi = every * math.floor(lo / every), every * math.ceil(hi / every)
    for k in range(lo, hi + 1, every):
        py = B - (B - T) * (k - lo) / (hi - lo)
        out.append(f'<line x1="{L}" x2="{R:.1f}" y1="{py:.1f}" y2="{py:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{L - 4}" y="{py + 4:.1f}" text-anchor="end" font-size="11">'
                   f'10<tspan dy="-5" font-size="8">{k}</tspan></text>')
    for color, x, ly in pos:
        stride = max(1, x.size // 300)  # at most ~300 points per curve
        idx = np.unique(np.r_[np.arange(0, x.size, stride), x.size - 1])
        px = L + (R - L) * np.minimum(x[idx], xmax) / xmax
        py = B - (B - T) * (ly[idx] - lo) / (hi - lo)
        pts = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(px, py, strict=True))
        out.append(f'<polyline points="{pts}" fill="none" stroke="{color}" '
                   f'stroke-width="1.8"/>')
    return out


_SVG_TITLES = {"loss": "loss f", "pl_ratio": "PL ratio ‖∇f‖² / (f − f*)",
               "sigma_min": "σ_min(C)"}


def svg_curves(series: dict[str, dict[str, np.ndarray]], title: str, xmax: float,
               width: int = 780, height: int = 240) -> str:
    """The dashboard's live figure as an SVG string: loss, PL ratio and sigma_min(C) per
    kernel on log scales over ``[0, xmax]`` steps.

    Hand-written SVG instead of matplotlib because a redraw must cost about a millisecond
    (a three-panel matplotlib PNG costs ~100 ms, more than a whole default run's budget).
    """
    _check_series(series, allow_empty=True)  # {} before the first logged step
    if not isinstance(title, str):
        raise TypeError(f"title must be a str, got {type(title).__name__}")
    xmax = check_real("xmax", xmax, min=0.0)
    width = check_int("width", width, min=60, max=10_000)
    height = check_int("height", height, min=60, max=10_000)
    pw = width / 3
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" font-family="sans-serif">',
             f'<rect width="{width}" height="{height}" fill="white"/>',
             f'<text x="6" y="16" font-size="13" font-weight="bold">{_esc(title)}</text>']
    for p, key in enumerate(("loss", "pl_ratio", "sigma_min")):
        curves = [(_color(k), s["steps"], np.asarray(s[key], dtype=float))
                  for k, s in series.items()]
        empty = "not tracked" if key == "sigma_min" and series and all(
            np.isnan(np.asarray(s[key], dtype=float)).all() for s in series.values()
        ) and any(len(s["steps"]) > 1 for s in series.values()) else "no data yet"
        parts += _svg_panel(p * pw, pw, height, _SVG_TITLES[key], max(float(xmax), 1.0),
                            curves, empty)
    if len(series) > 1:  # legend at the right end of the title line
        for m, k in enumerate(reversed(list(series))):
            x = width - 8 - 78 * (m + 1)
            parts.append(f'<line x1="{x}" x2="{x + 18}" y1="12" y2="12" '
                         f'stroke="{_color(k)}" stroke-width="2.5"/>')
            parts.append(f'<text x="{x + 22}" y="16" font-size="12">{k}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def _show(out: W.Output, mime: str, data: str, text: str) -> None:
    """Replace the outputs of ``out`` in one assignment (atomic; safe from a worker thread)."""
    out.outputs = ({"output_type": "display_data", "data": {mime: data, "text/plain": text},
                    "metadata": {}},)


def _show_png(out: W.Output, png: bytes, text: str) -> None:
    _show(out, "image/png", base64.b64encode(png).decode("ascii"), text)
