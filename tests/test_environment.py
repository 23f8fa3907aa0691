"""Options of `rainbow server` and `rainbow agent` from environment variables, and `rainbow health`."""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys

import pytest

from rainbow.cli import build_parser
from rainbow.environment import apply_environment, variable_name
from rainbow.errors import InvalidArgument

from conftest import REGISTRATION_SECRET, start_server_process, subprocess_env


def server_args(environ: dict[str, str], *argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="rainbow server")
    from rainbow.server import command

    command.add_arguments(parser)
    apply_environment(parser, "RAINBOW_SERVER_", environ)
    return parser.parse_args(list(argv))


def test_variable_names_follow_the_flags():
    assert variable_name("RAINBOW_SERVER_", "--metrics-port") == "RAINBOW_SERVER_METRICS_PORT"
    assert variable_name("RAINBOW_AGENT_", "--cores-per-node") == "RAINBOW_AGENT_CORES_PER_NODE"


def test_variables_become_typed_defaults_and_flags_win():
    environ = {
        "RAINBOW_SERVER_METRICS_PORT": "9464",
        "RAINBOW_SERVER_LEASE_SECONDS": "12.5",
        "RAINBOW_SERVER_LOG_LEVEL": "debug",
        "RAINBOW_SERVER_CLEANUP": "yes",
        "RAINBOW_SERVER_DB": "/data/rainbow.db",
    }
    args = server_args(environ)
    assert (args.metrics_port, args.lease_seconds, args.loglevel, args.cleanup, args.db) == (
        9464,
        12.5,
        logging.DEBUG,
        True,
        "/data/rainbow.db",
    )
    args = server_args(environ, "--metrics-port", "1234", "--db", "other.db")
    assert (args.metrics_port, args.db) == (1234, "other.db")
    assert server_args({"RAINBOW_SERVER_CLEANUP": "off"}).cleanup is False


def test_a_file_variable_reads_the_value_from_the_file(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("s3cret value\n")
    assert server_args({"RAINBOW_SERVER_SECRET_FILE": str(secret)}).secret == "s3cret value"
    # the variable itself wins over its _FILE form
    both = {"RAINBOW_SERVER_SECRET": "direct", "RAINBOW_SERVER_SECRET_FILE": str(secret)}
    assert server_args(both).secret == "direct"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"RAINBOW_SERVER_METRICS_PORT": "nine"}, "RAINBOW_SERVER_METRICS_PORT: invalid value 'nine'"),
        ({"RAINBOW_SERVER_LOG_LEVEL": "9"}, "RAINBOW_SERVER_LOG_LEVEL: numeric levels are 0 (quiet) to 5"),
        ({"RAINBOW_SERVER_CLEANUP": "maybe"}, "RAINBOW_SERVER_CLEANUP: expected one of"),
        ({"RAINBOW_SERVER_SECRET_FILE": "/nonexistent/secret"}, "RAINBOW_SERVER_SECRET_FILE: cannot read"),
    ],
)
def test_bad_values_name_the_variable(environ, message):
    with pytest.raises(InvalidArgument) as info:
        server_args(environ)
    assert message in str(info.value)


def test_agent_variables_fill_required_options_and_check_choices():
    parser = argparse.ArgumentParser()
    from rainbow.agent import command

    command.add_arguments(parser)
    used = apply_environment(
        parser,
        "RAINBOW_AGENT_",
        {
            "RAINBOW_AGENT_CONFIG_PATH": "/etc/rainbow.yaml",
            "RAINBOW_AGENT_NODES": "3",
            "RAINBOW_AGENT_HOOKS": "/etc/hooks.py",
        },
    )
    assert sorted(used) == ["RAINBOW_AGENT_CONFIG_PATH", "RAINBOW_AGENT_HOOKS", "RAINBOW_AGENT_NODES"]
    args = parser.parse_args([])
    assert (args.config_path, args.nodes, args.hooks) == ("/etc/rainbow.yaml", 3, ["/etc/hooks.py"])
    with pytest.raises(InvalidArgument, match="RAINBOW_AGENT_EXECUTOR: 'slurm' is not one of auto, flux, local"):
        apply_environment(parser, "RAINBOW_AGENT_", {"RAINBOW_AGENT_EXECUTOR": "slurm"})


def test_a_bad_server_variable_fails_only_the_server_command(monkeypatch, capsys):
    monkeypatch.setenv("RAINBOW_SERVER_WORKERS", "many")
    from rainbow.cli import main

    assert main(["server"]) == 2
    assert "rainbow server: error: RAINBOW_SERVER_WORKERS: invalid value 'many'" in capsys.readouterr().err
    # other subcommands do not read the server's variables
    assert build_parser().parse_args(["config", "init", "--config-path", "x.yaml"]).command == "config"


def test_server_process_takes_its_secret_from_a_file(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text(REGISTRATION_SECRET + "\n")
    proc, address, _ = start_server_process(tmp_path / "rainbow.db", env={"RAINBOW_SERVER_SECRET_FILE": str(secret)})
    try:
        nodes = tmp_path / "nodes.json"
        from conftest import example

        nodes.write_text(example("cluster-nodes.json"))

        def register(name: str, with_secret: str) -> subprocess.CompletedProcess:
            return subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "rainbow",
                    "register",
                    "cluster",
                    "--host",
                    address,
                    "--cluster-name",
                    name,
                    "--nodes-json",
                    str(nodes),
                    "--secret",
                    with_secret,
                ],
                capture_output=True,
                text=True,
                env=subprocess_env(),
                timeout=60,
            )

        refused = register("keebler", "not-the-secret")
        assert refused.returncode == 1 and "secret" in refused.stderr.lower()
        accepted = register("keebler", REGISTRATION_SECRET)
        assert accepted.returncode == 0, accepted.stderr
    finally:
        proc.terminate()
        proc.wait(30)


def run_health(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rainbow", "health", *argv],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=60,
    )


def test_health_reports_serving_unknown_and_unreachable(rainbow):
    serving = run_health("--host", rainbow.address)
    assert (serving.returncode, serving.stdout.strip()) == (0, f"{rainbow.address}: SERVING")
    scheduler = run_health(
        "--host", rainbow.address, "--service", "convergedcomputing.org.grpc.v1.RainbowScheduler", "--json"
    )
    assert scheduler.returncode == 0 and '"status": "SERVING"' in scheduler.stdout
    unknown = run_health("--host", rainbow.address, "--service", "no.such.Service")
    assert (unknown.returncode, unknown.stdout.strip()) == (1, f"{rainbow.address}: SERVICE_UNKNOWN")
    rainbow.server.stop()
    gone = run_health("--host", rainbow.address, "--timeout", "2")
    assert gone.returncode == 1 and "cannot reach" in gone.stderr
