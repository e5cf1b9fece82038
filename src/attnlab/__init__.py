"""attnlab: helper package for the book *Optimization Theory of Transformers*.

Chapters import what they need from here; the public API is listed in ``__all__`` and
documented in the book's API appendix. Subpackages:

- ``attnlab.convex``: convex attention, the token group lasso and its solvers (Part I);
- ``attnlab.dynamics``, ``attnlab.landscape``: the experiments of Part II;
- ``attnlab.data``: synthetic data and the real tasks (IMDB, Pathfinder, modular division);
- ``attnlab.experiments``: the papers' experiments on real tasks (Part III), loaded on use;
- ``attnlab.widgets``: live training dashboards (ipywidgets), loaded on use;
- ``attnlab.checks``: automatic checks and bulk grading for the course assignments, loaded
  on use.
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

from . import convex, data, dynamics, landscape
from .book import fmt, glue
from .config import fast_mode, pick
from .convex import (
    ConvexFit,
    HeadsResult,
    beta_max,
    dual_certificate,
    dual_objective,
    head_objective,
    heads_to_Z,
    primal_objective,
    recover_heads,
    regularization_path,
    train_heads,
)
from .convex import fit as fit_convex
from .data import random_targets, random_tokens, teacher_targets
from .device import available_devices, get_device
from .dynamics import (
    PhaseResult,
    RunConfig,
    RunResult,
    SweepResult,
    block_grad_norms,
    conditioning_sweep,
    config_problems,
    curvature_lr,
    freeze_comparison,
    gaussian_trap_example,
    gradient_check,
    hull_barrier_example,
    joint_run,
    lstsq_floor,
    phase_diagram,
    pl_bound_along_trajectory,
    plot_history,
    plot_phase,
    rate_check,
    reachable_floor,
    reachable_interval,
    run_config,
    sigma_min_vs_scale,
    sweep,
    teacher_comparison,
    teacher_runs,
    teacher_vs_dim,
    threshold_sweep,
    two_stage,
    wq_jacobian,
    wq_run,
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
from .landscape import (
    LandscapeSlice,
    filter_normalize,
    landscape_slice,
    loss_grid,
    model_loss,
    perturb,
    random_direction,
)
from .model import PARAM_NAMES, Params, forward, init_params, stack_params
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
    "make_generator",
    "pick",
    "seed_everything",
    # engine: kernels, model, trainer, data
    "KERNELS",
    "PARAM_NAMES",
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
    # convex attention (Part I)
    "ConvexFit",
    "HeadsResult",
    "beta_max",
    "dual_certificate",
    "dual_objective",
    "fit_convex",
    "head_objective",
    "heads_to_Z",
    "primal_objective",
    "recover_heads",
    "regularization_path",
    "train_heads",
    # gradient dynamics and landscapes (Part II)
    "block_grad_norms",
    "conditioning_sweep",
    "curvature_lr",
    "freeze_comparison",
    "gaussian_trap_example",
    "gradient_check",
    "hull_barrier_example",
    "joint_run",
    "lstsq_floor",
    "pl_bound_along_trajectory",
    "rate_check",
    "reachable_floor",
    "reachable_interval",
    "sigma_min_vs_scale",
    "teacher_comparison",
    "teacher_runs",
    "teacher_vs_dim",
    "threshold_sweep",
    "two_stage",
    "wq_jacobian",
    "wq_run",
    "LandscapeSlice",
    "filter_normalize",
    "landscape_slice",
    "loss_grid",
    "model_loss",
    "perturb",
    "random_direction",
    # widgets and the functions under them
    "PhaseResult",
    "RunConfig",
    "RunResult",
    "config_problems",
    "phase_diagram",
    "plot_history",
    "plot_phase",
    "run_config",
    "SweepResult",
    "sweep",
    *_WIDGETS,
    # subpackages
    "checks",
    "convex",
    "data",
    "dynamics",
    "experiments",
    "landscape",
    "widgets",
]
