"""Workflows: a 10,000-step fan-out/fan-in submitted in one call, and how soon a released step reaches its agent.

The rainbow server (its own process, SQLite, synchronous=FULL) has 4
registered clusters; every request lists them with the global token. Agents
are simulated by one ``StreamJobs`` stream per cluster (the push the real agent
uses), each accepting what it receives at once.

- **submit**: one ``SubmitWorkflow`` call of ``steps`` steps: ``split``, then
  ``steps - 2`` ``work-<i>`` steps that each need it, then ``join`` that needs
  all of them; each step its own one-node jobspec (its own command). Timed
  from the call to its answer (every step checked, ``split`` placed, all stored).
- **release latency (one parent)**: ``samples`` times, a parent job arrives on a
  stream, is accepted and reported running; a child with ``afterok`` on it is
  submitted; the clock starts when the parent's ``completed`` report is sent
  and stops when the child arrives on a stream (released, matched, selected,
  stored, pushed).
- **fan-out**: ``split``'s completion report releases every ``work`` step: the
  time until the first and the last of them arrives.
- **fan-in**: every ``work`` step is reported completed (8 threads); the clock
  starts when the last report is sent and stops when ``join`` arrives. Each of
  those reports decides one dependency of ``join``: the median report time is
  given against the single-parent case.

``python -m bench.workflow_bench [--quick]``; results in bench/results/workflow.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.common import TOKEN, cluster_jgf, rainbow_server, register_clusters, summary_ms, verdict, write_results

CHANNEL = [("grpc.max_send_message_length", 1 << 30), ("grpc.max_receive_message_length", 1 << 30)]


def one_node(command: list[str], dependencies: list[int] | None = None) -> str:
    from rainbow.dependencies import Dependency
    from rainbow.jobspec import simple, with_dependencies

    doc = simple(command, nodes=1, tasks=1)
    if dependencies:
        doc = with_dependencies(doc, [Dependency("afterok", parent) for parent in dependencies])
    return json.dumps(doc)


class Agents:
    """One StreamJobs stream per cluster, accepting every job at once and noting when it arrived."""

    def __init__(self, stub: Any, secrets: dict[str, str]) -> None:
        self.stub = stub
        self.secrets = secrets
        self.arrived: dict[int, tuple[float, str, int]] = {}  # job id -> (perf_counter, cluster, lease)
        self.changed = threading.Condition()
        self.calls: list[Any] = []
        self.threads = [threading.Thread(target=self._pull, args=(name,), daemon=True) for name in secrets]
        for thread in self.threads:
            thread.start()

    def _pull(self, cluster: str) -> None:
        import grpc

        from rainbow.protos import rainbow_pb2

        request = rainbow_pb2.ReceiveJobsRequest(cluster=cluster, secret=self.secrets[cluster], maxJobs=100_000,
                                                 agent=f"bench-{cluster}")
        call = self.stub.StreamJobs(request)
        self.calls.append(call)
        try:
            for reply in call:
                now = time.perf_counter()
                with self.changed:
                    for job_id in reply.jobs:
                        self.arrived[job_id] = (now, cluster, reply.leases.get(job_id, 0))
                    self.changed.notify_all()
                self.stub.AcceptJobs(rainbow_pb2.AcceptJobsRequest(
                    cluster=cluster, secret=self.secrets[cluster], jobids=list(reply.jobs), agent=f"bench-{cluster}",
                    leases=dict(reply.leases)), timeout=600)
        except grpc.RpcError:
            return

    def wait(self, job_ids: list[int], timeout: float = 600.0) -> list[float]:
        """Arrival times of the jobs, once all arrived."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while not all(job_id in self.arrived for job_id in job_ids):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{sum(1 for j in job_ids if j not in self.arrived)} jobs never arrived")
                self.changed.wait(left)
            return [self.arrived[job_id][0] for job_id in job_ids]

    def report(self, job_id: int, state: str) -> float:
        """Report a job's state as its cluster's agent; the time the report was sent."""
        from rainbow.protos import rainbow_pb2

        _, cluster, lease = self.arrived[job_id]
        sent = time.perf_counter()
        self.stub.ReportJobState(rainbow_pb2.ReportJobStateRequest(
            cluster=cluster, secret=self.secrets[cluster], jobid=job_id, state=state, agent=f"bench-{cluster}",
            lease=lease, exit_code=0, has_exit_code=state == "completed"), timeout=600)
        return sent

    def close(self) -> None:
        for call in self.calls:
            call.cancel()


def workflow_request(listed: list[Any], steps: int) -> Any:
    from rainbow.protos import rainbow_pb2

    def step(name: str, needs: list[str]) -> Any:
        return rainbow_pb2.WorkflowStep(name=name, jobspec=one_node(["app", name]),
                                        needs=[rainbow_pb2.WorkflowNeed(step=n, scheme="afterok") for n in needs])

    work = [f"work-{i}" for i in range(steps - 2)]
    entries = [step("split", []), *(step(name, ["split"]) for name in work), step("join", work)]
    return rainbow_pb2.SubmitWorkflowRequest(clusters=listed, name="fan", steps=entries)


