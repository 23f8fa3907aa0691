"""The compact graph form: round trip, refusal of corrupted, outdated or foreign forms, and restarts that use it."""

from __future__ import annotations

import dataclasses
import io
import json
import logging

import grpc
import pytest

from rainbow import jgf
from rainbow.graph import ClusterGraph, compact
from rainbow.graph.synthetic import NodeKind, write_cluster_jgf
from rainbow.jobspec import simple
from rainbow.protos import rainbow_pb2
from rainbow.store import StoredGraph, open_store

from conftest import BOTH_STORES, REGISTRATION_SECRET, example, stubs_for


def cluster_text(nodes: int = 4, **options) -> str:
    out = io.StringIO()
    kinds = [NodeKind(nodes - nodes // 2, 2, 4, properties=("amd",)), NodeKind(nodes // 2, 2, 4)]
    write_cluster_jgf(out, kinds, racks=2, name="c", metadata={"queues": [{"name": "batch"}]}, **options)
    return out.getvalue()


def built(text: str) -> tuple[ClusterGraph, str, bytes]:
    graph = ClusterGraph.from_jgf(text, name="c")
    source = jgf.digest(text)
    return graph, source, compact.dump(graph.state, source)


# -- the form itself -------------------------------------------------------------
def test_round_trip_gives_the_same_graph_state():
    graph, source, data = built(cluster_text(6))
    loaded = compact.load(data, source, name="c")
    assert loaded.name == "c"
    for item in dataclasses.fields(graph.state):
        assert getattr(loaded.state, item.name) == getattr(graph.state, item.name), item.name
    assert loaded.summary() == graph.summary()
    assert loaded.queues.names == graph.queues.names == ["batch"]


def test_a_loaded_graph_takes_subsystems_like_a_built_one():
    text = example("cluster-nodes.json")
    graph, source, data = built(text)
    loaded = compact.load(data, source)
    for g in (graph, loaded):
        g.add_subsystem("io", example("cluster-io-subsystem.json"))
    assert loaded.state.classes == graph.state.classes
    with pytest.raises(ValueError, match="before adding subsystems"):
        compact.dump(graph.state, source)


@pytest.mark.parametrize("where", [12, 40, 200, -3])
def test_a_corrupted_form_is_refused(where):
    _, source, data = built(cluster_text())
    broken = bytearray(data)
    broken[where] ^= 0x40
    with pytest.raises(compact.CompactGraphError):
        compact.load(bytes(broken), source)


def test_a_truncated_form_is_refused():
    _, source, data = built(cluster_text())
    for size in (0, 10, len(data) // 2, len(data) - 1):
        with pytest.raises(compact.CompactGraphError):
            compact.load(data[:size], source)


def test_another_format_version_is_refused(monkeypatch):
    _, source, data = built(cluster_text())
    monkeypatch.setattr(compact, "FORMAT", compact.FORMAT + 1)
    with pytest.raises(compact.CompactGraphError, match="format"):
        compact.load(data, source)


def test_a_form_of_another_jgf_is_refused():
    _, _, data = built(cluster_text(4))
    with pytest.raises(compact.CompactGraphError, match="another JGF"):
        compact.load(data, jgf.digest(cluster_text(6)))


# -- the store -------------------------------------------------------------------
@BOTH_STORES
def test_the_store_keeps_a_compact_graph_only_for_the_current_jgf(store_target, tmp_path):
    store = open_store(store_target(tmp_path / "graphs.db"))
    try:
        text = cluster_text()
        assert store.get_graph("c") is None
        assert not store.put_graph("c", jgf.digest(text), b"x")  # no such cluster
        store.add_cluster("c", text, "s", "t", 1.0)
        assert store.get_graph("c") == StoredGraph(jgf.digest(text))
        _, source, data = built(text)
        assert not store.put_graph("c", jgf.digest(cluster_text(6)), data)  # built from another JGF
        assert store.get_graph("c").data is None
        assert store.put_graph("c", source, data)
        assert store.get_graph("c") == StoredGraph(source, source, data)
        bigger = cluster_text(6)
        store.replace_nodes("c", bigger, 2.0)
        assert store.get_graph("c") == StoredGraph(jgf.digest(bigger))  # the old form went with the old JGF
        store.put_graph("c", *built(bigger)[1:])
        assert store.delete_cluster("c")
        assert store.get_graph("c") is None
    finally:
        store.close()


# -- restarts --------------------------------------------------------------------
def register(stubs, nodes: str) -> rainbow_pb2.RegisterResponse:
    return stubs.scheduler.Register(rainbow_pb2.RegisterRequest(name="c", secret=REGISTRATION_SECRET, nodes=nodes))


def submit(stubs, token: str, nodes: int) -> rainbow_pb2.SubmitJobResponse:
    return stubs.scheduler.SubmitJob(rainbow_pb2.SubmitJobRequest(
        name="wide", jobspec=json.dumps(simple(["app"], nodes=nodes, tasks=nodes)),
        clusters=[rainbow_pb2.SubmitJobRequest.Cluster(name="c", token=token)]))


def registered(server_factory, db, text: str) -> tuple[str, bytes]:
    """Register cluster ``c`` on a fresh server, stop it; the token and the stored compact graph."""
    server = server_factory(db)
    stubs = stubs_for(server.address)
    token = register(stubs, text).token
    stubs.channel.close()
    stored = server.scheduler.store.get_graph("c")
    server.stop()
    assert stored.built_from == stored.nodes_sha256 == jgf.digest(text)
    return token, stored.data


def replace_stored(store_target, db, data: bytes, source: str) -> None:
    store = open_store(store_target(db))
    try:
        assert store.put_graph("c", source, data)
    finally:
        store.close()


@BOTH_STORES
def test_a_restart_serves_the_stored_compact_graph(server_factory, store_target, tmp_path):
    """Proof the JGF is not parsed again: a (forged) form of a smaller graph under the right digest is served."""
    db = tmp_path / "restart.db"
    text = cluster_text(4)
    token, _ = registered(server_factory, db, text)
    small = ClusterGraph.from_jgf(cluster_text(2), name="c")
    replace_stored(store_target, db, compact.dump(small.state, jgf.digest(text)), jgf.digest(text))
    server = server_factory(db, secret=None)
    stubs = stubs_for(server.address)
    with pytest.raises(grpc.RpcError) as refused:
        submit(stubs, token, nodes=4)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert submit(stubs, token, nodes=2).jobid
    stubs.channel.close()


def corrupted(data: bytes, source: str) -> bytes:
    broken = bytearray(data)
    broken[len(broken) // 2] ^= 0x01
    return bytes(broken)


def outdated(data: bytes, source: str) -> bytes:
    header = compact.MAGIC + (compact.FORMAT - 1).to_bytes(4, "little")
    return header + data[len(header) :]


def of_another_jgf(data: bytes, source: str) -> bytes:
    small = ClusterGraph.from_jgf(cluster_text(2), name="c")
    return compact.dump(small.state, jgf.digest(cluster_text(2)))


@BOTH_STORES
@pytest.mark.parametrize("spoil", [corrupted, outdated, of_another_jgf])
def test_a_spoiled_compact_graph_is_rebuilt_not_trusted(server_factory, store_target, tmp_path, caplog, spoil):
    db = tmp_path / "spoiled.db"
    text = cluster_text(4)
    source = jgf.digest(text)
    token, good = registered(server_factory, db, text)
    replace_stored(store_target, db, spoil(good, source), source)
    with caplog.at_level(logging.WARNING, logger="rainbow"):
        server = server_factory(db, secret=None)
    assert "the stored compact graph is not usable" in caplog.text
    stubs = stubs_for(server.address)
    assert submit(stubs, token, nodes=4).jobid  # the whole graph, rebuilt from the JGF
    stubs.channel.close()
    rewritten = server.scheduler.store.get_graph("c")
    assert rewritten.built_from == source
    assert compact.load(rewritten.data, source).summary() == ClusterGraph.from_jgf(text).summary()


@BOTH_STORES
def test_a_cluster_stored_before_digests_is_rebuilt_and_gets_one(server_factory, store_target, tmp_path):
    """A database from before the compact form: no digest, no form; the first start fills both."""
    db = tmp_path / "old.db"
    text = cluster_text(4)
    token, _ = registered(server_factory, db, text)
    store = open_store(store_target(db))
    try:
        store._transaction(lambda tx: tx.execute("DELETE FROM cluster_graphs"))
        assert store.get_graph("c") == StoredGraph(None)
    finally:
        store.close()
    server = server_factory(db, secret=None)
    stubs = stubs_for(server.address)
    assert submit(stubs, token, nodes=4).jobid
    stubs.channel.close()
    stored = server.scheduler.store.get_graph("c")
    assert stored.nodes_sha256 == stored.built_from == jgf.digest(text)
    assert compact.load(stored.data, stored.nodes_sha256).n_vertices == ClusterGraph.from_jgf(text).n_vertices
