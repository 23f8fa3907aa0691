"""The baseline: a bare grpc.aio server whose unary RPCs answer bytes of a given size.

``Echo`` answers a fixed size (``--response-size``); ``Sized`` answers the size
named at the start of the request. It runs as its own process with the same
server options as rainbow, so the benchmarks measure what gRPC itself allows for
messages of the same sizes.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import grpc

ECHO_METHOD = "/bench.Echo/Echo"
SIZED_METHOD = "/bench.Echo/Sized"


def sized_request(reply_size: int, request_size: int) -> bytes:
    """A request for ``SIZED_METHOD``: its reply will be ``reply_size`` bytes."""
    head = f"{reply_size}:".encode()
    return head + b"\x0a" * max(0, request_size - len(head))
MAX_MESSAGE = 1024 * 1024 * 1024


async def serve(host: str, response_size: int) -> None:
    reply = b"\x0a" * response_size

    replies: dict[int, bytes] = {}

    async def echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return reply

    async def sized(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        size = int(request.split(b":", 1)[0])
        if size not in replies:
            replies[size] = b"\x0a" * size
        return replies[size]

    handler = grpc.method_handlers_generic_handler(
        "bench.Echo",
        {"Echo": grpc.unary_unary_rpc_method_handler(echo), "Sized": grpc.unary_unary_rpc_method_handler(sized)},
    )
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE),
            ("grpc.max_send_message_length", MAX_MESSAGE),
            ("grpc.so_reuseport", 0),
        ]
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port(host)
    await server.start()
    print(f"echo server listening on {host.rsplit(':', 1)[0]}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1:0")
    parser.add_argument("--response-size", type=int, default=64)
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.response_size))


if __name__ == "__main__":
    main()
