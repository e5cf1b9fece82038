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
    SynthSentConfig,
    TextConfig,
    get_config,
)
from .convex_tasks import (
    frozen_features,
    pretrained_classifier,
    readout_attention,
    run_modular,
    run_student_teacher,
)
from .models import Attention, TransformerClassifier, build_model
from .real_tasks import (
    bag_of_words_baselines,
    filter_normalized_direction,
    imdb_data,
    pathfinder_data,
    pick_step,
    run_imdb,
    run_landscape,
    run_pathfinder,
    run_synthsent,
    synthsent_data,
)
from .results import (
    Difference,
    Result,
    difference,
    first_step,
    gap_curve,
    load_result,
    plot_curves,
    relapse_share,
    stored_result,
    stored_summary,
    summary,
    write_summary,
)

RUNNERS = {"imdb": run_imdb, "synthsent": run_synthsent, "pathfinder": run_pathfinder,
           "landscape": run_landscape, "modular": run_modular,
           "student_teacher": run_student_teacher}

__all__ = [
    "Difference", "difference", "gap_curve",
    "Attention", "bag_of_words_baselines", "build_model", "EXPERIMENTS",
    "filter_normalized_direction", "first_step", "frozen_features", "get_config", "imdb_data",
    "LandscapeConfig", "load_result", "ModelConfig", "ModularConfig", "pathfinder_data",
    "PathfinderConfig", "plot_curves", "pretrained_classifier", "readout_attention",
    "pick_step", "relapse_share", "Result", "run_imdb",
    "run_landscape", "run_modular", "run_pathfinder", "run_student_teacher", "run_synthsent",
    "RUNNERS", "stored_result", "stored_summary", "StudentTeacherConfig", "summary",
    "synthsent_data", "write_summary",
    "SynthSentConfig", "TextConfig", "TransformerClassifier",
]
