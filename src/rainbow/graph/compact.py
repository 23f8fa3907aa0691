"""The compact graph form: a built cluster graph as bytes, so a restart need not parse its JGF again.

Building a 1,000-node graph from its 24 MB of JGF takes a third of a second; a
server with a hundred such clusters would spend most of a minute before it
serves. :func:`dump` writes what :meth:`ClusterGraph.from_jgf` computed (the
columns, the vertex classes, node labels, the graph's metadata) and
:func:`load` reads it back in a few milliseconds.

A stored form is trusted only when all of these hold, else :func:`load` raises
:class:`CompactGraphError` and the caller rebuilds from the JGF:

- it starts with the magic and this module's ``FORMAT`` (a change of what is
  written changes ``FORMAT``, so an older form is rebuilt, never misread);
- the SHA-256 of its body matches the one written in its header (corruption);
- it was built from the JGF whose digest (:func:`rainbow.jgf.digest`) the caller
  expects, i.e. the cluster's stored JGF;
- its arrays have the item sizes and byte order of this machine.

Only the cluster graph is written, not its subsystems (small, and added from
their JGF as before).
"""

from __future__ import annotations

import hashlib
import json
import struct
import sys
from array import array
from typing import Any

from rainbow.constraints import NodeLabel
from rainbow.graph.model import Classes, ClusterGraph, GraphState

MAGIC = b"RBGRAPH\x00"
FORMAT = 1
_HEADER = struct.Struct("<8sI32s")
_LENGTH = struct.Struct("<Q")
_ARRAYS = ("type_of", "size_of", "parent", "child_start", "child_list")


class CompactGraphError(ValueError):
    """A stored compact graph that must not be used (corrupted, outdated, or built from another JGF)."""


def dump(state: GraphState, source_digest: str) -> bytes:
    """The compact form of a cluster graph without subsystems, built from the JGF of ``source_digest``."""
    if state.subsystems:
        raise ValueError("the compact form holds the cluster graph only; write it before adding subsystems")
    classes = state.classes
    head = {
        "source": source_digest,
        "byteorder": sys.byteorder,
        "ids": state.ids,
        "types": state.types,
        "root": state.root,
        "totals": sorted(state.totals.items()),
        "labels": [[v, sorted(label.properties), label.hostname, label.rank]
                   for v, label in sorted(state.node_labels.items())],
        "metadata": state.metadata,
        "classes": {
            "type_of": classes.type_of,
            "size_of": classes.size_of,
            "links": classes.links,
            "kids": classes.kids,
            "below": [sorted(units.items()) for units in classes.below],
            "count": classes.count,
            "root": classes.root,
            "tags": [None if tag is None else sorted(tag) for tag in classes.tags],
        },
    }
    parts = [_chunk(json.dumps(head, separators=(",", ":")).encode())]
    for column in (*(getattr(state, name) for name in _ARRAYS), classes.of_vertex):
        parts.append(_chunk(column.typecode.encode() + bytes([column.itemsize]) + column.tobytes()))
    body = b"".join(parts)
    return _HEADER.pack(MAGIC, FORMAT, hashlib.sha256(body).digest()) + body


def load(data: bytes, source_digest: str, name: str = "") -> ClusterGraph:
    """The graph of a compact form; :class:`CompactGraphError` unless it is intact, current and of that JGF."""
    view = memoryview(data)
    if len(view) < _HEADER.size:
        raise CompactGraphError("truncated header")
    magic, version, checksum = _HEADER.unpack_from(view)
    if magic != MAGIC:
        raise CompactGraphError("not a compact graph")
    if version != FORMAT:
        raise CompactGraphError(f"format {version}, this server reads format {FORMAT}")
    body = view[_HEADER.size :]
    if hashlib.sha256(body).digest() != checksum:
        raise CompactGraphError("checksum mismatch (corrupted)")
    chunks = _chunks(body)
    try:
        head = json.loads(bytes(chunks[0]))
        if head["source"] != source_digest:
            raise CompactGraphError("built from another JGF than the one stored")
        if head["byteorder"] != sys.byteorder:
            raise CompactGraphError(f"written on a {head['byteorder']}-endian machine")
        columns = [_array(chunk) for chunk in chunks[1:]]
        return ClusterGraph(_state(head, columns), name=name)
    except CompactGraphError:
        raise
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise CompactGraphError(f"unreadable: {exc}") from None


def _chunk(payload: bytes) -> bytes:
    return _LENGTH.pack(len(payload)) + payload


def _chunks(body: memoryview) -> list[memoryview]:
    out = []
    at = 0
    while at < len(body):
        if at + _LENGTH.size > len(body):
            raise CompactGraphError("truncated")
        (length,) = _LENGTH.unpack_from(body, at)
        at += _LENGTH.size
        if at + length > len(body):
            raise CompactGraphError("truncated")
        out.append(body[at : at + length])
        at += length
    if len(out) != 2 + len(_ARRAYS):
        raise CompactGraphError(f"{len(out)} sections, expected {2 + len(_ARRAYS)}")
    return out


def _array(chunk: memoryview) -> array:
    typecode = chr(chunk[0])
    column = array(typecode)
    if column.itemsize != chunk[1]:
        raise CompactGraphError(f"array item size {chunk[1]} for {typecode!r}, here {column.itemsize}")
    column.frombytes(chunk[2:])
    return column


def _state(head: dict[str, Any], columns: list[array]) -> GraphState:
    type_of, size_of, parent, child_start, child_list, of_vertex = columns
    n = len(head["ids"])
    if not (len(type_of) == len(size_of) == len(parent) == len(of_vertex) == n and len(child_start) == n + 1):
        raise CompactGraphError("column lengths disagree")
    c = head["classes"]
    classes = Classes(
        type_of=c["type_of"],
        size_of=c["size_of"],
        links=[tuple((str(s), int(v)) for s, v in links) for links in c["links"]],
        kids=[tuple((int(k), int(m)) for k, m in kids) for kids in c["kids"]],
        below=[{int(t): int(u) for t, u in units} for units in c["below"]],
        count=c["count"],
        root=c["root"],
        of_vertex=of_vertex,
        tags=[None if tag is None else frozenset(tag) for tag in c["tags"]],
    )
    types = head["types"]
    return GraphState(
        ids=head["ids"],
        types=types,
        type_index={t: i for i, t in enumerate(types)},
        type_of=type_of,
        size_of=size_of,
        parent=parent,
        child_start=child_start,
        child_list=child_list,
        root=head["root"],
        totals={int(t): int(u) for t, u in head["totals"]},
        subsystems={},
        classes=classes,
        node_labels={v: NodeLabel(frozenset(props), hostname, rank) for v, props, hostname, rank in head["labels"]},
        metadata=head["metadata"],
    )
