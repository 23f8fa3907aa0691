"""Fair share, quotas and accounting over real gRPC, on SQLite and PostgreSQL: who an agent gets jobs of,
what a quota refuses or holds back, and what ``rainbow usage`` adds up from the job records."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass

import grpc
import pytest
from test_agent_local import FINAL, Cluster, register, run_until

from rainbow.client import RainbowClient
from rainbow.errors import InvalidArgument, NotFound, ResourceExhausted
from rainbow.jobspec import simple
from rainbow.limits import Limits
from rainbow.protos import rainbow_pb2

from conftest import BOTH_STORES, REGISTRATION_SECRET, ManualClock, subprocess_env

pytestmark = BOTH_STORES

DAY = 24 * 3600.0


@dataclass
class Site:
    server: object
    cluster: Cluster
    operator: RainbowClient
    tokens: dict[str, str]

    def user(self, name: str) -> RainbowClient:
        return RainbowClient(self.server.address, user_token=self.tokens[name])

    def receive(self, count: int) -> list:
        return self.cluster.client.receive_jobs(count, accept=False)


def make_site(server_factory, tmp_path, users=(("alice", ["physics"]), ("bob", ["chemistry"])), **settings) -> Site:
    settings.setdefault("fairshare_refresh", 0.0)
    server = server_factory(**settings)
    cluster = register(server.address, tmp_path)
    operator = RainbowClient(server.address)
    tokens = {name: operator.add_user(name, groups, secret=REGISTRATION_SECRET).token for name, groups in users}
    return Site(server, cluster, operator, tokens)


@pytest.fixture
def site(server_factory, tmp_path):
    site = make_site(server_factory, tmp_path)
    yield site
    site.operator.close()
    site.cluster.client.close()


def submit(client: RainbowClient, count: int, nodes: int = 1, priority: int = 0, name: str = "job") -> list[int]:
    return [client.submit_jobspec(simple(["sleep", "1"], nodes=nodes, tasks=nodes), name=f"{name}{i}",
                                  priority=priority).jobid for i in range(count)]


def test_bob_is_not_starved_behind_alices_sweep(site):
    with site.user("alice") as alice, site.user("bob") as bob:
        alice_jobs = submit(alice, 30, name="alice")
        bob_jobs = submit(bob, 10, name="bob")
    first = site.receive(10)
    assert len(first) == 10
    owners = [job.user for job in first]
    assert owners.count("bob") >= 4, owners
    assert {job.id for job in first if job.user == "alice"} <= set(alice_jobs)
    assert {job.id for job in first if job.user == "bob"} <= set(bob_jobs)
    # alice's jobs are handed out oldest first among themselves
    mine = sorted(job.id for job in first if job.user == "alice")
    assert mine == alice_jobs[: len(mine)]


def test_the_job_stream_hands_out_by_fair_share_too(site):
    with site.user("alice") as alice, site.user("bob") as bob:
        submit(alice, 20, name="alice")
        submit(bob, 5, name="bob")
    stream = site.cluster.client.scheduler_stub.StreamJobs(rainbow_pb2.ReceiveJobsRequest(
        cluster="keebler", secret=site.cluster.config.cluster_secret, maxJobs=10, agent="streamer"))
    try:
        reply = next(iter(stream))
    finally:
        stream.cancel()
    owners = [reply.owners[jobid].user for jobid in reply.jobs]
    assert len(owners) == 10 and owners.count("bob") == 5


def test_priority_orders_a_users_own_jobs(site):
    with site.user("alice") as alice:
        plain = submit(alice, 3, name="plain")
        urgent = submit(alice, 1, priority=10, name="urgent")
        assert (alice.get_job(urgent[0]).priority, alice.get_job(plain[0]).priority) == (10, 0)
    assert [job.id for job in site.receive(1)] == urgent
    assert [job.id for job in site.receive(1)] == plain[:1]


def test_shares_weigh_the_hand_out(site):
    site.operator.set_shares(3, group="physics", secret=REGISTRATION_SECRET)
    with site.user("alice") as alice, site.user("bob") as bob:
        submit(alice, 20, name="alice")
        submit(bob, 20, name="bob")
    owners = [job.user for job in site.receive(8)]
    assert (owners.count("alice"), owners.count("bob")) == (6, 2)


def _run(site: Site, clock: ManualClock, user: str, start: float, hours: float, nodes: int = 1) -> None:
    """One job of ``user`` that ran ``hours`` on ``nodes`` from ``start`` (seconds from now), reported over gRPC."""
    stub = site.cluster.client.scheduler_stub
    secret = site.cluster.config.cluster_secret
    clock.now = time.time() + start
    with site.user(user) as client:
        (jobid,) = submit(client, 1, nodes=nodes, name=f"{user}-history")
    (job,) = site.receive(1)
    assert job.id == jobid
    site.cluster.client.accept_jobs([jobid])
    stub.ReportJobState(rainbow_pb2.ReportJobStateRequest(cluster="keebler", secret=secret, jobid=jobid,
                                                          state="running"))
    clock.advance(hours * 3600)
    stub.ReportJobState(rainbow_pb2.ReportJobStateRequest(cluster="keebler", secret=secret, jobid=jobid,
                                                          state="completed"))


def _history_site(server_factory, tmp_path, half_life: float) -> tuple[Site, ManualClock]:
    """alice ran 200 node-hours 60 days ago; bob 20 node-hours yesterday."""
    site = make_site(server_factory, tmp_path / f"h{half_life}", fairshare_half_life=half_life)
    clock = ManualClock()
    site.server.scheduler.clock = clock
    _run(site, clock, "alice", -60 * DAY, 200)
    _run(site, clock, "bob", -DAY, 20)
    clock.now = time.time()
    return site, clock


@pytest.mark.parametrize("half_life", [7 * DAY, 0.0], ids=["decayed", "never-decays"])
def test_old_heavy_usage_matters_less_than_recent(server_factory, tmp_path, half_life):
    site, _ = _history_site(server_factory, tmp_path, half_life)
    with site.user("alice") as alice, site.user("bob") as bob:
        submit(bob, 3, name="bob")
        submit(alice, 3, name="alice")
    standings = {s.user: s for s in site.operator.usage(secret=REGISTRATION_SECRET).standings}
    first = site.receive(1)[0].user
    if half_life:
        # 200 node-hours 60 days ago weigh 200 * 2^(-60/7) < 1; bob's 20 from yesterday about 18
        assert standings["alice"].usage / 3600 < 1 < standings["bob"].usage / 3600 < 20
        assert standings["alice"].factor > standings["bob"].factor
        assert first == "alice"
    else:
        assert standings["alice"].usage / 3600 == pytest.approx(200)
        assert standings["alice"].factor < standings["bob"].factor
        assert first == "bob"
    site.operator.close()


def test_max_waiting_refuses_a_submit_naming_the_quota(site):
    quotas = site.operator.set_quota(user="alice", max_waiting=3, secret=REGISTRATION_SECRET)
    assert [(q.kind, q.name, q.max_waiting, q.max_running) for q in quotas] == [("user", "alice", 3, None)]
    with site.user("alice") as alice, site.user("bob") as bob:
        submit(alice, 2)
        with pytest.raises(ResourceExhausted, match="user alice allows max-waiting 3 jobs; 2 are waiting and this "
                           "submit adds 2"):
            alice.submit_array(simple(["app", "{cc}"]), 2)
        assert len(alice.list_jobs()) == 2  # the batch counted whole: none of it was stored
        submit(alice, 1)
        with pytest.raises(ResourceExhausted, match="max-waiting 3"):
            submit(alice, 1)
        submit(bob, 5)  # bob has no quota
        # a job taken by the cluster no longer waits: room for one more
        (taken,) = [job for job in site.receive(10) if job.user == "alice"][:1]
        site.cluster.client.accept_jobs([taken.id])
        submit(alice, 1)
        with pytest.raises(ResourceExhausted):
            submit(alice, 1)


def test_a_group_quota_on_one_cluster(site, tmp_path):
    site.operator.set_quota(group="physics", cluster="keebler", max_waiting=1, secret=REGISTRATION_SECRET)
    with site.user("alice") as alice:
        submit(alice, 1)
        with pytest.raises(ResourceExhausted, match="group physics on cluster keebler allows max-waiting 1"):
            submit(alice, 1)
    site.operator.set_quota(group="physics", cluster="keebler", remove=True, secret=REGISTRATION_SECRET)
    assert site.operator.list_quotas(secret=REGISTRATION_SECRET) == []
    with site.user("alice") as alice:
        submit(alice, 1)


def test_a_chunk_refused_by_a_quota_says_what_earlier_chunks_stored(server_factory, tmp_path):
    site = make_site(server_factory, tmp_path, limits=Limits(max_batch_jobs=2))
    site.operator.set_quota(user="alice", max_waiting=3, secret=REGISTRATION_SECRET)
    with site.user("alice") as alice:
        with pytest.raises(ResourceExhausted) as refused:
            alice.submit_jobs([simple(["echo", str(n)]) for n in range(5)])
        named = re.search(r"this submit adds 2 \(2 of 5 jobs stored in batch ([0-9a-f]{16})\)$", str(refused.value))
        assert named is not None
        batch = named.group(1)
        assert len(alice.list_jobs()) == 2
        assert type(refused.value) is ResourceExhausted  # the class the server answered with
        assert alice.batch_summary(batch).total == 2
    site.operator.close()
    site.cluster.client.close()


PAIR = {"name": "pair", "steps": {"first": {"command": "true"}, "then": {"command": "true", "needs": "first"}}}


def test_max_waiting_counts_jobs_waiting_for_their_dependencies(site):
    site.operator.set_quota(user="alice", max_waiting=2, secret=REGISTRATION_SECRET)
    with site.user("alice") as alice:
        workflow = alice.submit_workflow(PAIR)
        assert [step.job.state for step in workflow.steps] == ["assigned", "depend"]
        with pytest.raises(ResourceExhausted, match="2 are waiting and this submit adds 1"):
            submit(alice, 1)
        with pytest.raises(ResourceExhausted, match="2 are waiting and this submit adds 2"):
            alice.submit_workflow(PAIR | {"name": "again"})
        (dependent,) = [step.job.id for step in workflow.steps if step.name == "then"]
        with pytest.raises(ResourceExhausted, match="this submit adds 1"):
            alice.submit_jobspec(simple(["true"]), dependencies=[f"afterany:{dependent}"])
        alice.cancel_workflow(workflow.workflow_id)
        submit(alice, 2)


def test_a_quota_on_one_cluster_leaves_jobs_waiting_for_dependencies_out(site):
    site.operator.set_quota(user="alice", cluster="keebler", max_waiting=1, secret=REGISTRATION_SECRET)
    with site.user("alice") as alice:
        alice.submit_workflow(PAIR)  # the step waiting for "first" is listed on keebler but not placed there
        with pytest.raises(ResourceExhausted, match="1 are waiting and this submit adds 1"):
            submit(alice, 1)


def test_max_running_holds_jobs_back_until_running_jobs_end(site):
    site.operator.set_quota(user="alice", max_running=2, secret=REGISTRATION_SECRET)
    stub, secret = site.cluster.client.scheduler_stub, site.cluster.config.cluster_secret
    with site.user("alice") as alice:
        jobs = submit(alice, 4)
        first = site.receive(10)
        assert sorted(job.id for job in first) == jobs[:2]
        status = alice.get_job(jobs[2])
        assert status.state == "assigned"
        assert status.message == "waiting: quota: user alice has 2 of max-running 2 jobs running"
        assert site.receive(10) == []
        site.cluster.client.accept_jobs(jobs[:2])
        stub.ReportJobState(rainbow_pb2.ReportJobStateRequest(cluster="keebler", secret=secret, jobid=jobs[0],
                                                              state="completed"))
        assert [job.id for job in site.receive(10)] == [jobs[2]]
        assert alice.get_job(jobs[3]).message.startswith("waiting: quota: user alice")


def test_max_nodes_of_a_group(site):
    site.operator.set_quota(group="physics", max_nodes=3, secret=REGISTRATION_SECRET)
    with site.user("alice") as alice:
        big = submit(alice, 2, nodes=2)
        assert alice.get_job(big[0]).nodes == 2
        assert [job.id for job in site.receive(10)] == big[:1]
        assert alice.get_job(big[1]).message == (
            "waiting: quota: group physics has 2 of max-nodes 3 nodes in use (this job asks for 2)")
        small = submit(alice, 1, nodes=1)
        assert [job.id for job in site.receive(10)] == small


def test_accounts_file_loads_banks_users_and_shares_in_one_transaction(site, tmp_path):
    document = """