def run(quick: bool = False, steps: int | None = None, samples: int | None = None, out: Path | None = None
        ) -> dict[str, Any]:
    import grpc

    from rainbow.protos import rainbow_pb2, rainbow_pb2_grpc

    steps = steps or (1_000 if quick else 10_000)
    samples = samples or (10 if quick else 50)
    names = [f"cluster-{i}" for i in range(4)]
    results: dict[str, Any] = {"quick": quick, "steps": steps, "samples": samples, "clusters": len(names)}
    with tempfile.TemporaryDirectory(prefix="rainbow-workflow-") as tmp, \
            rainbow_server(Path(tmp) / "workflow.db", "--max-batch-jobs", str(steps)) as server, \
            grpc.insecure_channel(server.address, options=CHANNEL) as channel:
        secrets = register_clusters(server.address, [(n, cluster_jgf(16, name=n)) for n in names])
        stub = rainbow_pb2_grpc.RainbowSchedulerStub(channel)
        listed = [rainbow_pb2.SubmitJobRequest.Cluster(name=name, token=TOKEN) for name in names]
        agents = Agents(stub, secrets)
        try:
            # Release latency, one parent at a time.
            latencies, reports = [], []
            for i in range(samples):
                parent = stub.SubmitJob(rainbow_pb2.SubmitJobRequest(
                    name="parent", clusters=listed, jobspec=one_node(["app", f"parent-{i}"])), timeout=60).jobid
                agents.wait([parent])
                agents.report(parent, "running")
                child = stub.SubmitJob(rainbow_pb2.SubmitJobRequest(
                    name="child", clusters=listed, jobspec=one_node(["app", f"child-{i}"], [parent])), timeout=60).jobid
                sent = agents.report(parent, "completed")
                reports.append(time.perf_counter() - sent)
                (arrived,) = agents.wait([child])
                latencies.append(arrived - sent)
            results["release"] = summary_ms(latencies)
            results["release_report"] = summary_ms(reports)

            # A fan-out/fan-in of ``steps`` steps: submitted in one call.
            request = workflow_request(listed, steps)
            began = time.perf_counter()
            info = stub.SubmitWorkflow(request, timeout=600)
            results["submit_s"] = time.perf_counter() - began
            ids = {step.name: step.job.id for step in info.steps}
            work = [ids[name] for name in ids if name.startswith("work-")]
            agents.wait([ids["split"]])
            agents.report(ids["split"], "running")
            sent = agents.report(ids["split"], "completed")
            arrivals = agents.wait(work)
            results["fan_out_first_s"] = min(arrivals) - sent
            results["fan_out_last_s"] = max(arrivals) - sent

            # Fan-in: every work step completes; the last report releases join.
            durations: list[float] = []

            def finish(job_id: int) -> float:
                agents.report(job_id, "running")
                began = agents.report(job_id, "completed")
                durations.append(time.perf_counter() - began)
                return began

            with ThreadPoolExecutor(8) as pool:
                list(pool.map(finish, work[:-1]))
            last = finish(work[-1])
            (joined,) = agents.wait([ids["join"]])
            results["fan_in_s"] = joined - last
            results["fan_in_report"] = summary_ms(durations)
            results["server_memory_mb"] = server.memory()
        finally:
            agents.close()
    within = results["release"]["max_ms"] <= 1000 and results["fan_in_s"] <= 1.0
    results["targets"] = {
        "submit_under_2_s": results["submit_s"] < 2.0,
        "release_within_1_s": within,
        "fan_out_last_within_1_s": results["fan_out_last_s"] <= 1.0,
    }
    print(f"workflow: {steps:,}-step fan-out/fan-in submitted in {results['submit_s']:.2f} s "
          f"[{verdict(results['submit_s'] < 2.0)} < 2 s]; release after the parent's report: median "
          f"{results['release']['median_ms']:.1f} ms, max {results['release']['max_ms']:.1f} ms over {samples}, "
          f"fan-in (the last of {len(work):,} parents) {results['fan_in_s'] * 1000:.1f} ms [{verdict(within)} <= 1 s]; "
          f"fan-out: first of {len(work):,} after {results['fan_out_first_s']:.2f} s, last after "
          f"{results['fan_out_last_s']:.2f} s", flush=True)
    write_results("workflow", results, out)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 steps and 10 release samples")
    parser.add_argument("--steps", type=int, help="steps of the fan-out/fan-in (default 10,000; quick 1,000)")
    parser.add_argument("--samples", type=int, help="single-parent releases timed (default 50; quick 10)")
    parser.add_argument("--out", type=Path, help="results file (default bench/results/workflow.json)")
    args = parser.parse_args(argv)
    run(args.quick, args.steps, args.samples, out=args.out)


if __name__ == "__main__":
    sys.exit(main())
