"""`rainbow server` as a real process: generated secret, restart on the same file, flags."""

from __future__ import annotations

import io
import logging
import os
import re
import signal
import socket
import subprocess
import sys

import grpc
import pytest

from rainbow.client import RainbowClient
from rainbow.protos import memory_pb2, rainbow_pb2
from rainbow.scheduler import REGISTRATION_SECRET_KEY
from rainbow.scheduler.context import log, log_lines
from rainbow.server.command import _Formatter
from rainbow.store.sqlite import SQLiteStore

from conftest import example, start_server_process, stubs_for, subprocess_env


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0


def test_generated_secret_printed_once_and_kept(tmp_path):
    db = tmp_path / "rainbow.db"
    proc, address, lines = start_server_process(db)
    text = "\n".join(lines)
    assert "generated a registration secret" in text
    secret = re.search(r"^\s+(\S{30,})$", text, re.M).group(1)
    stubs = stubs_for(address)
    reply = stubs.scheduler.Register(
        rainbow_pb2.RegisterRequest(name="keebler", secret=secret, nodes=example("cluster-nodes.json")))
    assert reply.status == rainbow_pb2.RegisterResponse.REGISTER_SUCCESS
    job = stubs.scheduler.SubmitJob(rainbow_pb2.SubmitJobRequest(
        name="j", clusters=[rainbow_pb2.SubmitJobRequest.Cluster(name="keebler", token=reply.token)],
        jobspec=example("jobspec-constraint.yaml")))
    stubs.channel.close()
    stop(proc)

    # the secret is stored hashed only
    assert secret.encode() not in db.read_bytes()

    proc, address, lines = start_server_process(db)
    assert "generated a registration secret" not in "\n".join(lines)
    stubs = stubs_for(address)
    other = stubs.scheduler.Register(
        rainbow_pb2.RegisterRequest(name="second", secret=secret, nodes=example("cluster-nodes.json")))
    assert other.status == rainbow_pb2.RegisterResponse.REGISTER_SUCCESS
    satisfy = stubs.graph.Satisfy(memory_pb2.SatisfyRequest(payload=example("jobspec-constraint.yaml")))
    assert sorted(satisfy.clusters) == ["keebler", "second"]
    received = stubs.scheduler.ReceiveJobs(rainbow_pb2.ReceiveJobsRequest(cluster="keebler", secret=reply.secret))
    assert list(received.jobs) == [job.jobid]
    stubs.channel.close()
    stop(proc)


def test_global_token_and_cleanup(tmp_path):
    db = tmp_path / "rainbow.db"
    proc, address, _ = start_server_process(db, "--secret", "s3", "--global-token", "shared-token")
    stubs = stubs_for(address)
    reply = stubs.scheduler.Register(
        rainbow_pb2.RegisterRequest(name="keebler", secret="s3", nodes=example("cluster-nodes.json")))
    assert reply.token == "shared-token"
    stubs.channel.close()
    stop(proc)

    proc, address, _ = start_server_process(db, "--secret", "s3", "--cleanup")
    stubs = stubs_for(address)
    satisfy = stubs.graph.Satisfy(memory_pb2.SatisfyRequest(payload=example("jobspec-constraint.yaml")))
    assert satisfy.total_clusters == 0
    try:
        stubs.scheduler.Register(
            rainbow_pb2.RegisterRequest(name="keebler", secret="wrong", nodes=example("cluster-nodes.json")))
    except grpc.RpcError as err:
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    stubs.channel.close()
    stop(proc)


def test_bad_settings_refuse_to_start(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "rainbow", "server", "--host", "127.0.0.1:0", "--db", str(tmp_path / "x.db"),
         "--select-algorithm", "no-such-algorithm"],
        capture_output=True, text=True, timeout=60, env=subprocess_env(),
    )
    assert result.returncode != 0
    assert "no-such-algorithm" in result.stderr
    assert "Traceback" not in result.stderr


def run_server(*flags: str, cwd=None, env: dict | None = None) -> subprocess.CompletedProcess:
    """A `rainbow server` start that is expected to fail (a timeout fails the test)."""
    return subprocess.run([sys.executable, "-m", "rainbow", "server", *flags], capture_output=True, text=True,
                          timeout=60, cwd=cwd, env=subprocess_env(env))


def one_line_error(result: subprocess.CompletedProcess) -> str:
    """The failed command's whole stderr, which must be one ``rainbow: error:`` line; returns it."""
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if "rainbow.scheduler" not in line]
    assert len(lines) == 1 and lines[0].startswith("rainbow: error: "), result.stderr
    return lines[0]


