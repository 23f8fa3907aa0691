"""``rainbow submit --cc`` and ``rainbow bulksubmit`` as subprocesses against a server process."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys

import pytest
from test_cli import NODES, Rainbow, address, rainbow  # noqa: F401 - the CLI tests' fixtures

from conftest import REGISTRATION_SECRET, start_server_process, subprocess_env


def registered(cli: Rainbow, host: str, tmp_path) -> str:
    """A config naming cluster keebler, registered on the server at ``host``."""
    config = tmp_path / "rainbow-config.yaml"
    cli("config", "init", "--cluster-name", "keebler", "--config-path", str(config), "--host", host)
    cli("register", "cluster", "--cluster-name", "keebler", "--nodes-json", NODES, "--config-path", str(config),
        "--secret", REGISTRATION_SECRET, "--save")
    return str(config)


def test_submit_cc_makes_an_array_with_each_id_substituted(address, rainbow, tmp_path):  # noqa: F811 - the fixture
    config = registered(rainbow, address, tmp_path)
    out = rainbow("submit", "--cc", "1-4", "--command", "app --seed {cc}", "--config-path", config).stdout
    found = re.fullmatch(r"Submitted 4 of 4 jobs as batch ([0-9a-f]{16}): ids (\d+)-(\d+) on keebler \(4\)\n", out)
    assert found, out
    first, last = int(found.group(2)), int(found.group(3))
    assert last - first == 3
    jobs = rainbow.json("jobs", "--config-path", config)
    commands = sorted(job["command"] for job in jobs)
    assert commands == [f"app --seed {n}" for n in range(1, 5)]
    assert {job["name"] for job in jobs} == {"app"}

    data = rainbow.json("submit", "--cc", "7,9", "--command", "app {cc}", "--config-path", config)
    assert [job["error"] for job in data["jobs"]] == ["", ""] and data["batch_id"] != found.group(1)

    refused = rainbow("submit", "--cc", "3-1", "--command", "app", "--config-path", config, code=1)
    assert "cc" in refused.stderr

    batch = found.group(1)
    listed = rainbow.json("jobs", "--batch", batch, "--config-path", config)
    assert sorted(job["id"] for job in listed) == list(range(first, last + 1))
    out = rainbow("batch", batch, data["batch_id"], "--config-path", config).stdout
    assert out == (f"{batch}: 4 jobs: 4 waiting, 0 running, 0 completed, 0 failed, 0 cancelled\n"
                   f"{data['batch_id']}: 2 jobs: 2 waiting, 0 running, 0 completed, 0 failed, 0 cancelled\n")
    out = rainbow("cancel", "--batch", batch, "--config-path", config).stdout
    assert out == (f"Batch {batch}: 4 jobs cancelled, 0 more will be cancelled by their clusters on their next "
                   "contact.\n")
    out = rainbow("batch", batch, "--config-path", config).stdout
    assert out == f"{batch}: 4 jobs: 0 waiting, 0 running, 0 completed, 0 failed, 4 cancelled\n"
    rainbow("cancel", "--config-path", config, code=2)


def test_bulksubmit_reads_commands_and_reports_what_was_not_placed(address, rainbow, tmp_path):  # noqa: F811 - the fixture
    config = registered(rainbow, address, tmp_path)
    commands = tmp_path / "commands.txt"
    commands.write_text("# a sweep\necho one\n\necho two\nhostname\n")
    out = rainbow("bulksubmit", "--file", str(commands), "--config-path", config).stdout
    assert re.fullmatch(r"Submitted 3 of 3 jobs as batch [0-9a-f]{16}: ids \d+-\d+ on keebler \(3\)\n", out), out

    piped = subprocess.run(
        [sys.executable, "-m", "rainbow", "bulksubmit", "--nodes", "500", "--config-path", config, "--json"],
        input="echo big\n", capture_output=True, text=True, timeout=120, cwd=tmp_path, env=subprocess_env(),
    )
    assert piped.returncode == 0, piped.stderr
    data = json.loads(piped.stdout)
    assert data["jobs"][0]["jobid"] == 0 and "no listed cluster" in data["jobs"][0]["error"]
    assert len(rainbow.json("jobs", "--config-path", config)) == 3


@pytest.fixture
def small_address(tmp_path):
    """A server taking at most 20 jobs per SubmitJobs call."""
    proc, served, _lines = start_server_process(tmp_path / "small.db", "--secret", REGISTRATION_SECRET,
                                                "--max-batch-jobs", "20")
    yield served
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)


def test_large_submissions_go_in_chunks_with_progress_only_on_a_terminal(small_address, rainbow, tmp_path):  # noqa: F811 - the fixture
    config = registered(rainbow, small_address, tmp_path)
    commands = tmp_path / "commands.txt"
    commands.write_text("".join(f"app --seed={n}\n" for n in range(55)))
    result = rainbow("bulksubmit", "--file", str(commands), "--config-path", config, "--json")
    data = json.loads(result.stdout)
    assert len(data["jobs"]) == 55 and all(job["jobid"] and not job["error"] for job in data["jobs"])
    assert result.stderr == ""  # not a terminal: no progress line
    assert rainbow.json("batch", data["batch_id"], "--config-path", config)[0]["total"] == 55

    import pty

    leader, follower = pty.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "rainbow", "submit", "--cc", "1-45", "--command", "app {cc}", "--config-path",
             config], stdout=subprocess.PIPE, stderr=follower, text=True, timeout=120, cwd=tmp_path,
            env=subprocess_env())
        os.close(follower)
        follower = -1
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal's other end is closed: all read
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(leader)
        if follower >= 0:
            os.close(follower)
    assert done.returncode == 0
    assert re.fullmatch(r"Submitted 45 of 45 jobs as batch [0-9a-f]{16}: ids \d+-\d+ on keebler \(45\)\n",
                        done.stdout), done.stdout
    lines = [line.strip() for line in shown.decode().replace("\r\n", "\n").split("\r") if line.strip()]
    done_counts = [int(re.fullmatch(r"submitted (\d+) of 45 jobs \(\d+%\)", line).group(1)) for line in lines]
    assert len(done_counts) >= 3 and done_counts[-1] == 45 and lines[-1] == "submitted 45 of 45 jobs (100%)"
    assert all(0 < b - a <= 20 for a, b in zip([0, *done_counts], done_counts, strict=False))
