"""Run every benchmark: ``python -m bench [--quick] [--only NAME ...]``.

Each benchmark prints its figures and writes bench/results/<name>.json; this
runner then prints one summary table, writes bench/results/summary.json and
draws the plots into docs/img/ (when matplotlib is installed: the ``bench``
extra). The matcher's bench/match_bench.py runs too when it is present.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

from bench import (
    batch_bench,
    fairshare_bench,
    lifecycle_bench,
    memory_bench,
    queue_scale_bench,
    receive_bench,
    register_bench,
    restart_bench,
    submit_bench,
    web_bench,
    workflow_bench,
)
from bench.common import RESULTS, ROOT, child_env, machine, write_results


def _match(quick: bool) -> dict[str, Any]:
    script = ROOT / "bench" / "match_bench.py"
    out = RESULTS / "match.json"
    args = [sys.executable, str(script), "--out", str(out)] + (["--quick"] if quick else [])
    subprocess.run(args, check=True, env=child_env(), cwd=str(ROOT), timeout=3600)
    return json.loads(out.read_text())


BENCHMARKS: dict[str, Callable[[bool], dict[str, Any]]] = {
    "submit": lambda quick: submit_bench.run(quick),
    "batch": lambda quick: batch_bench.run(quick),
    "receive": lambda quick: receive_bench.run(quick),
    "queue_scale": lambda quick: queue_scale_bench.run(quick),
    "register": lambda quick: register_bench.run(quick),
    "restart": lambda quick: restart_bench.run(quick),
    "memory": lambda quick: memory_bench.run(quick),
    "lifecycle": lambda quick: lifecycle_bench.run(quick),
    "web": lambda quick: web_bench.run(quick),
    "workflow": lambda quick: workflow_bench.run(quick),
    "match": _match,
    "fairshare": lambda quick: fairshare_bench.run(quick),
}


def summary_rows(results: dict[str, dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    """(figure, rainbow, baseline and ratio, target) for every benchmark that ran."""
    rows = []
    if "submit" in results:
        r = results["submit"]
        rows.append(("submit throughput (32 clients)", f"{r['rainbow_rps']:,.0f} jobs/s",
                     f"echo {r['echo_rps']:,.0f} req/s, ratio {r['ratio']:.2f}", ">= 0.5 and >= 1,000 jobs/s"))
        rows.append(("submit latency median / p99", f"{r['median_ms']:.1f} / {r['p99_ms']:.1f} ms",
                     f"echo {r['echo_median_ms']:.1f} / {r['echo_p99_ms']:.1f} ms", "reported"))
        rows.append(("submit with user tokens (32 clients, 10 users)", f"{r['user_rps']:,.0f} jobs/s",
                     f"cluster tokens {r['rainbow_rps']:,.0f} jobs/s, x{r['user_ratio']:.2f}", ">= 0.9"))
        if "stages" in r:
            st = r["stages"]
            rows.append(("submit: server CPU per request by stage", ", ".join(
                f"{name} +{st[name]['adds_cpu_ms']:.3f} ms" for name in ("answer", "place", "full")),
                f"echo {st['echo']['cpu_ms_per_request']:.3f} ms", "reported"))
    if "batch" in results:
        r = results["batch"]
        rows.append((f"SubmitJobs, {r['jobs']:,} one-node jobs", f"{r['batch_jobs_per_s']:,.0f} jobs/s, arrays "
                     f"{r['array_jobs_per_s']:,.0f}", f"single SubmitJob {r['single_jobs_per_s']:,.0f} jobs/s, "
                     f"x{r['ratio_batch']:.1f} (arrays x{r['ratio_array']:.1f})", ">= 20,000 jobs/s and >= 10x"))
    if "receive" in results:
        r = results["receive"]
        rows.append((f"receive + accept {r['jobs']:,} jobs", f"{r['round_s']:.3f} s",
                     f"bare gRPC {r['echo_s']:.3f} s, x{r['ratio']:.1f}", "< 1 s"))
    if "queue_scale" in results:
        r = results["queue_scale"]
        q = r["ratios"]
        rows.append((f"{r['jobs']:,} jobs vs empty store", f"submit x{q['submit_median']:.2f}, receive "
                     f"x{q['receive_median']:.2f} (medians)", "empty store", "<= 2x"))
        rows.append((f"restart with {r['jobs']:,} jobs", f"{r['large']['restart_s']:.2f} s",
                     f"empty {r['empty']['restart_s']:.2f} s", "< 10 s"))
    if "register" in results:
        r = results["register"]
        rows.append((f"register {r['nodes']:,} nodes ({r['vertices']:,} vertices)", f"{r['register_s']:.1f} s",
                     f"bare parse {r['bare_parse']['parse_s']:.1f} s (x{r['ratio_to_parse']:.2f}), gRPC transfer "
                     f"{r['echo_transfer_s']:.1f} s", "< 30 s"))
    if "restart" in results:
        r = results["restart"]
        rows.append((f"restart, {r['clusters']} clusters x {r['nodes_per_cluster']:,} nodes", f"{r['compact_s']:.2f} s "
                     f"(server CPU {r['compact']['server_cpu_s']:.2f} s)", f"from JGF {r['from_jgf_s']:.1f} s, "
                     f"x{r['ratio']:.1f}", "< 5 s"))
    if "receive" in results and "array_round_s" in results["receive"]:
        r = results["receive"]
        rows.append((f"receive + accept a {r['jobs']:,}-copy array", f"{r['array_round_s']:.3f} s", "", "< 1 s"))
    if "memory" in results:
        r = results["memory"]
        rows.append((f"memory: {r['clusters']} clusters x {r['nodes_per_cluster']:,} nodes, {r['jobs']:,} jobs",
                     f"RSS {r['full']['VmRSS']:.0f} MB (peak {r['full']['VmHWM']:.0f})",
                     f"empty server {r['empty']['VmRSS']:.0f} MB", "< 1.5 GB"))
    if "lifecycle" in results:
        r = results["lifecycle"]
        s, w = r["stream"], r["watch"]
        rows.append(("submit -> agent (StreamJobs) median / p99", f"{s['median_ms']:.1f} / {s['p99_ms']:.1f} ms",
                     f"bare round trip {r['echo_round_trip']['median_ms']:.2f} ms", "median < 1 s"))
        rows.append((f"{w['streams']} WatchJobs streams while submitting",
                     f"{w['exact_streams']} exact, {w['missed']} missed, {w['duplicated']} duplicated",
                     f"{w['events']:,} events in the store", "none missed or duplicated"))
    if "web" in results:
        r = results["web"]
        rows.append((f"dashboard job pages, {r['pages']['jobs']:,} jobs", f"slowest {r['worst_page_median_ms']:.1f} ms "
                     "(median server time)", "first, filtered, sorted and deep pages", "< 200 ms"))
        v = r["viewers"]
        rows.append((f"SubmitJob with {v['viewers']} live dashboard viewers", f"x{v['ratio']:.2f} of no viewer",
                     f"{len(v['with_rps'])} rounds each, alternating", ">= 0.9"))
    if "fairshare" in results:
        v = results["fairshare"]["receive"]
        rows.append((f"fair-share receive + accept {v['jobs']:,} jobs of 10 users", f"{v['round_s']:.3f} s", "",
                     "< 1 s"))
    if "workflow" in results:
        r = results["workflow"]
        rows.append((f"SubmitWorkflow, {r['steps']:,}-step fan-out/fan-in", f"{r['submit_s']:.2f} s", "", "< 2 s"))
        rows.append(("parent's completion report -> released child at its agent",
                     f"median {r['release']['median_ms']:.1f}, max {r['release']['max_ms']:.1f} ms; fan-in "
                     f"{r['fan_in_s'] * 1000:.0f} ms", f"fan-out of {r['steps'] - 2:,} at once: last after "
                     f"{r['fan_out_last_s']:.2f} s", "<= 1 s"))
    if "match" in results:
        r = results["match"]
        if "mix_median_ms" in r:
            rows.append((f"satisfy over the {r['cluster_count']} clusters (matcher)",
                         f"{r['mix_median_ms']:.3f} ms median", "", ""))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: small sizes, about 100 s in all")
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), help="run only these")
    parser.add_argument("--skip", nargs="+", choices=sorted(BENCHMARKS), default=[], help="leave these out")
    parser.add_argument("--no-plots", action="store_true", help="do not draw docs/img/*.png")
    args = parser.parse_args(argv)

    names = [n for n in (args.only or BENCHMARKS) if n not in args.skip]
    if "match" in names and not (ROOT / "bench" / "match_bench.py").exists():
        names.remove("match")
    results: dict[str, dict[str, Any]] = {}
    failed: dict[str, str] = {}
    for name in names:
        print(f"== {name}", flush=True)
        started = time.perf_counter()
        try:
            results[name] = BENCHMARKS[name](args.quick)
        except Exception as exc:
            traceback.print_exc()
            failed[name] = repr(exc)
        print(f"   ({time.perf_counter() - started:.0f} s)", flush=True)

    rows = summary_rows(results)
    width = max((len(r[0]) for r in rows), default=10)
    print("\n== summary" + (" (quick: sizes are not the targets')" if args.quick else ""))
    for figure, value, baseline, target in rows:
        print(f"{figure:<{width}}  {value:<40} {baseline:<48} {target}")
    for name, error in failed.items():
        print(f"{name}: FAILED {error}")
    write_results("summary", {"quick": args.quick, "machine": machine(), "rows": rows, "failed": failed})
    if not args.no_plots:
        from bench import plots

        for path in plots.draw(RESULTS, quick=args.quick):
            print(f"plot: {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