@pytest.fixture
def busy_port():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def test_a_busy_port_is_one_line_and_leaves_no_store_behind(tmp_path, busy_port):
    db = tmp_path / "rainbow.db"
    result = run_server("--host", f"127.0.0.1:{busy_port}", "--db", str(db))
    assert one_line_error(result) == (
        f"rainbow: error: cannot listen on 127.0.0.1:{busy_port} (--host): Address already in use")
    assert "generated" not in result.stdout
    assert list(tmp_path.iterdir()) == []

    result = run_server("--host", "127.0.0.1:0", "--db", str(db), "--metrics-port", str(busy_port))
    assert one_line_error(result) == (
        f"rainbow: error: cannot serve metrics on 127.0.0.1:{busy_port} (--metrics-port): Address already in use")
    assert "Exception ignored" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_failed_start_keeps_no_secret_it_did_not_show(tmp_path, busy_port):
    """A store that exists but has no registration secret yet: a failed start must not leave one in it."""
    db = tmp_path / "rainbow.db"
    SQLiteStore(str(db)).close()
    result = run_server("--host", f"127.0.0.1:{busy_port}", "--db", str(db))
    one_line_error(result)
    assert db.exists()
    store = SQLiteStore(str(db))
    try:
        assert store.get_meta(REGISTRATION_SECRET_KEY) is None
    finally:
        store.close()
    proc, _, lines = start_server_process(db)
    assert "generated a registration secret" in "\n".join(lines)
    stop(proc)


def test_bad_settings_fail_in_one_line_without_a_store_file(tmp_path):
    db = tmp_path / "rainbow.db"
    bad_config = tmp_path / "bad-config.yaml"
    bad_config.write_text("scheduler:\n  name: x\n  secret: [unclosed\n")
    line = one_line_error(run_server("--host", "127.0.0.1:0", "--db", str(db), "--config", str(bad_config)))
    assert line == (f"rainbow: error: {bad_config}: not valid YAML: line 4, column 1: expected ',' or ']', but "
                    "got '<stream end>' (while parsing a flow sequence that starts at line 3, column 11)")
    line = one_line_error(run_server("--host", "127.0.0.1:0", "--db", str(db), "--select-algorithm", "nope"))
    assert "nope" in line
    assert not db.exists() and not (tmp_path / "rainbow.db-wal").exists()


def test_a_postgresql_store_without_the_extra_says_which_to_install(tmp_path):
    """psycopg made unimportable (as when the postgres extra is not installed)."""
    shadow = tmp_path / "shadow" / "psycopg"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'psycopg'\", name='psycopg')\n")
    path = os.pathsep.join([str(shadow.parent), subprocess_env()["PYTHONPATH"]])
    result = subprocess.run([sys.executable, "-m", "rainbow", "server", "--host", "127.0.0.1:0",
                             "--store", "postgresql://rainbow@127.0.0.1:1/rainbow"],
                            capture_output=True, text=True, timeout=60, env=subprocess_env({"PYTHONPATH": path}),
                            cwd=tmp_path)
    assert one_line_error(result) == (
        "rainbow: error: a PostgreSQL store needs the postgres extra (psycopg is not installed): "
        "pip install 'rainbow-scheduler[postgres]'")


def test_server_help_says_what_the_server_is():
    result = subprocess.run([sys.executable, "-m", "rainbow", "server", "--help"], capture_output=True, text=True,
                            timeout=60, env=subprocess_env())
    assert result.returncode == 0
    assert "Run the rainbow scheduler" in result.stdout.split("options:")[0]
    assert "--log-level" in result.stdout


