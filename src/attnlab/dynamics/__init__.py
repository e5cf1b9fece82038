"""Part II: the gradient-descent dynamics of one attention layer, one module per chapter.

* :mod:`.run`: a run as a value (:class:`RunConfig`), its data (:func:`make_problem`) and
  its training (:func:`run_config`); :mod:`.sweep`: many runs as one batched call
  (:func:`sweep`), with counts and spreads over seeds.
* :mod:`.measures`: floors, reachable intervals, Jacobians, the curvature step.
* :mod:`.training_wv` (C1-C3), :mod:`.init_scale` (C4), :mod:`.training_wq` (C5-C9),
  :mod:`.joint_training`, :mod:`.landscapes`: the chapters' experiments, each with its
  named presets (``dy.C1``, ``dy.C7``, ...).
* :mod:`.phase`: the playground's phase diagram; :mod:`.plots`: the shared figures.

Chapters write ``from attnlab import dynamics as dy`` and call ``dy.threshold_sweep(...)``.
"""

from .init_scale import (
    C4,
    ScaleSweep,
    gaussian_entry_mean,
    gaussian_row_sum_mean,
    sigma_min_vs_scale,
)
from .joint_training import (
    GROUPS,
    JOINT,
    JOINT_RUN,
    FreezeComparison,
    JointRun,
    freeze_comparison,
    joint_run,
)
from .landscapes import TWO_STAGE, TWO_STAGE_2, TwoStage, TwoStageSweep, two_stage, two_stage_sweep
from .measures import (
    block_grad_norms,
    curvature_lr,
    feature_svals,
    lstsq_floor,
    per_step_factor,
    reachable_floor,
    reachable_interval,
    wq_jacobian,
)
from .phase import BATCHING, PhaseResult, default_dims, default_phase_config, phase_diagram
from .plots import (
    COLORS,
    PANELS,
    draw_history,
    history_series,
    phase_color_range,
    plot_history,
    plot_phase,
)
from .run import (
    D_MAX,
    DATA_CHOICES,
    LR_RULES,
    MATRICES,
    STEPS_MAX,
    Problem,
    RunConfig,
    RunResult,
    check_config,
    config_problems,
    dashboard_log_every,
    default_dashboard_config,
    make_problem,
    resolve_device,
    run_config,
    step_sizes,
    train_problem,
)
from .sweep import SweepResult, grid, sweep
from .theorem3 import (
    CONVERGED,
    PROTOCOLS,
    T3,
    T3_DELTAS,
    Theorem3Check,
    Theorem3Study,
    problem_check,
    query_gradients,
    theorem3_check,
    theorem3_study,
)
from .training_wq import (
    C5,
    C7,
    C8,
    C9,
    GRAD_CHECK,
    JacobianCheck,
    PLTrajectory,
    TeacherRuns,
    WQRun,
    gaussian_trap_example,
    gradient_check,
    hull_barrier_example,
    jacobian_check,
    pl_bound_along_trajectory,
    teacher_comparison,
    teacher_runs,
    teacher_vs_dim,
    wq_run,
)
from .training_wv import (
    C1,
    C1_DIMS,
    C3_DIMS,
    ConditioningSweep,
    RateCheck,
    ThresholdSweep,
    conditioning_sweep,
    rate_check,
    threshold_sweep,
)

__all__ = [
    # runs and sweeps
    "RunConfig", "RunResult", "Problem", "SweepResult", "config_problems", "check_config",
    "make_problem", "step_sizes", "train_problem", "run_config", "grid", "sweep",
    "resolve_device", "dashboard_log_every", "default_dashboard_config",
    "MATRICES", "DATA_CHOICES", "LR_RULES", "D_MAX", "STEPS_MAX",
    # measures
    "lstsq_floor", "per_step_factor", "feature_svals", "reachable_interval",
    "reachable_floor", "wq_jacobian", "curvature_lr", "block_grad_norms",
    # training W_V (C1-C3)
    "C1", "C1_DIMS", "C3_DIMS", "ThresholdSweep", "threshold_sweep", "RateCheck",
    "rate_check", "ConditioningSweep", "conditioning_sweep",
    # init scale (C4)
    "C4", "ScaleSweep", "sigma_min_vs_scale",
    "gaussian_entry_mean", "gaussian_row_sum_mean",
    # training W_Q (C5-C9)
    "C5", "C7", "C8", "C9", "GRAD_CHECK", "gradient_check", "WQRun", "wq_run",
    "hull_barrier_example", "gaussian_trap_example", "TeacherRuns", "teacher_runs",
    "teacher_comparison", "teacher_vs_dim", "PLTrajectory", "pl_bound_along_trajectory",
    "JacobianCheck", "jacobian_check",
    # Theorem 3, reconstructed
    "T3", "T3_DELTAS", "PROTOCOLS", "CONVERGED", "Theorem3Check", "Theorem3Study",
    "query_gradients", "theorem3_check", "problem_check", "theorem3_study",
    # joint training
    "JOINT", "JOINT_RUN", "GROUPS", "FreezeComparison", "freeze_comparison", "JointRun",
    "joint_run",
    # landscapes
    "TWO_STAGE", "TWO_STAGE_2", "TwoStage", "two_stage",
    "TwoStageSweep", "two_stage_sweep",
    # phase diagram and figures
    "BATCHING", "PhaseResult", "default_dims", "default_phase_config", "phase_diagram",
    "COLORS", "PANELS", "history_series", "draw_history", "plot_history",
    "phase_color_range", "plot_phase",
]
