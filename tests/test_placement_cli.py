"""`rainbow submit --queue/--requires/-t` as a subprocess against a real `rainbow server` process.

Two Flux clusters of the captured shape (16 nodes, pdebug on 1-4, pbatch on 5-16): tioga with the debug
(2 nodes, 30m) and batch queues, keebler without queues.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from test_cli import Rainbow, address  # noqa: F401 (the server process fixture)

from rainbow.flux.resources import r_to_jgf

from conftest import EXAMPLES, REGISTRATION_SECRET

R16 = json.loads((EXAMPLES / "flux" / "R-16node-gpus.json").read_text())
QUEUES = {"queues": [
    {"name": "debug", "default": False, "requires": ["pdebug"], "limits": {"max": {"nnodes": 2}, "duration": 1800}},
    {"name": "batch", "default": True, "requires": ["pbatch"]},
]}


@pytest.fixture
def clusters(address, tmp_path):  # noqa: F811
    rainbow = Rainbow(tmp_path)
    config = str(tmp_path / "rainbow-config.yaml")
    rainbow("config", "init", "--config-path", config, "--host", address, "--secret", REGISTRATION_SECRET)
    tokens, secrets = [], {}
    for name, queues in (("tioga", QUEUES), ("keebler", None)):
        nodes = tmp_path / f"{name}.json"
        nodes.write_text(json.dumps(r_to_jgf(R16, name, queues)))
        reg = rainbow.json("register", "cluster", "--cluster-name", name, "--nodes-json", str(nodes),
                           "--config-path", config)
        tokens.append({"name": name, "token": reg["token"]})
        secrets[name] = reg["secret"]
    data = yaml.safe_load(Path(config).read_text())
    data["clusters"] = tokens
    data["cluster"] = {"name": "tioga", "secret": secrets["tioga"]}
    Path(config).write_text(yaml.safe_dump(data))
    return rainbow, config


def test_submit_with_queue_time_limit_and_requires(clusters):
    rainbow, config = clusters
    job = rainbow.json("submit", "-c", "hostname", "-n", "2", "--queue", "debug", "-t", "20m",
                       "--config-path", config)
    assert job["cluster"] == "tioga" and job["matches"] == ["tioga"]
    assert job["reasons"] == {"keebler": "no queue 'debug'"}

    job = rainbow.json("submit", "-c", "hostname", "-n", "3", "--requires", "^pdebug", "--time-limit", "1.5d",
                       "--config-path", config, "--satisfy-only")
    assert sorted(job["matches"]) == ["keebler", "tioga"]

    jobspec = Path(config).parent / "job.json"
    jobspec.write_text(json.dumps({
        "version": 1,
        "resources": {"w": {"type": "node", "replicas": 5, "with": [{"type": "core", "count": 1}]}},
        "tasks": [{"command": ["app"], "resources": "w"}],
    }))
    err = rainbow("submit", "--jobspec", str(jobspec), "--requires", "pdebug", "--config-path", config,
                  code=1).stderr
    assert "keebler: 5 nodes with property 'pdebug' needed, 4 have it" in err
    assert "tioga: 5 nodes matching 'pbatch and pdebug' needed, 0 have it" in err

    err = rainbow("submit", "-c", "hostname", "-n", "2", "--queue", "debug", "-t", "2h", "--config-path", config,
                  code=1).stderr
    assert "tioga: duration 2h exceeds queue 'debug' limit 30m" in err
    err = rainbow("submit", "-c", "hostname", "-n", "4", "--queue", "debug", "-t", "5m", "--config-path", config,
                  code=1).stderr
    assert "tioga: queue 'debug' allows at most 2 nodes, job needs 4" in err

    received = rainbow.json("receive", "--config-path", config)
    assert len(received) == 1
    system = yaml.safe_load(received[0]["jobspec"])["attributes"]
    assert (system["queue"], system["duration"]) == ("debug", 1200.0)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--requires", "pdebug and"], "rainbow: error: requires: a term is missing at the end in 'pdebug and'"),
        (["--requires", "color:red"], "rainbow: error: requires: unknown constraint operator 'color'"),
        (["-t", "3w"], "rainbow: error: time_limit: '3w' is not a duration"),
        (["--queue", ""], "rainbow: error: queue: must not be empty"),
    ],
)
def test_bad_placement_flags_are_refused_before_anything_is_sent(clusters, flags, message):
    rainbow, config = clusters
    err = rainbow("submit", "-c", "hostname", *flags, "--config-path", config, code=1).stderr
    assert err.startswith(message), err
