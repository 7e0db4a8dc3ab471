"""A deterministic bilingual fine-grained synthetic world: one generator for every task's data."""
from .vocab import BASE_KINDS, KINDS, NOVEL_KINDS, ObjectSpec
from .world import SyntheticWorld
from .writer import generate_world

__all__ = ["generate_world", "SyntheticWorld", "ObjectSpec", "KINDS", "BASE_KINDS", "NOVEL_KINDS"]
