"""``random``: the default selection; every matching cluster is equally likely."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from rainbow.selection.base import Selection, Selector, default_rng, unique


class RandomSelector(Selector):
    """Shuffle the candidates; the first is the choice, all remain for ``satisfy_only``."""

    name = "random"
    description = "a uniformly random choice among the matching clusters"

    def select(
        self,
        candidates: Sequence[str],
        states: Mapping[str, Mapping[str, Any]],
        parameters: Mapping[str, Any] | None,
        *,
        rng: random.Random | None = None,
    ) -> Selection:
        given = unique(candidates)
        if not given:
            return Selection([], f"{self.name}: no candidate clusters", self.name, ())
        clusters = list(given)
        (rng or default_rng()).shuffle(clusters)
        reason = f"{self.name}: picked {clusters[0]!r} among {len(clusters)}"
        return Selection(clusters, reason, self.name, tuple(given), (reason,))

    draws_many: ClassVar[bool] = True

    def select_many(
        self,
        candidates: Sequence[str],
        states: Mapping[str, Mapping[str, Any]],
        parameters: Mapping[str, Any] | None,
        count: int,
        *,
        rng: random.Random | None = None,
    ) -> list[Selection]:
        """One uniform draw per job; the jobs that draw the same cluster share its Selection (the choice
        first, the others in their given order)."""
        given = unique(candidates)
        if not given or count < 1:
            return [self.select(given, states, parameters, rng=rng) for _ in range(max(count, 0))]
        shared: dict[int, Selection] = {}
        picks = (rng or default_rng()).choices(range(len(given)), k=count)
        out = []
        for pick in picks:
            selection = shared.get(pick)
            if selection is None:
                chosen = given[pick]
                clusters = [chosen, *given[:pick], *given[pick + 1 :]]
                reason = f"{self.name}: picked {chosen!r} among {len(given)}"
                selection = shared[pick] = Selection(clusters, reason, self.name, tuple(given), (reason,))
            out.append(selection)
        return out
