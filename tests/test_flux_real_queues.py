"""With a real Flux as the oracle: queues, constraints and limits decide as Flux itself does.

A 16-broker test instance on the 16-node R of tests/data/examples/flux (pdebug on tioga[1-4], pbatch on
tioga[5-16]) with two queues: `[queues.debug] requires = ["pdebug"]` (at most 2 nodes, 30 minutes) and
`[queues.batch] requires = ["pbatch"]` (the default). Every case is matched by rainbow and submitted to
Flux; rainbow's verdict must be Flux's (refused at submit or unsatisfiable, versus allocated), with
whichever scheduler the instance loads (Fluxion where flux-sched is installed, else sched-simple).
Runs wherever `flux` is on PATH; skipped elsewhere.
"""

from __future__ import annotations

import json
import re
import subprocess
import textwrap

import pytest
from test_flux_real import flux_env, flux_python  # noqa: F401 (fixture: skips without flux)

from rainbow.constraints import Constraint, NodeLabel, parse_requires
from rainbow.flux.resources import r_nodes

from conftest import EXAMPLES

pytestmark = pytest.mark.flux

R16 = json.loads((EXAMPLES / "flux" / "R-16node-gpus.json").read_text())
QUEUES_TOML = """\
[resource]
path = "{R}"
noverify = true

[queues.debug]
requires = ["pdebug"]
[queues.debug.policy.limits]
duration = "30m"
job-size.max.nnodes = 2

[queues.batch]
requires = ["pbatch"]

[policy.jobspec.defaults.system]
queue = "batch"
"""

ORACLE = """\
import json, sys
import flux, flux.job
from rainbow.flux.adapter import instance_R, instance_queues
from rainbow.flux.resources import r_to_jgf
from rainbow.graph import ClusterGraph, match
from rainbow.jobspec import parse_jobspec

h = flux.Flux()
graph = ClusterGraph.from_jgf(json.dumps(r_to_jgf(instance_R(h), "tioga", instance_queues(h).to_dict())))
out = []
for spec in json.load(open(sys.argv[1])):
    ours = match(graph, parse_jobspec(spec))
    try:
        jobid = flux.job.submit(h, json.dumps(spec))
    except OSError as exc:
        out.append([ours.ok, ours.reason, "refused", str(exc)])
        continue
    verdict = None
    for event in flux.job.event_watch(h, jobid):
        if event.name == "alloc":
            verdict = ["allocated", ""]
        elif event.name == "exception":
            verdict = ["unsatisfiable", event.context.get("note", "")]
        if verdict:
            break
    if verdict[0] == "allocated":
        flux.job.cancel(h, jobid)
    out.append([ours.ok, ours.reason, *verdict])
print(json.dumps(out))
"""


def spec(nodes: int, **system) -> dict:
    return {
        "version": 1,
        "resources": [{"type": "node", "count": nodes, "with": [
            {"type": "slot", "count": 1, "label": "task", "with": [{"type": "core", "count": 1}]}]}],
        "tasks": [{"command": ["true"], "slot": "task", "count": {"per_slot": 1}}],
        "attributes": {"system": {"duration": 0.0, **system}},
    }


CASES = [
    spec(2, queue="debug", duration=600.0),
    spec(3, queue="debug", duration=300.0),
    spec(1, queue="debug", duration=7200.0),
    spec(1, queue="debug"),
    spec(1, queue="nosuch"),
    spec(12),
    spec(13),
    spec(17),
    spec(2, queue="batch", constraints={"properties": ["pdebug"]}),
    spec(12, constraints={"properties": ["^pdebug"]}),
    spec(13, constraints={"properties": ["^pdebug"]}),
    spec(2, queue="batch", constraints={"hostlist": ["tioga[5-6]"]}),
    spec(3, queue="batch", constraints={"hostlist": ["tioga[5-6]"]}),
    spec(2, queue="debug", duration=60.0, constraints={"ranks": ["0", "3"]}),
    spec(2, queue="debug", duration=60.0, constraints={"and": [{"ranks": ["0-3"]}, {"not": [{"ranks": ["1-3"]}]}]}),
    spec(4, constraints={"or": [{"properties": ["pdebug"]}, {"ranks": ["4-5"]}]}),
]

REQUIRES = ["pdebug", "^pdebug", "pbatch,pdebug", "pdebug or pbatch", "host:tioga[1-2]", "-pdebug", "- pdebug",
            "rank:0-3 and not pdebug", "pbatch and -rank:4-6", "(pdebug | rank:7) & not host:tioga1", "a b",
            "hosts:tioga[3-5] || ranks:9", "!pdebug", "NOT pdebug", "pdebug OR pbatch", "not (pdebug | pbatch)"]


