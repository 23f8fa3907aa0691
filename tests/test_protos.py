"""The committed generated modules match protos/*.proto, and the contract is unchanged."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from rainbow.protos import memory_pb2, rainbow_pb2

ROOT = Path(__file__).resolve().parents[1]


def _load_generator():
    spec = importlib.util.spec_from_file_location("generate_protos", ROOT / "protos" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_code_is_fresh(tmp_path):
    pytest.importorskip("grpc_tools")
    generated = _load_generator().generate(tmp_path)
    assert generated, "generator wrote nothing"
    committed = ROOT / "src" / "rainbow" / "protos"
    for path in generated:
        current = committed / path.name
        assert current.exists(), f"{path.name} is not committed"
        assert current.read_text() == path.read_text(), (
            f"{path.name} is stale: run `python protos/generate.py` and commit the result"
        )


def _fields(message) -> dict[str, int]:
    """The contract's fields of a message: additions (new numbers only) are allowed."""
    fields = {f.name: f.number for f in message.DESCRIPTOR.fields}
    return {name: number for name, number in fields.items()
            if (message.__name__, name) not in ADDED and number < FIRST_ADDED_NUMBER}


# Fields added from this number on (each capability has its own range of numbers) are additions.
FIRST_ADDED_NUMBER = 20
# Fields this implementation added earlier, each with a number the contract never used.
ADDED = {("ReceiveJobsRequest", "agent"), ("SatisfyResponse", "reasons"), ("SubmitJobRequest", "idempotency_key"),
         ("ReceiveJobsResponse", "leases"), ("ReceiveJobsResponse", "lease_seconds"),
         ("AcceptJobsRequest", "agent"), ("AcceptJobsRequest", "leases"), ("ReceiveJobsResponse", "owners"),
         ("ReceiveJobsResponse", "depends")}


def test_wire_contract_numbers():
    """Names and numbers of the original contract, exactly (typos included)."""
    assert _fields(rainbow_pb2.RegisterRequest) == {
        "name": 1, "secret": 2, "nodes": 3, "subsystem": 4, "sent": 5}
    assert _fields(rainbow_pb2.RegisterResponse) == {
        "request_id": 1, "token": 2, "secret": 3, "status": 4}
    assert _fields(rainbow_pb2.DeleteRequest) == {"name": 1, "secret": 2, "subsytem": 3}
    assert _fields(rainbow_pb2.UpdateStateRequest) == {"cluster": 1, "secret": 2, "payload": 3}
    submit = _fields(rainbow_pb2.SubmitJobRequest)
    assert submit == {"name": 1, "clusters": 2, "jobspec": 3, "select_algorithm": 4,
                      "select_options": 5, "satisfy_only": 6, "sent": 7}
    assert _fields(rainbow_pb2.SubmitJobRequest.Cluster) == {"name": 1, "token": 2}
    assert _fields(rainbow_pb2.SubmitJobResponse) == {
        "request_id": 1, "jobid": 2, "cluster": 3, "status": 4, "clusters": 5}
    assert _fields(rainbow_pb2.ReceiveJobsRequest) == {"cluster": 1, "secret": 2, "maxJobs": 3, "sent": 7}
    assert _fields(rainbow_pb2.ReceiveJobsResponse) == {"request_id": 1, "jobs": 2, "status": 3}
    assert _fields(rainbow_pb2.AcceptJobsRequest) == {"cluster": 1, "secret": 2, "jobids": 3, "sent": 4}
    assert _fields(memory_pb2.SatisfyRequest) == {"payload": 1, "matcher": 2}
    assert _fields(memory_pb2.SatisfyResponse) == {
        "clusters": 1, "status": 2, "total_clusters": 3, "total_matches": 4, "total_mismatches": 5}
    assert _fields(memory_pb2.RegisterRequest) == {"name": 1, "payload": 2, "subsystem": 3}


def test_wire_contract_enums():
    def values(enum):
        return {v.name: v.number for v in enum.values}

    assert values(rainbow_pb2.RegisterResponse.ResultType.DESCRIPTOR) == {
        "REGISTER_UNSPECIFIED": 0, "REGISTER_SUCCESS": 1, "REGISTER_ERROR": 2,
        "REGISTER_DENIED": 3, "REGISTER_EXISTS": 4}
    assert values(rainbow_pb2.DeleteResponse.ResultType.DESCRIPTOR) == {
        "DELETE_SUCCESS": 0, "DELETE_ERROR": 1, "DELETE_DENIED": 2, "DELETE_NO_EXISTS": 3}
    assert values(rainbow_pb2.UpdateStateResponse.ResultType.DESCRIPTOR) == {
        "UPDATE_STATE_UNSPECIFIED": 0, "UPDATE_STATE_PARTIAL": 1, "UPDATE_STATE_SUCCESS": 2,
        "UPDATE_STATE_ERROR": 3}
    assert values(rainbow_pb2.SubmitJobResponse.ResultType.DESCRIPTOR) == {
        "SUBMIT_UNSPECIFIED": 0, "SUBMIT_SUCCESS": 1, "SUBMIT_ERROR": 2, "SUBMIT_DENIED": 3}
    assert values(rainbow_pb2.ReceiveJobsResponse.ResultType.DESCRIPTOR) == {
        "REQUEST_JOBS_NORESULTS": 0, "REQUEST_JOBS_SUCCESS": 1, "REQUEST_JOBS_ERROR": 2,
        "REQUEST_JOBS_DENIED": 3}
    assert values(rainbow_pb2.AcceptJobsResponse.ResultType.DESCRIPTOR) == {
        "RESULT_TYPE_UNSPECIFIED": 0, "RESULT_TYPE_PARTIAL": 1, "RESULT_TYPE_SUCCESS": 2,
        "RESULT_TYPE_ERROR": 3}
    assert values(memory_pb2.SatisfyResponse.ResultType.DESCRIPTOR) == {
        "RESULT_TYPE_UNSPECIFIED": 0, "RESULT_TYPE_SUCCESS": 1, "RESULT_TYPE_ERROR": 2}


def test_service_names_and_methods():
    scheduler = rainbow_pb2.DESCRIPTOR.services_by_name["RainbowScheduler"]
    assert scheduler.full_name == "convergedcomputing.org.grpc.v1.RainbowScheduler"
    assert {"Register", "Delete", "RegisterSubsystem", "DeleteSubsystem", "SubmitJob",
            "UpdateState", "ReceiveJobs", "AcceptJobs"} <= set(scheduler.methods_by_name)
    graph = memory_pb2.DESCRIPTOR.services_by_name["MemoryGraph"]
    assert graph.full_name == "service.MemoryGraph"
    assert {"Satisfy", "Register"} <= set(graph.methods_by_name)


def test_added_fields_use_new_numbers():
    assert rainbow_pb2.ReceiveJobsRequest.DESCRIPTOR.fields_by_name["agent"].number == 8
    assert rainbow_pb2.ReceiveJobsResponse.DESCRIPTOR.fields_by_name["owners"].number == 20
    assert rainbow_pb2.ReceiveJobsResponse.DESCRIPTOR.fields_by_name["depends"].number == 30
    assert {f.name: f.number for f in rainbow_pb2.JobInfo.DESCRIPTOR.fields if 30 <= f.number < 40} == {
        "dependencies": 30, "workflow_id": 31, "step": 32}
    assert memory_pb2.SatisfyResponse.DESCRIPTOR.fields_by_name["reasons"].number == 6
