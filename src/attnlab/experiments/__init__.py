"""Part III: the papers' experiments on real tasks (short CPU and full GPU configurations).

Each experiment is ``run_<name>(config, *, device, seeds, progress, out) -> Result``; configs
come from :func:`get_config` (``"test"``, ``"short"``, ``"full"``). Command line:
``python -m attnlab.experiments.run imdb --config full --device cuda --out results/``.
"""

from .config import (
    EXPERIMENTS,
    LandscapeConfig,
    ModelConfig,
    ModularConfig,
    PathfinderConfig,
    StudentTeacherConfig,
    TextConfig,
    get_config,
)
from .convex_tasks import frozen_features, readout_attention, run_modular, run_student_teacher
from .models import Attention, TransformerClassifier, build_model
from .real_tasks import (
    filter_normalized_direction,
    imdb_data,
    pathfinder_data,
    run_imdb,
    run_landscape,
    run_pathfinder,
)
from .results import Result, load_result, plot_curves, summary

RUNNERS = {"imdb": run_imdb, "pathfinder": run_pathfinder, "landscape": run_landscape,
           "modular": run_modular, "student_teacher": run_student_teacher}

__all__ = [
    "EXPERIMENTS", "RUNNERS", "Attention", "LandscapeConfig", "ModelConfig", "ModularConfig",
    "PathfinderConfig", "Result", "StudentTeacherConfig", "TextConfig", "TransformerClassifier",
    "build_model", "filter_normalized_direction", "frozen_features", "get_config", "imdb_data",
    "load_result", "pathfinder_data", "plot_curves", "readout_attention", "run_imdb",
    "run_landscape", "run_modular", "run_pathfinder", "run_student_teacher", "summary",
]
