"""Cluster resource graphs and the match (satisfiability) of jobspecs against them."""

from rainbow.graph.algorithms import (
    DEFAULT_MATCH_ALGORITHM,
    MATCH_ALGORITHMS,
    MatchAlgorithm,
    get_match_algorithm,
    register_match_algorithm,
)
from rainbow.graph.match import MatchResult, compile_plan, match, satisfy
from rainbow.graph.model import ClusterGraph, GraphState, Subsystem

__all__ = [
    "DEFAULT_MATCH_ALGORITHM",
    "MATCH_ALGORITHMS",
    "ClusterGraph",
    "GraphState",
    "MatchAlgorithm",
    "MatchResult",
    "Subsystem",
    "compile_plan",
    "get_match_algorithm",
    "match",
    "register_match_algorithm",
    "satisfy",
]
