"""The `rainbow` command as a subprocess against a real `rainbow server` process."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from test_tls import make_ca, make_cert

from rainbow.config import RainbowConfig

from conftest import EXAMPLES, REGISTRATION_SECRET, example, start_server_process, subprocess_env

NODES = str(EXAMPLES / "cluster-nodes.json")
IO = str(EXAMPLES / "cluster-io-subsystem.json")
STATE = str(EXAMPLES / "cluster-state.json")
JOBSPEC_IO = str(EXAMPLES / "jobspec-io.yaml")
MATCHED = r"\(1 of 1 clusters matched\)"


@pytest.fixture
def address(tmp_path):
    proc, address, _lines = start_server_process(tmp_path / "rainbow.db", "--secret", REGISTRATION_SECRET)
    yield address
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)


class Rainbow:
    def __init__(self, cwd):
        self.cwd = cwd

    def __call__(self, *args: str, code: int = 0, env: dict | None = None, module: str = "rainbow"
                 ) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [sys.executable, "-m", module, *args],
            capture_output=True, text=True, timeout=120, cwd=self.cwd, env=subprocess_env(env),
        )
        assert "Traceback" not in result.stderr, result.stderr
        assert result.returncode == code, (args, result.stdout, result.stderr)
        if code == 1:  # a failure: one line
            assert result.stderr.startswith("rainbow: error: "), result.stderr
            assert result.stderr.count("\n") == 1, result.stderr
        elif code == 2:  # a usage error: argparse's usage and message
            assert result.stderr.startswith("usage: rainbow ") and ": error: " in result.stderr, result.stderr
        if code:
            assert result.stdout == ""
        return result

    def json(self, *args: str):
        return json.loads(self(*args, "--json").stdout)


@pytest.fixture
def rainbow(tmp_path):
    return Rainbow(tmp_path)


def test_config_register_subsystem_state_submit_receive_delete(address, rainbow, tmp_path):
    config = tmp_path / "rainbow-config.yaml"
    out = rainbow("config", "init", "--cluster-name", "keebler", "--config-path", str(config),
                  "--host", address, "--select-algorithm", "random").stdout
    assert out == f"Wrote rainbow config to {config}\n"
    assert stat.S_IMODE(os.stat(config).st_mode) == 0o600
    created = yaml.safe_load(config.read_text())
    assert created["cluster"] == {"name": "keebler"}
    assert created["graphdatabase"]["host"] == address
    assert created["scheduler"]["algorithms"] == {"selection": {"name": "random"}}  # match: the server's
    assert created["clusters"] == []

    out = rainbow("register", "cluster", "--cluster-name", "keebler", "--nodes-json", NODES,
                  "--config-path", str(config), "--secret", REGISTRATION_SECRET, "--save").stdout
    assert out == f"Registered cluster keebler (REGISTER_SUCCESS)\nSaved its secret and token to {config}\n"
    saved = yaml.safe_load(config.read_text())
    secret, token = saved["cluster"]["secret"], saved["clusters"][0]["token"]
    assert saved["cluster"]["name"] == "keebler" and len(secret) >= 22
    assert saved["clusters"] == [{"name": "keebler", "token": token}] and token != secret
    assert {k: v for k, v in saved.items() if k not in ("cluster", "clusters")} == {
        k: v for k, v in created.items() if k not in ("cluster", "clusters")}
    assert stat.S_IMODE(os.stat(config).st_mode) == 0o600
    assert secret not in out and token not in out  # saved, not printed

    out = rainbow("register", "subsystem", "--subsystem", "io", "--nodes-json", IO,
                  "--config-path", str(config)).stdout
    assert out == "Registered subsystem io of cluster keebler (REGISTER_SUCCESS)\n"

    out = rainbow("update", "state", "--state-file", STATE, "--config-path", str(config)).stdout
    assert out.startswith("Updated state of cluster keebler (UPDATE_STATE_SUCCESS): ")
    assert "nodes_free=20" in out and "cost_per_node_hour=3" in out

    out = rainbow("satisfy", "--jobspec", JOBSPEC_IO, "--config-path", str(config)).stdout
    assert out == "1 of 1 clusters can run this job: keebler\n"

    out = rainbow("submit", "--command", "echo hello world", "--nodes", "1", "--tasks", "2",
                  "--config-path", str(config)).stdout
    simple = re.fullmatch(rf"Submitted job (\d+) \(echo\) to cluster keebler {MATCHED}\n", out)
    assert simple, out
    out = rainbow("submit", "--jobspec", JOBSPEC_IO, "--config-path", str(config),
                  "--job-name", "ior-job").stdout
    io_job = re.fullmatch(rf"Submitted job (\d+) \(ior-job\) to cluster keebler {MATCHED}\n", out)
    assert io_job, out
    simple_id, io_id = int(simple.group(1)), int(io_job.group(1))
    assert io_id > simple_id

    out = rainbow("receive", "--config-path", str(config)).stdout
    lines = out.splitlines()
    assert lines[0] == "Received and accepted 2 jobs for cluster keebler:"
    assert lines[1].split() == ["ID", "NAME", "COMMAND"]
    assert lines[2].split() == [str(simple_id), "echo", "echo", "hello", "world"]
    assert lines[3].split() == [str(io_id), "ior-job", "ior"]
    assert lines[1].index("NAME") == lines[2].index("echo")  # columns line up
    assert rainbow("receive", "--config-path", str(config)).stdout == "No jobs to receive.\n"

    out = rainbow("delete", "--cluster-name", "keebler", "--delete-subsystem", "io",
                  "--delete-secret", secret, "--host", address).stdout
    assert out == "Deleted subsystem io of cluster keebler (DELETE_SUCCESS)\n"
    out = rainbow("satisfy", "--jobspec", JOBSPEC_IO, "--config-path", str(config)).stdout
    assert out.startswith("0 of 1 clusters can run this job\n  keebler: ") and "io" in out
    out = rainbow("delete", "--cluster-name", "keebler", "--delete-secret", secret, "--host", address).stdout
    assert out == "Deleted cluster keebler with its subsystems and jobs (DELETE_SUCCESS)\n"

    err = rainbow("receive", "--config-path", str(config), code=1).stderr
    assert err == "rainbow: error: cluster 'keebler' is not registered\n"


def test_json_outputs(address, rainbow, tmp_path):
    config = str(tmp_path / "rainbow-config.yaml")
    init = rainbow.json("config", "init", "--config-path", config, "--host", address,
                        "--secret", REGISTRATION_SECRET)
    assert init["path"] == config and init["config"]["scheduler"]["secret"] == REGISTRATION_SECRET
    assert init["config"]["cluster"] == {}
    assert "algorithms" not in init["config"]["scheduler"]  # the server decides

    # without --save the credentials are printed, and the register secret comes from scheduler.secret
    reg = rainbow.json("register", "cluster", "--cluster-name", "keebler", "--nodes-json", NODES,
                       "--config-path", config)
    assert reg["status"] == "REGISTER_SUCCESS" and reg["saved"] is None and reg["cluster"] == "keebler"
    assert yaml.safe_load(Path(config).read_text())["clusters"] == []
    text = rainbow("register", "cluster", "--cluster-name", "other", "--nodes-json", NODES,
                   "--config-path", config).stdout
    other_secret = re.search(r"^secret: (\S+)$", text, re.M).group(1)
    assert re.search(r"^ token: \S+$", text, re.M)
    exists = rainbow.json("register", "cluster", "--cluster-name", "keebler", "--nodes-json", NODES,
                          "--config-path", config)
    assert exists["status"] == "REGISTER_EXISTS" and exists["secret"] == "" and exists["saved"] is None

    data = yaml.safe_load(Path(config).read_text())
    data["cluster"] = {"name": "keebler", "secret": reg["secret"]}
    data["clusters"] = [{"name": "keebler", "token": reg["token"]}]
    Path(config).write_text(yaml.safe_dump(data))

    sub = rainbow.json("register", "subsystem", "--subsystem", "io", "--nodes-json", IO,
                       "--config-path", config)
    assert sub["status"] == "REGISTER_SUCCESS" and sub["subsystem"] == "io"
    state = rainbow.json("update", "state", "--state-file", STATE, "--config-path", config)
    assert state["state"] == json.loads(example("cluster-state.json"))

    satisfy = rainbow.json("satisfy", "--jobspec", JOBSPEC_IO, "--config-path", config)
    assert satisfy["clusters"] == ["keebler"] and satisfy["total_clusters"] == 2
    assert "other" in satisfy["reasons"]
    only = rainbow.json("submit", "--jobspec", JOBSPEC_IO, "--config-path", config, "--satisfy-only")
    assert only["jobid"] == 0 and only["clusters"] == ["keebler"] and only["matches"] == ["keebler"]
    job = rainbow.json("submit", "-c", "hostname", "-n", "2", "--config-path", config)
    assert job["jobid"] > 0 and job["cluster"] == "keebler" and job["name"] == "hostname"

    jobs = rainbow.json("receive", "--config-path", config, "--max-jobs", "5")
    assert [(j["id"], j["name"], j["command"], j["cluster"]) for j in jobs] == [
        (job["jobid"], "hostname", "hostname", "keebler")]
    assert "hostname" in jobs[0]["jobspec"]
    assert rainbow.json("receive", "--config-path", config) == []

    gone = rainbow.json("delete", "--config-path", config)
    assert gone == {"cluster": "keebler", "status": "DELETE_SUCCESS", "subsystem": ""}
    gone = rainbow.json("delete", "--cluster-name", "other", "--delete-secret", other_secret,
                        "--host", address)
    assert gone["cluster"] == "other"


def test_errors_go_to_stderr_with_exit_codes(address, rainbow, tmp_path):
    config = str(tmp_path / "rainbow-config.yaml")
    rainbow("config", "init", "--cluster-name", "keebler", "--config-path", config, "--host", address)
    err = rainbow("config", "init", "--cluster-name", "keebler", "--config-path", config, code=1).stderr
    assert err == f"rainbow: error: {config} already exists (use --force to overwrite it)\n"
    rainbow("config", "init", "--cluster-name", "keebler", "--config-path", config, "--host", address,
            "--force")

    # usage errors: exit 2
    err = rainbow("submit", "--config-path", config, code=2).stderr
    assert "one of the arguments -c/--command --jobspec is required" in err
    err = rainbow("submit", "--command", "x", "--jobspec", JOBSPEC_IO, "--config-path", config, code=2).stderr
    assert "not allowed with" in err
    (tmp_path / "empty").mkdir()
    err = Rainbow(tmp_path / "empty")("register", "cluster", "--cluster-name", "a", "--nodes-json", NODES, "--save",
                                      "--secret", REGISTRATION_SECRET, code=2).stderr
    assert "--save needs a config file to write to: ./rainbow-config.yaml does not exist" in err
    err = rainbow("submit", "-c", "x", "-n", "0", "--config-path", config, code=2).stderr
    assert "argument -n/--nodes: must be 1 or more" in err

    # failures: exit 1, one line naming the problem
    err = rainbow("register", "cluster", "--cluster-name", "keebler", "--nodes-json", NODES,
                  "--config-path", config, "--secret", "wrong", code=1).stderr
    assert err == "rainbow: error: wrong or missing registration secret\n"
    err = rainbow("register", "cluster", "--nodes-json", NODES, "--config-path", config, code=2).stderr
    assert "--secret is required" in err and "scheduler.secret" in err
    err = rainbow("register", "cluster", "--cluster-name", "keebler", "--nodes-json",
                  str(tmp_path / "nope.json"), "--config-path", config, "--secret", REGISTRATION_SECRET,
                  code=1).stderr
    assert "nope.json does not exist" in err
    err = rainbow("update", "state", "--state-file", STATE, "--config-path", str(tmp_path / "missing.yaml"),
                  code=1).stderr
    assert "missing.yaml does not exist" in err and "rainbow config init" in err

    rainbow("register", "cluster", "--cluster-name", "keebler", "--nodes-json", NODES,
            "--config-path", config, "--secret", REGISTRATION_SECRET, "--save")
    err = rainbow("delete", "--cluster-name", "keebler", "--delete-secret", "wrong", "--host", address,
                  code=1).stderr
    assert err == "rainbow: error: wrong secret for cluster 'keebler'\n"
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nresources: 7\n")
    err = rainbow("submit", "--jobspec", str(bad), "--config-path", config, code=1).stderr
    assert "resources" in err
    bad.write_text("version: 1\nresources:\n  - type: node\n    count: [1\n")
    err = rainbow("submit", "--jobspec", str(bad), "--config-path", config, code=1).stderr
    assert err == (f"rainbow: error: {bad}: jobspec: not valid YAML: line 5, column 1: expected ',' or ']', but "
                   "got '<stream end>' (while parsing a flow sequence that starts at line 4, column 12)\n")
    err = rainbow("submit", "--jobspec", JOBSPEC_IO, "--config-path", config, code=1).stderr
    assert err.startswith("rainbow: error: no cluster can run this job (0 of 1 match): keebler: ")
    err = rainbow("receive", "--host", "127.0.0.1:1", "--cluster-name", "a", "--request-secret", "b",
                  "--timeout", "5", code=1).stderr
    assert err.startswith("rainbow: error: cannot reach the rainbow server at 127.0.0.1:1")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_tls_flags_against_a_mutual_tls_server(rainbow, tmp_path):
    ca = make_ca(tmp_path, "ca")
    (server_key, server_cert), (key, cert) = (make_cert(tmp_path, "server", ca, server=True),
                                              make_cert(tmp_path, "client", ca, server=False))
    proc, address, _ = start_server_process(tmp_path / "rainbow.db", "--secret", REGISTRATION_SECRET,
                                            "--cert", str(server_cert), "--key", str(server_key),
                                            "--ca-cert", str(ca[1]))
    try:
        config = str(tmp_path / "rainbow-config.yaml")
        tls = ("--cert", str(cert), "--key", str(key), "--ca-cert", str(ca[1]))
        rainbow("config", "init", "--cluster-name", "keebler", "--config-path", config, "--host", address)
        out = rainbow("register", "cluster", "--nodes-json", NODES, "--config-path", config,
                      "--secret", REGISTRATION_SECRET, "--save", *tls).stdout
        assert out.startswith("Registered cluster keebler (REGISTER_SUCCESS)")
        out = rainbow("update", "state", "--state-file", STATE, "--config-path", config, *tls).stdout
        assert out.startswith("Updated state of cluster keebler")

        err = rainbow("update", "state", "--state-file", STATE, "--config-path", config, "--timeout", "10",
                      code=1).stderr
        assert err.startswith(f"rainbow: error: cannot reach the rainbow server at {address}: the server closed "
                              "the connection: it likely wants TLS (connect with --ca-cert FILE, or --ssl) (")
        err = rainbow("update", "state", "--state-file", STATE, "--config-path", config, "--timeout", "5",
                      "--ca-cert", str(ca[1]), code=1).stderr
        assert err.startswith(f"rainbow: error: cannot reach the rainbow server at {address}: the server closed "
                              "the TLS connection: it likely wants a client certificate (mutual TLS: --cert and --key)")
        err = rainbow("receive", "--config-path", config, "--cert", str(cert), "--ca-cert", str(ca[1]),
                      code=1).stderr
        assert err == "rainbow: error: mutual TLS needs both a client certificate and its key\n"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def test_the_config_file_defaults_to_rainbow_config_env_then_the_working_directory(address, rainbow, tmp_path):
    elsewhere = tmp_path / "elsewhere.yaml"
    # No config anywhere: a command that needs one says how to make one.
    err = rainbow("submit", "-c", "hostname", code=1).stderr
    assert err == ("rainbow: error: config file rainbow-config.yaml does not exist: create one with rainbow config "
                   "init (or give --config-path, or set RAINBOW_CONFIG, to use another file)\n")
    # The tour without --config-path: ./rainbow-config.yaml.
    rainbow("config", "init", "--cluster-name", "keebler", "--host", address)
    assert (tmp_path / "rainbow-config.yaml").exists()
    rainbow("register", "cluster", "--nodes-json", NODES, "--secret", REGISTRATION_SECRET, "--save")
    out = rainbow("submit", "-c", "hostname").stdout
    assert out.startswith("Submitted job 1 (hostname) to cluster keebler")
    # RAINBOW_CONFIG names another file (and wins over ./rainbow-config.yaml).
    env = {"RAINBOW_CONFIG": str(elsewhere)}
    rainbow("config", "init", "--cluster-name", "tioga", "--host", address, env=env)
    rainbow("register", "cluster", "--nodes-json", NODES, "--secret", REGISTRATION_SECRET, "--save", env=env)
    assert RainbowConfig.load(elsewhere).token_for("tioga")
    assert RainbowConfig.load(tmp_path / "rainbow-config.yaml").token_for("tioga") is None
    err = rainbow("submit", "-c", "hostname", code=1, env={"RAINBOW_CONFIG": str(tmp_path / "gone.yaml")}).stderr
    assert "gone.yaml does not exist" in err and "RAINBOW_CONFIG" not in err


def test_register_module_dry_run_needs_no_config_and_names_the_cluster_after_its_hosts(address, rainbow, tmp_path):
    R = str(EXAMPLES / "flux" / "R-16node-gpus.json")
    dry = rainbow("--R", R, "--dry-run", module="rainbow.register").stdout
    assert json.loads(dry)["graph"]["nodes"]["0"]["metadata"]["basename"] == "tioga"
    assert not (tmp_path / "rainbow-config.yaml").exists()
    out = rainbow("--R", R, "--host", address, "--secret", REGISTRATION_SECRET, "--save",
                  module="rainbow.register").stdout
    assert "registered cluster 'tioga' (16 nodes, 1024 cores, 128 GPUs)" in out
    assert RainbowConfig.load(tmp_path / "rainbow-config.yaml").token_for("tioga")


def test_wait_for_server_waits_for_a_server_that_starts_later(rainbow, tmp_path):
    """Registration and client commands started before the server (a stack coming up) wait for it with
    --wait-for-server; without it they fail at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    host = f"127.0.0.1:{port}"
    assert "cannot reach the rainbow server" in rainbow("health", "--host", host, code=1).stderr
    R = str(EXAMPLES / "flux" / "R-16node-gpus.json")
    waiting = [
        subprocess.Popen([sys.executable, "-m", "rainbow.register", "--R", R, "--host", host, "--secret",
                          REGISTRATION_SECRET, "--save", "--wait-for-server", "--timeout", "60"],
                         cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         env=subprocess_env()),
        subprocess.Popen([sys.executable, "-m", "rainbow", "health", "--host", host, "--wait-for-server",
                          "--timeout", "60"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, env=subprocess_env()),
    ]
    time.sleep(2)
    assert [proc.poll() for proc in waiting] == [None, None]  # still waiting: nothing listens yet
    server, _, _ = start_server_process(tmp_path / "rainbow.db", "--host", host, "--secret", REGISTRATION_SECRET)
    try:
        registered, health = (proc.communicate(timeout=60)[0] for proc in waiting)
        assert [proc.returncode for proc in waiting] == [0, 0], (registered, health)
        assert "registered cluster 'tioga'" in registered
        assert "SERVING" in health
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)


