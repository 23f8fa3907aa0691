"""Reading and validating JSON Graph Format (JGF), both dialects.

* rainbow dialect: ``graph.nodes`` is an object keyed by vertex id, each
  ``{label, metadata}``; edges are ``{source, target, relation}`` where
  ``relation`` is ``contains`` (the containment tree) or ``in`` (a reverse
  link, ignored).
* Fluxion dialect: ``graph.nodes`` is a list of ``{id, metadata}``; edges carry
  ``metadata.name.containment: "contains"`` (or ``relation``).

Only ``metadata.type`` is required; ``size`` defaults to 1.

A 16,384-node cluster is about 1.1 M vertices and 400 MB of JSON: decoded
whole into dicts it would take several GB.  Text is therefore read by a small
streaming parser: it walks the top-level objects itself and hands each vertex
and each edge to the stdlib's C decoder (``JSONDecoder.raw_decode``) one at a time, keeping
only a type id and a size per vertex and two ints per containment edge (in
``array`` columns).  Edges in the common ``{"source", "target", "relation"}``
form are matched by one regular expression, which only accepts valid JSON.
Only public APIs: docs/benchmarks.md (JGF readers) compares this reader with
the stdlib's private C scanner, ijson, orjson and ``json.loads``.
"""

from __future__ import annotations

import hashlib
import json
import re
from array import array
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rainbow.constraints import NodeLabel
from rainbow.errors import InvalidArgument, ResourceExhausted

_MAX_TYPES = 1 << 16

_WS = re.compile(r"[ \t\n\r]*")
_STR = r'"([^"\\\x00-\x1f]*)"'
_EDGE_TEXT = (
    r"\{[ \t\n\r]*"
    rf'"source"[ \t\n\r]*:[ \t\n\r]*{_STR}[ \t\n\r]*,[ \t\n\r]*'
    rf'"target"[ \t\n\r]*:[ \t\n\r]*{_STR}[ \t\n\r]*,[ \t\n\r]*'
    rf'"relation"[ \t\n\r]*:[ \t\n\r]*{_STR}[ \t\n\r]*'
    r'(?:,[ \t\n\r]*"metadata"[ \t\n\r]*:[ \t\n\r]*\{[ \t\n\r]*\}[ \t\n\r]*)?\}'
)
_EDGE = re.compile(_EDGE_TEXT)
_EDGE_ITEM = re.compile(_EDGE_TEXT + r"[ \t\n\r]*([,\]])[ \t\n\r]*")
_KEY = re.compile(rf"{_STR}[ \t\n\r]*:[ \t\n\r]*")
_OBJ_SEP = re.compile(r"[ \t\n\r]*([,}])[ \t\n\r]*")