def run_in_flux(tmp_path, script: str) -> str:
    (tmp_path / "R.json").write_text(json.dumps(R16))
    confdir = tmp_path / "conf"
    confdir.mkdir()
    (confdir / "queues.toml").write_text(QUEUES_TOML.format(R=tmp_path / "R.json"))
    path = tmp_path / "script.sh"
    path.write_text("set -e\n" + textwrap.dedent(script))
    # --test-hosts: the brokers take R's hostnames, as on a real cluster (Flux checks hostlist constraints
    # against the instance's hostlist at submit)
    result = subprocess.run(["flux", "start", "--test-size=16", "--test-hosts=tioga[1-16]",
                             f"-o,--config-path={confdir}", "bash", str(path)],
                            capture_output=True, text=True, env=flux_env(), cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_rainbow_decides_as_flux_does(flux_python, tmp_path):  # noqa: F811
    (tmp_path / "cases.json").write_text(json.dumps(CASES))
    (tmp_path / "oracle.py").write_text(ORACLE)
    out = run_in_flux(tmp_path, """
        flux queue start --all --quiet
        flux python oracle.py cases.json
    """)
    verdicts = json.loads(out.strip().splitlines()[-1])
    assert len(verdicts) == len(CASES)
    for case, (ok, reason, flux_says, note) in zip(CASES, verdicts, strict=True):
        assert ok == (flux_says == "allocated"), (case["attributes"], reason, flux_says, note)


def test_requires_text_means_what_flux_submit_makes_of_it(flux_python, tmp_path):  # noqa: F811
    extract = "import json, sys; print(json.dumps(json.load(sys.stdin)['attributes']['system']['constraints']))"
    script = "".join(f"flux submit --dry-run --requires='{text}' true | flux python -c \"{extract}\"\n"
                     for text in REQUIRES)
    out = run_in_flux(tmp_path, script).strip().splitlines()
    nodes = [NodeLabel(frozenset(n.properties), n.hostname, n.rank) for n in r_nodes(R16)]
    for text, flux_json in zip(REQUIRES, out, strict=True):
        theirs, ours = Constraint(json.loads(flux_json)), Constraint(parse_requires(text))
        assert [theirs.allows(n) for n in nodes] == [ours.allows(n) for n in nodes], text


def test_register_and_run_in_the_right_queue(flux_python, tmp_path):  # noqa: F811
    out = run_in_flux(tmp_path, """
        flux queue start --all --quiet
        flux python -m rainbow.submit --config-path cfg.yaml --dry-run --queue debug --requires pdebug -t 20m true
        flux queue disable --quiet --message="closed for maintenance" debug
        echo REGISTER
        flux python -m rainbow.register --dry-run --config-path cfg.yaml --cluster-name tioga
    """)
    from rainbow.graph import ClusterGraph

    submitted, registered = out.split("REGISTER\n")
    system = json.loads(submitted)["attributes"]["system"]
    assert (system["queue"], system["constraints"], system["duration"]) == ("debug", {"properties": ["pdebug"]}, 1200)
    graph = ClusterGraph.from_jgf(registered)
    debug, batch = graph.queues.get("debug"), graph.queues.get("batch")
    assert (debug.requires, debug.max_size["nnodes"], debug.duration, debug.default) == (("pdebug",), 2, 1800, False)
    assert (debug.enabled, debug.reason) == (False, "closed for maintenance")
    assert (batch.requires, batch.default, batch.started, batch.enabled, batch.reason) == (("pbatch",), True, True,
                                                                                          True, "")
    # memory from each broker's hwloc topology (every broker of a test instance runs on this one host)
    vertices = json.loads(registered)["graph"]["nodes"].values()
    sizes = [v["metadata"]["size"] for v in vertices if v["metadata"]["type"] == "memory"]
    assert len(sizes) == 16 and len(set(sizes)) == 1 and sizes[0] > 0, sizes


def test_flux_refuses_and_rainbow_places_the_job_on_the_other_cluster(flux_python, tmp_path):  # noqa: F811
    from rainbow.client import RainbowClient
    from rainbow.config import RainbowConfig
    from rainbow.flux.resources import r_to_jgf
    from rainbow.queues import QueueSet

    from conftest import REGISTRATION_SECRET, start_server_process

    proc, address, _ = start_server_process(tmp_path / "rainbow.db", "--secret", REGISTRATION_SECRET)
    try:
        keebler = RainbowConfig.new("keebler", host=address, path=tmp_path / "keebler.yaml")
        with RainbowClient(address, config_file=keebler) as client:
            debug = {"name": "debug", "default": False, "requires": ["pdebug"],
                     "limits": {"max": {"nnodes": 2}, "duration": 1800}}
            client.register("keebler", REGISTRATION_SECRET,
                            r_to_jgf(R16, "keebler", QueueSet.from_dict({"queues": [debug]}).to_dict()), save=True)
            client.update_state("keebler", {"cost_per_node_hour": 2})
        (tmp_path / "setup.py").write_text(textwrap.dedent("""\
            import os
            from rainbow.client import RainbowClient
            from rainbow.config import RainbowConfig
            config = RainbowConfig.load(os.environ["CFG"])
            config.add_cluster_token("keebler", os.environ["KTOKEN"])
            config.save()
            RainbowClient(os.environ["HOST"], config_file=config).update_state("tioga", {"cost_per_node_hour": 1})
        """))
        out = run_in_flux(tmp_path, f"""
            export HOST={address} CFG={tmp_path / "cfg.yaml"} KTOKEN={keebler.token_for("keebler")}
            flux queue start --all
            flux python -m rainbow.register --host $HOST --secret {REGISTRATION_SECRET} --config-path $CFG \\
                --save --cluster-name tioga
            flux python setup.py
            flux python -m rainbow.submit --config-path $CFG --select-algorithm cheapest --queue debug -N2 -t 10m \\
                hostname
            flux queue disable --message="closed for maintenance" debug
            flux python -m rainbow.agent --config-path $CFG --once
        """)
        (jobid,) = [int(m) for m in re.findall(r"^rainbow job (\d+) \(hostname\) -> cluster tioga", out, re.M)]
        tioga = RainbowConfig.load(tmp_path / "cfg.yaml")
        with RainbowClient(address, config_file=tioga) as client:
            job = client.get_job(jobid)
        assert (job.cluster, job.state) == ("keebler", "assigned")
        assert [r.cluster for r in job.rejections] == ["tioga"]
        assert "job submission to debug is disabled" in job.rejections[0].reason
    finally:
        proc.terminate()
        proc.wait(30)


def test_a_job_runs_in_its_flux_queue_and_an_unsatisfiable_one_moves_on(flux_python, tmp_path):  # noqa: F811
    """tioga was registered from an R whose every node has pbatch (a stale picture): rainbow sends it a
    13-node batch job, Flux's scheduler finds only 12 pbatch nodes (``unsatisfiable request`` before the
    job ran) and rainbow places the job again, on keebler. A debug job runs in Flux's debug queue."""
    from rainbow.client import RainbowClient
    from rainbow.config import RainbowConfig
    from rainbow.flux.resources import r_to_jgf

    from conftest import REGISTRATION_SECRET, start_server_process

    stale = json.loads(json.dumps(R16))
    stale["execution"]["properties"]["pbatch"] = "0-15"
    (tmp_path / "R-stale.json").write_text(json.dumps(stale))
    proc, address, _ = start_server_process(tmp_path / "rainbow.db", "--secret", REGISTRATION_SECRET)
    try:
        keebler = RainbowConfig.new("keebler", host=address, path=tmp_path / "keebler.yaml")
        with RainbowClient(address, config_file=keebler) as client:
            client.register("keebler", REGISTRATION_SECRET, r_to_jgf(R16, "keebler"), save=True)
            client.update_state("keebler", {"cost_per_node_hour": 2})
        agent = "flux python -m rainbow.agent --config-path $CFG --agent-id tioga-agent --state cost_per_node_hour=1"
        out = run_in_flux(tmp_path, f"""
            export HOST={address} CFG={tmp_path / "cfg.yaml"}
            flux queue start --all --quiet
            flux python -m rainbow.register --host $HOST --secret {REGISTRATION_SECRET} --config-path $CFG \\
                --save --cluster-name tioga --R R-stale.json
            flux python -c "from rainbow.config import RainbowConfig as C; c = C.load('$CFG'); \\
                c.add_cluster_token('keebler', '{keebler.token_for("keebler")}'); c.save()"
            {agent} --once
            flux python -m rainbow.submit --config-path $CFG --select-algorithm cheapest --queue debug -N2 -t 10m \\
                --job-name=short hostname
            flux python -m rainbow.submit --config-path $CFG --select-algorithm cheapest -N13 --job-name=wide hostname
            {agent} --once
            flux queue drain
            {agent} --once
            echo FLUXJOBS
            flux jobs -a --no-header -o '{{name}} {{queue}} {{result}}'
        """)
        placed = re.findall(r"^rainbow job (\d+) \((\w+)\) -> cluster tioga", out, re.M)
        short, wide = (int(jobid) for jobid, _ in sorted(placed, key=lambda p: p[1]))
        flux_jobs = sorted(out.split("FLUXJOBS\n")[1].splitlines())
        assert flux_jobs == ["short debug COMPLETED", "wide batch FAILED"]
        tioga = RainbowConfig.load(tmp_path / "cfg.yaml")
        with RainbowClient(address, config_file=tioga) as client:
            ran, moved = client.get_job(short), client.get_job(wide)
        assert (ran.cluster, ran.state, ran.rejections) == ("tioga", "completed", ())
        assert (moved.cluster, moved.state) == ("keebler", "assigned")
        assert [r.cluster for r in moved.rejections] == ["tioga"]
        assert moved.rejections[0].reason in (  # flux-core's scheduler, Fluxion
            "alloc: unsatisfiable request: need 13 exclusive node(s), only 12 eligible",
            'alloc: alloc denied due to type="unsatisfiable"')
    finally:
        proc.terminate()
        proc.wait(30)
