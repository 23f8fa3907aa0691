"""JGF readers compared on a 16,384-node cluster (~1.1 M vertices, ~400 MB of text): time and peak memory.

Five ways to turn the text the server receives (a ``str``) into the checked
:class:`rainbow.jgf.JGFData`, each in a fresh process so that its peak RSS is
its own; all five feed the same checks (``rainbow.jgf._Reader``) and must agree
on the vertex and edge counts:

* ``stream``: :func:`rainbow.jgf.read_jgf`, the streaming reader (one ``JSONDecoder.raw_decode`` per vertex);
* ``scanner``: the same reader calling the stdlib's private C scanner (``json.scanner.make_scanner``)
  directly, as it did before it kept to public APIs;
* ``ijson``: ijson's C backend (yajl2_c), ``kvitems("graph.nodes")`` then ``items("graph.edges.item")``;
* ``orjson``: ``orjson.loads`` on the whole text, then a walk of the dicts;
* ``json``: the stdlib's ``json.loads`` on the whole text, then the same walk.

``ijson`` and ``orjson`` are not dependencies of rainbow: install them to run
this bench (``pip install ijson orjson``). The text is read before the clock starts (``base_rss_mb`` is the process with
the text loaded). The approaches take turns, ``--repeat`` rounds; wall times
are medians, CPU times (the process's own, steadier on a shared machine) the
lowest; ratios are to ``stream``, from the same run.

``python -m bench.jgf_bench [--quick] [--nodes N] [--repeat N]``; results in bench/results/jgf.json.
"""

from __future__ import annotations

import argparse
import io
import json
import json.scanner
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import ROOT, child_env, write_results

APPROACHES = ("stream", "scanner", "ijson", "orjson", "json")


def _peak_rss_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024


def _read(approach: str, text: str) -> Any:
    from rainbow.jgf import _Reader, _Stream, read_jgf

    if approach == "stream":
        return read_jgf(text)
    reader = _Reader(keep_metadata=False, external=None)
    if approach == "scanner":
        stream = _Stream(text, reader)
        stream.decode = json.scanner.make_scanner(json.JSONDecoder())
        stream.document()
        return reader.result()
    if approach == "ijson":
        import ijson

        data = text.encode("utf-8")
        for vid, node in ijson.kvitems(io.BytesIO(data), "graph.nodes", use_float=True):
            reader.vertex(vid, node, f"graph.nodes[{vid!r}]")
        reader.nodes_finished()
        for edge in ijson.items(io.BytesIO(data), "graph.edges.item", use_float=True):
            reader.edge(edge)
        return reader.result()
    if approach == "orjson":
        import orjson

        reader.walk(orjson.loads(text))
    elif approach == "json":
        reader.walk(json.loads(text))
    else:
        raise ValueError(f"unknown approach {approach!r}")
    return reader.result()


def child(approach: str, path: str) -> None:
    """One approach in this (fresh) process: prints its figures as JSON."""
    text = Path(path).read_text()
    base = _peak_rss_mb()
    t0, cpu0 = time.perf_counter(), time.process_time()
    data = _read(approach, text)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "base_rss_mb": base, "peak_rss_mb": _peak_rss_mb(),
                      "vertices": data.n, "edges": len(data.edge_src)}))


def run(quick: bool = False, nodes: int | None = None, out: Path | None = None,
        repeat: int | None = None) -> dict[str, Any]:
    from rainbow.graph.synthetic import write_cluster_jgf

    nodes = nodes or (1_024 if quick else 16_384)
    repeat = repeat or (1 if quick else 3)
    results: dict[str, Any] = {"quick": quick, "nodes": nodes, "sockets": 2, "cores_per_socket": 32,
                               "repeat": repeat}
    runs: dict[str, list[dict[str, Any]]] = {a: [] for a in APPROACHES}
    with tempfile.TemporaryDirectory(prefix="rainbow-jgf-") as tmp:
        path = Path(tmp) / "big.json"
        with open(path, "w") as jgf:
            results["vertices"] = write_cluster_jgf(jgf, nodes, sockets=2, cores=32, name="big")
        results["jgf_mb"] = path.stat().st_size / 1e6
        print(f"  wrote a {nodes:,}-node JGF: {results['vertices']:,} vertices, {results['jgf_mb']:.0f} MB",
              flush=True)
        for _ in range(repeat):
            for approach in APPROACHES:
                done = subprocess.run([sys.executable, "-m", "bench.jgf_bench", "--child", approach, str(path)],
                                      capture_output=True, text=True, env=child_env(), cwd=str(ROOT), timeout=3600,
                                      check=True)
                figures = json.loads(done.stdout)
                runs[approach].append(figures)
                print(f"  {approach:8s} {figures['seconds']:6.1f} s (CPU {figures['cpu_seconds']:.1f} s), "
                      f"peak RSS {figures['peak_rss_mb']:6.0f} MB (text alone {figures['base_rss_mb']:.0f} MB)",
                      flush=True)
    for approach, figures in runs.items():
        results[approach] = {**figures[-1], "seconds": statistics.median(f["seconds"] for f in figures),
                             "runs_s": [f["seconds"] for f in figures],
                             "cpu_seconds": min(f["cpu_seconds"] for f in figures),
                             "runs_cpu_s": [f["cpu_seconds"] for f in figures],
                             "peak_rss_mb": max(f["peak_rss_mb"] for f in figures)}
    counts = {(results[a]["vertices"], results[a]["edges"]) for a in APPROACHES}
    if len(counts) != 1:
        raise RuntimeError(f"the readers disagree on the graph: {counts}")
    base = results["stream"]
    results["ratios"] = {
        a: {"time": results[a]["seconds"] / base["seconds"],
            "cpu": results[a]["cpu_seconds"] / base["cpu_seconds"],
            "peak_rss": results[a]["peak_rss_mb"] / base["peak_rss_mb"]}
        for a in APPROACHES
    }
    print("jgf: " + "; ".join(f"{a} {results[a]['seconds']:.1f} s x{r['time']:.2f} (CPU "
                              f"{results[a]['cpu_seconds']:.1f} s x{r['cpu']:.2f}), {results[a]['peak_rss_mb']:.0f} MB "
                              f"x{r['peak_rss']:.2f}" for a, r in results["ratios"].items())
          + " (ratios to stream)", flush=True)
    write_results("jgf", results, out)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1,024 nodes")
    parser.add_argument("--nodes", type=int)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--repeat", type=int, help="rounds of all approaches (default 3, --quick 1)")
    parser.add_argument("--child", nargs=2, metavar=("APPROACH", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child)
    else:
        run(args.quick, args.nodes, args.out, args.repeat)


if __name__ == "__main__":
    sys.exit(main())
