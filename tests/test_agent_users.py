"""The agent and users: each Flux job carries its rainbow user and group; an agent may refuse users."""

from __future__ import annotations

import pytest
from test_agent_local import FINAL, register, run_until
from test_flux_adapter import flux_fake  # noqa: F401 - the fixture

from rainbow.agent.convert import to_flux_jobspec
from rainbow.client import RainbowClient
from rainbow.jobspec import simple

from conftest import REGISTRATION_SECRET


def test_the_jobspec_names_the_rainbow_user_and_group():
    spec = to_flux_jobspec(simple(["hostname"]), jobid=4, cluster="fluxy", user="alice", group="physics")
    assert spec["attributes"]["user"] == {"rainbow": {"jobid": 4, "cluster": "fluxy"}, "rainbow_user": "alice",
                                          "rainbow_group": "physics"}
    anonymous = to_flux_jobspec(simple(["hostname"]), jobid=5, cluster="fluxy")
    assert set(anonymous["attributes"]["user"]) == {"rainbow"}


@pytest.fixture
def tokens(server_factory):
    server = server_factory()
    with RainbowClient(server.address) as operator:
        made = {name: operator.add_user(name, groups, secret=REGISTRATION_SECRET).token
                for name, groups in (("alice", ["physics"]), ("bob", []))}
    return server, made


def test_flux_jobs_carry_the_user_they_run_for(flux_fake, tokens, tmp_path):  # noqa: F811 - the fixture
    import flux

    from rainbow.agent import Agent
    from rainbow.agent.hooks import Hooks
    from rainbow.agent.link import ClusterLink
    from rainbow.config import RainbowConfig
    from rainbow.flux.adapter import FluxExecutor, instance_R
    from rainbow.flux.resources import r_to_jgf

    server, made = tokens
    instance = flux_fake.use(flux_fake.FakeInstance())
    config = RainbowConfig.new("fluxy", host=server.address, path=tmp_path / "rainbow-config.yaml")
    with RainbowClient(server.address, config_file=config) as cluster:
        cluster.register("fluxy", REGISTRATION_SECRET, r_to_jgf(instance_R(flux.Flux()), "fluxy"), save=True)
        legacy = cluster.submit_job(["hostname"]).jobid
    with RainbowClient(server.address, user_token=made["alice"]) as alice:
        mine = alice.submit_jobspec(simple(["hostname"])).jobid
    seen = {}
    hooks = Hooks()
    hooks.on("job.new", lambda job: seen.update({job.jobid: job.jobspec["attributes"]["user"]}))
    agent = Agent(ClusterLink(RainbowClient(server.address, config_file=config), agent="test"),
                  FluxExecutor(cluster="fluxy"), hooks=hooks, stream=False)
    agent.run_once()
    owners = {spec["attributes"]["user"]["rainbow"]["jobid"]: (spec["attributes"]["user"].get("rainbow_user"),
                                                               spec["attributes"]["user"].get("rainbow_group"))
              for spec in instance.submitted}
    assert owners == {legacy: ("legacy", None), mine: ("alice", "physics")}
    assert seen[mine]["rainbow_user"] == "alice"


def test_an_agent_refuses_users_not_on_its_allow_list(tokens, tmp_path):
    server, made = tokens
    keebler = register(server.address, tmp_path, "keebler")
    with RainbowClient(server.address, user_token=made["alice"]) as alice:
        jobid = alice.submit_jobspec(simple(["true"])).jobid
        agent = keebler.agent(tmp_path / "state", allow_users=["bob"])
        run_until(agent, lambda: alice.get_job(jobid).state in FINAL)
        job = alice.get_job(jobid)
    assert job.state == "failed"
    assert "user alice may not run jobs on cluster keebler" in job.message
    assert [r.cluster for r in job.rejections] == ["keebler"]
    with RainbowClient(server.address, user_token=made["bob"]) as bob:
        jobid = bob.submit_jobspec(simple(["true"])).jobid
        run_until(agent, lambda: bob.get_job(jobid).state in FINAL)
        assert bob.get_job(jobid).state == "completed"


def test_a_refused_job_moves_to_a_cluster_that_takes_its_user(tokens, tmp_path):
    server, made = tokens
    keebler = register(server.address, tmp_path, "keebler")
    quebec = register(server.address, tmp_path, "quebec")
    strict = keebler.agent(tmp_path / "keebler", allow_users=["bob"])
    open_ = quebec.agent(tmp_path / "quebec", agent_id="agent-2")
    with RainbowClient(server.address, user_token=made["alice"]) as alice:
        # placed at random: with 20 jobs some land on keebler (all on quebec: one chance in a million)
        ids = [alice.submit_jobspec(simple(["true"])).jobid for _ in range(20)]

        def done() -> bool:
            strict.run_once()
            return all(alice.get_job(j).state in FINAL for j in ids)

        run_until(open_, done)
        jobs = [alice.get_job(j) for j in ids]
    assert {job.state for job in jobs} == {"completed"} and {job.cluster for job in jobs} == {"quebec"}
    moved = [job for job in jobs if job.rejections]
    assert moved and all([r.cluster for r in job.rejections] == ["keebler"] for job in moved)
