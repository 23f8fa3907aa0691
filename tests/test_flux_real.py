"""With a real Flux: register -> submit through rainbow -> agent (process and broker module) -> state reported.

Runs wherever `flux` is on PATH (`flux start --test-size=2`); skipped elsewhere. The rainbow server runs
outside the instance, as users run it; `flux python` must be able to import rainbow's dependencies.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

import rainbow
from rainbow.client import RainbowClient
from rainbow.config import RainbowConfig
from rainbow.protos import rainbow_pb2

from conftest import REGISTRATION_SECRET, start_server_process

pytestmark = pytest.mark.flux

FLUX = shutil.which("flux")
SRC = os.path.dirname(os.path.dirname(os.path.abspath(rainbow.__file__)))
PLUGIN = Path(__file__).resolve().parent.parent / "flux_plugins" / "rainbow_agent.py"


def flux_env() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{path}" if path else SRC}


@pytest.fixture(scope="module")
def flux_python():
    if FLUX is None:
        pytest.skip("flux is not on PATH (flux-core is needed for these tests)")
    probe = subprocess.run([FLUX, "python", "-c", "import grpc, yaml, jsonschema, rainbow.agent"],
                           capture_output=True, text=True, env=flux_env(), timeout=120)
    if probe.returncode != 0:
        pytest.skip(f"`flux python` cannot import rainbow and its dependencies: {probe.stderr.strip()[-300:]}")
    return FLUX


@pytest.fixture
def server(tmp_path):
    proc, address, _ = start_server_process(tmp_path / "rainbow.db", "--secret", REGISTRATION_SECRET)
    yield address
    proc.terminate()
    proc.wait(30)


def in_flux(script: str, tmp_path: Path, address: str, timeout: float = 300) -> tuple[str, str]:
    """Run a bash script as the initial program of `flux start --test-size=2`; returns (stdout, stderr)."""
    path = tmp_path / "script.sh"
    path.write_text("set -e\n" + textwrap.dedent(script))
    env = {**flux_env(), "HOST": address, "SECRET": REGISTRATION_SECRET, "CFG": str(tmp_path / "cfg.yaml"),
           "PLUGIN": str(PLUGIN), "CMDS": str(PLUGIN.parent / "cmd")}
    result = subprocess.run([FLUX, "start", "--test-size=2", "bash", str(path)], capture_output=True, text=True,
                            env=env, cwd=tmp_path, timeout=timeout)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout, result.stderr


def job_info(address: str, config_path: Path, jobid: int) -> rainbow_pb2.JobInfo:
    config = RainbowConfig.load(config_path)
    with RainbowClient(address, config_file=config) as client:
        return client.scheduler_stub.GetJob(rainbow_pb2.GetJobRequest(jobid=jobid, token=config.token_for("fluxy")))


def submitted_ids(output: str) -> list[int]:
    return [int(m) for m in re.findall(r"^rainbow job (\d+) ", output, re.MULTILINE)]


def test_register_submit_agent_and_report(flux_python, server, tmp_path):
    out, _ = in_flux("""
        flux python -m rainbow.register --host $HOST --secret $SECRET --config-path $CFG --save --cluster-name fluxy
        flux python -m rainbow.submit --config-path $CFG -N2 -n2 --job-name=both hostname
        flux python -m rainbow.submit --config-path $CFG -n1 --env=CODE=3 sh -c 'exit $CODE'
        flux python -m rainbow.agent --config-path $CFG --once
        flux queue drain
        flux python -m rainbow.agent --config-path $CFG --once
        echo "FLUXJOBS"
        flux jobs -a --no-header -o '{id.f58} {name} {result}'
        echo "DRYRUN"
        FLUX_EXEC_PATH=$CMDS flux rainbow submit --config-path $CFG --dry-run -n1 --env=A=1 hostname
        echo "NESTED"
        flux alloc -N1 flux python -m rainbow.register --dry-run --config-path $CFG.nested
    """, tmp_path, server)
    assert "registered cluster 'fluxy' (2 nodes, 4 cores, 0 GPUs)" in out
    both, fails = submitted_ids(out)
    flux_jobs = dict(line.split(" ", 1) for line in out.split("FLUXJOBS\n")[1].split("DRYRUN")[0].splitlines())
    info = job_info(server, tmp_path / "cfg.yaml", both)
    assert (info.state, info.exit_code, info.has_exit_code) == ("completed", 0, True)
    history = [h.state for h in info.history]
    assert history[:4] == ["assigned", "leased", "accepted", "submitted"] and history[-1] == "completed"
    assert flux_jobs[info.local_id] == "both COMPLETED"
    failed = job_info(server, tmp_path / "cfg.yaml", fails)
    assert (failed.state, failed.exit_code, failed.message) == ("failed", 3, "exit code 3")
    assert flux_jobs[failed.local_id] == "sh FAILED"
    dry = json.loads(out.split("DRYRUN\n")[1].split("NESTED")[0])
    assert dry["attributes"]["system"] == {"duration": 0, "environment": {"A": "1"}}  # nothing of this shell's
    assert dry["tasks"][0]["command"] == ["hostname"]
    nested = json.loads(out.split("NESTED\n")[1])
    kinds = [v["metadata"]["type"] for v in nested["graph"]["nodes"].values()]
    assert kinds.count("node") == 1 and kinds.count("cluster") == 1
    assert re.fullmatch(r"vm-\d+", next(v["metadata"]["basename"] for v in nested["graph"]["nodes"].values()
                                        if v["metadata"]["type"] == "cluster"))


def test_broker_module_runs_jobs_and_reports_stats(flux_python, server, tmp_path):
    out, err = in_flux("""
        flux python -m rainbow.register --host $HOST --secret $SECRET --config-path $CFG --save --cluster-name fluxy
        flux module load $PLUGIN --config-path=/nonexistent.yaml 2>&1 || echo "LOAD REFUSED"
        flux module load $PLUGIN --config-path=$CFG --interval=0.5
        flux python -m rainbow.submit --config-path $CFG -n1 --job-name=hello sh -c 'echo hello'
        flux python -m rainbow.submit --config-path $CFG -n1 --job-name=sleepy sleep 300
        flux python -c '
        import json, time, flux
        h = flux.Flux()
        deadline = time.time() + 120
        while time.time() < deadline:
            stats = h.rpc("rainbow_agent.stats").get()
            if stats["completed"] >= 1 and any(j["state"] == "running" for j in stats["jobs"].values()):
                break
            time.sleep(0.2)
        '
        echo "STATS"
        flux module stats rainbow_agent
        echo "END"
        flux module list | grep -q rainbow_agent
        flux module remove rainbow_agent
        flux jobs -a --no-header -o '{name} {status}'
    """, tmp_path, server)
    assert "LOAD REFUSED" in out and "rainbow_agent.py: config file /nonexistent.yaml does not exist" in err
    hello, sleepy = submitted_ids(out)
    stats = json.loads(out.split("STATS\n")[1].split("END\n")[0])
    assert stats["cluster"] == "fluxy" and stats["executor"] == "flux" and stats["alive"] and not stats["error"]
    assert stats["received"] == 2 and stats["submitted"] == 2 and stats["completed"] == 1
    assert stats["jobs"][str(sleepy)]["state"] == "running"
    info = job_info(server, tmp_path / "cfg.yaml", hello)
    assert (info.state, info.exit_code) == ("completed", 0) and info.local_id.startswith("ƒ")
    assert job_info(server, tmp_path / "cfg.yaml", sleepy).state == "running"


def test_rainbow_flux_imports_without_loading_flux_in_flux_python(flux_python):
    result = subprocess.run([flux_python, "python", "-c",
                             "import sys, rainbow.flux; print('flux' in sys.modules)"],
                            capture_output=True, text=True, env=flux_env(), timeout=120)
    assert result.stdout.strip() == "False", result.stderr