banks:
  - {name: science, shares: 3}
  - {name: physics, parent: science, shares: 2}
  - {name: admin, shares: 1}
users:
  - {name: alice, banks: [physics], shares: 5}
  - {name: dora, banks: [physics]}
  - {name: root, banks: [admin], admin: true}
"""
    created = site.operator.load_accounts(document, secret=REGISTRATION_SECRET)
    assert sorted(user.name for user in created) == ["dora", "root"]
    with RainbowClient(site.server.address, user_token=next(u.token for u in created if u.name == "dora")) as dora:
        assert dora.whoami().groups == ("physics",)
    usage = site.operator.usage(secret=REGISTRATION_SECRET)
    shares = {(s.user, s.bank): s for s in usage.standings}
    assert shares[("alice", "physics")].shares == 5
    # science 3 of (science 3, admin 1, chemistry 1) -> physics 2 of 2 -> alice 5 of 6
    assert shares[("alice", "physics")].norm_shares == pytest.approx(3 / 5 * 5 / 6)
    bad = "banks: [{name: ok}, {name: loop, parent: loop2}, {name: loop2, parent: loop}]"
    with pytest.raises(InvalidArgument, match="parents form a loop"):
        site.operator.load_accounts(bad, secret=REGISTRATION_SECRET)
    with pytest.raises(InvalidArgument, match=r"users\[0\]\.shares"):
        site.operator.load_accounts("users: [{name: erin, shares: -1}]", secret=REGISTRATION_SECRET)
    names = {s.bank for s in site.operator.usage(secret=REGISTRATION_SECRET).standings}
    assert "ok" not in names and "erin" not in {u.name for u in site.operator.list_users(secret=REGISTRATION_SECRET)}


def test_bad_input_gets_its_code_and_the_server_keeps_serving(site):
    stub = site.operator.scheduler_stub

    def code(method, request) -> str:
        try:
            method(request, timeout=30)
        except grpc.RpcError as exc:
            return f"{exc.code().name}: {exc.details()}"
        return "OK"

    assert code(stub.SetShares, rainbow_pb2.SetSharesRequest(kind="user", name="alice", shares=-1,
                                                             secret=REGISTRATION_SECRET)).startswith(
        "INVALID_ARGUMENT: shares")
    assert code(stub.SetShares, rainbow_pb2.SetSharesRequest(kind="team", name="x", shares=1,
                                                             secret=REGISTRATION_SECRET)).startswith(
        "INVALID_ARGUMENT: kind")
    assert code(stub.SetShares, rainbow_pb2.SetSharesRequest(kind="user", name="nobody", shares=1,
                                                             secret=REGISTRATION_SECRET)).startswith("NOT_FOUND")
    assert code(stub.SetShares, rainbow_pb2.SetSharesRequest(kind="group", name="physics", shares=1,
                                                             parent="nowhere", secret=REGISTRATION_SECRET)
                ).startswith("INVALID_ARGUMENT: bank physics: parent 'nowhere'")
    assert code(stub.SetQuota, rainbow_pb2.SetQuotaRequest(quota=rainbow_pb2.Quota(kind="user", name="alice"),
                                                           secret=REGISTRATION_SECRET)).startswith(
        "INVALID_ARGUMENT: a quota needs")
    assert code(stub.SetQuota, rainbow_pb2.SetQuotaRequest(
        quota=rainbow_pb2.Quota(kind="user", name="alice", max_running=-2), secret=REGISTRATION_SECRET)
    ).startswith("INVALID_ARGUMENT: max_running")
    assert code(stub.GetUsage, rainbow_pb2.GetUsageRequest(by="planet", secret=REGISTRATION_SECRET)).startswith(
        "INVALID_ARGUMENT: by")
    assert code(stub.LoadAccounts, rainbow_pb2.LoadAccountsRequest(document="banks: [a, &x b, *x]",
                                                                   secret=REGISTRATION_SECRET)).startswith(
        "INVALID_ARGUMENT: document")
    with site.user("alice") as alice:
        with pytest.raises(InvalidArgument, match="priority"):
            submit(alice, 1, priority=10**7)
        with pytest.raises(NotFound):
            site.operator.set_quota(user="nobody", remove=True, secret=REGISTRATION_SECRET)
        assert len(submit(alice, 1)) == 1


def test_usage_adds_up_the_node_hours_of_real_completed_jobs(server_factory, tmp_path, backend):
    site = make_site(server_factory, tmp_path)
    with site.user("alice") as alice, site.user("bob") as bob:
        alice_jobs = [alice.submit_jobspec(simple(["sleep", "0.3"], nodes=2, tasks=2), name="two").jobid,
                      alice.submit_jobspec(simple(["true"]), name="one").jobid]
        bob_jobs = [bob.submit_jobspec(simple(["sh", "-c", "exit 2"]), name="fails").jobid]
        agent = site.cluster.agent(tmp_path / "state")
        everything = alice_jobs + bob_jobs
        run_until(agent, lambda: all(site.cluster.info(j).state in FINAL for j in everything))
        infos = {j: site.cluster.info(j) for j in everything}

    def node_hours(jobid: int, nodes: int) -> float:
        times = {h.state: h.time for h in infos[jobid].history}
        return nodes * (times[infos[jobid].state] - times["running"]) / 3600

    expected = node_hours(alice_jobs[0], 2) + node_hours(alice_jobs[1], 1)
    usage = site.operator.usage("user", secret=REGISTRATION_SECRET)
    totals = {(t.key, t.state): t for t in usage.totals}
    assert totals[("alice", "completed")].jobs == 2
    assert totals[("alice", "completed")].node_hours == pytest.approx(expected, rel=1e-6)
    assert node_hours(alice_jobs[0], 2) > 0
    assert totals[("bob", "failed")].jobs == 1
    by_cluster = site.operator.usage("cluster", secret=REGISTRATION_SECRET)
    assert {(t.key, t.state, t.jobs) for t in by_cluster.totals} == {("keebler", "completed", 2),
                                                                      ("keebler", "failed", 1)}
    by_group = {(t.key, t.state): t.jobs for t in site.operator.usage("group", secret=REGISTRATION_SECRET).totals}
    assert by_group == {("physics", "completed"): 2, ("chemistry", "failed"): 1}
    assert site.operator.usage("user", time.time() + 60, secret=REGISTRATION_SECRET).totals == ()
    standing = {s.user: s for s in usage.standings}
    assert standing["alice"].usage / 3600 == pytest.approx(expected, rel=1e-3)
    assert standing["alice"].factor < standing["bob"].factor <= 1.0
    if backend == "sqlite":
        printed = subprocess.run(
            [sys.executable, "-m", "rainbow", "usage", "--host", site.server.address, "--secret",
             REGISTRATION_SECRET, "--by", "user", "--json"],
            capture_output=True, text=True, env=subprocess_env(), timeout=60, check=False, cwd=tmp_path,
        )
        assert printed.returncode == 0, printed.stderr
        data = json.loads(printed.stdout)
        assert {(t["key"], t["state"], t["jobs"]) for t in data["totals"]} == {("alice", "completed", 2),
                                                                                ("bob", "failed", 1)}
        assert {s["user"] for s in data["shares"]} == {"alice", "bob"}
    site.operator.close()
    site.cluster.client.close()


def test_the_commands(site, tmp_path, backend):
    if backend != "sqlite":
        pytest.skip("the commands are the same over either store")

    def rainbow(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "rainbow", *args, "--host", site.server.address],
                              capture_output=True, text=True, env=subprocess_env(), timeout=60, check=False,
                              cwd=tmp_path)

    (tmp_path / "accounts.yaml").write_text("banks: [{name: science, shares: 4}, {name: physics, parent: science}]\n"
                                            "users: [{name: erin, banks: [physics], shares: 3}]\n")
    loaded = rainbow("share", "load", "accounts.yaml", "--secret", REGISTRATION_SECRET, "--json")
    assert loaded.returncode == 0, loaded.stderr
    data = json.loads(loaded.stdout)
    assert [c["user"] for c in data["created"]] == ["erin"]
    erin = {s["user"]: s for s in data["shares"]}["erin"]
    assert (erin["bank"], erin["shares"]) == ("physics", 3)
    token = data["created"][0]["token"]

    quota = rainbow("quota", "set", "--user", "erin", "--max-waiting", "1", "--secret", REGISTRATION_SECRET)
    assert quota.returncode == 0, quota.stderr
    assert quota.stdout.splitlines()[1].split() == ["user", "erin", "(all)", "1", "-", "-"]
    first = rainbow("submit", "--user-token", token, "-c", "true", "--urgency", "3", "--json")
    assert first.returncode == 0, first.stderr
    with RainbowClient(site.server.address, user_token=token) as erin:
        assert erin.get_job(json.loads(first.stdout)["jobid"]).priority == 3
    refused = rainbow("submit", "--user-token", token, "-c", "true")
    assert refused.returncode == 1
    assert "quota: user erin allows max-waiting 1 jobs" in refused.stderr
    assert rainbow("quota", "set", "--user", "erin", "--secret", REGISTRATION_SECRET).returncode == 2
    denied = rainbow("usage", "--user-token", token)
    assert denied.returncode == 1 and "admin" in denied.stderr
    shares = rainbow("share", "set", "--group", "physics", "2", "--parent", "science", "--secret",
                     REGISTRATION_SECRET)
    assert shares.returncode == 0, shares.stderr
    assert "Set group physics to 2 shares in bank science." in shares.stdout
    usage = rainbow("usage", "--by", "cluster", "--since", "1d", "--secret", REGISTRATION_SECRET)
    assert usage.returncode == 0, usage.stderr
    assert usage.stdout.startswith("Jobs per cluster since ") and "keebler" in usage.stdout
    assert "FAIRSHARE" in usage.stdout
    bad = rainbow("usage", "--since", "yesterday-ish", "--secret", REGISTRATION_SECRET)
    assert bad.returncode == 1 and "since" in bad.stderr


def test_bad_fair_share_settings_refuse_to_start(tmp_path, backend):
    if backend != "sqlite":
        pytest.skip("settings are checked before any store is opened")
    from test_server_command import one_line_error, run_server

    db = tmp_path / "rainbow.db"
    line = one_line_error(run_server("--host", "127.0.0.1:0", "--db", str(db), "--fairshare-half-life", "soon"))
    assert line.startswith("rainbow: error: fairshare-half-life: 'soon' is not a duration")
    line = one_line_error(run_server("--host", "127.0.0.1:0", "--db", str(db), "--fairshare-refresh", "-1"))
    assert line == "rainbow: error: --fairshare-half-life and --fairshare-refresh: 0 or more"
    assert not db.exists()
