"""The commands: `rainbow agent --executor local`, `python -m rainbow.register --R`, `rainbow demo`."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time

from rainbow.client import RainbowClient
from rainbow.config import RainbowConfig
from rainbow.protos import rainbow_pb2

from conftest import EXAMPLES, REGISTRATION_SECRET, live_processes, subprocess_env

R_FILE = EXAMPLES / "flux" / "R-16node-gpus.json"


def run(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout,
                          env=subprocess_env(env))


def test_register_from_a_saved_R_then_agent_runs_a_job(server_factory, tmp_path):
    server = server_factory()
    config_path = tmp_path / "rainbow-config.yaml"
    dry = run("-m", "rainbow.register", "--R", str(R_FILE), "--cluster-name", "tioga", "--config-path",
              str(config_path), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    jgf = json.loads(dry.stdout)
    assert sum(1 for v in jgf["graph"]["nodes"].values() if v["metadata"]["type"] == "gpu") == 128
    assert not config_path.exists()

    done = run("-m", "rainbow.register", "--R", str(R_FILE), "--cluster-name", "tioga", "--host", server.address,
               "--secret", REGISTRATION_SECRET, "--config-path", str(config_path), "--save")
    assert done.returncode == 0, done.stderr
    assert "registered cluster 'tioga' (16 nodes, 1024 cores, 128 GPUs)" in done.stdout
    config = RainbowConfig.load(config_path)
    assert config.cluster_name == "tioga" and config.cluster_secret and config.token_for("tioga")
    again = run("-m", "rainbow.register", "--R", str(R_FILE), "--host", server.address, "--secret",
                REGISTRATION_SECRET, "--config-path", str(config_path))
    assert again.returncode == 0 and "already registered" in again.stdout

    with RainbowClient(server.address, config_file=config) as client:
        jobid = client.submit_job(["sh", "-c", "exit 4"], nodes=2, tasks=2).jobid
        agent = ["-m", "rainbow", "agent", "--executor", "local", "--config-path", str(config_path), "--once",
                 "--nodes", "16", "--cores-per-node", "64", "--state-dir", str(tmp_path / "state"),
                 "--state", "cost_per_node_hour=3"]
        first = run(*agent)
        assert first.returncode == 0, first.stderr
        token = config.token_for("tioga")
        deadline = time.monotonic() + 30
        while True:
            info = client.scheduler_stub.GetJob(rainbow_pb2.GetJobRequest(jobid=jobid, token=token))
            if info.state == "failed" or time.monotonic() > deadline:
                break
            assert run(*agent).returncode == 0
        assert (info.state, info.exit_code, info.local_id) == ("failed", 4, "local-1")
    state = server.scheduler.cluster_state("tioga")
    assert state["cost_per_node_hour"] == 3 and state["executor_nodes"] == 16


def test_register_renew_gives_a_cluster_whose_config_was_lost_new_credentials(server_factory, tmp_path):
    server = server_factory()
    register = ["-m", "rainbow.register", "--R", str(R_FILE), "--host", server.address, "--secret",
                REGISTRATION_SECRET, "--save"]
    lost, fresh = tmp_path / "lost.yaml", tmp_path / "fresh.yaml"
    assert run(*register, "--config-path", str(lost)).returncode == 0
    plain = run(*register, "--config-path", str(fresh))
    assert plain.returncode == 0 and "lost them? --renew issues new ones" in plain.stdout
    assert not fresh.exists()  # nothing to save: no credentials were issued

    renewed = run(*register, "--config-path", str(fresh), "--renew")
    assert renewed.returncode == 0, renewed.stderr
    assert renewed.stdout.startswith(f"cluster 'tioga' was registered already with {server.address}: issued it "
                                     "new credentials (the old ones no longer work)\n")
    fresh_config = RainbowConfig.load(fresh)
    with RainbowClient(server.address, config_file=fresh_config) as client:
        jobid = client.submit_job(["true"]).jobid
        assert [job.id for job in client.receive_jobs(0)] == [jobid]
    old = run("-m", "rainbow", "receive", "--config-path", str(lost))
    assert old.returncode == 1 and "wrong secret for cluster 'tioga'" in old.stderr


def test_agent_errors_are_one_line(tmp_path):
    config_path = tmp_path / "c.yaml"
    RainbowConfig.new("nobody", host="127.0.0.1:9", path=config_path).save()
    result = run("-m", "rainbow", "agent", "--executor", "local", "--config-path", str(config_path), "--once")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "rainbow: error: the agent needs the secret of cluster 'nobody' (cluster.secret in the config; "
        "register the cluster with --save to write it)"]


def test_demo_runs_end_to_end_and_cleans_up(tmp_path):
    result = run("-m", "rainbow", "demo", env={"TMPDIR": str(tmp_path)}, timeout=120)
    out = result.stdout
    assert result.returncode == 0, result.stderr + out
    assert "registered cluster keebler: 3 nodes, 36 cores" in out
    assert "registered cluster tioga: 16 nodes, 1024 cores, 128 GPUs" in out
    assert re.search(r"-> job \d+ to tioga: matches tioga; keebler does not", out)  # the GPU job
    assert "'huge'" in out and "-> not submitted: no cluster can run this job" in out
    rows = {m.group(1): m.groups() for m in re.finditer(
        r"^\s+\d+\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s*(.*)$", out, re.MULTILINE)}
    assert rows["hello"][2:4] == ("completed", "0") and rows["hello"][5] == f"hello from {rows['hello'][1]}"
    assert rows["gpu-job"][1:3] == ("tioga", "completed") and rows["wide"][1:3] == ("tioga", "completed")
    assert rows["fails"][2:4] == ("failed", "3")
    assert rows["sleepy"][2] == "cancelled"
    assert "huge" not in rows
    assert re.search(r"job \d+ hello\s+\S+\s+running", out)
    assert out.rstrip().endswith("cleaned up: server stopped, agents and their jobs stopped, temporary files removed")
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_of_the_demo_stops_its_running_job_and_returns(tmp_path):
    demo = subprocess.Popen([sys.executable, "-m", "rainbow", "demo", "--timeout", "120"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=subprocess_env({"TMPDIR": str(tmp_path)}))
    try:
        lines = []
        for line in demo.stdout:
            lines.append(line)
            if re.search(r"job \d+ sleepy\s+\S+\s+running", line):
                break
        else:
            raise AssertionError("the demo ended before its long job ran:\n" + "".join(lines))
        (record,) = [json.loads(p.read_text()) for p in tmp_path.glob("rainbow-demo-*/agent-*/jobs/local-*.json")
                     if json.loads(p.read_text())["name"] == "sleepy"]
        assert record["state"] == "running" and live_processes(groups={record["pid"]})
        demo.send_signal(signal.SIGINT)
        rest, _ = demo.communicate(timeout=60)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    out = "".join(lines) + rest
    assert "cancelling job" not in out, "the demo cancelled the job itself before the interrupt"
    assert demo.returncode == 130, out
    assert out.rstrip().endswith("cleaned up: server stopped, agents and their jobs stopped, temporary files removed")
    assert "Traceback" not in out
    assert live_processes(groups={record["pid"]}, parent=demo.pid) == set()
    assert list(tmp_path.iterdir()) == []


def test_stopping_the_local_agent_stops_its_jobs_and_the_next_agent_reports_them(server_factory, tmp_path):
    server = server_factory()
    config_path = tmp_path / "rainbow-config.yaml"
    config = RainbowConfig.new("keebler", host=server.address, path=config_path)
    with RainbowClient(server.address, config_file=config) as client:
        client.register("keebler", REGISTRATION_SECRET, (EXAMPLES / "cluster-nodes.json").read_text(), save=True)
        jobid = client.submit_job(["sleep", "300"]).jobid
        agent = [sys.executable, "-m", "rainbow", "agent", "--executor", "local", "--config-path", str(config_path),
                 "--state-dir", str(tmp_path / "state"), "--interval", "0.2"]
        process = subprocess.Popen(agent, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                   env=subprocess_env())
        try:
            deadline = time.monotonic() + 60
            while client.get_job(jobid).state != "running":
                assert time.monotonic() < deadline and process.poll() is None, "the job did not start"
                time.sleep(0.05)
            group = json.loads((tmp_path / "state" / "jobs" / "local-1.json").read_text())["pid"]
            assert live_processes(groups={group})
            process.send_signal(signal.SIGINT)
            _, err = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        assert process.returncode == 0 and "Traceback" not in err, err
        assert live_processes(groups={group}) == set()
        again = run("-m", "rainbow", "agent", "--executor", "local", "--config-path", str(config_path),
                    "--state-dir", str(tmp_path / "state"), "--once")
        assert again.returncode == 0, again.stderr
        job = client.get_job(jobid)
        assert (job.state, job.message) == ("cancelled", "stopped: the local agent shut down while the job ran")
