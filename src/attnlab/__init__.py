"""attnlab: helper package for the book *Optimization Theory of Transformers*.

Chapters import what they need from here; the public API is listed in ``__all__``
and documented in the book's API appendix.
"""

from importlib.metadata import PackageNotFoundError, version

from .book import fmt, glue
from .config import fast_mode, pick
from .device import available_devices, get_device
from .seed import make_generator, seed_everything

try:  # the version lives in pyproject.toml only
    __version__ = version("attnlab")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "__version__",
    "fmt",
    "glue",
    "available_devices",
    "fast_mode",
    "get_device",
    "make_generator",
    "pick",
    "seed_everything",
]

# --- engine ---
from .data import random_targets, random_tokens, teacher_targets
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
from .model import PARAM_NAMES, Params, forward, init_params, stack_params
from .train import History, train

__all__ += [
    "KERNELS", "PARAM_NAMES", "History", "Params", "attention_matrix", "feature_matrix",
    "forward", "gaussian_kernel", "init_params", "layer_output", "pl_lower_bound",
    "random_targets", "random_tokens", "row_stochastic", "sigma_min", "softmax_kernel",
    "stack_params", "teacher_targets", "train", "wq_gradient",
]
# --- end engine ---

# --- convex ---
from . import convex  # noqa: E402
from .convex import (  # noqa: E402
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
from .convex import fit as fit_convex  # noqa: E402

__all__ += [
    "convex",
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
]
# --- end convex ---

# --- dynamics ---
# --- end dynamics ---

# --- widgets ---
from .phase import (  # noqa: E402
    PhaseResult,
    RunConfig,
    RunResult,
    config_problems,
    phase_diagram,
    plot_history,
    plot_phase,
    run_config,
)

_WIDGETS = ("Dashboard", "PhaseExplorer", "dashboard", "phase_explorer")


def __getattr__(name: str) -> object:
    """PEP 562: the widgets (ipywidgets, matplotlib) load only when first used."""
    if name in _WIDGETS:
        from . import widgets

        return getattr(widgets, name)
    raise AttributeError(f"module 'attnlab' has no attribute {name!r}")


__all__ += [
    "PhaseResult", "RunConfig", "RunResult", "config_problems", "phase_diagram",
    "plot_history", "plot_phase", "run_config", *_WIDGETS,
]
# --- end widgets ---