def server_log(tmp_path, *flags: str) -> str:
    """Everything a server prints while a cluster registers, reports state and heartbeats and a job is submitted."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "rainbow", "server", "--host", "127.0.0.1:0", "--db", str(tmp_path / "r.db"),
         "--secret", "s3", "--cleanup", *flags],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=subprocess_env(),
    )
    try:
        address, before = None, []
        while address is None:
            line = proc.stdout.readline()
            assert line, "the server exited before listening"
            before.append(line)
            found = re.search(r"listening on (\S+:\d+)", line)
            address = found and found.group(1)
        stubs = stubs_for(address)
        reply = stubs.scheduler.Register(
            rainbow_pb2.RegisterRequest(name="keebler", secret="s3", nodes=example("cluster-nodes.json")))
        for _ in range(3):
            stubs.scheduler.UpdateState(rainbow_pb2.UpdateStateRequest(
                cluster="keebler", secret=reply.secret, payload=example("cluster-state.json")))
            stubs.scheduler.Heartbeat(rainbow_pb2.HeartbeatRequest(cluster="keebler", secret=reply.secret))
        stubs.scheduler.SubmitJob(rainbow_pb2.SubmitJobRequest(
            name="hello", clusters=[rainbow_pb2.SubmitJobRequest.Cluster(name="keebler", token=reply.token)],
            jobspec=example("jobspec-constraint.yaml")))
        stubs.channel.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    return "".join(before) + out


def test_lines_logged_together_each_get_the_prefix_of_a_record():
    """The jobs one commit stored are one record; the server's log still shows one whole line per job."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(_Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)
    try:
        log_lines(logging.WARNING, ["job 1 (a) assigned to cluster x (why)", "job 2 (b) assigned to cluster y (why)"])
        log_lines(logging.WARNING, ["job 3 (c) assigned to cluster z (why)"])
        log.warning("two\nlines")  # an ordinary record keeps its text as it is
    finally:
        log.removeHandler(handler)
    lines = out.getvalue().splitlines()
    prefix = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} WARNING rainbow.scheduler: "
    for number, line in enumerate(lines[:3], start=1):
        assert re.fullmatch(prefix + rf"job {number} \(.\) assigned to cluster . \(why\)", line), line
    assert re.fullmatch(prefix + "two", lines[3]) and lines[4] == "lines"
    assert len(lines) == 5


def test_default_logs_are_quiet_and_debug_shows_every_request(tmp_path):
    quiet = server_log(tmp_path)
    assert "registered cluster keebler (1 cluster, 36 cores, 3 nodes, 1 rack, 3 sockets)" in quiet
    assert "job 1 (hello) assigned to cluster keebler" in quiet
    assert "loaded 0 clusters from the store" in quiet
    for noise in ("UpdateState", "Heartbeat", "SubmitJob ok", "Register ok", "state: "):
        assert noise not in quiet, noise
    loud = server_log(tmp_path, "--log-level", "debug")
    assert loud.count("UpdateState ok") == 3 and loud.count("Heartbeat ok") == 3
    assert "SubmitJob ok" in loud and "cluster keebler state: " in loud


def test_store_wait_rides_out_a_database_that_comes_up_later(tmp_path, postgres_database, postgres_proxy):
    """--store-wait: the server retries an unreachable PostgreSQL at start and serves once it answers."""
    url = postgres_proxy.url(postgres_database())
    postgres_proxy.cut()
    proc = subprocess.Popen(
        [sys.executable, "-m", "rainbow", "server", "--host", "127.0.0.1:0", "--store", url, "--secret", "s",
         "--store-wait", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=subprocess_env(), cwd=tmp_path,
    )
    try:
        lines = []
        while not (found := re.search(r"listening on (\S+:\d+)", lines[-1] if lines else "")):
            line = proc.stdout.readline()
            assert line, "\n".join(lines)
            lines.append(line.rstrip("\n"))
            if "--store-wait" in line:
                postgres_proxy.restore()
        retries = [line for line in lines if "retrying for up to" in line]
        assert retries and "WARNING rainbow.server: cannot reach the PostgreSQL store" in retries[0]
        with RainbowClient(found.group(1), timeout=10) as client:
            assert client.health() == "SERVING"
    finally:
        stop(proc)


def test_store_wait_gives_up_with_the_store_error(tmp_path, postgres_database, postgres_proxy):
    url = postgres_proxy.url(postgres_database())
    postgres_proxy.cut()
    result = run_server("--host", "127.0.0.1:0", "--store", url, "--store-wait", "1", cwd=tmp_path)
    assert result.returncode == 1
    *retries, error = result.stderr.splitlines()
    assert retries and all("retrying for up to" in line for line in retries)
    assert error.startswith("rainbow: error: cannot reach the PostgreSQL store postgresql://")
    without = run_server("--host", "127.0.0.1:0", "--store", url, cwd=tmp_path)
    assert one_line_error(without).startswith("rainbow: error: cannot reach the PostgreSQL store")
    negative = run_server("--host", "127.0.0.1:0", "--store", url, "--store-wait", "-1", cwd=tmp_path)
    assert one_line_error(negative) == "rainbow: error: --store-wait: 0 or more seconds"
