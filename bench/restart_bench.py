"""Restart: a server with 100 clusters of 1,000 nodes registered is serving again, from JGF and from compact graphs.

The fixture store holds 100 clusters of 1,000 nodes (2 sockets x 32 cores, 67,001
vertices, 24 MB of JGF each), written directly (set-up, not measured). The
server starts twice on it:

1. **from JGF**: no compact graph is stored yet (as on a database of an older
   release), so every graph is parsed from its JGF, as every start did before;
   this start also stores the compact forms;
2. **compact**: the next start loads the compact forms.

Each time is from the process start to the first answer of a ``SubmitJob``
that lists every cluster (the graphs are loaded and the server serves); the
ratio is (1) / (2).

``python -m bench.restart_bench [--quick] [--clusters N] [--nodes N]``; results in bench/results/restart.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import CHANNEL_OPTIONS, TOKEN, open_fixture_store, rainbow_server, verdict, write_results

TARGET_S = 5.0


def write_fixture(db: Path, clusters: int, nodes: int) -> int:
    from rainbow.credentials import hash_secret
    from rainbow.graph.synthetic import write_cluster_jgf

    out = db.with_suffix(".jgf")
    with open(out, "w") as handle:
        vertices = write_cluster_jgf(handle, nodes, sockets=2, cores=32, name="cluster")
    text = out.read_text()
    out.unlink()
    store = open_fixture_store(db)
    try:
        for i in range(clusters):
            store.add_cluster(f"cluster-{i:03d}", text, hash_secret(f"secret-{i}"), hash_secret(TOKEN), time.time())
    finally:
        store.close()
    return vertices


def serving_after(db: Path, clusters: int) -> dict[str, Any]:
    """Start the server; seconds to ``listening`` and to the first placed job over every cluster."""
    import grpc

    from rainbow.jobspec import simple
    from rainbow.protos import rainbow_pb2, rainbow_pb2_grpc

    listed = [rainbow_pb2.SubmitJobRequest.Cluster(name=f"cluster-{i:03d}", token=TOKEN) for i in range(clusters)]
    request = rainbow_pb2.SubmitJobRequest(name="probe", jobspec=json.dumps(simple("app")), clusters=listed)
    started = time.perf_counter()
    with rainbow_server(db, loglevel="info") as server:
        listening = time.perf_counter() - started
        with grpc.insecure_channel(server.address, options=CHANNEL_OPTIONS) as channel:
            reply = rainbow_pb2_grpc.RainbowSchedulerStub(channel).SubmitJob(request, timeout=600)
        serving = time.perf_counter() - started
        memory = server.memory()
        cpu = server.cpu_seconds()
    return {"listening_s": listening, "serving_s": serving, "server_cpu_s": cpu, "placed_on": reply.cluster,
            "server_memory": memory}


def run(quick: bool = False, clusters: int | None = None, nodes: int | None = None,
        out: Path | None = None) -> dict[str, Any]:
    clusters = clusters or (10 if quick else 100)
    nodes = nodes or (100 if quick else 1_000)
    with tempfile.TemporaryDirectory(prefix="rainbow-restart-") as tmp:
        db = Path(tmp) / "restart.db"
        t0 = time.perf_counter()
        vertices = write_fixture(db, clusters, nodes)
        fixture_s = time.perf_counter() - t0
        db_mb = db.stat().st_size / 2**20
        from_jgf = serving_after(db, clusters)
        compact = serving_after(db, clusters)
    results = {
        "clusters": clusters,
        "nodes_per_cluster": nodes,
        "vertices_per_cluster": vertices,
        "fixture_s": fixture_s,
        "store_mb": db_mb,
        "from_jgf": from_jgf,
        "compact": compact,
        "from_jgf_s": from_jgf["serving_s"],
        "compact_s": compact["serving_s"],
        "ratio": from_jgf["serving_s"] / compact["serving_s"],
        "target_s": TARGET_S,
    }
    path = write_results("restart", results, out)
    print(f"restart with {clusters} clusters x {nodes:,} nodes ({vertices:,} vertices each, store {db_mb:,.0f} MB)")
    print(f"  from JGF:       serving after {from_jgf['serving_s']:.2f} s (listening {from_jgf['listening_s']:.2f} s,"
          f" server CPU {from_jgf['server_cpu_s']:.2f} s)")
    print(f"  compact graphs: serving after {compact['serving_s']:.2f} s (listening {compact['listening_s']:.2f} s,"
          f" server CPU {compact['server_cpu_s']:.2f} s)"
          f"  x{results['ratio']:.1f} faster  [{verdict(compact['serving_s'] < TARGET_S)} < {TARGET_S:.0f} s]")
    print(f"results: {path}")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 clusters x 100 nodes")
    parser.add_argument("--clusters", type=int)
    parser.add_argument("--nodes", type=int)
    args = parser.parse_args()
    run(args.quick, args.clusters, args.nodes)


if __name__ == "__main__":
    main()
