"""``rainbow server`` with SubmitJob stopped after a stage: what each stage adds to a request's cost.

``python -m bench.staged_server STAGE [rainbow server options]``. A measuring
tool only (``bench/submit_bench.py`` starts it): it replaces the servicer's
``SubmitJob`` before the server starts, keeping everything else of the server
(its process, threads, registry, store and other RPCs) as it is.

- ``answer``: the real servicer method's wrapper (errors, metrics, request log)
  around a handler that answers a fixed reply: gRPC, protobuf and rainbow's
  per-request frame, no scheduling.
- ``place``: the handler authorizes, parses (cached), matches and selects as
  ``SubmitJob`` does, and answers without storing the job.
- ``full``: the server unchanged (the job is stored, group-committed, before
  the answer).
"""

from __future__ import annotations

import sys

STAGES = ("answer", "place", "full")


def stage_submit(stage: str) -> None:
    """Replace ``RainbowSchedulerServicer.SubmitJob`` by its cut at ``stage``."""
    from rainbow.protos import rainbow_pb2
    from rainbow.server import servicers
    from rainbow.server.servicers import RainbowSchedulerServicer, rpc

    if stage == "full":
        return
    reply = rainbow_pb2.SubmitJobResponse(
        request_id="0" * 32, status=rainbow_pb2.SubmitJobResponse.SUBMIT_SUCCESS, jobid=1,
    )

    async def answer(self, request, context):
        return reply

    async def place(self, request, context):
        prepared = await self.prepare_submit(request, context)  # everything SubmitJob does before storing
        placed = rainbow_pb2.SubmitJobResponse()
        placed.CopyFrom(reply)
        placed.request_id = servicers._request_id()
        placed.cluster = prepared.job.cluster
        placed.clusters.append(prepared.job.cluster)
        return placed

    handler = {"answer": answer, "place": place}[stage]
    handler.__name__ = "SubmitJob"
    RainbowSchedulerServicer.SubmitJob = rpc(handler)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in STAGES:
        print(f"usage: python -m bench.staged_server {{{','.join(STAGES)}}} [rainbow server options]",
              file=sys.stderr)
        return 2
    stage_submit(args[0])
    from rainbow.cli import main as rainbow_main

    return rainbow_main(["server", *args[1:]])


if __name__ == "__main__":
    sys.exit(main())
