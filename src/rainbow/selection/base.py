"""What every selection algorithm shares: the Selector interface and its result."""

from __future__ import annotations

import abc
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from rainbow.errors import InvalidArgument


@dataclass(frozen=True)
class Selection:
    """The outcome of one selection.

    ``clusters`` is ordered and ``clusters[0]`` is the choice; with ``satisfy_only`` the
    server returns the whole list. An empty list means no cluster passed, and
    ``reason`` says which step removed the last one.
    ``reason`` is a one-line summary for the log and for the SubmitJob error;
    ``candidates`` are the clusters the algorithm was given; ``trace`` holds one line
    per step that ran, for a detailed log.
    """

    clusters: list[str]
    reason: str
    algorithm: str = ""
    candidates: tuple[str, ...] = ()
    trace: tuple[str, ...] = field(default=(), compare=False)

    @property
    def cluster(self) -> str | None:
        """The chosen cluster, or None when no cluster passed."""
        return self.clusters[0] if self.clusters else None


class Selector(abc.ABC):
    """A selection algorithm configured with its options.

    The constructor validates the options (raising InvalidArgument), so a Selector
    that exists is usable; it is immutable and may be shared between threads.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    option_names: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options: dict[str, Any] = dict(options_mapping(options))
        unknown = sorted(str(key) for key in self.options if key not in self.option_names)
        if unknown:
            accepted = ", ".join(sorted(self.option_names)) or "none"
            raise InvalidArgument(
                f"selection algorithm {self.name!r} does not take option(s) {', '.join(unknown)} "
                f"(accepted: {accepted})",
                field=unknown[0],
            )

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def check_parameters(self, parameters: Mapping[str, Any] | None) -> None:
        """Refuse job parameters that make an expression fail whatever the cluster.

        Called by :meth:`select`; the server may call it earlier. Raises InvalidArgument.
        Algorithms without expressions accept any parameters.
        """
        return None

    @abc.abstractmethod
    def select(
        self,
        candidates: Sequence[str],
        states: Mapping[str, Mapping[str, Any]],
        parameters: Mapping[str, Any] | None,
        *,
        rng: random.Random | None = None,
    ) -> Selection:
        """Choose among ``candidates`` (the matching clusters).

        ``states`` maps a cluster name to its last reported state (flat key/values);
        ``parameters`` are the jobspec's ``attributes.parameter`` values. Raises
        InvalidArgument only for job parameters that make an expression fail
        whatever the cluster; anything a cluster's state gets wrong drops that cluster.
        """

    # Whether ``select_many`` decides many jobs for less than as many ``select`` calls, each job's draw
    # independent of the others' (then a batch may draw ahead of the jobs it places).
    draws_many: ClassVar[bool] = False

    def select_many(
        self,
        candidates: Sequence[str],
        states: Mapping[str, Mapping[str, Any]],
        parameters: Mapping[str, Any] | None,
        count: int,
        *,
        rng: random.Random | None = None,
    ) -> list[Selection]:
        """``count`` selections for as many jobs placed alike, each what ``select`` decides for one job (a
        selector that spreads jobs spreads these). Only ``clusters[0]`` of each is the job's: the order of
        the others may differ from ``select``'s."""
        return [self.select(candidates, states, parameters, rng=rng) for _ in range(count)]


def options_mapping(options: object) -> Mapping[str, Any]:
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise InvalidArgument(
            f"selection options must be a mapping, got {type(options).__name__}", field="options"
        )
    return options


def unique(candidates: Iterable[str]) -> list[str]:
    """Candidates in their given order, each once."""
    return list(dict.fromkeys(candidates))


def default_rng() -> random.Random:
    return random.Random()
