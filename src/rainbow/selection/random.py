"""``random``: the default selection; every matching cluster is equally likely."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

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
