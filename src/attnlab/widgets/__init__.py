"""Live training widgets: a training dashboard and a phase-diagram explorer.

Thin ipywidgets layers over :mod:`attnlab.dynamics` (which calls the engine's ``train``); no
training code lives here.

* :func:`dashboard` / :class:`Dashboard` (:mod:`.dashboard`): controls for init scale,
  embedding dimension D (threshold N n marked), kernel, trained matrices, learning rate,
  steps, seed, device and data, declared in one table (:data:`.dashboard.CONTROLS`);
  Train / Stop / Reset; a live plot (loss, PL ratio, sigma_min(C)), a ``tqdm.auto``
  progress bar and a one-line status.
* :func:`phase_explorer` / :class:`PhaseExplorer` (:mod:`.explorer`): the phase diagram
  over init scale x D, with a clickable grid of cells that replays a cell in a dashboard.
* :func:`svg_curves` (:mod:`.svg`): the dashboard's live figure as SVG.

Drawing. Each live redraw renders the three panels as a small SVG (about a millisecond; a
matplotlib figure costs ~100 ms, more than a whole default run's overhead budget) and
*replaces* the ``Output`` widget's outputs in one assignment: the effect of
``clear_output(wait=True)`` + ``display`` (no flicker) that is also safe from a worker
thread (``with out:`` is not) and is stored in the widget state of a static book build. No
ipympl. Redraws are throttled to at most ``1 / redraw_interval`` per second (and to 20 % of
the time if a redraw ever gets slow). The static figures of the book use matplotlib
(:func:`attnlab.dynamics.plot_history`, :func:`attnlab.dynamics.plot_phase`).

Note: the function :func:`dashboard` shadows the submodule of the same name as an attribute
of this package; reach the module through ``sys.modules["attnlab.widgets.dashboard"]`` or
``importlib.import_module``.
"""

from __future__ import annotations

from .dashboard import Dashboard, dashboard
from .explorer import PhaseExplorer, phase_explorer, plot_phase_figure  # noqa: F401
from .svg import svg_curves

__all__ = ["Dashboard", "PhaseExplorer", "dashboard", "phase_explorer", "svg_curves"]
