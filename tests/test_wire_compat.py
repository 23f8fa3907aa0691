"""A client built only from the contract's names and numbers (not our .proto files) works.

The messages are declared here from the table in the design (as an old client
compiled them) in a private descriptor pool, and called by method path.
"""

from __future__ import annotations

import json

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from conftest import REGISTRATION_SECRET, example

F = descriptor_pb2.FieldDescriptorProto
STRING, INT32, BOOL, ENUM, MESSAGE = F.TYPE_STRING, F.TYPE_INT32, F.TYPE_BOOL, F.TYPE_ENUM, F.TYPE_MESSAGE
REPEATED, OPTIONAL = F.LABEL_REPEATED, F.LABEL_OPTIONAL


def _message(file, name, fields, enums=None, nested=None):
    msg = file.message_type.add(name=name)
    for field_name, number, kind, *rest in fields:
        field = msg.field.add(name=field_name, number=number, type=kind, label=OPTIONAL)
        if rest:
            label, type_name = rest
            field.label = label
            if type_name:
                field.type_name = type_name
    for enum_name, values in (enums or {}).items():
        enum = msg.enum_type.add(name=enum_name)
        for value_name, number in values:
            enum.value.add(name=value_name, number=number)
    for nested_name, nested_fields, options in nested or []:
        sub = msg.nested_type.add(name=nested_name)
        for field_name, number, kind in nested_fields:
            sub.field.add(name=field_name, number=number, type=kind, label=OPTIONAL)
        if options:
            sub.options.map_entry = True
    return msg


def build_contract():
    pool = descriptor_pool.DescriptorPool()
    sched = descriptor_pb2.FileDescriptorProto(
        name="oldclient/rainbow.proto", package="convergedcomputing.org.grpc.v1", syntax="proto3"
    )
    p = ".convergedcomputing.org.grpc.v1."
    _message(
        sched,
        "RegisterRequest",
        [("name", 1, STRING), ("secret", 2, STRING), ("nodes", 3, STRING), ("subsystem", 4, STRING)],
    )
    _message(
        sched,
        "RegisterResponse",
        [
            ("request_id", 1, STRING),
            ("token", 2, STRING),
            ("secret", 3, STRING),
            ("status", 4, ENUM, OPTIONAL, p + "RegisterResponse.ResultType"),
        ],
        enums={
            "ResultType": [
                ("REGISTER_UNSPECIFIED", 0),
                ("REGISTER_SUCCESS", 1),
                ("REGISTER_ERROR", 2),
                ("REGISTER_DENIED", 3),
                ("REGISTER_EXISTS", 4),
            ]
        },
    )
    _message(
        sched,
        "SubmitJobRequest",
        [
            ("name", 1, STRING),
            ("clusters", 2, MESSAGE, REPEATED, p + "SubmitJobRequest.Cluster"),
            ("jobspec", 3, STRING),
            ("select_algorithm", 4, STRING),
            ("select_options", 5, MESSAGE, REPEATED, p + "SubmitJobRequest.SelectOptionsEntry"),
            ("satisfy_only", 6, BOOL),
        ],
        nested=[
            ("Cluster", [("name", 1, STRING), ("token", 2, STRING)], False),
            ("SelectOptionsEntry", [("key", 1, STRING), ("value", 2, STRING)], True),
        ],
    )
    _message(
        sched,
        "SubmitJobResponse",
        [
            ("request_id", 1, STRING),
            ("jobid", 2, INT32),
            ("cluster", 3, STRING),
            ("status", 4, ENUM, OPTIONAL, p + "SubmitJobResponse.ResultType"),
            ("clusters", 5, STRING, REPEATED, ""),
        ],
        enums={
            "ResultType": [("SUBMIT_UNSPECIFIED", 0), ("SUBMIT_SUCCESS", 1), ("SUBMIT_ERROR", 2), ("SUBMIT_DENIED", 3)]
        },
    )
    _message(sched, "ReceiveJobsRequest", [("cluster", 1, STRING), ("secret", 2, STRING), ("maxJobs", 3, INT32)])
    _message(
        sched,
        "ReceiveJobsResponse",
        [
            ("request_id", 1, STRING),
            ("jobs", 2, MESSAGE, REPEATED, p + "ReceiveJobsResponse.JobsEntry"),
            ("status", 3, ENUM, OPTIONAL, p + "ReceiveJobsResponse.ResultType"),
        ],
        enums={
            "ResultType": [
                ("REQUEST_JOBS_NORESULTS", 0),
                ("REQUEST_JOBS_SUCCESS", 1),
                ("REQUEST_JOBS_ERROR", 2),
                ("REQUEST_JOBS_DENIED", 3),
            ]
        },
        nested=[("JobsEntry", [("key", 1, INT32), ("value", 2, STRING)], True)],
    )
    _message(
        sched, "AcceptJobsRequest", [("cluster", 1, STRING), ("secret", 2, STRING), ("jobids", 3, INT32, REPEATED, "")]
    )
    _message(
        sched,
        "AcceptJobsResponse",
        [("status", 1, ENUM, OPTIONAL, p + "AcceptJobsResponse.ResultType")],
        enums={
            "ResultType": [
                ("RESULT_TYPE_UNSPECIFIED", 0),
                ("RESULT_TYPE_PARTIAL", 1),
                ("RESULT_TYPE_SUCCESS", 2),
                ("RESULT_TYPE_ERROR", 3),
            ]
        },
    )
    _message(sched, "UpdateStateRequest", [("cluster", 1, STRING), ("secret", 2, STRING), ("payload", 3, STRING)])
    _message(
        sched,
        "UpdateStateResponse",
        [("status", 1, ENUM, OPTIONAL, p + "UpdateStateResponse.ResultType")],
        enums={
            "ResultType": [
                ("UPDATE_STATE_UNSPECIFIED", 0),
                ("UPDATE_STATE_PARTIAL", 1),
                ("UPDATE_STATE_SUCCESS", 2),
                ("UPDATE_STATE_ERROR", 3),
            ]
        },
    )
    _message(sched, "DeleteRequest", [("name", 1, STRING), ("secret", 2, STRING), ("subsytem", 3, STRING)])
    _message(
        sched,
        "DeleteResponse",
        [("status", 1, ENUM, OPTIONAL, p + "DeleteResponse.ResultType")],
        enums={
            "ResultType": [("DELETE_SUCCESS", 0), ("DELETE_ERROR", 1), ("DELETE_DENIED", 2), ("DELETE_NO_EXISTS", 3)]
        },
    )
    pool.Add(sched)

    graph = descriptor_pb2.FileDescriptorProto(name="oldclient/memory.proto", package="service", syntax="proto3")
    _message(graph, "SatisfyRequest", [("payload", 1, STRING), ("matcher", 2, STRING)])
    _message(
        graph,
        "SatisfyResponse",
        [
            ("clusters", 1, STRING, REPEATED, ""),
            ("status", 2, ENUM, OPTIONAL, ".service.SatisfyResponse.ResultType"),
            ("total_clusters", 3, INT32),
            ("total_matches", 4, INT32),
            ("total_mismatches", 5, INT32),
        ],
        enums={"ResultType": [("RESULT_TYPE_UNSPECIFIED", 0), ("RESULT_TYPE_SUCCESS", 1), ("RESULT_TYPE_ERROR", 2)]},
    )
    pool.Add(graph)

    def cls(full_name):
        return message_factory.GetMessageClass(pool.FindMessageTypeByName(full_name))

    return cls


