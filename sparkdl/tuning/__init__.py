"""Hyperparameter search over any config key, with trials as concurrent barrier stages
(:mod:`~sparkdl.tuning.search`)."""
from sparkdl.tuning.search import tune
from sparkdl.tuning.space import SearchSpace, load_space, parse_space

__all__ = ["tune", "SearchSpace", "load_space", "parse_space"]
