"""RainbowClient against a real server: every method, typed results, one exception hierarchy."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import grpc
import pytest
import yaml

from rainbow.client import (
    Deletion,
    Job,
    RainbowClient,
    Registration,
    SatisfyResult,
    StateUpdate,
    SubmitResult,
)
from rainbow.config import RainbowConfig
from rainbow.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    RainbowError,
)
from rainbow.jobspec import parse_jobspec

from conftest import EXAMPLES, REGISTRATION_SECRET, example

NODES = EXAMPLES / "cluster-nodes.json"
IO = EXAMPLES / "cluster-io-subsystem.json"
STATE = EXAMPLES / "cluster-state.json"
JOBSPEC_IO = EXAMPLES / "jobspec-io.yaml"
JOBSPEC_TWO_NODES = EXAMPLES / "jobspec-constraint.yaml"


def new_config(tmp_path: Path, address: str, name: str = "keebler") -> Path:
    path = tmp_path / "rainbow-config.yaml"
    RainbowConfig.new(name, host=address, path=path).save()
    return path


@pytest.fixture
def registered(server_factory, tmp_path):
    """A server, a config file with a registered keebler (saved credentials) and a client using both."""
    server = server_factory()
    path = new_config(tmp_path, server.address)
    with RainbowClient(config_file=path) as client:
        registration = client.register("keebler", REGISTRATION_SECRET, NODES, save=True)
    client = RainbowClient(config_file=path)
    yield client, registration, server
    client.close()


def test_register_saves_credentials_to_config(server_factory, tmp_path):
    server = server_factory()
    path = tmp_path / "rainbow-config.yaml"
    data = yaml.safe_load(example("rainbow-config.yaml"))
    data["graphdatabase"]["host"] = data["graphdatabase"]["options"]["host"] = server.address
    data["site"] = {"contact": "hpc@example.org"}  # unknown keys survive a save
    path.write_text(yaml.safe_dump(data))

    with RainbowClient(config_file=path) as client:
        assert client.host == server.address
        # no secret given: the config's scheduler.secret (chocolate-cookies) is used
        result = client.register("second", None, NODES, save=True)
    assert isinstance(result, Registration)
    assert result.created and result.status == "REGISTER_SUCCESS" and result.cluster == "second"
    assert result.token and result.secret and result.token != result.secret

    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    saved = yaml.safe_load(path.read_text())
    assert saved["cluster"] == {"name": "second", "secret": result.secret}
    assert saved["clusters"] == [
        {"name": "keebler", "token": "rainbow"},
        {"name": "second", "token": result.token},
    ]
    assert saved["site"] == {"contact": "hpc@example.org"}
    assert saved["scheduler"] == data["scheduler"]

    with RainbowClient(config_file=path) as client:
        again = client.register("second", None, NODES, save=True)
    assert again.status == "REGISTER_EXISTS" and not again.created and again.exists
    assert (again.token, again.secret) == ("", "")
    assert yaml.safe_load(path.read_text()) == saved  # nothing overwritten


def test_cluster_lifecycle_with_typed_results(registered):
    client, registration, _server = registered
    assert registration.created

    # The io jobspec needs the io subsystem: no match yet, and the reason says why.
    before = client.satisfy(JOBSPEC_IO)
    assert isinstance(before, SatisfyResult)
    assert before.clusters == () and before.total_clusters == 1 and before.total_mismatches == 1
    assert "io" in before.reasons["keebler"]
    with pytest.raises(FailedPrecondition) as err:
        client.submit_jobspec(JOBSPEC_IO)
    assert "keebler" in err.value.message and err.value.code == "FAILED_PRECONDITION"

    sub = client.register_subsystem("keebler", "io", None, IO)
    assert sub == Registration("keebler", "", "", "REGISTER_SUCCESS", sub.request_id, "io")

    state = client.update_state("keebler", STATE, registration.secret)
    assert state == StateUpdate("keebler", "UPDATE_STATE_SUCCESS", json.loads(example("cluster-state.json")))
    assert client.update_state(None, {"nodes_free": 2}).state == {"nodes_free": 2}

    after = client.satisfy(JOBSPEC_IO, matcher="match")
    assert after.clusters == ("keebler",) and after.total_matches == 1 and after.reasons == {}

    only = client.submit_jobspec(JOBSPEC_IO, satisfy_only=True)
    assert isinstance(only, SubmitResult)
    assert only.clusters == ("keebler",) and only.jobid == 0 and not only.submitted
    assert client.receive_jobs() == []

    first = client.submit_jobspec(JOBSPEC_IO)
    assert first.submitted and first.cluster == "keebler" and first.status == "SUBMIT_SUCCESS"
    assert first.name == "ior" and first.matches == ("keebler",) and first.total_clusters == 1
    second = client.submit_job("echo hello world", nodes=2, tasks=2, name="greeting")
    assert second.cluster == "keebler" and second.jobid > first.jobid and second.name == "greeting"

    one = client.receive_jobs(max_jobs=1)
    assert one == [Job(first.jobid, "keebler", "ior", example("jobspec-io.yaml"), "ior")]
    rest = client.receive_jobs()
    assert [(j.id, j.name, j.command) for j in rest] == [(second.jobid, "greeting", "echo hello world")]
    received = parse_jobspec(rest[0].jobspec)
    assert received.command == ["echo", "hello", "world"]
    assert client.receive_jobs() == []  # accepted jobs are not handed out again

    assert client.delete_subsystem("keebler", "io") == Deletion("keebler", "DELETE_SUCCESS", "io")
    assert client.satisfy(JOBSPEC_IO).clusters == ()
    with pytest.raises(NotFound):
        client.delete_subsystem("keebler", "io")
    assert client.delete_cluster("keebler") == Deletion("keebler", "DELETE_SUCCESS")
    with pytest.raises(NotFound) as err:
        client.receive_jobs()
    assert err.value.status == grpc.StatusCode.NOT_FOUND and "keebler" in err.value.details


def test_inputs_as_paths_text_dicts_and_jobspecs(server_factory, tmp_path):
    server = server_factory()
    path = new_config(tmp_path, server.address, "alpha")
    client = RainbowClient(config_file=path)
    client.register("alpha", REGISTRATION_SECRET, json.loads(example("cluster-nodes.json")), save=True)
    client.register("beta", REGISTRATION_SECRET, example("cluster-nodes.json"))
    client.register("gamma", REGISTRATION_SECRET, str(NODES))
    assert sorted(server.scheduler.cluster_names) == ["alpha", "beta", "gamma"]

    text = example("jobspec-constraint.yaml")
    as_dict = yaml.safe_load(text)
    submitted = [
        client.submit_jobspec(JOBSPEC_TWO_NODES, name="path"),
        client.submit_jobspec(str(JOBSPEC_TWO_NODES), name="path-string"),
        client.submit_jobspec(text, name="yaml-text"),
        client.submit_jobspec(json.dumps(as_dict), name="json-text"),
        client.submit_jobspec(as_dict, name="dict"),
        client.submit_jobspec(parse_jobspec(text), name="jobspec"),
    ]
    # only alpha has a token in the config, so every job goes there
    assert {s.cluster for s in submitted} == {"alpha"}
    assert set(submitted[0].matches) == {"alpha", "beta", "gamma"}
    jobs = {job.name: job for job in client.receive_jobs()}
    assert sorted(jobs) == ["dict", "jobspec", "json-text", "path", "path-string", "yaml-text"]
    assert jobs["path"].jobspec == jobs["yaml-text"].jobspec == text  # the user's own text is sent
    assert jobs["json-text"].jobspec == json.dumps(as_dict)
    for name in ("dict", "jobspec"):
        assert parse_jobspec(jobs[name].jobspec).command == ["ior"]
    client.close()


def test_failures_raise_rainbow_errors_with_the_grpc_status(registered, tmp_path):
    client, _registration, server = registered

    def failure(kind, call, *args, **kwargs) -> RainbowError:
        with pytest.raises(kind) as err:
            call(*args, **kwargs)
        assert not isinstance(err.value, grpc.RpcError)
        return err.value

    error = failure(PermissionDenied, client.register, "other", "wrong-secret", NODES)
    assert error.code == "PERMISSION_DENIED" and error.status == grpc.StatusCode.PERMISSION_DENIED
    assert "secret" in error.message and error.details == error.message

    error = failure(PermissionDenied, client.update_state, "keebler", {"nodes_free": 1}, "not-the-secret")
    assert "keebler" in error.message
    error = failure(InvalidArgument, client.update_state, "keebler", {"nested": {"a": 1}})
    assert error.code == "INVALID_ARGUMENT" and "nested" in error.message
    error = failure(InvalidArgument, client.update_state, "keebler", tmp_path / "missing.json")
    assert "does not exist" in error.message

    error = failure(InvalidArgument, client.submit_jobspec, "version: 1\ntasks: []\n")
    assert error.code == "INVALID_ARGUMENT"
    error = failure(InvalidArgument, client.submit_jobspec, "no-such-jobspec.yaml")
    assert "no-such-jobspec.yaml" in error.message
    failure(InvalidArgument, client.satisfy, JOBSPEC_TWO_NODES, matcher="no-such-matcher")

    # a wrong token in the config is refused by the server
    config = RainbowConfig.load(client.config.path)
    config.add_cluster_token("keebler", "stolen-token")
    with RainbowClient(config_file=config) as wrong:
        error = failure(PermissionDenied, wrong.submit_jobspec, JOBSPEC_TWO_NODES)
    assert "token" in error.message
    # no token at all for the matching clusters: refused before submitting
    config.data["clusters"] = []
    with RainbowClient(config_file=config) as none:
        error = failure(PermissionDenied, none.submit_jobspec, JOBSPEC_TWO_NODES)
    assert "keebler" in error.message and "clusters" in error.message
    assert server.scheduler.store.get_cluster("keebler") is not None
    assert client.receive_jobs() == []  # nothing was stored by any of the failures

    with RainbowClient(host=server.address) as anonymous:
        error = failure(InvalidArgument, anonymous.receive_jobs)
        assert "cluster" in error.message
        failure(NotFound, anonymous.receive_jobs, cluster="ghost", secret="x")


def test_host_comes_from_argument_then_config_then_default(tmp_path):
    path = new_config(tmp_path, "rainbow.example.org:4242")
    assert RainbowClient(config_file=path).host == "rainbow.example.org:4242"
    assert RainbowClient(host="127.0.0.1:9", config_file=path).host == "127.0.0.1:9"
    assert RainbowClient().host == "localhost:50051"
    config = RainbowConfig.load(path)
    del config.data["graphdatabase"]["host"]
    assert RainbowClient(config_file=config).host == "rainbow.example.org:4242"  # options.host


def test_one_channel_is_reused_across_calls(registered, monkeypatch):
    client, _registration, _server = registered
    opened = []
    real = grpc.insecure_channel

    def counting(*args, **kwargs):
        channel = real(*args, **kwargs)
        opened.append(channel)
        return channel

    monkeypatch.setattr(grpc, "insecure_channel", counting)
    client.close()
    client.update_state("keebler", {"nodes_free": 1})
    channel = client.channel
    client.satisfy(JOBSPEC_TWO_NODES)
    client.submit_job("true")
    client.receive_jobs()
    assert client.channel is channel
    assert opened == [channel]
    client.close()
    client.update_state("keebler", {"nodes_free": 2})  # usable again after close, with a new channel
    assert len(opened) == 2 and client.channel is opened[1]
