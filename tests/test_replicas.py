"""Several server replicas on one PostgreSQL database.

Clusters register through one replica and pull through the other; submitters
and agents are spread over both; one replica is killed mid-run. Every job is
delivered exactly once and none is lost. Every loop here is bounded in count
and time.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import grpc
import psycopg
import pytest

from rainbow.graph.synthetic import Vertex, tree_jgf
from rainbow.protos import memory_pb2, rainbow_pb2
from rainbow.store.postgres import PostgresStore

from conftest import REGISTRATION_SECRET, example, start_server_process, stubs_for

pytestmark = pytest.mark.postgres

Cluster = rainbow_pb2.SubmitJobRequest.Cluster
SUBMITTERS = 6
JOBS_PER_SUBMITTER = 24
LEASE_SECONDS = 3
RUN_SECONDS = 90


def register(stubs, name):
    reply = stubs.scheduler.Register(
        rainbow_pb2.RegisterRequest(name=name, secret=REGISTRATION_SECRET, nodes=example("cluster-nodes.json")),
        timeout=10,
    )
    assert reply.status == rainbow_pb2.RegisterResponse.REGISTER_SUCCESS
    return reply.token, reply.secret


def eventually(check: Callable[[], Any], what: str, seconds: float = 60.0) -> None:
    """Poll ``check`` until it returns a true value (a hang guard after ``seconds``, not a speed limit:
    how fast changes propagate is the benchmarks' business)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if check():
                return
        except grpc.RpcError as exc:
            if exc.code() not in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED):
                raise
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.02)


class Failover:
    """Call a replica; when it is gone (UNAVAILABLE), move on to the next one, as a load balancer would."""

    def __init__(self, stubs: list, first: int) -> None:
        self.stubs = stubs
        self.current = first % len(stubs)
        self.failovers = 0

    def call(self, fn: Callable[[Any], Any]) -> Any:
        deadline = time.monotonic() + 30
        while True:
            try:
                return fn(self.stubs[self.current])
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                    raise
                self.current = (self.current + 1) % len(self.stubs)
                self.failovers += 1
                time.sleep(0.05)


def start_replicas(url: str, tmp_path, *flags: str, count: int = 2) -> list[tuple[Any, str, list[str]]]:
    """Server processes started together (their migrations race for the advisory lock)."""
    flags = flags or ("--secret", REGISTRATION_SECRET, "--lease-seconds", str(LEASE_SECONDS),
                      "--cluster-timeout", "0", "--workers", "8", "--loglevel", "warning")
    started: list[Any] = [None] * count
    errors: list[BaseException] = []

    def start(index: int) -> None:
        try:
            started[index] = start_server_process(tmp_path / f"unused-{index}.db", "--store", url, *flags)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    if errors or None in started:
        for item in started:
            if item is not None:
                item[0].kill()
        raise RuntimeError(f"replicas did not start: {errors}")
    return started


