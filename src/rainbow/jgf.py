"""Reading and validating JSON Graph Format (JGF), both dialects.

* rainbow dialect: ``graph.nodes`` is an object keyed by vertex id, each
  ``{label, metadata}``; edges are ``{source, target, relation}`` where
  ``relation`` is ``contains`` (the containment tree) or ``in`` (a reverse
  link, ignored).
* Fluxion dialect: ``graph.nodes`` is a list of ``{id, metadata}``; edges carry
  ``metadata.name.containment: "contains"`` (or ``relation``).

Only ``metadata.type`` is required; ``size`` defaults to 1.

A 16,384-node cluster is about 1.1 M vertices and 300 MB of JSON, too much to
hold as one dict per vertex.  Text is therefore decoded with an
``object_hook`` that turns each vertex into one small int (type id and size)
and each edge into two ints in arrays as soon as the decoder produces it, so the
per-vertex dicts never live at the same time.  Dicts (already-parsed input) go
through the same per-vertex code.
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rainbow.errors import InvalidArgument

_TYPE_BITS = 16
_TYPE_MASK = (1 << _TYPE_BITS) - 1
_MAX_TYPES = _TYPE_MASK


class _Rec(int):
    """A vertex as decoded: ``size << 16 | type_id`` (an int subclass, so it is recognizable)."""

    __slots__ = ()


class _MetaRec(tuple):
    """A vertex with its metadata kept (subsystems): ``(type_id, size, metadata)``."""

    __slots__ = ()


_NODES_DONE = object()


@dataclass
class JGFData:
    """A decoded, validated-per-element JGF.

    ``edge_src``/``edge_dst`` hold containment edges; an endpoint ``>= 0`` is a
    vertex of this graph, ``< 0`` is ``-(i + 1)`` for vertex ``i`` of the
    ``external`` index given to :func:`read_jgf` (subsystem links).
    ``metadata`` is filled only when asked for.
    """

    ids: list[str]
    types: list[str]
    type_of: array
    size_of: array
    edge_src: array
    edge_dst: array
    edge_pos: array
    metadata: list[dict[str, Any]] | None = None
    index: dict[str, int] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.ids)


def _vertex_ref(vid: str) -> str:
    return f"graph.nodes[{vid!r}]"


class _Reader:
    def __init__(self, keep_metadata: bool, external: Mapping[str, int] | None) -> None:
        self.keep = keep_metadata
        self.external = external
        self.types: list[str] = []
        self.type_ids: dict[str, int] = {}
        self.ids: list[str] = []
        self.index: dict[str, int] | None = None
        self.flux_index: dict[str, int] = {}
        self.type_of = array("i")
        self.size_of = array("q")
        self.metadata: list[dict[str, Any]] | None = [] if keep_metadata else None
        self.edge_src = array("i")
        self.edge_dst = array("i")
        self.edge_pos = array("i")
        self.pending: list[tuple[str, str, bool, int]] = []
        self.n_edges = 0
        self.dialect: str | None = None

    # -- vertices ---------------------------------------------------------------
    def _type_id(self, name: str, where: str) -> int:
        tid = self.type_ids.get(name)
        if tid is None:
            if len(self.types) >= _MAX_TYPES:
                raise InvalidArgument(f"{where}: more than {_MAX_TYPES} vertex types", field="graph.nodes")
            tid = len(self.types)
            self.types.append(name)
            self.type_ids[name] = tid
        return tid

    def record(self, node: Any, where: str) -> Any:
        if not isinstance(node, dict):
            raise InvalidArgument(f"{where}: must be an object", field="graph.nodes")
        meta = node.get("metadata")
        if not isinstance(meta, dict):
            raise InvalidArgument(f"{where}.metadata: must be an object", field="graph.nodes")
        kind = meta.get("type")
        if not isinstance(kind, str) or not kind:
            raise InvalidArgument(f"{where}.metadata.type: must be a non-empty string", field="graph.nodes")
        size = meta.get("size", 1)
        if isinstance(size, float) and size.is_integer():
            size = int(size)
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise InvalidArgument(f"{where}.metadata.size: must be an integer >= 0", field="graph.nodes")
        tid = self._type_id(kind, where)
        if self.keep:
            return _MetaRec((tid, size, meta))
        return _Rec(size << _TYPE_BITS | tid)

    def _store(self, vid: str, rec: Any) -> None:
        if self.keep:
            tid, size, meta = rec
            self.metadata.append(meta)  # type: ignore[union-attr]
        else:
            tid, size = rec & _TYPE_MASK, rec >> _TYPE_BITS
        self.type_of.append(tid)
        self.size_of.append(size)
        self.ids.append(vid)

    def finish_rainbow_nodes(self, nodes: dict[str, Any]) -> None:
        if self.dialect == "fluxion":
            raise InvalidArgument("graph.nodes: mixes list and object forms", field="graph.nodes")
        self.dialect = "rainbow"
        index: dict[str, int] = {}
        for vid, rec in nodes.items():
            if not isinstance(rec, (_Rec, _MetaRec)):
                rec = self.record(rec, _vertex_ref(vid))
            index[vid] = len(self.ids)
            self._store(vid, rec)
        self.index = index

    def flux_node(self, node: dict[str, Any]) -> None:
        vid = node.get("id")
        if isinstance(vid, int) and not isinstance(vid, bool):
            vid = str(vid)
        if not isinstance(vid, str) or not vid:
            raise InvalidArgument(
                f"graph.nodes[{len(self.ids)}].id: must be a non-empty string", field="graph.nodes"
            )
        rec = self.record(node, _vertex_ref(vid))
        if vid in self.flux_index:
            raise InvalidArgument(f"{_vertex_ref(vid)}: duplicate vertex id", field="graph.nodes")
        self.flux_index[vid] = len(self.ids)
        self._store(vid, rec)

    # -- edges ------------------------------------------------------------------
    def edge(self, edge: Any) -> None:
        pos = self.n_edges
        self.n_edges += 1
        where = f"graph.edges[{pos}]"
        if not isinstance(edge, dict):
            raise InvalidArgument(f"{where}: must be an object", field="graph.edges")
        src, dst = edge.get("source"), edge.get("target")
        if isinstance(src, int) and not isinstance(src, bool):
            src = str(src)
        if isinstance(dst, int) and not isinstance(dst, bool):
            dst = str(dst)
        if not isinstance(src, str) or not isinstance(dst, str):
            raise InvalidArgument(f"{where}: source and target must be vertex ids", field="graph.edges")
        relation = edge.get("relation")
        meta = edge.get("metadata")
        if relation is None and isinstance(meta, dict):
            name = meta.get("name")
            if isinstance(name, dict):
                relation = name.get("containment")
            if relation is None:
                relation = meta.get("relation")
        contains = relation is None or relation == "contains"
        index = (
            self.index if self.index is not None else (self.flux_index if self.dialect == "fluxion" else None)
        )
        if index is None:
            self.pending.append((src, dst, contains, pos))
        else:
            self._resolve(src, dst, contains, pos, index)

    def _lookup(self, vid: str, index: Mapping[str, int], where: str, end: str) -> int:
        i = index.get(vid)
        if i is not None:
            return i
        if self.external is not None:
            j = self.external.get(vid)
            if j is not None:
                return -(j + 1)
        raise InvalidArgument(f"{where}: {end} {vid!r} is not a vertex", field="graph.edges")

    def _resolve(self, src: str, dst: str, contains: bool, pos: int, index: Mapping[str, int]) -> None:
        where = f"graph.edges[{pos}]"
        s = self._lookup(src, index, where, "source")
        t = self._lookup(dst, index, where, "target")
        if contains:
            self.edge_src.append(s)
            self.edge_dst.append(t)
            self.edge_pos.append(pos)

    # -- decoding ---------------------------------------------------------------
    def hook(self, d: dict[str, Any]) -> Any:
        if "source" in d and "target" in d:
            self.edge(d)
            return None
        if "metadata" in d and ("id" in d or "label" in d) and "nodes" not in d and "edges" not in d:
            if "id" in d:
                if self.dialect == "rainbow":
                    raise InvalidArgument("graph.nodes: mixes list and object forms", field="graph.nodes")
                self.dialect = "fluxion"
                self.flux_node(d)
                return None
            return self.record(d, _vertex_ref(str(d.get("label"))))
        if d:
            first = next(iter(d.values()))
            if isinstance(first, (_Rec, _MetaRec)):
                self.finish_rainbow_nodes(d)
                return _NODES_DONE
        return d

    def walk(self, doc: Mapping[str, Any]) -> None:
        graph = doc.get("graph")
        if not isinstance(graph, Mapping):
            raise InvalidArgument("graph: missing or not an object", field="graph")
        nodes = graph.get("nodes")
        if isinstance(nodes, Mapping):
            self.finish_rainbow_nodes(dict(nodes))
        elif isinstance(nodes, list):
            self.dialect = "fluxion"
            for i, node in enumerate(nodes):
                if not isinstance(node, Mapping):
                    raise InvalidArgument(f"graph.nodes[{i}]: must be an object", field="graph.nodes")
                self.flux_node(dict(node))
        else:
            raise InvalidArgument("graph.nodes: must be an object or a list", field="graph.nodes")
        edges = graph.get("edges", [])
        if not isinstance(edges, list):
            raise InvalidArgument("graph.edges: must be a list", field="graph.edges")
        for edge in edges:
            self.edge(edge)

    def check_decoded(self, doc: Any) -> None:
        if not isinstance(doc, dict):
            raise InvalidArgument("graph: the JGF document must be an object", field="graph")
        graph = doc.get("graph")
        if not isinstance(graph, dict):
            raise InvalidArgument("graph: missing or not an object", field="graph")
        nodes = graph.get("nodes")
        if isinstance(nodes, dict):
            self.finish_rainbow_nodes(nodes)
        elif isinstance(nodes, list):
            bad = next((i for i, node in enumerate(nodes) if node is not None), None)
            if bad is not None:
                raise InvalidArgument(
                    f"graph.nodes[{bad}]: must be an object with id and metadata", field="graph.nodes"
                )
        elif nodes is not _NODES_DONE:
            raise InvalidArgument("graph.nodes: must be an object or a list of vertices", field="graph.nodes")
        edges = graph.get("edges", [])
        if not isinstance(edges, list):
            raise InvalidArgument("graph.edges: must be a list", field="graph.edges")
        bad = next((i for i, e in enumerate(edges) if e is not None), None)
        if bad is not None:
            raise InvalidArgument(f"graph.edges[{bad}]: must be an object", field="graph.edges")

    def result(self) -> JGFData:
        index = self.index if self.index is not None else self.flux_index
        for src, dst, contains, pos in self.pending:
            self._resolve(src, dst, contains, pos, index)
        self.pending = []
        return JGFData(
            ids=self.ids,
            types=self.types,
            type_of=self.type_of,
            size_of=self.size_of,
            edge_src=self.edge_src,
            edge_dst=self.edge_dst,
            edge_pos=self.edge_pos,
            metadata=self.metadata,
            index=index,
        )


def read_jgf(
    source: str | bytes | Mapping[str, Any],
    *,
    keep_metadata: bool = False,
    external: Mapping[str, int] | None = None,
) -> JGFData:
    """Decode and check a JGF document (text or dict), either dialect.

    Checks every vertex (``metadata.type``, ``size``) and that every edge names
    an existing vertex (of this graph or of ``external``); the graph shape
    (tree, subsystem links) is checked by the caller.
    """
    reader = _Reader(keep_metadata, external)
    if isinstance(source, Mapping):
        reader.walk(source)
    else:
        if isinstance(source, (bytes, bytearray)):
            try:
                source = bytes(source).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidArgument(f"graph: not UTF-8 text ({exc})", field="graph") from None
        if not isinstance(source, str):
            raise InvalidArgument("graph: must be JSON text or a mapping", field="graph")
        try:
            doc = json.JSONDecoder(object_hook=reader.hook).decode(source)
        except ValueError as exc:
            raise InvalidArgument(f"graph: not valid JSON: {exc}", field="graph") from None
        except RecursionError:
            raise InvalidArgument("graph: nested too deeply", field="graph") from None
        reader.check_decoded(doc)
        del doc
    data = reader.result()
    if data.n == 0:
        raise InvalidArgument("graph.nodes: the graph has no vertices", field="graph.nodes")
    return data
