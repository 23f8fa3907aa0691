"""RFC 22 idsets (``0-3,8``) and RFC 29 hostlists (``tioga[1-16],login1``): expand and encode.

Plain parsing shared by the Flux resource conversion, node constraints
(``host:``/``rank:`` terms) and the matcher.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from rainbow.errors import InvalidArgument

_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")


def expand_idset(text: str | int | Iterable[int] | None) -> list[int]:
    """The ids of an RFC 22 idset (``"0-3,8"``, ``"[0-3]"``, ``""``) in ascending order."""
    if text is None:
        return []
    if isinstance(text, int):
        return [text]
    if not isinstance(text, str):
        return sorted({int(i) for i in text})
    body = text.strip()
    if body.startswith("[") and body.endswith("]"):
        body = body[1:-1]
    ids: set[int] = set()
    for part in filter(None, (p.strip() for p in body.split(","))):
        found = _RANGE.match(part)
        if not found:
            raise InvalidArgument(f"idset {text!r}: {part!r} is not an id or a range", field="idset")
        low = int(found.group(1))
        high = int(found.group(2)) if found.group(2) is not None else low
        if high < low:
            raise InvalidArgument(f"idset {text!r}: range {part!r} runs backwards", field="idset")
        ids.update(range(low, high + 1))
    return sorted(ids)


def encode_idset(ids: Iterable[int]) -> str:
    """The compact idset text of some ids (``[0, 1, 2, 5] -> "0-2,5"``)."""
    parts: list[str] = []
    ordered = sorted(set(ids))
    start = prev = None
    for value in [*ordered, None]:
        if value is not None and prev is not None and value == prev + 1:
            prev = value
            continue
        if start is not None:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = value
    return ",".join(parts)


def _split_top(text: str) -> list[str]:
    """Split a hostlist on the commas that are outside brackets."""
    parts, depth, current = [], 0, []
    for char in text:
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
            if depth < 0:
                raise InvalidArgument(f"hostlist {text!r}: unbalanced ']'", field="nodelist")
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if depth:
        raise InvalidArgument(f"hostlist {text!r}: unbalanced '['", field="nodelist")
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def _expand_host(pattern: str, whole: str) -> list[str]:
    start = pattern.find("[")
    if start < 0:
        return [pattern]
    end = pattern.find("]", start)
    prefix, ranges, rest = pattern[:start], pattern[start + 1:end], pattern[end + 1:]
    names: list[str] = []
    for part in filter(None, (p.strip() for p in ranges.split(","))):
        found = _RANGE.match(part)
        if not found:
            raise InvalidArgument(f"hostlist {whole!r}: {part!r} is not a number or a range", field="nodelist")
        low_text = found.group(1)
        high_text = found.group(2) if found.group(2) is not None else low_text
        low, high = int(low_text), int(high_text)
        if high < low:
            raise InvalidArgument(f"hostlist {whole!r}: range {part!r} runs backwards", field="nodelist")
        width = len(low_text) if low_text.startswith("0") and len(low_text) > 1 else 0
        for number in range(low, high + 1):
            for tail in _expand_host(rest, whole):
                names.append(f"{prefix}{number:0{width}d}{tail}")
    return names


def expand_hostlist(text: str | Iterable[str]) -> list[str]:
    """The hostnames of an RFC 29 hostlist, in order (``"tioga[1-3],login1"``), repeats kept."""
    if not isinstance(text, str):
        return [host for item in text for host in expand_hostlist(item)]
    names: list[str] = []
    for part in _split_top(text):
        names.extend(_expand_host(part, text))
    return names


def idset_size(text: str) -> int:
    """How many ids an idset names at most (overlaps counted twice), without expanding it."""
    body = text.strip()
    if body.startswith("[") and body.endswith("]"):
        body = body[1:-1]
    total = 0
    for part in filter(None, (p.strip() for p in body.split(","))):
        found = _RANGE.match(part)
        if found:
            low = int(found.group(1))
            high = int(found.group(2)) if found.group(2) is not None else low
            total += max(high - low + 1, 0)
    return total


def _host_count(pattern: str) -> int:
    start = pattern.find("[")
    if start < 0:
        return 1
    end = pattern.find("]", start)
    if end < 0:
        return 1
    return max(idset_size(pattern[start + 1 : end]), 1) * _host_count(pattern[end + 1 :])


def hostlist_size(text: str) -> int:
    """How many hostnames a hostlist names, without expanding it."""
    return sum(_host_count(part) for part in _split_top(text))
