"""Following jobs after hand-off: RainbowClient methods and `rainbow status|jobs|cancel|watch`."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading

import pytest

from rainbow.client import RainbowClient
from rainbow.config import RainbowConfig
from rainbow.errors import NotFound

from conftest import REGISTRATION_SECRET, example, start_server_process, subprocess_env


@pytest.fixture
def setup(tmp_path):
    proc, address, _ = start_server_process(tmp_path / "rainbow.db", "--secret", REGISTRATION_SECRET)
    config_path = tmp_path / "rainbow-config.yaml"
    RainbowConfig.new("keebler", host=address, path=config_path).save()
    with RainbowClient(config_file=config_path) as client:
        client.register("keebler", REGISTRATION_SECRET, example("cluster-nodes.json"), save=True)
    client = RainbowClient(config_file=config_path)
    yield client, config_path, address
    client.close()
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)


def rainbow(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "rainbow", *args], capture_output=True, text=True, timeout=120,
                            env=subprocess_env())
    assert "Traceback" not in result.stderr
    return result


def test_client_follows_a_job(setup):
    client, _config, _address = setup
    job = client.submit_job("hostname", nodes=1)
    assert client.get_job(job.jobid).state == "assigned"
    client.receive_jobs()
    status = client.get_job(job.jobid)
    assert status.state == "accepted" and [h.state for h in status.history] == ["assigned", "leased", "accepted"]
    assert status.exit_code is None and status.command == "hostname"
    other = client.submit_job("sleep 100", nodes=1)
    cancelled = client.cancel_job(other.jobid, "not needed")
    assert cancelled.state == "cancelled" and cancelled.message == "not needed"
    listed = client.list_jobs()
    assert [j.id for j in listed] == [other.jobid, job.jobid]
    assert [j.id for j in client.list_jobs(state="cancelled")] == [other.jobid]
    with pytest.raises(NotFound):
        client.get_job(99999)
    assert client.cancel_job(other.jobid).state == "cancelled"  # twice is harmless


def test_client_watch_replays_then_follows(setup):
    client, _config, _address = setup
    first = client.submit_job("true", nodes=1).jobid
    events = []

    def watch():
        for event in client.watch_jobs(since=-1):
            events.append(event)
            if len(events) == 3:
                return

    reader = threading.Thread(target=watch)
    reader.start()
    second = client.submit_job("false", nodes=1).jobid
    client.cancel_job(second)
    reader.join(15)
    assert [(e.jobid, e.state) for e in events] == [(first, "assigned"), (second, "assigned"),
                                                    (second, "cancelled")]


def test_status_jobs_cancel_watch_commands(setup):
    client, config, _address = setup
    job = client.submit_job("echo hi", nodes=1).jobid
    client.receive_jobs()
    waiting = client.submit_job("sleep 5", nodes=1).jobid

    status = rainbow("status", str(job), "--config-path", str(config))
    assert status.returncode == 0
    assert f"Job {job} (echo) on keebler: accepted" in status.stdout and "leased" in status.stdout

    listed = rainbow("jobs", "--config-path", str(config), "--json")
    assert [j["id"] for j in json.loads(listed.stdout)] == [waiting, job]
    table = rainbow("jobs", "--state", "accepted", "--config-path", str(config)).stdout
    rows = table.splitlines()[1:]
    assert [row.split()[0] for row in rows] == [str(job)] and "accepted" in rows[0]

    cancelled = rainbow("cancel", str(waiting), "--config-path", str(config), "--reason", "enough")
    assert f"Job {waiting} is cancelled." in cancelled.stdout
    held = rainbow("cancel", str(job), "--config-path", str(config))
    assert "will cancel it on its next contact" in held.stdout

    watched = rainbow("watch", "--since", "-1", "--count", "5", "--json", "--config-path", str(config))
    events = [json.loads(line) for line in watched.stdout.splitlines()]
    assert [(e["jobid"], e["state"]) for e in events] == [
        (job, "assigned"), (job, "leased"), (job, "accepted"), (waiting, "assigned"), (waiting, "cancelled")]
    plain = rainbow("watch", "--since", "-1", "--count", "1", "--config-path", str(config))
    assert f"job {job} (echo) on keebler: assigned" in plain.stdout

    missing = rainbow("status", "424242", "--config-path", str(config))
    assert missing.returncode == 1 and missing.stderr.startswith("rainbow: error: job 424242 does not exist")
    bad = rainbow("jobs", "--state", "sideways", "--config-path", str(config))
    assert bad.returncode == 1 and "sideways" in bad.stderr
