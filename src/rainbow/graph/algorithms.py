"""Match algorithms: how a ``requires`` entry is checked against a subsystem vertex.

An algorithm is chosen by name (the clients' config ``algorithms.match.name``,
or ``SatisfyRequest.matcher``).  ``match`` (the default) understands both kinds
of entry; ``equals`` only equality entries and ``range`` only version ranges —
a jobspec using a kind the chosen algorithm does not know is rejected rather
than half-checked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rainbow.errors import InvalidArgument
from rainbow.jobspec import Jobspec, Requirement, normalize_value, parse_version

DEFAULT_MATCH_ALGORITHM = "match"


def satisfies_equals(requirement: Requirement, metadata: Mapping[str, Any]) -> bool:
    """``field == value``, both sides compared as normalized strings; a missing field does not match."""
    if requirement.field not in metadata:
        return False
    return normalize_value(metadata[requirement.field]) == requirement.value


def satisfies_range(requirement: Requirement, metadata: Mapping[str, Any]) -> bool:
    """``min <= version(field) <= max``; an unparsable or missing version does not match."""
    version = parse_version(metadata.get(requirement.field))
    if version is None:
        return False
    if requirement.min_version is not None and version < requirement.min_version:
        return False
    return not (requirement.max_version is not None and version > requirement.max_version)


_CHECKS = {"match": satisfies_equals, "range": satisfies_range}


@dataclass(frozen=True)
class MatchAlgorithm:
    """A named way to check ``requires`` entries; ``kinds`` are the entry kinds it understands."""

    name: str
    description: str
    kinds: frozenset[str]

    def satisfies(self, requirement: Requirement, metadata: Mapping[str, Any]) -> bool:
        return _CHECKS[requirement.kind](requirement, metadata)

    def check_jobspec(self, jobspec: Jobspec) -> None:
        """Reject entries this algorithm cannot evaluate (InvalidArgument naming the entry)."""
        for top in jobspec.resources:
            for level in top.walk():
                for i, req in enumerate(level.requires):
                    if req.kind not in self.kinds:
                        where = f"{level.path}.requires[{i}]"
                        raise InvalidArgument(
                            f"{where}: match algorithm {self.name!r} does not support "
                            f"{req.kind} requirements",
                            field=where,
                        )


MATCH_ALGORITHMS: dict[str, MatchAlgorithm] = {
    "match": MatchAlgorithm(
        "match",
        "subsystem requirements by equality (match) and semantic-version range",
        frozenset({"match", "range"}),
    ),
    "equals": MatchAlgorithm("equals", "subsystem requirements by equality only", frozenset({"match"})),
    "range": MatchAlgorithm(
        "range", "subsystem requirements by semantic-version range only", frozenset({"range"})
    ),
}


def register_match_algorithm(algorithm: MatchAlgorithm) -> None:
    """Make ``algorithm`` selectable by its name.

    Names are never reused (graphs cache requirement checks per algorithm name),
    so registering a second algorithm under a taken name is an error.
    """
    unknown = set(algorithm.kinds) - set(_CHECKS)
    if unknown:
        raise InvalidArgument(
            f"match algorithm {algorithm.name!r}: unknown requirement kinds {sorted(unknown)}"
        )
    existing = MATCH_ALGORITHMS.get(algorithm.name)
    if existing is not None and existing is not algorithm:
        raise InvalidArgument(f"match algorithm {algorithm.name!r} is already registered")
    MATCH_ALGORITHMS[algorithm.name] = algorithm


def get_match_algorithm(name: str | None) -> MatchAlgorithm:
    """The algorithm called ``name``; empty or None gives the default ``match``."""
    key = name or DEFAULT_MATCH_ALGORITHM
    algorithm = MATCH_ALGORITHMS.get(key)
    if algorithm is None:
        known = ", ".join(sorted(MATCH_ALGORITHMS))
        raise InvalidArgument(f"unknown match algorithm {key!r} (known: {known})", field="matcher")
    return algorithm
