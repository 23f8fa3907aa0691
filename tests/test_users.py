"""Users over real gRPC: adding them, their tokens, jobs stamped with their owner, submits without cluster tokens."""

from __future__ import annotations

import itertools
import json
import logging
import os
import sqlite3
import stat
import subprocess
import sys

import grpc
import pytest
from test_agent_local import register

from rainbow.client import RainbowClient
from rainbow.config import RainbowConfig
from rainbow.errors import AlreadyExists, FailedPrecondition, NotFound, PermissionDenied, Unauthenticated
from rainbow.jobspec import simple
from rainbow.protos import rainbow_pb2
from rainbow.store.sqlite import SQLiteStore

from conftest import BOTH_STORES, REGISTRATION_SECRET, example, subprocess_env

pytestmark = BOTH_STORES


@pytest.fixture
def server(server_factory):
    return server_factory()


@pytest.fixture
def operator(server):
    with RainbowClient(server.address) as client:
        yield client


def user_client(server, token: str) -> RainbowClient:
    return RainbowClient(server.address, user_token=token, retries=0)


def test_an_added_user_submits_without_cluster_tokens_and_owns_the_job(server, operator, tmp_path):
    register(server.address, tmp_path, "keebler")
    register(server.address, tmp_path, "quebec")
    alice = operator.add_user("alice", ["physics", "hpc"], secret=REGISTRATION_SECRET)
    assert (alice.name, alice.groups, alice.admin) == ("alice", ("physics", "hpc"), False)
    assert len(alice.token) >= 40
    with user_client(server, alice.token) as client:
        assert client.whoami().name == "alice"
        result = client.submit_jobspec(simple(["hostname"]), name="hello")
        assert result.cluster in ("keebler", "quebec") and result.jobid > 0
        job = client.get_job(result.jobid)
        assert (job.user, job.group, job.name) == ("alice", "physics", "hello")
        batch = client.submit_array(simple(["app", "{cc}"]), 3)
        assert all(job.jobid for job in batch.jobs)
        listed = client.list_jobs()
        assert {(j.user, j.group) for j in listed} == {("alice", "physics")} and len(listed) == 4


def test_requests_without_a_user_token_act_as_the_legacy_user(server, tmp_path):
    cluster = register(server.address, tmp_path)
    jobid = cluster.submit(["true"])
    assert cluster.client.get_job(jobid).user == "legacy"
    info = cluster.info(jobid)
    assert (info.user, info.group) == ("legacy", "")


def test_the_legacy_user_can_be_renamed_or_refused(server_factory, tmp_path):
    named = server_factory(tmp_path / "named.db", legacy_user="shared-account")
    cluster = register(named.address, tmp_path)
    assert cluster.client.get_job(cluster.submit(["true"])).user == "shared-account"

    strict = server_factory(tmp_path / "strict.db", legacy_user=None)
    config = RainbowConfig.new("keebler", host=strict.address, path=tmp_path / "strict.yaml")
    with RainbowClient(strict.address, config_file=config) as client:
        client.register("keebler", REGISTRATION_SECRET, example("cluster-nodes.json"), save=True)
        with pytest.raises(Unauthenticated, match="user token is required"):
            client.submit_jobspec(simple(["true"]))
        with pytest.raises(Unauthenticated, match="user token is required"):
            client.list_jobs()
        bob = client.add_user("bob", secret=REGISTRATION_SECRET)
    with user_client(strict, bob.token) as client:
        assert client.get_job(client.submit_jobspec(simple(["true"])).jobid).user == "bob"


def test_a_user_submitting_before_any_cluster_registered_is_told_so(server, operator):
    token = operator.add_user("alice", secret=REGISTRATION_SECRET).token
    with user_client(server, token) as client, pytest.raises(FailedPrecondition, match="no cluster is registered"):
        client.submit_jobspec(simple(["true"]))


def test_user_management_needs_the_registration_secret_or_an_admin(server, operator):
    with pytest.raises(Unauthenticated, match="registration secret"):
        operator.add_user("alice", secret="wrong")
    root = operator.add_user("root", admin=True, secret=REGISTRATION_SECRET)
    plain = operator.add_user("plain", secret=REGISTRATION_SECRET)
    with user_client(server, root.token) as admin:
        carol = admin.add_user("carol", ["chem"])
        assert [u.name for u in admin.list_users()] == ["carol", "plain", "root"]
    with user_client(server, plain.token) as client, pytest.raises(PermissionDenied, match="not an admin"):
        client.add_user("mallory")
    with pytest.raises(AlreadyExists):
        operator.add_user("carol", secret=REGISTRATION_SECRET)
    with user_client(server, "not-a-token") as client, pytest.raises(Unauthenticated, match="not valid"):
        client.list_users()
    assert carol.groups == ("chem",)


