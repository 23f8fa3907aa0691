"""The pull agent with the local executor, for real: a real server, jobs that run as processes and exit."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from rainbow.agent import Agent, LocalExecutor
from rainbow.agent import local as local_module
from rainbow.agent.convert import to_flux_jobspec
from rainbow.agent.executor import AGENT_KEYS, Submission
from rainbow.agent.hooks import Hooks, Reject
from rainbow.agent.link import ClusterLink
from rainbow.client import RainbowClient
from rainbow.config import RainbowConfig
from rainbow.jobspec import simple
from rainbow.protos import rainbow_pb2

from conftest import REGISTRATION_SECRET, example, live_processes, start_server_process

FINAL = ("completed", "failed", "cancelled")


@dataclass
class Cluster:
    name: str
    address: str
    config: RainbowConfig
    client: RainbowClient

    def submit(self, command: list[str], nodes: int = 1, tasks: int = 1, name: str | None = None) -> int:
        jobspec = simple(command, nodes=nodes, tasks=max(tasks, nodes), name=name)
        return self.client.submit_jobspec(jobspec, name=name or command[0]).jobid

    def info(self, jobid: int) -> rainbow_pb2.JobInfo:
        return self.client.scheduler_stub.GetJob(
            rainbow_pb2.GetJobRequest(jobid=jobid, token=self.config.token_for(self.name)))

    def cancel(self, jobid: int) -> None:
        self.client.scheduler_stub.CancelJob(
            rainbow_pb2.CancelJobRequest(jobid=jobid, token=self.config.token_for(self.name), reason="test"))

    def agent(self, state_dir: Path, nodes: int = 3, cores: int = 12, agent_id: str = "agent-1", **options) -> Agent:
        executor = LocalExecutor(nodes, cores, state_dir=state_dir, cluster=self.name)
        link = ClusterLink(RainbowClient(self.address, config_file=self.config, retries=0, timeout=5),
                           agent=agent_id, timeout=5)
        options.setdefault("hooks", Hooks())
        options.setdefault("stream", False)
        options.setdefault("interval", 0.05)
        return Agent(link, executor, **options)


def register(address: str, tmp_path: Path, name: str = "keebler") -> Cluster:
    config = RainbowConfig.new(name, host=address, path=tmp_path / f"{name}-config.yaml")
    client = RainbowClient(address, config_file=config)
    client.register(name, REGISTRATION_SECRET, example("cluster-nodes.json"), save=True)
    return Cluster(name, address, config, client)


@pytest.fixture
def cluster(server_factory, tmp_path):
    server = server_factory()
    cluster = register(server.address, tmp_path)
    yield cluster
    cluster.client.close()


def run_until(agent: Agent, done, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "the agent did not get there in time"
        agent.run_once()
        time.sleep(0.05)


def states(cluster: Cluster, *jobids: int) -> list[str]:
    return [cluster.info(j).state for j in jobids]


def test_jobs_run_and_exit_with_their_states_and_exit_codes(cluster, tmp_path):
    seen = []
    hooks = Hooks()
    hooks.on("job.new", lambda j: seen.append(("new", j.jobid)))
    hooks.on("job.inactive", lambda j: seen.append(("inactive", j.jobid, j.state, j.exit_code)))
    ok = cluster.submit(["sh", "-c", "echo hello from $RAINBOW_CLUSTER job $RAINBOW_JOBID"], name="hello")
    bad = cluster.submit(["sh", "-c", "exit 3"], name="three")
    missing = cluster.submit(["no-such-command-for-rainbow"], name="missing")
    agent = cluster.agent(tmp_path / "state", hooks=hooks)
    run_until(agent, lambda: all(s in FINAL for s in states(cluster, ok, bad, missing)))

    good = cluster.info(ok)
    assert (good.state, good.exit_code, good.has_exit_code) == ("completed", 0, True)
    assert [h.state for h in good.history] == ["assigned", "leased", "accepted", "submitted", "running", "completed"]
    assert agent.executor.output(good.local_id).strip() == f"hello from keebler job {ok}"
    three, gone = cluster.info(bad), cluster.info(missing)
    assert (three.state, three.exit_code, three.message) == ("failed", 3, "exit code 3")
    assert (gone.state, gone.exit_code) == ("failed", 127)
    assert len({good.local_id, three.local_id, gone.local_id}) == 3
    assert ("inactive", bad, "failed", 3) in seen and ("new", ok) in seen
    assert agent.stats.submitted == 3 and agent.stats.completed == 1 and agent.stats.failed == 2
    assert not agent.held


def test_update_state_reports_free_resources_and_queue(server_factory, tmp_path):
    server = server_factory()
    cluster = register(server.address, tmp_path)
    hold = cluster.submit(["sleep", "30"], nodes=2, tasks=2)
    queued = cluster.submit(["sleep", "30"], nodes=2, tasks=2)
    # The operator's picture of the cluster: the agent must not overwrite it.
    cluster.client.update_state("keebler", {"nodes_total": 12, "cores_total": 432, "site": "llnl"})
    agent = cluster.agent(tmp_path / "state", nodes=3, cores=1)
    run_until(agent, lambda: states(cluster, hold) == ["running"])
    state = server.scheduler.cluster_state("keebler")
    assert (state["executor_nodes"], state["nodes_free"], state["cores_free"]) == (3, 1, 1)
    assert (state["nodes_total"], state["cores_total"], state["site"]) == (12, 432, "llnl")
    assert set(AGENT_KEYS) <= set(state)
    assert (state["jobs_running"], state["jobs_pending"]) == (1, 1)
    cluster.cancel(hold)
    cluster.cancel(queued)
    run_until(agent, lambda: states(cluster, hold, queued) == ["cancelled", "cancelled"])
    assert server.scheduler.cluster_state("keebler")["nodes_free"] == 3


def test_a_job_that_cannot_run_is_failed_once_and_never_retried(cluster, tmp_path):
    hooks = Hooks()

    @hooks.on("job.validate")
    def no_rm(job):
        if job.command[:1] == ["rm"]:
            raise Reject("rm is not allowed here")

    too_big = cluster.submit(["hostname"], nodes=2, tasks=2)
    forbidden = cluster.submit(["rm", "-rf", "/nothing"])
    fine = cluster.submit(["true"])
    agent = cluster.agent(tmp_path / "state", nodes=1, hooks=hooks)
    run_until(agent, lambda: all(s in FINAL for s in states(cluster, too_big, forbidden, fine)))
    for _ in range(5):
        agent.run_once()
    big, rm = cluster.info(too_big), cluster.info(forbidden)
    assert big.state == "failed" and "the job needs 2 nodes; this cluster has 1" in big.message
    assert rm.state == "failed" and rm.message == "rejected by cluster keebler: rm is not allowed here"
    assert [h.state for h in rm.history] == ["assigned", "leased", "failed"]
    assert cluster.info(fine).state == "completed"
    assert agent.stats.rejected == 2 and agent.stats.received == 3
    assert agent.executor.find(too_big) is None and agent.executor.find(forbidden) is None


def test_a_hook_may_rewrite_the_job(cluster, tmp_path):
    hooks = Hooks()
    hooks.on("job.validate", lambda job: job.jobspec["tasks"][0].update(command=["echo", "rewritten"]))
    jobid = cluster.submit(["echo", "original"])
    agent = cluster.agent(tmp_path / "state", hooks=hooks)
    run_until(agent, lambda: states(cluster, jobid) == ["completed"])
    assert agent.executor.output(cluster.info(jobid).local_id).strip() == "rewritten"


class Crash(Exception):
    pass


def test_a_crash_between_submit_and_accept_never_runs_a_job_twice(cluster, tmp_path):
    marker = tmp_path / "runs.txt"
    jobid = cluster.submit(["sh", "-c", f"echo ran >> {marker}"])
    first = cluster.agent(tmp_path / "state", agent_id="first")

    def crash(_ids, _leases=None):
        raise Crash("the agent died before AcceptJobs")

    first.link.accept = crash
    with pytest.raises(Crash):
        first.run_once()
    assert cluster.info(jobid).state == "leased"
    deadline = time.monotonic() + 30
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)

    second = cluster.agent(tmp_path / "state", agent_id="second")
    run_until(second, lambda: states(cluster, jobid) == ["completed"])
    for _ in range(3):
        second.run_once()
    assert marker.read_text() == "ran\n"
    assert second.stats.adopted == 1 and second.stats.submitted == 0
    info = cluster.info(jobid)
    assert info.local_id == "local-1" and info.exit_code == 0


def test_a_job_handed_out_again_is_found_not_resubmitted(server_factory, tmp_path):
    server = server_factory(lease_seconds=0.5)
    cluster = register(server.address, tmp_path)
    marker = tmp_path / "runs.txt"
    jobid = cluster.submit(["sh", "-c", f"echo ran >> {marker}"])
    first = cluster.agent(tmp_path / "state", agent_id="first")
    first.link.accept = lambda ids, leases=None: (_ for _ in ()).throw(Crash("no accept"))
    with pytest.raises(Crash):
        first.run_once()
    second = cluster.agent(tmp_path / "state", agent_id="second")
    second.executor.recover = list  # an executor that cannot list its jobs, only find one
    run_until(second, lambda: states(cluster, jobid) == ["completed"])
    assert marker.read_text() == "ran\n"
    assert second.stats.received == 1 and second.stats.adopted == 1 and second.stats.submitted == 0


def test_cancel_reaches_a_running_job(cluster, tmp_path):
    jobid = cluster.submit(["sleep", "60"])
    agent = cluster.agent(tmp_path / "state")
    run_until(agent, lambda: states(cluster, jobid) == ["running"])
    cluster.cancel(jobid)
    run_until(agent, lambda: states(cluster, jobid) == ["cancelled"])
    assert agent.executor.resources().running == 0
    assert agent.stats.cancelled == 1


def local_job(jobid: int, script: str, cwd: Path) -> Submission:
    spec = to_flux_jobspec(simple(["sh", "-c", script]), jobid=jobid, cluster="keebler",
                           environment={"PATH": "/usr/bin:/bin"}, cwd=str(cwd))
    return Submission(jobid, "keebler", f"job-{jobid}", spec)


def test_close_stops_and_reaps_the_jobs_it_runs_even_those_ignoring_sigterm(tmp_path):
    executor = LocalExecutor(1, 2, state_dir=tmp_path / "state", cluster="keebler", stop_grace=0.5)
    polite = executor.submit(local_job(1, "sleep 300 & echo $! > polite.pid; wait", tmp_path))
    stubborn = executor.submit(local_job(2, "trap '' TERM; sleep 300 & echo $! > stubborn.pid; wait", tmp_path))
    executor.submit(local_job(3, "sleep 300", tmp_path))  # no core left for it: stays queued
    deadline = time.monotonic() + 30
    while not all((tmp_path / f"{name}.pid").is_file() and (tmp_path / f"{name}.pid").read_text().strip()
                  for name in ("polite", "stubborn")):
        assert time.monotonic() < deadline, "the jobs did not start"
        time.sleep(0.02)
    groups = {json_record(tmp_path, local)["pid"] for local in (polite, stubborn)}
    sleepers = {int((tmp_path / f"{name}.pid").read_text()) for name in ("polite", "stubborn")}
    assert live_processes(groups=groups) >= sleepers

    executor.close()

    assert live_processes(groups=groups) == set()
    after = {u.local_id: (u.state, u.message) for u in LocalExecutor(1, 2, state_dir=tmp_path / "state",
                                                                      cluster="keebler").recover()}
    stopped = "stopped: the local agent shut down while the job ran"
    assert after == {polite: ("cancelled", stopped), stubborn: ("cancelled", stopped),
                     "local-3": ("submitted", "")}


def json_record(tmp_path: Path, local_id: str) -> dict:
    import json

    return json.loads((tmp_path / "state" / "jobs" / f"{local_id}.json").read_text())


def test_streamed_jobs_wake_the_agent(cluster, tmp_path):
    agent = cluster.agent(tmp_path / "state", stream=True, interval=60)
    errors: list[BaseException] = []

    def run():
        try:
            agent.run()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not agent.stats.streaming and time.monotonic() < deadline:
            time.sleep(0.05)
        jobid = cluster.submit(["true"])
        while cluster.info(jobid).state in ("assigned", "leased", "accepted") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert cluster.info(jobid).state in ("submitted", "running", "completed")
        while agent.stats.passes < 2 and time.monotonic() < deadline:  # the pass that reported it may not have ended
            time.sleep(0.05)
        assert agent.stats.passes >= 2
    finally:
        agent.stop()
        thread.join(20)
    assert not thread.is_alive() and not errors


def test_server_outages_are_waited_out_and_reports_catch_up(tmp_path):
    db = tmp_path / "rainbow.db"
    proc, address, _ = start_server_process(db, "--secret", REGISTRATION_SECRET)
    cluster = register(address, tmp_path)
    jobid = cluster.submit(["sleep", "1"])
    agent = cluster.agent(tmp_path / "state", max_backoff=0.5)
    errors: list[BaseException] = []

    def run():
        try:
            agent.run()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    restarted = None
    try:
        deadline = time.monotonic() + 30
        while cluster.info(jobid).state != "running":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        proc.terminate()
        proc.wait(30)
        while agent.stats.outages < 3:
            assert time.monotonic() < deadline and thread.is_alive()
            time.sleep(0.05)
        restarted, again, _ = start_server_process(db, "--secret", REGISTRATION_SECRET, "--host", address)
        assert again == address
        cluster.client = RainbowClient(address, config_file=cluster.config)
        while cluster.info(jobid).state != "completed":
            assert time.monotonic() < deadline + 30 and thread.is_alive()
            time.sleep(0.1)
        assert cluster.info(jobid).exit_code == 0
    finally:
        agent.stop()
        thread.join(20)
        for process in (proc, restarted):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(30)
    assert not errors and agent.stats.outages >= 3


def run_in_thread(agent: Agent) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def run():
        try:
            agent.run()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, errors


def wait_for(cluster: Cluster, jobid: int, state: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while cluster.info(jobid).state != state:
        assert time.monotonic() < deadline, f"job {jobid} never became {state}"
        time.sleep(0.05)


def test_without_streaming_on_the_server_the_agent_polls(cluster, tmp_path):
    from rainbow.errors import RainbowError

    agent = cluster.agent(tmp_path / "state", stream=True)

    def no_stream(max_jobs=0):
        error = RainbowError("Method not found!")
        error.code = "UNIMPLEMENTED"
        raise error
        yield []

    agent.link.stream = no_stream
    thread, errors = run_in_thread(agent)
    try:
        jobid = cluster.submit(["true"])
        wait_for(cluster, jobid, "completed")
        assert not agent.stats.streaming
    finally:
        agent.stop()
        thread.join(20)
    assert not errors


def test_an_unavailable_local_scheduler_is_waited_out(cluster, tmp_path):
    from rainbow.agent import ExecutorUnavailable

    agent = cluster.agent(tmp_path / "state", max_backoff=0.2)
    real_poll, calls = agent.executor.poll, []

    def flaky_poll():
        calls.append(1)
        if len(calls) <= 3:
            raise ExecutorUnavailable("flux broker restarting")
        return real_poll()

    agent.executor.poll = flaky_poll
    jobid = cluster.submit(["true"])
    thread, errors = run_in_thread(agent)
    try:
        wait_for(cluster, jobid, "completed")
    finally:
        agent.stop()
        thread.join(20)
    assert not errors and agent.stats.outages >= 3 and agent.stats.last_error == "flux broker restarting"


def test_a_job_the_local_scheduler_could_not_take_is_retried_next_pass(cluster, tmp_path):
    from rainbow.agent import ExecutorUnavailable

    agent = cluster.agent(tmp_path / "state")
    real_submit, calls = agent.executor.submit, []

    def busy_once(job):
        calls.append(job.jobid)
        if len(calls) == 1:
            raise ExecutorUnavailable("queue is stopped")
        return real_submit(job)

    agent.executor.submit = busy_once
    jobid = cluster.submit(["true"])
    run_until(agent, lambda: states(cluster, jobid) == ["completed"])
    assert calls == [jobid, jobid] and agent.stats.received == 1 and agent.stats.submitted == 1


def test_a_crash_while_starting_a_local_job_never_starts_it_again(tmp_path):
    marker = tmp_path / "runs.txt"
    first = LocalExecutor(1, 4, state_dir=tmp_path / "state", cluster="c")
    save = first._save

    def crash_once_started(job):
        if job.pid is not None:
            raise Crash("the agent died after starting the process, before recording its pid")
        save(job)

    first._save = crash_once_started
    spec = to_flux_jobspec(simple(["sh", "-c", f"echo ran >> {marker}"]), jobid=7, cluster="c")
    with pytest.raises(Crash):
        first.submit(Submission(7, "c", "job", spec))
    again = LocalExecutor(1, 4, state_dir=tmp_path / "state", cluster="c")
    deadline = time.monotonic() + 30
    while again.find(7).state not in FINAL:
        assert time.monotonic() < deadline, "the job started before the crash was never seen to end"
        again.poll()
        time.sleep(0.05)
    assert again.find(7).state == "completed" and marker.read_text() == "ran\n"


def test_a_crash_before_a_local_job_started_runs_it_once_later(tmp_path, monkeypatch):
    monkeypatch.setattr(local_module, "_START_GRACE", 0.2)
    marker = tmp_path / "runs.txt"
    first = LocalExecutor(1, 4, state_dir=tmp_path / "state", cluster="c")
    save = first._save

    def crash_before_the_process(job):
        save(job)
        if job.state == "running" and job.pid is None:
            raise Crash("the agent died after recording the start, before the process existed")

    first._save = crash_before_the_process
    spec = to_flux_jobspec(simple(["sh", "-c", f"echo ran >> {marker}"]), jobid=8, cluster="c")
    with pytest.raises(Crash):
        first.submit(Submission(8, "c", "job", spec))
    again = LocalExecutor(1, 4, state_dir=tmp_path / "state", cluster="c")
    deadline = time.monotonic() + 30
    while again.find(8).state not in FINAL:
        assert time.monotonic() < deadline, "the job that never started was never started"
        again.poll()
        time.sleep(0.05)
    assert again.find(8).state == "completed" and marker.read_text() == "ran\n"