@dataclass
class JGFData:
    """A decoded JGF whose every vertex and edge has been checked.

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
    node_labels: dict[int, NodeLabel] = field(default_factory=dict)
    graph_metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.ids)


def node_label(meta: Mapping[str, Any]) -> NodeLabel:
    """What node constraints can see of a ``node`` vertex: properties, hostname (``name``), broker rank."""
    props = meta.get("properties")
    if isinstance(props, Mapping):
        names = frozenset(str(p) for p in props)
    elif isinstance(props, list):
        names = frozenset(str(p) for p in props if isinstance(p, str))
    else:
        names = frozenset()
    rank = meta.get("rank", -1)
    name = meta.get("name")
    return NodeLabel(
        properties=names,
        hostname=name if isinstance(name, str) else "",
        rank=rank if isinstance(rank, int) and not isinstance(rank, bool) else -1,
    )


def _vertex_ref(vid: str) -> str:
    return f"graph.nodes[{vid!r}]"


def _as_id(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


class _Reader:
    """Collects vertices and edges (from a dict walk or the streaming parser)."""

    def __init__(
        self,
        keep_metadata: bool,
        external: Mapping[str, int] | None,
        max_vertices: int | None = None,
        max_edges: int | None = None,
    ) -> None:
        self.external = external
        self.max_vertices = max_vertices if max_vertices is not None else 1 << 62
        self.max_edges = max_edges if max_edges is not None else 1 << 62
        self.types: list[str] = []
        self.type_ids: dict[str, int] = {}
        self.ids: list[str] = []
        self.index: dict[str, int] = {}
        self.type_of = array("i")
        self.size_of = array("q")
        self.metadata: list[dict[str, Any]] | None = [] if keep_metadata else None
        self.edge_src = array("i")
        self.edge_dst = array("i")
        self.edge_pos = array("i")
        self.pending: list[tuple[str, str, bool, int]] = []
        self.nodes_done = False
        self.n_edges = 0
        self.dialect: str | None = None
        self.node_labels: dict[int, NodeLabel] = {}
        self.graph_metadata: dict[str, Any] = {}

    # -- vertices ---------------------------------------------------------------
    def vertex(self, vid: str, node: Any, where: str) -> None:
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
        tid = self.type_ids.get(kind)
        if tid is None:
            if len(self.types) >= _MAX_TYPES:
                raise InvalidArgument(f"{where}: more than {_MAX_TYPES} vertex types", field="graph.nodes")
            tid = self.type_ids[kind] = len(self.types)
            self.types.append(kind)
        if vid in self.index:
            raise InvalidArgument(f"{_vertex_ref(vid)}: duplicate vertex id", field="graph.nodes")
        if len(self.ids) >= self.max_vertices:
            raise ResourceExhausted(f"graph.nodes: more than {self.max_vertices} vertices", field="graph.nodes")
        if kind == "node":
            self.node_labels[len(self.ids)] = node_label(meta)
        self.index[vid] = len(self.ids)
        self.ids.append(vid)
        self.type_of.append(tid)
        self.size_of.append(size)
        if self.metadata is not None:
            self.metadata.append(meta)

    def dialect_is(self, dialect: str) -> None:
        if self.dialect is not None and self.dialect != dialect:
            raise InvalidArgument("graph.nodes: appears twice", field="graph.nodes")
        self.dialect = dialect

    def flux_vertex(self, position: int, node: Any) -> None:
        if not isinstance(node, dict):
            raise InvalidArgument(f"graph.nodes[{position}]: must be an object", field="graph.nodes")
        vid = _as_id(node.get("id"))
        if not vid:
            raise InvalidArgument(
                f"graph.nodes[{position}].id: must be a non-empty string", field="graph.nodes"
            )
        self.vertex(vid, node, _vertex_ref(vid))

    def nodes_finished(self) -> None:
        self.nodes_done = True
        for src, dst, contains, pos in self.pending:
            self._resolve(src, dst, contains, pos)
        self.pending = []

    # -- edges ------------------------------------------------------------------
    def edge(self, edge: Any) -> None:
        pos = self.n_edges
        where = f"graph.edges[{pos}]"
        if not isinstance(edge, dict):
            self.n_edges += 1
            raise InvalidArgument(f"{where}: must be an object", field="graph.edges")
        src, dst = _as_id(edge.get("source")), _as_id(edge.get("target"))
        if src is None or dst is None:
            self.n_edges += 1
            raise InvalidArgument(f"{where}: source and target must be vertex ids", field="graph.edges")
        relation = edge.get("relation")
        meta = edge.get("metadata")
        if relation is None and isinstance(meta, dict):
            name = meta.get("name")
            if isinstance(name, dict):
                relation = name.get("containment")
            if relation is None:
                relation = meta.get("relation")
        self.simple_edge(src, dst, relation is None or relation == "contains")

    def simple_edge(self, src: str, dst: str, contains: bool) -> None:
        pos = self.n_edges
        if pos >= self.max_edges:
            raise ResourceExhausted(f"graph.edges: more than {self.max_edges} edges", field="graph.edges")
        self.n_edges += 1
        if self.nodes_done:
            self._resolve(src, dst, contains, pos)
        else:
            self.pending.append((src, dst, contains, pos))

    def _lookup(self, vid: str, where: str, end: str) -> int:
        i = self.index.get(vid)
        if i is not None:
            return i
        if self.external is not None:
            j = self.external.get(vid)
            if j is not None:
                return -(j + 1)
        raise InvalidArgument(f"{where}: {end} {vid!r} is not a vertex", field="graph.edges")

    def _resolve(self, src: str, dst: str, contains: bool, pos: int) -> None:
        where = f"graph.edges[{pos}]"
        s = self._lookup(src, where, "source")
        t = self._lookup(dst, where, "target")
        if contains:
            self.edge_src.append(s)
            self.edge_dst.append(t)
            self.edge_pos.append(pos)

    # -- a parsed document ----------------------------------------------------------
    def walk(self, doc: Mapping[str, Any]) -> None:
        graph = doc.get("graph")
        if not isinstance(graph, Mapping):
            raise InvalidArgument("graph: missing or not an object", field="graph")
        nodes = graph.get("nodes")
        if isinstance(nodes, Mapping):
            self.dialect_is("rainbow")
            for vid, node in nodes.items():
                self.vertex(str(vid), node, _vertex_ref(str(vid)))
        elif isinstance(nodes, list):
            self.dialect_is("fluxion")
            for i, node in enumerate(nodes):
                self.flux_vertex(i, node)
        else:
            raise InvalidArgument("graph.nodes: must be an object or a list", field="graph.nodes")
        self.nodes_finished()
        self.set_graph_metadata(graph.get("metadata"))
        edges = graph.get("edges", [])
        if not isinstance(edges, list):
            raise InvalidArgument("graph.edges: must be a list", field="graph.edges")
        for edge in edges:
            self.edge(edge)

    def set_graph_metadata(self, meta: Any) -> None:
        """Keep ``graph.metadata`` when it is an object (anything else was always ignored, and still is)."""
        if isinstance(meta, Mapping):
            self.graph_metadata = dict(meta)

    def result(self) -> JGFData:
        if not self.nodes_done:
            self.nodes_finished()
        return JGFData(
            ids=self.ids,
            types=self.types,
            type_of=self.type_of,
            size_of=self.size_of,
            edge_src=self.edge_src,
            edge_dst=self.edge_dst,
            edge_pos=self.edge_pos,
            metadata=self.metadata,
            index=self.index,
            node_labels=self.node_labels,
            graph_metadata=self.graph_metadata,
        )


class _Stream:
    """A streaming reader of ``{"graph": {"nodes": ..., "edges": [...]}}`` text."""

    def __init__(self, text: str, reader: _Reader) -> None:
        self.s = text
        self.reader = reader
        self.decode = json.JSONDecoder().raw_decode

    def fail(self, i: int, what: str, where: str = "graph") -> InvalidArgument:
        return InvalidArgument(f"{where}: not valid JSON: {what} at offset {i}", field="graph")

    def ws(self, i: int) -> int:
        return _WS.match(self.s, i).end()  # type: ignore[union-attr]

    def value(self, i: int, where: str) -> tuple[Any, int]:
        try:
            return self.decode(self.s, i)
        except RecursionError:
            raise InvalidArgument(f"{where}: nested too deeply", field="graph") from None
        except ValueError as exc:
            raise self.fail(i, str(exc).split(":")[0], where) from None

    def key(self, i: int, where: str) -> tuple[str, int]:
        i = self.ws(i)
        if self.s[i : i + 1] != '"':
            raise self.fail(i, "expected a key", where)
        key, i = self.value(i, where)
        i = self.ws(i)
        if self.s[i : i + 1] != ":":
            raise self.fail(i, "expected ':'", where)
        return key, self.ws(i + 1)

    def members(self, i: int, where: str, handle: Any) -> int:
        """Walk an object at ``i``; ``handle(key, index)`` consumes a value, returns the index after it."""
        s = self.s
        i = self.ws(i)
        if s[i : i + 1] != "{":
            raise self.fail(i, "expected '{'", where)
        i = self.ws(i + 1)
        if s[i : i + 1] == "}":
            return i + 1
        while True:
            key, i = self.key(i, where)
            i = self.ws(handle(key, i))
            c = s[i : i + 1]
            if c == ",":
                i += 1
            elif c == "}":
                return i + 1
            else:
                raise self.fail(i, "expected ',' or '}'", where)

    def elements(self, i: int, where: str, handle: Any) -> int:
        """Walk an array at ``i`` (``s[i] == '['``); ``handle(index)`` consumes one element."""
        s = self.s
        i = self.ws(i + 1)
        if s[i : i + 1] == "]":
            return i + 1
        while True:
            i = self.ws(handle(i))
            c = s[i : i + 1]
            if c == ",":
                i = self.ws(i + 1)
            elif c == "]":
                return i + 1
            else:
                raise self.fail(i, "expected ',' or ']'", where)

    def document(self) -> None:
        seen = []

        def top(key: str, i: int) -> int:
            if key != "graph":
                return self.value(i, key)[1]
            if self.s[i : i + 1] != "{":
                raise InvalidArgument("graph: missing or not an object", field="graph")
            seen.append(key)
            return self.members(i, "graph", self.graph_member)

        i = self.ws(0)
        if self.s[i : i + 1] != "{":
            raise InvalidArgument("graph: the JGF document must be an object", field="graph")
        i = self.ws(self.members(i, "graph", top))
        if i != len(self.s):
            raise self.fail(i, "extra data after the document")
        if not seen:
            raise InvalidArgument("graph: missing or not an object", field="graph")

    def graph_member(self, key: str, i: int) -> int:
        c = self.s[i : i + 1]
        reader = self.reader
        if key == "nodes":
            if c == "{":
                reader.dialect_is("rainbow")
                end = self.rainbow_nodes(i)
            elif c == "[":
                reader.dialect_is("fluxion")
                position = [0]

                def flux_vertex(j: int) -> int:
                    node, j = self.value(j, f"graph.nodes[{position[0]}]")
                    reader.flux_vertex(position[0], node)
                    position[0] += 1
                    return j

                end = self.elements(i, "graph.nodes", flux_vertex)
            else:
                raise InvalidArgument("graph.nodes: must be an object or a list", field="graph.nodes")
            reader.nodes_finished()
            return end
        if key == "edges":
            if c != "[":
                raise InvalidArgument("graph.edges: must be a list", field="graph.edges")
            return self.edges(i)
        value, end = self.value(i, f"graph.{key}")
        if key == "metadata":
            reader.set_graph_metadata(value)
        return end

    def rainbow_nodes(self, i: int) -> int:
        """The ``{id: {label, metadata}, ...}`` object at ``i``: one C decode per vertex."""
        s = self.s
        decode = self.decode
        reader = self.reader
        index, type_ids, ids = reader.index, reader.type_ids, reader.ids
        type_add, size_add = reader.type_of.append, reader.size_of.append
        fast = reader.metadata is None
        max_vertices = reader.max_vertices
        key_at = _KEY.match
        sep_at = _OBJ_SEP.match
        i = self.ws(i + 1)
        if s[i : i + 1] == "}":
            return i + 1
        while True:
            m = key_at(s, i)
            if m is None:
                key, i = self.key(i, "graph.nodes")
            else:
                key, i = m.group(1), m.end()
            try:
                node, i = decode(s, i)
            except (ValueError, RecursionError):
                node, i = self.value(i, _vertex_ref(key))
            # The common case inline (a plain type, an int size, a new id); anything
            # else goes through reader.vertex, which checks and explains.
            meta = node.get("metadata") if fast and type(node) is dict else None
            kind = meta.get("type") if type(meta) is dict else None
            size = meta.get("size", 1) if type(kind) is str else None  # type: ignore[union-attr]
            tid = type_ids.get(kind) if type(size) is int and size >= 0 else None  # type: ignore[operator]
            if tid is None or key in index or len(ids) >= max_vertices:
                reader.vertex(key, node, _vertex_ref(key))
            else:
                if kind == "node":
                    reader.node_labels[len(ids)] = node_label(meta)  # type: ignore[arg-type]
                index[key] = len(ids)
                ids.append(key)
                type_add(tid)
                size_add(size)
            m = sep_at(s, i)
            if m is None:
                raise self.fail(i, "expected ',' or '}'", "graph.nodes")
            i = m.end()
            if m.group(1) == "}":
                return i

    def edges(self, i: int) -> int:
        """The edges array at ``i``; canonical edges go through one regex each."""
        s = self.s
        reader = self.reader
        if not reader.nodes_done:
            return self.elements(i, "graph.edges", self.edge)
        i = self.ws(i + 1)
        if s[i : i + 1] == "]":
            return i + 1
        get = reader.index.get
        src_add, dst_add, pos_add = reader.edge_src.append, reader.edge_dst.append, reader.edge_pos.append
        n = reader.n_edges
        max_edges = reader.max_edges
        expect = i
        last_a = last_b = None
        for m in _EDGE_ITEM.finditer(s, i):
            if m.start() != expect or n >= max_edges:
                break
            a, b, relation, sep = m.groups()
            if relation == "contains":
                sa, sb = get(a), get(b)
                if sa is None or sb is None:
                    break
                src_add(sa)
                dst_add(sb)
                pos_add(n)
                last_a, last_b = a, b
            elif not (a == last_b and b == last_a) and (get(a) is None or get(b) is None):
                # (an "in" edge reversing the previous one names vertices just checked)
                break
            n += 1
            expect = m.end()
            if sep == "]":
                reader.n_edges = n
                return expect
        reader.n_edges = n
        i = expect
        while True:
            i = self.ws(self.edge(i))
            c = s[i : i + 1]
            if c == ",":
                i = self.ws(i + 1)
            elif c == "]":
                return i + 1
            else:
                raise self.fail(i, "expected ',' or ']'", "graph.edges")

    def edge(self, i: int) -> int:
        m = _EDGE.match(self.s, i)
        if m is not None:
            src, dst, relation = m.groups()
            self.reader.simple_edge(src, dst, relation == "contains")
            return m.end()
        edge, i = self.value(i, f"graph.edges[{self.reader.n_edges}]")
        self.reader.edge(edge)
        return i


def read_jgf(
    source: str | bytes | Mapping[str, Any],
    *,
    keep_metadata: bool = False,
    external: Mapping[str, int] | None = None,
    max_vertices: int | None = None,
    max_edges: int | None = None,
) -> JGFData:
    """Decode and check a JGF document (text or dict), either dialect.

    Checks every vertex (``metadata.type``, ``size``) and that every edge names
    an existing vertex (of this graph or of ``external``); the graph's shape
    (tree, subsystem links) is checked by the caller. Past ``max_vertices`` or
    ``max_edges`` it stops reading with :class:`ResourceExhausted`.
    """
    reader = _Reader(keep_metadata, external, max_vertices, max_edges)
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
        _Stream(source, reader).document()
    data = reader.result()
    if data.n == 0:
        raise InvalidArgument("graph.nodes: the graph has no vertices", field="graph.nodes")
    return data


def digest(text: str) -> str:
    """The SHA-256 (hex) of a JGF text as stored: what a compact graph names as its source."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