def test_a_new_token_replaces_the_old_and_a_removed_user_is_refused(server, operator, tmp_path):
    register(server.address, tmp_path)
    first = operator.add_user("alice", secret=REGISTRATION_SECRET)
    second = operator.new_user_token("alice", secret=REGISTRATION_SECRET)
    assert second.token != first.token
    with user_client(server, first.token) as client, pytest.raises(Unauthenticated):
        client.submit_jobspec(simple(["true"]))
    with user_client(server, second.token) as client:
        jobid = client.submit_jobspec(simple(["true"])).jobid
    operator.remove_user("alice", secret=REGISTRATION_SECRET)
    with user_client(server, second.token) as client, pytest.raises(Unauthenticated):
        client.get_job(jobid)
    with pytest.raises(NotFound):
        operator.remove_user("alice", secret=REGISTRATION_SECRET)
    with pytest.raises(NotFound):
        operator.new_user_token("nobody", secret=REGISTRATION_SECRET)


def test_a_malformed_authorization_header_is_unauthenticated(server, rainbow):
    with pytest.raises(grpc.RpcError) as caught:
        rainbow.scheduler.ListJobs(rainbow_pb2.ListJobsRequest(), metadata=[("authorization", "Basic abc")])
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "Bearer" in caught.value.details()


def test_users_survive_a_restart(server_factory, tmp_path):
    first = server_factory(tmp_path / "users.db")
    with RainbowClient(first.address) as client:
        token = client.add_user("alice", ["physics"], secret=REGISTRATION_SECRET).token
    first.stop()
    second = server_factory(tmp_path / "users.db")
    with user_client(second, token) as client:
        me = client.whoami()
    assert (me.name, me.groups) == ("alice", ("physics",))


def test_the_cli_adds_a_user_and_saves_the_token(server, tmp_path):
    path = tmp_path / "alice.yaml"
    run = subprocess.run(
        [sys.executable, "-m", "rainbow", "user", "add", "alice", "--group", "physics", "--json", "--save",
         "--config-path", str(path), "--host", server.address, "--secret", REGISTRATION_SECRET],
        capture_output=True, text=True, env=subprocess_env(), timeout=60, check=False,
    )
    assert run.returncode == 0, run.stderr
    printed = json.loads(run.stdout)
    assert printed["user"] == "alice"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    saved = RainbowConfig.load(path)
    assert (saved.user_name, saved.user_token, saved.host) == ("alice", printed["token"], server.address)
    register(server.address, tmp_path)
    submitted = subprocess.run(
        [sys.executable, "-m", "rainbow", "submit", "--json", "--command", "true", "--config-path", str(path)],
        capture_output=True, text=True, env=subprocess_env(), timeout=60, check=False,
    )
    assert submitted.returncode == 0, submitted.stderr
    jobid = json.loads(submitted.stdout)["jobid"]
    listed = subprocess.run(
        [sys.executable, "-m", "rainbow", "jobs", "--host", server.address, "--json"],
        capture_output=True, text=True, env=subprocess_env({"RAINBOW_USER_TOKEN": printed["token"]}), timeout=60,
        check=False, cwd=tmp_path,
    )
    assert listed.returncode == 0, listed.stderr
    assert [(job["id"], job["user"]) for job in json.loads(listed.stdout)] == [(jobid, "alice")]


@pytest.fixture
def people(server, operator, tmp_path):
    """keebler registered; alice and bob (physics), carol (chem), root (admin): name -> user token."""
    register(server.address, tmp_path)
    return {name: operator.add_user(name, groups, admin=name == "root", secret=REGISTRATION_SECRET).token
            for name, groups in (("alice", ["physics"]), ("bob", ["physics"]), ("carol", ["chem"]),
                                 ("root", []))}


