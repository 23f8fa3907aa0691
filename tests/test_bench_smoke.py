"""The benchmarks' quick modes, end to end, so that they keep working (no timing is asserted)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import (  # noqa: E402
    batch_bench,
    fairshare_bench,
    receive_bench,
    restart_bench,
    submit_bench,
    web_bench,
    workflow_bench,
)
from bench.__main__ import summary_rows  # noqa: E402
from bench.load import SUBMIT_METHOD  # noqa: E402
from bench.soak_bench import Fault, classify  # noqa: E402


def test_submit_and_receive_quick(tmp_path):
    submit = submit_bench.run(quick=True, processes=2, duration=1.0, out=tmp_path / "submit.json")
    assert submit["acknowledged"] > 0 and submit["errors"] == 0
    assert all(r["acknowledged"] > 0 for r in submit["user"])  # the rounds with the 10 users' tokens
    assert submit["stored"] == submit["acknowledged"]  # every acknowledged job is in the store
    assert submit["echo_rps"] > 0 and submit["rainbow_rps"] > 0

    receive = receive_bench.run(quick=True, out=tmp_path / "receive.json")
    assert receive["all_received"]
    assert (tmp_path / "submit.json").exists() and (tmp_path / "receive.json").exists()

    rows = summary_rows({"submit": submit, "receive": receive})
    assert [row[0] for row in rows][:4] == [
        "submit throughput (32 clients)", "submit latency median / p99",
        "submit with user tokens (32 clients, 10 users)", "receive + accept 1,000 jobs"]


def test_the_staged_servers_stop_submit_where_they_say(tmp_path):
    import grpc

    from bench.common import cluster_jgf, register_clusters
    from rainbow.protos import rainbow_pb2

    graphs = [("one", cluster_jgf(2, name="one")), ("two", cluster_jgf(2, name="two"))]
    request = submit_bench.submit_payloads(["one", "two"], count=1)[0]
    replies = {}
    with submit_bench.staged_server(tmp_path / "place.db", "place") as place, \
            submit_bench.staged_server(tmp_path / "answer.db", "answer") as answer:
        for stage, server in (("place", place), ("answer", answer)):
            register_clusters(server.address, graphs)
            with grpc.insecure_channel(server.address) as channel:
                submit = channel.unary_unary(SUBMIT_METHOD,
                                             response_deserializer=rainbow_pb2.SubmitJobResponse.FromString)
                replies[stage] = submit(request, timeout=30)
    placed, answered = replies["place"], replies["answer"]
    assert placed.cluster in {"one", "two"} and list(placed.clusters) == [placed.cluster]
    assert answered.jobid == 1 and not answered.cluster  # the fixed reply: nothing was placed
    assert submit_bench.count_jobs(tmp_path / "place.db") == 0  # placed, never stored


def test_stage_costs_say_what_each_stage_adds():
    def rounds(rps, cpu):
        return [{"rps": rps, "server_cpu_ms_per_request": cpu}]

    costs = submit_bench.stage_costs(rounds(4000, 0.25), {"answer": rounds(3000, 0.3), "full": rounds(2000, 0.5)})
    assert list(costs) == ["echo", "answer", "full"]
    assert costs["full"]["ratio"] == 0.5 and round(costs["full"]["adds_cpu_ms"], 3) == 0.2
    assert round(costs["answer"]["adds_cpu_ms"], 3) == 0.05 and costs["echo"]["adds_cpu_ms"] == 0


def test_fairshare_quick(tmp_path):
    results = fairshare_bench.run(quick=True, out=tmp_path / "fairshare.json")
    receive = results["receive"]
    assert receive["rows"][0]["jobs"] == receive["jobs"] and receive["rows"][0]["accepted"]
    rows = summary_rows({"fairshare": results})
    assert [row[0] for row in rows] == ["fair-share receive + accept 1,000 jobs of 10 users"]


def test_the_summary_names_as_many_clusters_as_the_run_matched_against():
    rows = summary_rows({"match": {"mix_median_ms": 0.5, "cluster_count": 20}})
    assert rows == [("satisfy over the 20 clusters (matcher)", "0.500 ms median", "", "")]


def test_soak_blames_a_second_run_on_the_holder_that_lost_the_lease():
    runs = {
        1: [("c1-a", 1, 10.0), ("c1-b", 1, 16.0)],  # "c1-a" was killed while its lease ran out
        2: [("c1-a", 1, 10.0), ("c1-a", 1, 11.0)],  # one agent ran it twice: never explained
        3: [("c2-a", 1, 10.0), ("c2-b", 1, 30.0)],  # taken over while its holder was fine
        4: [("c2-a", 1, 10.0)],
    }
    leases = {1: [(9.0, "c1-a"), (15.0, "c1-b")], 2: [(9.0, "c1-a")], 3: [(9.0, "c2-a"), (29.0, "c2-b")]}
    faults = [Fault("agent", "c1-a", 12.5, 14.0), Fault("replica", "r0", 1.0, 3.0), Fault("agent", "c2-b", 27, 28)]
    live, away = classify(runs, leases, faults, {"c1-a": "r0", "c1-b": "r1", "c2-a": "r0", "c2-b": "r1"})
    assert [case["job"] for case in live] == [2, 3]
    assert [(case["job"], case["holder"], case["cause"], case["away_s"]) for case in away] == [
        (1, "c1-a", "agent c1-a", 1.5)]


def test_web_quick(tmp_path):
    web = web_bench.run(quick=True, jobs=5_000, out=tmp_path / "web.json", viewer_seconds=1.0)
    assert web["pages"]["first page"]["rows"] == 50 and web["pages"]["page 21"]["rows"] == 50
    assert web["pages"]["name exact"]["rows"] == 1
    assert len(web["viewers"]["with_rps"]) == len(web["viewers"]["without_rps"]) == 2
    assert all(n > 0 for n in web["viewers"]["batches_delivered"])
    assert summary_rows({"web": web})[0][0] == "dashboard job pages, 5,000 jobs"


def test_match_placement_quick(capsys):
    from bench import match_bench

    result = match_bench.placement_section(n_clusters=8, nodes=40, repeat=2)
    assert len(result["plain"]) == len(result["placed"]) == len(match_bench.jobspec_mix(40))
    assert result["ratio"] > 0
    reasons = {reason for row in result["placed"] for reason in row["reasons"]}
    assert "no queue 'nosuch'" in reasons  # every fifth jobspec names a queue the clusters lack
    assert "queues and constraints: median" in capsys.readouterr().out


def test_batch_quick(tmp_path):
    batch = batch_bench.run(quick=True, jobs=2_000, chunk=1_000, out=tmp_path / "batch.json")
    assert batch["batch_placed"] == batch["array_placed"] == 2_000 and batch["calls"] == 2
    assert batch["stored"] == batch["acknowledged"] and batch["durable"]
    assert batch["batch_jobs_per_s"] > 0 and batch["single_jobs_per_s"] > 0


def test_workflow_quick(tmp_path):
    result = workflow_bench.run(quick=True, steps=200, samples=3, out=tmp_path / "workflow.json")
    assert result["steps"] == 200 and result["release"]["n"] == 3
    assert result["fan_in_report"]["n"] == 198  # every work step was reported and join arrived after the last
    assert 0 < result["fan_out_first_s"] <= result["fan_out_last_s"]
    assert (tmp_path / "workflow.json").exists()


def test_restart_quick(tmp_path):
    restart = restart_bench.run(quick=True, out=tmp_path / "restart.json")
    assert restart["from_jgf"]["placed_on"] and restart["compact"]["placed_on"]
    assert restart["compact_s"] > 0 and restart["from_jgf_s"] > 0
    assert summary_rows({"restart": restart})[0][0] == "restart, 10 clusters x 100 nodes"
