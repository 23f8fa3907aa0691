"""`rainbow server`: flags as users of the Go server know them."""

from __future__ import annotations

import argparse
import asyncio
import logging
import time

from rainbow.server.serve import DEFAULT_ADDRESS, ServerConfig, serve

# Go server levels 0..5 -> Python logging levels.
_NUMERIC_LEVELS = {0: logging.CRITICAL, 1: logging.ERROR, 2: logging.WARNING, 3: logging.INFO,
                   4: logging.DEBUG, 5: logging.DEBUG}


def log_level(value: str) -> int:
    """A Go-style number (0-5) or a Python level name (info, debug, ...)."""
    if value.isdigit():
        number = int(value)
        if number not in _NUMERIC_LEVELS:
            raise argparse.ArgumentTypeError("numeric levels are 0 (quiet) to 5 (debug)")
        return _NUMERIC_LEVELS[number]
    level = logging.getLevelName(value.upper())
    if not isinstance(level, int):
        raise argparse.ArgumentTypeError(f"unknown log level {value!r}")
    return level


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=DEFAULT_ADDRESS, help=f"address to listen on (default {DEFAULT_ADDRESS})")
    parser.add_argument("--db", default="rainbow.db", help="SQLite database file (default rainbow.db)")
    parser.add_argument("--secret", help="registration secret clusters must present (default: generated "
                        "on first start, stored hashed)")
    parser.add_argument("--global-token", help="one submit token for every cluster (default: one per cluster)")
    parser.add_argument("--name", default="rainbow", help="server name (default rainbow)")
    parser.add_argument("--config", dest="config_file", help="rainbow-config.yaml with a scheduler section")
    parser.add_argument("--select-algorithm", help="selection algorithm (default random)")
    parser.add_argument("--match-algorithm", help="match algorithm (default match)")
    parser.add_argument("--cleanup", action="store_true", help="delete the database before starting")
    parser.add_argument("--lease-seconds", type=float, default=300.0,
                        help="how long received jobs stay leased to their receiver (default 300)")
    parser.add_argument("--cluster-timeout", type=float, default=600.0,
                        help="seconds of silence after which a cluster is unreachable (0: never; default 600)")
    parser.add_argument("--workers", type=int, default=16, help="worker threads for store and match work")
    parser.add_argument("--cert", help="server certificate (PEM) for TLS")
    parser.add_argument("--key", help="server private key (PEM) for TLS")
    parser.add_argument("--ca-cert", help="CA certificate (PEM): require client certificates it signed (mutual TLS)")
    parser.add_argument("--loglevel", type=log_level, default=logging.INFO,
                        help="0-5 (Go server style) or a level name (default info)")


class _Formatter(logging.Formatter):
    """The standard format, with the time text made once per second instead of once per line."""

    def __init__(self, fmt: str) -> None:
        super().__init__(fmt)
        self._second = -1
        self._text = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        second = int(record.created)
        if second != self._second:
            self._text = time.strftime(self.default_time_format, self.converter(second))
            self._second = second
        return f"{self._text},{int(record.msecs):03d}"


def setup_logging(level: int) -> None:
    """One line per request is logged, so make a line cheap: no caller lookup, no thread/process fields
    (the format uses neither), the time text made once per second (see "Optimization" in the logging HOWTO).
    """
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler()
    handler.setFormatter(_Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])


def run(args: argparse.Namespace) -> int:
    setup_logging(args.loglevel)
    config = ServerConfig(
        host=args.host,
        db=args.db,
        secret=args.secret,
        global_token=args.global_token,
        name=args.name,
        config_file=args.config_file,
        select_algorithm=args.select_algorithm,
        match_algorithm=args.match_algorithm,
        cleanup=args.cleanup,
        lease_seconds=args.lease_seconds,
        cluster_timeout=args.cluster_timeout,
        workers=args.workers,
        cert=args.cert,
        key=args.key,
        ca_cert=args.ca_cert,
    )
    asyncio.run(serve(config))
    return 0