def call(channel, service, method, request, response_cls):
    stub = channel.unary_unary(
        f"/{service}/{method}",
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=response_cls.FromString,
    )
    return stub(request)


def test_old_client_flow(server_factory):
    server = server_factory()
    msg = build_contract()
    svc = "convergedcomputing.org.grpc.v1.RainbowScheduler"
    ns = "convergedcomputing.org.grpc.v1."
    with grpc.insecure_channel(server.address) as channel:
        reg = call(
            channel,
            svc,
            "Register",
            msg(ns + "RegisterRequest")(
                name="keebler", secret=REGISTRATION_SECRET, nodes=example("cluster-nodes.json")
            ),
            msg(ns + "RegisterResponse"),
        )
        assert reg.status == 1 and reg.token and reg.secret

        state = call(
            channel,
            svc,
            "UpdateState",
            msg(ns + "UpdateStateRequest")(cluster="keebler", secret=reg.secret, payload=example("cluster-state.json")),
            msg(ns + "UpdateStateResponse"),
        )
        assert state.status == 2

        # old clients ask the graph service before submitting
        sat = call(
            channel,
            "service.MemoryGraph",
            "Satisfy",
            msg("service.SatisfyRequest")(payload=example("jobspec-constraint.yaml"), matcher="match"),
            msg("service.SatisfyResponse"),
        )
        assert list(sat.clusters) == ["keebler"] and sat.total_matches == 1

        request = msg(ns + "SubmitJobRequest")(
            name="old", jobspec=example("jobspec-constraint.yaml"), select_algorithm="random"
        )
        entry = request.clusters.add()
        entry.name, entry.token = "keebler", reg.token
        submitted = call(channel, svc, "SubmitJob", request, msg(ns + "SubmitJobResponse"))
        assert submitted.status == 1 and submitted.cluster == "keebler" and submitted.jobid > 0

        received = call(
            channel,
            svc,
            "ReceiveJobs",
            msg(ns + "ReceiveJobsRequest")(cluster="keebler", secret=reg.secret, maxJobs=0),
            msg(ns + "ReceiveJobsResponse"),
        )
        assert received.status == 1
        job = json.loads(received.jobs[submitted.jobid])
        assert set(job) == {"id", "cluster", "name", "jobspec", "command"}

        accepted = call(
            channel,
            svc,
            "AcceptJobs",
            msg(ns + "AcceptJobsRequest")(cluster="keebler", secret=reg.secret, jobids=[submitted.jobid]),
            msg(ns + "AcceptJobsResponse"),
        )
        assert accepted.status == 2

        deleted = call(
            channel,
            svc,
            "Delete",
            msg(ns + "DeleteRequest")(name="keebler", secret=reg.secret),
            msg(ns + "DeleteResponse"),
        )
        assert deleted.status == 0
