"""Flux Standard Duration (``30m``, ``2h``, ``1.5d``, ``90``, ``inf``): parse and format.

A duration is a non-negative number with an optional unit suffix ``s``
(default), ``m``, ``h`` or ``d``; ``inf``/``infinity``/``unlimited`` is no limit.
In a jobspec ``attributes.system.duration`` is seconds and ``0`` means unset.
"""

from __future__ import annotations

import math
import re

from rainbow.errors import InvalidArgument

_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_FSD = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\s*([smhd]?)\s*$")
_UNLIMITED = {"inf", "infinity", "unlimited"}


def parse_duration(text: str | float | int, field: str = "duration") -> float:
    """Seconds of a duration (``math.inf`` when unlimited); raises :class:`InvalidArgument`."""
    if isinstance(text, bool):
        raise InvalidArgument(f"{field}: must be a duration like 30m, 2h, 1.5d", field=field)
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        if not isinstance(text, str):
            raise InvalidArgument(f"{field}: must be a duration like 30m, 2h, 1.5d", field=field)
        if text.strip().lower() in _UNLIMITED:
            return math.inf
        found = _FSD.match(text)
        if found is None:
            raise InvalidArgument(
                f"{field}: {text!r} is not a duration (a number with an optional s, m, h or d suffix)",
                field=field,
            )
        number = text.strip().rstrip("smhd").strip()
        value = float(number) * _UNITS[found.group(2)]
    if math.isnan(value) or value < 0:
        raise InvalidArgument(f"{field}: must not be negative", field=field)
    return value


def format_duration(seconds: float) -> str:
    """The shortest Flux spelling: ``1800 -> "30m"``, ``7200 -> "2h"``, ``inf -> "unlimited"``."""
    if math.isinf(seconds):
        return "unlimited"
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0)):
        if seconds >= size:
            return f"{seconds / size:.6g}{unit}"
    return f"{seconds:.6g}s"