def test_a_user_sees_watches_and_cancels_only_their_own_jobs(server, people):
    alice, bob, root = (user_client(server, people[name]) for name in ("alice", "bob", "root"))
    with alice, bob, root:
        mine = alice.submit_jobspec(simple(["sleep", "100"]), name="mine").jobid
        theirs = bob.submit_jobspec(simple(["sleep", "100"]), name="theirs").jobid
        batch = alice.submit_array(simple(["app", "{cc}"]), 2, name="app").batch_id
        assert {job.name for job in alice.list_jobs()} == {"mine", "app"}
        assert [job.name for job in bob.list_jobs()] == ["theirs"]
        assert {job.user for job in root.list_jobs()} == {"alice", "bob"}
        with pytest.raises(PermissionDenied, match="belongs to another user"):
            bob.get_job(mine)
        with pytest.raises(PermissionDenied, match="belongs to another user"):
            bob.cancel_job(mine)
        with pytest.raises(NotFound):
            bob.batch_summary(batch)
        with pytest.raises(NotFound):
            bob.cancel_batch(batch)
        assert alice.batch_summary(batch).total == 2
        assert root.get_job(theirs).user == "bob"
        assert root.cancel_job(theirs).state == "cancelled"
        assert alice.cancel_job(mine).state == "cancelled"
        seen = {event.jobid for event in itertools.islice(alice.watch_jobs(since=-1), 4)}
        assert theirs not in seen and mine in seen
        events = bob.watch_jobs(since=-1)
        assert {(e.jobid, e.user) for e in itertools.islice(events, 2)} == {(theirs, "bob")}


def test_legacy_tokens_keep_seeing_every_job_of_their_clusters(server, people, tmp_path):
    with user_client(server, people["alice"]) as alice:
        jobid = alice.submit_jobspec(simple(["true"])).jobid
    config = RainbowConfig.load(tmp_path / "keebler-config.yaml")
    with RainbowClient(server.address, config_file=config) as legacy:
        assert legacy.get_job(jobid).user == "alice"
        assert [job.id for job in legacy.list_jobs()] == [jobid]


def test_cluster_rules_decide_where_a_users_jobs_may_go(server, people, operator, tmp_path):
    quebec = register(server.address, tmp_path, "quebec")
    # quebec's own secret sets its rules: only the physics group may use it, and bob not even then
    access = quebec.client.set_cluster_access("quebec", group="physics")
    assert [(r.kind, r.name, r.allow) for r in access.rules] == [("group", "physics", True)]
    quebec.client.set_cluster_access("quebec", user="bob", allow=False)
    with user_client(server, people["alice"]) as alice:
        assert {alice.submit_jobspec(simple(["true"])).cluster for _ in range(12)} == {"keebler", "quebec"}
    for name in ("bob", "carol"):
        with user_client(server, people[name]) as client:
            assert {client.submit_jobspec(simple(["true"])).cluster for _ in range(12)} == {"keebler"}
            with pytest.raises(grpc.RpcError) as caught:
                client.scheduler_stub.SubmitJob(rainbow_pb2.SubmitJobRequest(
                    clusters=[rainbow_pb2.SubmitJobRequest.Cluster(name="quebec")],
                    jobspec=json.dumps(simple(["true"]))))
            assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert caught.value.details() == f"user '{name}' may not use cluster 'quebec'"
    with user_client(server, people["carol"]) as carol:
        placed = server.scheduler.store.job_placement(carol.submit_jobspec(simple(["true"])).jobid)
        assert json.loads(placed)["unmatched"] == {"quebec": "user carol may not use this cluster (its access rules)"}
        satisfied = carol.satisfy(simple(["true"]))
        assert satisfied.clusters == ("keebler",)
        assert "may not use this cluster" in satisfied.reasons["quebec"]
        too_big = simple(["true"], nodes=50, tasks=50)
        with pytest.raises(FailedPrecondition, match=r"no cluster you may use.*quebec: user carol may not use"):
            carol.submit_jobspec(too_big)
    # keebler closes to everyone but alice: carol may use no cluster at all
    operator.set_cluster_access("keebler", user="alice", secret=REGISTRATION_SECRET)
    with user_client(server, people["carol"]) as carol, pytest.raises(PermissionDenied, match="none of the"):
        carol.submit_jobspec(simple(["true"]))
    # forgetting the rules opens the clusters again
    quebec.client.set_cluster_access("quebec", group="physics", remove=True)
    quebec.client.set_cluster_access("quebec", user="bob", allow=False, remove=True)
    assert quebec.client.cluster_access("quebec").rules == ()
    with user_client(server, people["carol"]) as carol:
        assert carol.submit_jobspec(simple(["true"])).cluster == "quebec"


def test_a_cluster_secret_sets_only_its_own_clusters_rules(server, people, tmp_path):
    quebec = register(server.address, tmp_path, "quebec")
    with pytest.raises(Unauthenticated, match="neither cluster 'keebler''s secret nor"):
        quebec.client.set_cluster_access("keebler", user="alice", secret=quebec.config.cluster_secret)
    with user_client(server, people["alice"]) as alice, pytest.raises(PermissionDenied, match="not an admin"):
        alice.set_cluster_access("quebec", user="alice")
    with user_client(server, people["root"]) as root:
        assert root.set_cluster_access("quebec", user="alice").rules[0].name == "alice"


