"""Data for the theory chapters (synthetic tokens and targets)."""

from .synthetic import random_targets, random_tokens, teacher_targets

__all__ = ["random_tokens", "random_targets", "teacher_targets"]

# --- real tasks (issue 7: Pathfinder, IMDB, modular division) ---
from .imdb import (  # noqa: E402
    IMDBData,
    IMDBUnavailableError,
    decode_bytes,
    encode_bytes,
    load_imdb,
)
from .modular import ModularDivision, division_equations, modular_division  # noqa: E402
from .pathfinder import (  # noqa: E402
    PathfinderInfo,
    generate_pathfinder,
    load_lra_pathfinder,
)
from .pathfinder import tokens as pathfinder_tokens  # noqa: E402

__all__ += [
    "IMDBData", "IMDBUnavailableError", "load_imdb", "encode_bytes", "decode_bytes",
    "ModularDivision", "division_equations", "modular_division",
    "PathfinderInfo", "generate_pathfinder", "pathfinder_tokens", "load_lra_pathfinder",
]
