"""attnlab: helper package for the book *Optimization Theory of Transformers*.

Chapters import what they need from here; the public API is listed in ``__all__`` and
documented in the book's API appendix. Subpackages:

- ``attnlab.convex``: convex attention, the token group lasso and its solvers (Part I);
- ``attnlab.dynamics``: the experiments of Part II, one module per chapter, with one run
  configuration (``RunConfig``) and one sweep over seeds (``sweep``);
- ``attnlab.landscape``: loss landscapes along filter-normalized directions (Parts II, III);
- ``attnlab.stats``: counts with Wilson intervals, medians with quantiles;
- ``attnlab.data``: synthetic data and the real tasks (IMDB, Pathfinder, modular division);
- ``attnlab.experiments``: the papers' experiments on real tasks (Part III), loaded on use;
- ``attnlab.widgets``: live training dashboards (ipywidgets), loaded on use;
- ``attnlab.checks``: automatic checks and bulk grading for the course assignments, loaded
  on use.
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

from . import convex, data, dynamics, landscape, stats
from .book import fmt, glue, glue_all
from .config import fast_mode, pick
from .data import random_targets, random_tokens, teacher_targets
from .device import available_devices, get_device
from .dynamics import (
    RunConfig,
    plot_history,
    plot_phase,
    run_config,
)
from .kernels import (
    KERNELS,
    attention_matrix,
    feature_matrix,
    gaussian_kernel,
    layer_output,
    pl_lower_bound,
    row_stochastic,
    sigma_min,
    softmax_kernel,
    wq_gradient,
)
from .model import Params, forward, init_params, stack_params
from .seed import make_generator, seed_everything
from .train import History, train

try:  # the version lives in pyproject.toml only
    __version__ = version("attnlab")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

# Loaded on first use (PEP 562): ipywidgets, the Part III models and the grader are not
# needed by most chapters, and importing them up front would slow every `import attnlab`.
_LAZY_MODULES = ("checks", "experiments", "widgets")
_WIDGETS = ("Dashboard", "PhaseExplorer", "dashboard", "phase_explorer")


def __getattr__(name: str) -> object:
    if name in _LAZY_MODULES:
        return import_module(f".{name}", __name__)
    if name in _WIDGETS:
        return getattr(import_module(".widgets", __name__), name)
    raise AttributeError(f"module 'attnlab' has no attribute {name!r}")


__all__ = [
    "__version__",
    # book, devices, seeds, fast mode
    "available_devices",
    "fast_mode",
    "fmt",
    "get_device",
    "glue",
    "glue_all",
    "make_generator",
    "pick",
    "seed_everything",
    # engine: kernels, model, trainer, data
    "KERNELS",
    "History",
    "Params",
    "attention_matrix",
    "feature_matrix",
    "forward",
    "gaussian_kernel",
    "init_params",
    "layer_output",
    "pl_lower_bound",
    "random_targets",
    "random_tokens",
    "row_stochastic",
    "sigma_min",
    "softmax_kernel",
    "stack_params",
    "teacher_targets",
    "train",
    "wq_gradient",
    # one run of Part II and its figures (the playground and the widgets)
    "RunConfig",
    "plot_history",
    "plot_phase",
    "run_config",
    *_WIDGETS,
    # subpackages
    "checks",
    "convex",
    "data",
    "dynamics",
    "experiments",
    "landscape",
    "stats",
    "widgets",
]