def test_user_tokens_are_never_logged_or_stored_in_clear(server_factory, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    server = server_factory(tmp_path / "clear.db")
    register(server.address, tmp_path)
    with RainbowClient(server.address) as operator:
        first = operator.add_user("alice", ["physics"], secret=REGISTRATION_SECRET).token
        second = operator.new_user_token("alice", secret=REGISTRATION_SECRET).token
    with user_client(server, second) as client:
        client.get_job(client.submit_jobspec(simple(["true"])).jobid)
    for wrong in (first, second + "x"):
        with user_client(server, wrong) as client, pytest.raises(Unauthenticated) as caught:
            client.list_jobs()
        assert wrong not in str(caught.value)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "added user alice" in logged
    assert first not in logged and second not in logged
    if isinstance(server.scheduler.store, SQLiteStore):  # the same SQL writes PostgreSQL's rows
        with sqlite3.connect(server.scheduler.store.path) as db:
            dump = "\n".join(db.iterdump())
        assert "alice" in dump and first not in dump and second not in dump


def test_the_cli_manages_users_and_cluster_rules(server, tmp_path):
    cluster = register(server.address, tmp_path)

    def rainbow(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "rainbow", *args, "--host", server.address],
                              capture_output=True, text=True, env=subprocess_env(), timeout=60, check=False)

    added = rainbow("user", "add", "root", "--admin", "--json", "--secret", REGISTRATION_SECRET)
    assert added.returncode == 0, added.stderr
    root = json.loads(added.stdout)["token"]
    assert rainbow("user", "add", "alice", "--user-token", root).returncode == 0
    listed = json.loads(rainbow("user", "list", "--json", "--user-token", root).stdout)
    assert [(u["name"], u["admin"]) for u in listed] == [("alice", False), ("root", True)]
    renewed = rainbow("user", "token", "alice", "--json", "--secret", REGISTRATION_SECRET)
    assert json.loads(renewed.stdout)["user"] == "alice"
    # the cluster's own secret, from its config file, sets its rules
    allowed = rainbow("cluster", "allow", "keebler", "--group", "physics", "--config-path", str(cluster.config.path))
    assert allowed.returncode == 0, allowed.stderr
    assert "group  physics  allow" in allowed.stdout
    rules = json.loads(rainbow("cluster", "rules", "keebler", "--json", "--user-token", root).stdout)
    assert rules == {"cluster": "keebler", "rules": [{"kind": "group", "name": "physics", "allow": True}]}
    refused = rainbow("cluster", "deny", "keebler", "--user", "alice", "--secret", "wrong")
    assert refused.returncode == 1
    assert refused.stderr.strip() == ("rainbow: error: wrong secret: neither cluster 'keebler''s secret nor the "
                                      "registration secret")
    removed = rainbow("user", "remove", "alice", "--user-token", root)
    assert removed.returncode == 0 and "no longer works" in removed.stdout


def test_workflow_steps_carry_priority_and_name_the_clusters_their_user_may_not_use(server, people, tmp_path):
    quebec = register(server.address, tmp_path, "quebec")
    quebec.client.set_cluster_access("quebec", user="bob", allow=False)
    store = server.scheduler.store
    with user_client(server, people["bob"]) as bob:
        workflow = bob.submit_workflow({"name": "pair", "steps": {
            "first": {"command": "true"}, "then": {"command": "true", "needs": {"first": "afterany"}}}}, priority=7)
        ids = {step.name: step.job.id for step in workflow.steps}
        assert [store.get_job(ids[step]).priority for step in ("first", "then")] == [7, 7]
        refused = {"quebec": "user bob may not use this cluster (its access rules)"}
        assert json.loads(store.job_placement(ids["first"]))["unmatched"] == refused
        bob.cancel_job(ids["first"])  # afterany: its end releases "then"
        released = bob.get_job(ids["then"])
        assert (released.state, released.cluster) == ("assigned", "keebler")
        assert json.loads(store.job_placement(ids["then"]))["unmatched"] == refused
    quebec.client.close()


def test_workflow_submit_takes_a_priority_on_the_command_line(server, people, tmp_path):
    workflow = tmp_path / "pair.yaml"
    workflow.write_text("name: pair\nsteps:\n  first:\n    command: 'true'\n")
    done = subprocess.run([sys.executable, "-m", "rainbow", "workflow", "submit", str(workflow), "--priority", "3",
                           "--json", "--host", server.address, "--user-token", people["alice"]],
                          capture_output=True, text=True, env=subprocess_env(), timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    (step,) = json.loads(done.stdout)["steps"]
    assert server.scheduler.store.get_job(step["job"]["id"]).priority == 3
