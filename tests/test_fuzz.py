"""Hostile input: every parser the network reaches either succeeds or raises a clear error.

Inputs are generated (arbitrary JSON/YAML-like structures and text) and mutated
from the shared examples (byte flips, cuts, splices, deep nesting). The default
run is bounded to keep the suite fast; set RAINBOW_FUZZ_EXAMPLES (e.g. 20000)
for a longer run.
"""

from __future__ import annotations

import contextlib
import json
import os

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rainbow.config import RainbowConfig
from rainbow.errors import InvalidArgument, ResourceExhausted
from rainbow.graph import ClusterGraph
from rainbow.jobspec import parse_jobspec
from rainbow.limits import Limits
from rainbow.protos import memory_pb2, rainbow_pb2
from rainbow.scheduler import parse_state_payload

from conftest import REGISTRATION_SECRET, example

EXAMPLES = int(os.environ.get("RAINBOW_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
CLEAR_ERRORS = (InvalidArgument, ResourceExhausted)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=40,
)


@st.composite
def mutated(draw, text: str) -> str:
    """An example file with a few random edits."""
    data = bytearray(text.encode())
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "truncate", "duplicate"]))
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[at] = draw(st.integers(0, 255))
        elif kind == "cut":
            del data[at : at + draw(st.integers(1, 40))]
        elif kind == "insert":
            data[at:at] = draw(st.sampled_from([b"{", b"}", b"[", b"]", b'"', b":", b",", b"-1", b"0", b"\x00",
                                                b"null", b"1e999", b"\n  - ", b"&a", b"*a", b"!!python/object"]))
        elif kind == "truncate":
            del data[at:]
        else:
            end = min(len(data), at + draw(st.integers(1, 200)))
            data[end:end] = data[at:end]
    return data.decode("utf-8", errors="replace")


def deep(depth: int, opener: str = "[", closer: str = "]") -> str:
    return opener * depth + closer * depth


def expect_clear(parse, text):
    with contextlib.suppress(CLEAR_ERRORS):
        parse(text)


@FUZZ
@given(st.one_of(mutated(example("jobspec-io.yaml")), mutated(example("jobspec-constraint.yaml")),
                 json_values.map(json.dumps), st.text(max_size=300)))
def test_jobspec_parser(text):
    expect_clear(parse_jobspec, text)


@FUZZ
@given(json_values)
def test_jobspec_parser_structures(value):
    doc = {"version": 1, "resources": value, "tasks": [{"command": ["x"], "resources": "a"}]}
    expect_clear(parse_jobspec, json.dumps(doc))


@FUZZ
@given(st.one_of(mutated(example("cluster-nodes.json")), json_values.map(json.dumps), st.text(max_size=300)))
def test_jgf_parser(text):
    expect_clear(ClusterGraph.from_jgf, text)


@FUZZ
@given(mutated(example("cluster-io-subsystem.json")))
def test_subsystem_parser(text):
    graph = ClusterGraph.from_jgf(example("cluster-nodes.json"))
    before = graph.subsystems
    try:
        graph.add_subsystem("io", text)
    except CLEAR_ERRORS:
        assert graph.subsystems == before  # nothing half-added


@FUZZ
@given(st.one_of(mutated(example("cluster-state.json")), json_values.map(json.dumps), st.text(max_size=300)))
def test_state_payload_parser(text):
    expect_clear(lambda t: parse_state_payload(t, Limits()), text)


@FUZZ
@given(st.one_of(mutated(example("rainbow-config.yaml")), mutated(example("rainbow-selection-config.yaml"))))
def test_config_parser(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("cfg") / "rainbow-config.yaml"
    path.write_text(text)
    with contextlib.suppress(CLEAR_ERRORS):
        RainbowConfig.load(path)


@pytest.mark.parametrize("text", [
    deep(5000), deep(5000, "{\"a\":", "}"), "a:\n" + "".join(" " * i + "- \n" for i in range(2000)),
    deep(100_000), "&a [*a, *a, *a]", "!!python/object/apply:os.system ['true']",
], ids=["lists", "objects", "yaml-indent", "very-deep", "alias", "python-tag"])
def test_nesting_and_tags_are_clear_errors(text):
    for parse in (parse_jobspec, ClusterGraph.from_jgf, lambda t: parse_state_payload(t, Limits())):
        expect_clear(parse, text)


def test_server_survives_mutated_requests(rainbow):
    """Bounded: a few hundred hostile requests, then the store is intact and the server still serves."""
    reply = rainbow.scheduler.Register(rainbow_pb2.RegisterRequest(
        name="keebler", secret=REGISTRATION_SECRET, nodes=example("cluster-nodes.json")))
    token, secret = reply.token, reply.secret

    samples = {
        "jgf": mutated(example("cluster-nodes.json")),
        "sub": mutated(example("cluster-io-subsystem.json")),
        "state": mutated(example("cluster-state.json")),
        "jobspec": mutated(example("jobspec-io.yaml")),
    }
    bad_codes = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.UNAVAILABLE}
    seen_codes = set()

    def send(call, request):
        try:
            call(request, timeout=30)
        except grpc.RpcError as err:
            seen_codes.add(err.code())
            assert err.code() not in bad_codes, err.details()
            assert "Traceback" not in (err.details() or "")

    @settings(max_examples=min(EXAMPLES, 60), deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.data())
    def run(data):
        jgf, sub, state, jobspec = (data.draw(samples[k]) for k in ("jgf", "sub", "state", "jobspec"))
        send(rainbow.scheduler.Register, rainbow_pb2.RegisterRequest(
            name=data.draw(st.text(min_size=1, max_size=30)), secret=REGISTRATION_SECRET, nodes=jgf))
        send(rainbow.scheduler.RegisterSubsystem, rainbow_pb2.RegisterRequest(
            name="keebler", secret=secret, subsystem="io", nodes=sub))
        send(rainbow.scheduler.UpdateState, rainbow_pb2.UpdateStateRequest(
            cluster="keebler", secret=secret, payload=state))
        send(rainbow.graph.Satisfy, memory_pb2.SatisfyRequest(payload=jobspec))
        send(rainbow.scheduler.SubmitJob, rainbow_pb2.SubmitJobRequest(
            name="fuzz", clusters=[rainbow_pb2.SubmitJobRequest.Cluster(name="keebler", token=token)],
            jobspec=jobspec))

    run()
    scheduler = rainbow.server.scheduler
    # every stored cluster still rebuilds, and every job is whole
    for name in scheduler.cluster_names:
        ClusterGraph.from_jgf(scheduler.store.get_nodes(name))
        for subsystem_text in scheduler.store.list_subsystems(name).values():
            json.loads(subsystem_text)
    for job in scheduler.store.list_jobs():
        assert job.cluster == "keebler" and job.jobspec
    ok = rainbow.scheduler.SubmitJob(rainbow_pb2.SubmitJobRequest(
        name="after", clusters=[rainbow_pb2.SubmitJobRequest.Cluster(name="keebler", token=token)],
        jobspec=example("jobspec-constraint.yaml")))
    assert ok.jobid > 0