def test_registering_again_with_a_new_config_points_to_what_helps(address, rainbow, tmp_path):
    """The tour run again on the same database with a fresh config: the old credentials are not issued twice."""
    first, second = str(tmp_path / "first.yaml"), str(tmp_path / "second.yaml")
    for config in (first, second):
        rainbow("config", "init", "--cluster-name", "keebler", "--config-path", config, "--host", address)
    rainbow("register", "cluster", "--nodes-json", NODES, "--secret", REGISTRATION_SECRET, "--save",
            "--config-path", first)
    out = rainbow("register", "cluster", "--nodes-json", NODES, "--secret", REGISTRATION_SECRET, "--save",
                  "--config-path", first).stdout
    assert out == f"Cluster keebler is already registered (REGISTER_EXISTS); no new credentials were issued " \
                  f"(its credentials are already in {first})\n"
    err = rainbow("register", "cluster", "--nodes-json", NODES, "--secret", REGISTRATION_SECRET, "--save",
                  "--config-path", second, code=1).stderr
    assert err == (f"rainbow: error: cluster keebler is already registered, so there are no new credentials to "
                   f"save to {second}. Use the config file that saved them when keebler was registered, or issue "
                   "new ones (the old ones stop working): rainbow cluster renew keebler --secret "
                   "REGISTRATION-SECRET --save\n")
    err = rainbow("submit", "-c", "hostname", "--config-path", second, code=1).stderr
    assert "use the config file that registered them" in err and "rainbow cluster renew" in err

    # following the hint: the second config gets new credentials, the first one's stop working
    out = rainbow("cluster", "renew", "keebler", "--secret", REGISTRATION_SECRET, "--save", "--config-path",
                  second).stdout
    assert out == f"New credentials for cluster keebler\nSaved its secret and token to {second}\n"
    assert "Submitted job 1 (hostname) to cluster keebler" in rainbow("submit", "-c", "hostname", "--config-path",
                                                                      second).stdout
    refused = rainbow("submit", "-c", "hostname", "--config-path", first, code=1).stderr
    assert refused == "rainbow: error: wrong token for cluster 'keebler'\n"
    refused = rainbow("receive", "--config-path", first, code=1).stderr
    assert refused.startswith("rainbow: error: ") and "secret" in refused
    assert "Received" in rainbow("receive", "--config-path", second).stdout
