"""Registration: a 16,384-node cluster (2 sockets x 32 cores per node, ~1.1 M vertices) registers over gRPC.

The JGF (rainbow dialect, from ``rainbow.graph.synthetic``) is written to a
file once; the client sends it in one ``Register`` call (message limits raised
to 1 GiB on both sides) and the time to the reply is the figure. Baselines in
the same run: the same bytes through the bare gRPC echo server (transfer), and
the matcher's own loader parsing the same text in a fresh process (parse), so
the ratio shows what the server adds (storing the text, bookkeeping).

``python -m bench.register_bench [--quick]``; results in bench/results/register.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import (
    CHANNEL_OPTIONS,
    SECRET,
    child_env,
    echo_server,
    rainbow_server,
    verdict,
    write_results,
)
from bench.echo_server import SIZED_METHOD

PARSE_CHILD = """
import json, sys, time
from rainbow.graph import ClusterGraph
t0 = time.perf_counter()
text = open(sys.argv[1]).read()
read = time.perf_counter() - t0
graph = ClusterGraph.from_jgf(text, name="big")
parse = time.perf_counter() - t0 - read
hwm = [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")][0] / 1024
print(json.dumps({"read_s": read, "parse_s": parse, "vertices": graph.n_vertices, "peak_rss_mb": hwm}))
"""


def write_jgf(path: Path, nodes: int, sockets: int = 2, cores: int = 32) -> int:
    from rainbow.graph.synthetic import write_cluster_jgf

    with open(path, "w") as out:
        return write_cluster_jgf(out, nodes, sockets=sockets, cores=cores, name="big")


def run(quick: bool = False, nodes: int | None = None, out: Path | None = None) -> dict[str, Any]:
    import grpc

    from rainbow.protos import rainbow_pb2, rainbow_pb2_grpc

    nodes = nodes or (1_024 if quick else 16_384)
    results: dict[str, Any] = {"quick": quick, "nodes": nodes, "sockets": 2, "cores_per_socket": 32}
    with tempfile.TemporaryDirectory(prefix="rainbow-register-") as tmp:
        jgf = Path(tmp) / "big.json"
        t0 = time.perf_counter()
        results["vertices"] = write_jgf(jgf, nodes)
        results["jgf_mb"] = jgf.stat().st_size / 1e6
        print(f"  wrote a {nodes:,}-node JGF: {results['vertices']:,} vertices, {results['jgf_mb']:.0f} MB "
              f"in {time.perf_counter() - t0:.0f} s", flush=True)
        child = subprocess.run([sys.executable, "-c", PARSE_CHILD, str(jgf)], capture_output=True, text=True,
                               env=child_env(), timeout=1800, check=True)
        results["bare_parse"] = json.loads(child.stdout)
        text = jgf.read_text()
        request = rainbow_pb2.RegisterRequest(name="big", secret=SECRET, nodes=text)
        del text
        payload = request.SerializeToString()
        with echo_server(64, Path(tmp) / "echo.log") as echo, \
                grpc.insecure_channel(echo.address, options=CHANNEL_OPTIONS) as channel:
            call = channel.unary_unary(SIZED_METHOD)
            head = b"64:"
            t0 = time.perf_counter()
            call(head + payload[len(head):], timeout=600)
            results["echo_transfer_s"] = time.perf_counter() - t0
        with rainbow_server(Path(tmp) / "register.db") as server, \
                grpc.insecure_channel(server.address, options=CHANNEL_OPTIONS) as channel:
            stub = rainbow_pb2_grpc.RainbowSchedulerStub(channel)
            before = server.memory()
            t0 = time.perf_counter()
            reply = stub.Register(request, timeout=1800)
            results["register_s"] = time.perf_counter() - t0
            results["ok"] = reply.status == rainbow_pb2.RegisterResponse.REGISTER_SUCCESS
            results["server_memory_mb"] = {"before": before, "after": server.memory()}
    parse_s = results["bare_parse"]["parse_s"]
    results["ratio_to_parse"] = results["register_s"] / parse_s
    results["targets"] = {"under_30s": results["ok"] and results["register_s"] < 30}
    print(f"register: {nodes:,} nodes ({results['vertices']:,} vertices, {results['jgf_mb']:.0f} MB) in "
          f"{results['register_s']:.1f} s [{verdict(results['targets']['under_30s'])} < 30 s]; bare parse "
          f"{parse_s:.1f} s (x{results['ratio_to_parse']:.2f}), bare gRPC transfer {results['echo_transfer_s']:.1f} s; "
          f"server peak RSS {results['server_memory_mb']['after']['VmHWM']:.0f} MB", flush=True)
    write_results("register", results, out)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1,024 nodes")
    parser.add_argument("--nodes", type=int)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    run(args.quick, args.nodes, args.out)


if __name__ == "__main__":
    sys.exit(main())
