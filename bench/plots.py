"""Draw the benchmark figures as PNG from bench/results/*.json (matplotlib: the ``bench`` extra).

Full runs draw into docs/img/ (the figures docs/benchmarks.md embeds); quick
runs into bench/results/ so that a smoke run never replaces them. Results of
the code before this work, when present in bench/results/before/ (run the
benchmarks with RAINBOW_BENCH_SRC pointing at the old src and ``--out`` there),
are drawn beside the current ones.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.common import ROOT

IMG = ROOT / "docs" / "img"
COLORS = {"baseline": "#9e9e9e", "before": "#e57373", "after": "#1e88e5", "second": "#90caf9"}


def _load(directory: Path, name: str) -> dict[str, Any] | None:
    path = directory / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _bars(ax: Any, labels: list[str], values: list[float], colors: list[str], unit: str, fmt: str = "{:,.0f}") -> None:
    bars = ax.bar(labels, values, color=colors)
    for bar, value in zip(bars, values, strict=True):
        ax.annotate(fmt.format(value), (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center",
                    va="bottom", fontsize=8)
    ax.set_ylabel(unit)
    ax.tick_params(axis="x", labelsize=8)


def draw(results: Path, quick: bool = False) -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("plots: matplotlib is not installed (pip install -e '.[bench]'); no plots drawn")
        return []
    out_dir = results if quick else IMG
    out_dir.mkdir(parents=True, exist_ok=True)
    before_dir = results / "before"
    drawn: list[Path] = []

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        path = out_dir / f"bench-{name}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        drawn.append(path)

    submit, before = _load(results, "submit"), _load(before_dir, "submit")
    if submit:
        fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6))
        labels, rps, colors = ["bare gRPC echo"], [submit["echo_rps"]], [COLORS["baseline"]]
        medians, p99s = [submit["echo_median_ms"]], [submit["echo_p99_ms"]]
        if before:
            labels.append(f"rainbow before\n(ratio {before['ratio']:.2f})")
            rps.append(before["rainbow_rps"])
            colors.append(COLORS["before"])
            medians.append(before["median_ms"])
            p99s.append(before["p99_ms"])
        labels.append(f"rainbow\n(ratio {submit['ratio']:.2f})")
        rps.append(submit["rainbow_rps"])
        colors.append(COLORS["after"])
        medians.append(submit["median_ms"])
        p99s.append(submit["p99_ms"])
        _bars(left, labels, rps, colors, "requests / s")
        left.set_title(f"SubmitJob, {submit['clients']} clients; ratio to the echo of the same run", fontsize=10)
        x = range(len(labels))
        right.bar([i - 0.2 for i in x], medians, width=0.4, color=colors, label="median")
        right.bar([i + 0.2 for i in x], p99s, width=0.4, color=colors, alpha=0.5, label="p99")
        right.set_xticks(list(x), labels, fontsize=8)
        right.set_ylabel("latency (ms)")
        right.set_title("latency: median (solid), p99 (light)", fontsize=10)
        save(fig, "submit")

    receive, before = _load(results, "receive"), _load(before_dir, "receive")
    if receive:
        fig, ax = plt.subplots(figsize=(6, 3.6))
        rows = [("bare gRPC", 0.0, receive["echo_s"], COLORS["baseline"])]
        if before:
            rows.append(("rainbow before", before["receive_s"], before["accept_s"], COLORS["before"]))
        rows.append(("rainbow", receive["receive_s"], receive["accept_s"], COLORS["after"]))
        labels = [r[0] for r in rows]
        ax.bar(labels, [r[1] for r in rows], color=[r[3] for r in rows], label="ReceiveJobs")
        ax.bar(labels, [r[2] for r in rows], bottom=[r[1] for r in rows], color=[r[3] for r in rows], alpha=0.5,
               label="AcceptJobs")
        for i, r in enumerate(rows):
            ax.annotate(f"{r[1] + r[2]:.2f} s", (i, r[1] + r[2]), ha="center", va="bottom", fontsize=8)
        ax.axhline(1.0, color="black", linestyle=":", linewidth=1)
        ax.set_ylabel("seconds (receive solid, accept light)")
        ax.set_title(f"one round of {receive['jobs']:,} waiting jobs (target < 1 s)", fontsize=10)
        save(fig, "receive")

    queue, before = _load(results, "queue_scale"), _load(before_dir, "queue_scale")
    if queue:
        fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6))
        groups = [("submit median", "submit", "median_ms"), ("submit p99", "submit", "p99_ms"),
                  ("receive median", "receive", "median_ms"), ("receive p99", "receive", "p99_ms")]
        x = range(len(groups))
        series = [("empty store", queue["empty"], COLORS["second"]), (f"{queue['jobs']:,} jobs", queue["large"],
                                                                      COLORS["after"])]
        if before:
            series.append((f"{before['jobs']:,} jobs, before", before["large"], COLORS["before"]))
        width = 0.8 / len(series)
        for k, (label, row, color) in enumerate(series):
            left.bar([i + (k - (len(series) - 1) / 2) * width for i in x], [row[a][b] for _, a, b in groups],
                     width=width, color=color, label=label)
        left.set_xticks(list(x), [g[0] for g in groups], fontsize=8)
        left.set_ylabel("ms")
        left.legend(fontsize=8)
        left.set_title("latency, empty vs large store", fontsize=10)
        labels = ["start, empty", "restart, empty", f"restart, {queue['jobs']:,}"]
        _bars(right, labels, [queue["empty"]["startup_s"], queue["empty"]["restart_s"], queue["large"]["restart_s"]],
              [COLORS["second"], COLORS["second"], COLORS["after"]], "seconds to serving", "{:.2f} s")
        right.axhline(10, color="black", linestyle=":", linewidth=1)
        right.set_title("process start to serving (target < 10 s)", fontsize=10)
        save(fig, "queue-scale")

    register, memory = _load(results, "register"), _load(results, "memory")
    if register or memory:
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
        if register:
            _bars(axes[0], ["gRPC transfer", "bare parse", "Register"],
                  [register["echo_transfer_s"], register["bare_parse"]["parse_s"], register["register_s"]],
                  [COLORS["baseline"], COLORS["second"], COLORS["after"]], "seconds", "{:.1f} s")
            axes[0].axhline(30, color="black", linestyle=":", linewidth=1)
            axes[0].set_title(f"{register['nodes']:,}-node cluster, {register['vertices']:,} vertices "
                              "(target < 30 s)", fontsize=9)
        if memory:
            _bars(axes[1], ["empty server", "RSS", "peak RSS"],
                  [memory["empty"]["VmRSS"], memory["full"]["VmRSS"], memory["full"]["VmHWM"]],
                  [COLORS["baseline"], COLORS["after"], COLORS["second"]], "MiB", "{:,.0f}")
            axes[1].set_title(f"{memory['clusters']} clusters x {memory['nodes_per_cluster']:,} nodes, "
                              f"{memory['jobs']:,} jobs (target < 1.5 GB)", fontsize=9)
        save(fig, "register-memory")

    life, before = _load(results, "lifecycle"), _load(before_dir, "lifecycle")
    if life:
        fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6))
        stream = life["stream"]
        _bars(left, ["bare round trip", "StreamJobs median", "StreamJobs p99"],
              [life["echo_round_trip"]["median_ms"], stream["median_ms"], stream["p99_ms"]],
              [COLORS["baseline"], COLORS["after"], COLORS["second"]], "ms", "{:.1f}")
        left.set_title("submit -> agent has the job (target median < 1 s)", fontsize=9)
        labels, values, colors = [], [], []
        if before:
            labels.append("before")
            values.append(before["watch"]["submit_rps_while_watched"])
            colors.append(COLORS["before"])
        labels.append("after")
        values.append(life["watch"]["submit_rps_while_watched"])
        colors.append(COLORS["after"])
        _bars(right, labels, values, colors, "jobs / s")
        right.set_title(f"submits while {life['watch']['streams']} WatchJobs streams follow "
                        f"(all {life['watch']['exact_streams']} exact)", fontsize=9)
        save(fig, "lifecycle")
    batch = _load(results, "batch")
    if batch and "server_cpu_us_per_job" in batch:
        fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6))
        labels = ["SubmitJob\n(32 clients)", "SubmitJobs\ndistinct jobspecs", "SubmitJobs\narrays"]
        colors = [COLORS["baseline"], COLORS["after"], COLORS["second"]]
        _bars(left, labels, [batch["single_jobs_per_s"], batch["batch_jobs_per_s"], batch["array_jobs_per_s"]],
              colors, "jobs / s")
        left.set_title(f"{batch['jobs']:,} one-node jobs over 10 clusters (wall time)", fontsize=10)
        cpu = batch["server_cpu_us_per_job"]
        _bars(right, labels, [cpu["single"], cpu["batch"], cpu["array"]], colors, "server CPU per job (us)")
        right.set_title(f"server CPU per job: x{batch['cpu_ratio_batch']:.1f} and x{batch['cpu_ratio_array']:.1f} "
                        "of SubmitJob", fontsize=10)
        save(fig, "batch")
    restart = _load(results, "restart")
    if restart:
        fig, ax = plt.subplots(figsize=(6, 3.6))
        jgf, compact = restart["from_jgf"], restart["compact"]
        labels = ["from JGF\n(before)", "compact graphs\n(after)"]
        x = range(len(labels))
        ax.bar([i - 0.2 for i in x], [jgf["serving_s"], compact["serving_s"]], width=0.4,
               color=[COLORS["before"], COLORS["after"]], label="process start to serving")
        ax.bar([i + 0.2 for i in x], [jgf["server_cpu_s"], compact["server_cpu_s"]], width=0.4,
               color=[COLORS["before"], COLORS["after"]], alpha=0.5, label="server CPU")
        for i, (wall, cpu_s) in enumerate([(jgf["serving_s"], jgf["server_cpu_s"]),
                                           (compact["serving_s"], compact["server_cpu_s"])]):
            ax.annotate(f"{wall:.1f} s", (i - 0.2, wall), ha="center", va="bottom", fontsize=8)
            ax.annotate(f"{cpu_s:.1f} s", (i + 0.2, cpu_s), ha="center", va="bottom", fontsize=8)
        ax.set_xticks(list(x), labels, fontsize=8)
        ax.set_ylabel("seconds")
        ax.set_title(f"restart, {restart['clusters']} clusters x {restart['nodes_per_cluster']:,} nodes: "
                     "wall (solid), server CPU (light)", fontsize=10)
        save(fig, "restart")
    return drawn