def test_replicas_deliver_every_job_exactly_once_even_when_one_is_killed(postgres_database, tmp_path):
    url = postgres_database()
    replicas = start_replicas(url, tmp_path)
    stubs = [stubs_for(address) for _, address, _ in replicas]
    a, b = stubs
    try:
        # Clusters register on A; B learns of them and serves their agents.
        credentials = {}
        for name in ("c1", "c2"):
            credentials[name] = register(a, name)
            secret = credentials[name][1]
            eventually(lambda n=name, s=secret: b.scheduler.ReceiveJobs(
                rainbow_pb2.ReceiveJobsRequest(cluster=n, secret=s), timeout=5), f"B knows {name}")
        clusters = [Cluster(name=n, token=t) for n, (t, _) in credentials.items()]

        lock = threading.Lock()
        acknowledged: set[int] = set()
        delivered: list[int] = []
        refused: list[int] = []
        killed = threading.Event()
        stop = threading.Event()
        errors: list[BaseException] = []
        agent_failovers: list[int] = []

        def guarded(fn):
            def run(*args):
                try:
                    fn(*args)
                except BaseException as exc:
                    errors.append(exc)
                    stop.set()
            return run

        @guarded
        def submitter(index: int) -> None:
            replica = Failover(stubs, index)
            for n in range(JOBS_PER_SUBMITTER):
                if n == JOBS_PER_SUBMITTER // 2:
                    killed.wait(RUN_SECONDS)  # the second half goes out after the kill
                if stop.is_set():
                    return
                request = rainbow_pb2.SubmitJobRequest(
                    name=f"s{index}-{n}", clusters=clusters, jobspec=example("jobspec-constraint.yaml"))
                reply = replica.call(lambda s, r=request: s.scheduler.SubmitJob(r, timeout=10))
                with lock:
                    acknowledged.add(reply.jobid)

        @guarded
        def agent(cluster: str, first: int) -> None:
            secret = credentials[cluster][1]
            replica = Failover(stubs, first)
            deadline = time.monotonic() + RUN_SECONDS
            while not stop.is_set() and time.monotonic() < deadline:
                request = rainbow_pb2.ReceiveJobsRequest(
                    cluster=cluster, secret=secret, maxJobs=5, agent=f"{cluster}-agent-{first}")
                jobs = replica.call(lambda s, r=request: s.scheduler.ReceiveJobs(r, timeout=10)).jobs
                if not jobs:
                    time.sleep(0.02)
                    continue
                assert all(json.loads(text)["cluster"] == cluster for text in jobs.values())
                for job_id in jobs:
                    accept = rainbow_pb2.AcceptJobsRequest(cluster=cluster, secret=secret, jobids=[job_id])
                    status = replica.call(lambda s, r=accept: s.scheduler.AcceptJobs(r, timeout=10)).status
                    with lock:
                        if status == rainbow_pb2.AcceptJobsResponse.RESULT_TYPE_SUCCESS:
                            delivered.append(job_id)
                        else:
                            refused.append(job_id)
            agent_failovers.append(replica.failovers)

        submitters = [threading.Thread(target=submitter, args=(i,)) for i in range(SUBMITTERS)]
        agents = [threading.Thread(target=agent, args=(c, i)) for c in credentials for i in range(2)]
        for t in submitters + agents:
            t.start()

        # Kill A once part of the first half went through, while jobs are still coming.
        total = SUBMITTERS * JOBS_PER_SUBMITTER
        eventually(lambda: len(delivered) >= total // 4 or stop.is_set(), "first deliveries", RUN_SECONDS)
        replicas[0][0].kill()
        replicas[0][0].wait(30)
        with lock:
            delivered_before_kill = len(delivered)
        killed.set()

        for t in submitters:
            t.join(RUN_SECONDS)
        assert not errors, errors
        assert len(acknowledged) == total

        def everything_accepted() -> bool:
            with psycopg.connect(url) as conn:
                pending = conn.execute("SELECT COUNT(*) FROM jobs WHERE state <> 'accepted'").fetchone()[0]
            with lock:
                return pending == 0 and acknowledged <= set(delivered)

        # Jobs whose ReceiveJobs reply died with A come back when their lease runs out.
        eventually(everything_accepted, "every job accepted", LEASE_SECONDS + 30)
        stop.set()
        for t in agents:
            t.join(30)
        assert not errors, errors

        assert delivered_before_kill < total
        # the agents that were pulling through A moved over to B
        assert sum(1 for n in agent_failovers if n > 0) >= 2
        print(f"delivered {len(delivered)} jobs ({delivered_before_kill} before the kill), "
              f"{len(acknowledged)} acknowledged, agent failovers {agent_failovers}")
        assert len(delivered) == len(set(delivered)), "a job was delivered twice"
        assert refused == []
        assert acknowledged <= set(delivered), f"lost: {sorted(acknowledged - set(delivered))}"
        with psycopg.connect(url) as conn:
            in_store = {row[0] for row in conn.execute("SELECT id FROM jobs")}
            accepted_twice = conn.execute(
                "SELECT job_id FROM job_events WHERE state = 'accepted' GROUP BY job_id HAVING COUNT(*) > 1"
            ).fetchall()
        # Extra jobs can only be submissions whose reply died with A (then retried on B).
        assert in_store == set(delivered)
        assert len(in_store - acknowledged) <= SUBMITTERS
        assert accepted_twice == []
        # Both replicas took part in delivering to both clusters before the kill.
        assert b.graph.Satisfy(memory_pb2.SatisfyRequest(payload=example("jobspec-constraint.yaml")),
                               timeout=10).total_clusters == 2
    finally:
        for s in stubs:
            s.channel.close()
        for proc, _, _ in replicas:
            proc.kill()
            proc.wait(30)


def test_replicas_started_without_a_secret_agree_on_one(postgres_database, tmp_path):
    replicas = start_replicas(postgres_database(), tmp_path, "--loglevel", "warning", "--metrics-port", "0")
    stubs = [stubs_for(address) for _, address, _ in replicas]
    try:
        printed = [re.search(r"^\s+(\S{30,})$", "\n".join(lines), re.M) for _, _, lines in replicas]
        secrets = [found.group(1) for found in printed if found]
        assert len(secrets) == 1, "exactly one replica generates (and shows) the registration secret"
        for index, replica in enumerate(stubs):
            reply = replica.scheduler.Register(rainbow_pb2.RegisterRequest(
                name=f"c{index}", secret=secrets[0], nodes=example("cluster-nodes.json")), timeout=10)
            assert reply.status == rainbow_pb2.RegisterResponse.REGISTER_SUCCESS
        # each replica serves its own metrics; the store totals are shared
        for _, _, lines in replicas:
            url = re.search(r"metrics on (http://\S+)", "\n".join(lines)).group(1)
            with urllib.request.urlopen(url, timeout=10) as page:
                text = page.read().decode()
            assert 'rainbow_requests_total{code="OK",method="Register"} 1.0' in text
            assert 'rainbow_clusters{reachable="true"} 2.0' in text
    finally:
        for s in stubs:
            s.channel.close()
        for proc, _, _ in replicas:
            proc.kill()
            proc.wait(30)


def test_cluster_changes_through_one_replica_reach_the_other(postgres_database, server_factory):
    url = postgres_database()
    a_server = server_factory(db=url, select_algorithm="cheapest")
    b_server = server_factory(db=url, select_algorithm="cheapest")
    a, b = stubs_for(a_server.address), stubs_for(b_server.address)
    io_jobspec = example("jobspec-io.yaml")

    def b_matches(jobspec):
        return list(b.graph.Satisfy(memory_pb2.SatisfyRequest(payload=jobspec), timeout=5).clusters)

    try:
        red_token, red_secret = register(a, "red")
        green_token, green_secret = register(a, "green")
        clusters = [Cluster(name="red", token=red_token), Cluster(name="green", token=green_token)]
        eventually(lambda: b_matches(example("jobspec-constraint.yaml")) == ["green", "red"], "registrations")

        # State drives selection on B: green cheaper, then red cheaper.
        def set_cost(name, secret, cost):
            a.scheduler.UpdateState(rainbow_pb2.UpdateStateRequest(
                cluster=name, secret=secret,
                payload=json.dumps({"cost_per_node_hour": cost, "nodes_free": 4, "memory_per_node": 100})))

        def b_picks():
            return b.scheduler.SubmitJob(rainbow_pb2.SubmitJobRequest(
                name="sel", clusters=clusters, jobspec=example("jobspec-constraint.yaml"), satisfy_only=True),
                timeout=5).clusters[0]

        set_cost("red", red_secret, 9)
        set_cost("green", green_secret, 1)
        eventually(lambda: b_picks() == "green", "state reaches B's selection")
        set_cost("red", red_secret, 0.5)
        eventually(lambda: b_picks() == "red", "state update reaches B's selection")

        # Graph changes: a subsystem added, then removed, through A.
        assert b_matches(io_jobspec) == []
        a.scheduler.RegisterSubsystem(rainbow_pb2.RegisterRequest(
            name="red", secret=red_secret, subsystem="io", nodes=example("cluster-io-subsystem.json")))
        eventually(lambda: b_matches(io_jobspec) == ["red"], "subsystem reaches B")
        a.scheduler.DeleteSubsystem(rainbow_pb2.DeleteRequest(name="red", secret=red_secret, subsytem="io"))
        eventually(lambda: b_matches(io_jobspec) == [], "subsystem removal reaches B")

        # Deletion, then the name registered again with new credentials.
        a.scheduler.Delete(rainbow_pb2.DeleteRequest(name="green", secret=green_secret))

        def b_refuses_green() -> bool:
            try:
                b.scheduler.ReceiveJobs(rainbow_pb2.ReceiveJobsRequest(cluster="green", secret=green_secret))
            except grpc.RpcError as exc:
                return exc.code() == grpc.StatusCode.NOT_FOUND
            return False

        eventually(b_refuses_green, "deletion reaches B")
        # Registered again (version 1 again) with a graph too small for the jobspec: B must not keep the old one.
        one_node, _ = tree_jgf(Vertex("cluster", children=[Vertex("node", children=[Vertex("core")])]))
        reply = a.scheduler.Register(rainbow_pb2.RegisterRequest(
            name="green", secret=REGISTRATION_SECRET, nodes=json.dumps(one_node)), timeout=10)
        new_secret = reply.secret
        eventually(lambda: b.scheduler.ReceiveJobs(
            rainbow_pb2.ReceiveJobsRequest(cluster="green", secret=new_secret), timeout=5), "new credentials")
        assert b_matches(example("jobspec-constraint.yaml")) == ["red"]
        with pytest.raises(grpc.RpcError) as err:
            b.scheduler.ReceiveJobs(rainbow_pb2.ReceiveJobsRequest(cluster="green", secret=green_secret))
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert b_server.scheduler.cluster_state("red")["cost_per_node_hour"] == 0.5
        # Deleted and registered again at once (B likely hears both together): B rebuilds the graph.
        a.scheduler.Delete(rainbow_pb2.DeleteRequest(name="green", secret=new_secret))
        register(a, "green")
        eventually(lambda: b_matches(example("jobspec-constraint.yaml")) == ["green", "red"], "re-registration")
    finally:
        a.channel.close()
        b.channel.close()


def test_a_replica_reads_its_writes_through_another_before_any_notification(
    postgres_database, server_factory, monkeypatch
):
    """Behind a load balancer a request follows its predecessor to another replica at once: B, which
    never hears a change notification here, answers from the store, not from an older copy."""
    monkeypatch.setattr(PostgresStore, "watch_clusters", lambda self, callback: None)
    url = postgres_database()
    a_server = server_factory(db=url, select_algorithm="cheapest")
    b_server = server_factory(db=url, select_algorithm="cheapest")
    a, b = stubs_for(a_server.address), stubs_for(b_server.address)
    constraint, io_jobspec = example("jobspec-constraint.yaml"), example("jobspec-io.yaml")

    def b_matches(jobspec):
        return list(b.graph.Satisfy(memory_pb2.SatisfyRequest(payload=jobspec), timeout=5).clusters)

    def set_cost(stubs, name, secret, cost):
        stubs.scheduler.UpdateState(rainbow_pb2.UpdateStateRequest(
            cluster=name, secret=secret,
            payload=json.dumps({"cost_per_node_hour": cost, "nodes_free": 4, "memory_per_node": 100})), timeout=5)

    try:
        red_token, red_secret = register(a, "red")
        green_token, green_secret = register(a, "green")
        clusters = [Cluster(name="red", token=red_token), Cluster(name="green", token=green_token)]

        # Registered on A, submitted to through B.
        job = b.scheduler.SubmitJob(rainbow_pb2.SubmitJobRequest(
            name="first", clusters=clusters[:1], jobspec=constraint), timeout=5)
        assert job.status == rainbow_pb2.SubmitJobResponse.SUBMIT_SUCCESS
        assert b_matches(constraint) == ["green", "red"]

        # State written through B (which now holds both clusters), then changed through A: B selects on A's.
        set_cost(b, "red", red_secret, 9)
        set_cost(b, "green", green_secret, 1)
        set_cost(a, "red", red_secret, 0.5)
        reply = b.scheduler.SubmitJob(rainbow_pb2.SubmitJobRequest(
            name="sel", clusters=clusters, jobspec=constraint, satisfy_only=True), timeout=5)
        assert reply.clusters[0] == "red"
        assert b_server.scheduler.cluster_state("red")["cost_per_node_hour"] == 0.5

        # A subsystem registered through A is matched by B, and B registers the next one on top of it.
        a.scheduler.RegisterSubsystem(rainbow_pb2.RegisterRequest(
            name="red", secret=red_secret, subsystem="io", nodes=example("cluster-io-subsystem.json")), timeout=5)
        assert b_matches(io_jobspec) == ["red"]
        b.scheduler.DeleteSubsystem(rainbow_pb2.DeleteRequest(name="red", secret=red_secret, subsytem="io"))
        assert a_server.scheduler.satisfy(io_jobspec).clusters == []

        # Deleted through A: B refuses the old credentials; registered again through B: A takes the new ones.
        a.scheduler.Delete(rainbow_pb2.DeleteRequest(name="green", secret=green_secret), timeout=5)
        with pytest.raises(grpc.RpcError) as err:
            b.scheduler.ReceiveJobs(rainbow_pb2.ReceiveJobsRequest(cluster="green", secret=green_secret), timeout=5)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        new_token, new_secret = register(b, "green")
        # A replica restarted with a new registration secret: the other one takes it at once.
        c_server = server_factory(db=url, secret="a-new-registration-secret")
        c_server.stop()
        reply = b.scheduler.Register(rainbow_pb2.RegisterRequest(
            name="blue", secret="a-new-registration-secret", nodes=example("cluster-nodes.json")), timeout=10)
        assert reply.status == rainbow_pb2.RegisterResponse.REGISTER_SUCCESS
        a.scheduler.ReceiveJobs(rainbow_pb2.ReceiveJobsRequest(cluster="green", secret=new_secret), timeout=5)
        listed = a.scheduler.ListJobs(rainbow_pb2.ListJobsRequest(
            clusters=[Cluster(name="green", token=new_token)]), timeout=5)
        assert list(listed.jobs) == []

        # Credentials renewed through A: B refuses the old secret and token at once and takes the new ones.
        renewed = a.scheduler.RenewClusterCredentials(rainbow_pb2.RenewCredentialsRequest(
            cluster="red", secret=red_secret), timeout=5)
        assert renewed.status == rainbow_pb2.RegisterResponse.REGISTER_SUCCESS
        with pytest.raises(grpc.RpcError) as err:
            b.scheduler.ReceiveJobs(rainbow_pb2.ReceiveJobsRequest(cluster="red", secret=red_secret), timeout=5)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.RpcError) as err:
            b.scheduler.ListJobs(rainbow_pb2.ListJobsRequest(clusters=[Cluster(name="red", token=red_token)]),
                                 timeout=5)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        listed = b.scheduler.ListJobs(rainbow_pb2.ListJobsRequest(
            clusters=[Cluster(name="red", token=renewed.token)]), timeout=5)
        assert [job.name for job in listed.jobs] == ["first"]  # the cluster keeps its jobs
        b.scheduler.ReceiveJobs(rainbow_pb2.ReceiveJobsRequest(cluster="red", secret=renewed.secret), timeout=5)
    finally:
        a.channel.close()
        b.channel.close()
