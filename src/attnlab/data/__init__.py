"""Data: synthetic tokens and targets for the theory chapters, and the real tasks of Part III
(IMDB reviews, Pathfinder images, modular division, and our synthetic SynthSent task)."""

from .imdb import (
    IMDBData,
    IMDBUnavailableError,
    build_vocab,
    decode_bytes,
    encode_bytes,
    encode_words,
    load_imdb,
)
from .modular import ModularDivision, division_equations, modular_division
from .pathfinder import PathfinderInfo, generate_pathfinder, load_lra_pathfinder
from .pathfinder import tokens as pathfinder_tokens
from .synthetic import random_targets, random_tokens, teacher_targets
from .synthsent import synthsent, synthsent_decode, synthsent_vocab

__all__ = [
    "random_tokens",
    "random_targets",
    "teacher_targets",
    "IMDBData",
    "IMDBUnavailableError",
    "load_imdb",
    "encode_bytes",
    "decode_bytes",
    "build_vocab",
    "encode_words",
    "ModularDivision",
    "division_equations",
    "modular_division",
    "PathfinderInfo",
    "generate_pathfinder",
    "pathfinder_tokens",
    "load_lra_pathfinder",
    "synthsent",
    "synthsent_decode",
    "synthsent_vocab",
]
