"""Data: synthetic tokens and targets for the theory chapters, and the real tasks of Part III
(IMDB reviews, Pathfinder images, modular division)."""

from .imdb import IMDBData, IMDBUnavailableError, decode_bytes, encode_bytes, load_imdb
from .modular import ModularDivision, division_equations, modular_division
from .pathfinder import PathfinderInfo, generate_pathfinder, load_lra_pathfinder
from .pathfinder import tokens as pathfinder_tokens
from .synthetic import random_targets, random_tokens, teacher_targets

__all__ = [
    "random_tokens",
    "random_targets",
    "teacher_targets",
    "IMDBData",
    "IMDBUnavailableError",
    "load_imdb",
    "encode_bytes",
    "decode_bytes",
    "ModularDivision",
    "division_equations",
    "modular_division",
    "PathfinderInfo",
    "generate_pathfinder",
    "pathfinder_tokens",
    "load_lra_pathfinder",
]
