"""`rainbow server`: flags as users of the Go server know them."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import time

from rainbow.durations import parse_duration
from rainbow.limits import Limits, MiB
from rainbow.oidc import OIDCSettings
from rainbow.scheduler.context import EACH_LINE
from rainbow.server.serve import DEFAULT_ADDRESS, ServerConfig, serve

# The server process's garbage collector runs its first generation after 10,000 new container objects instead of
# Python's 700: a batch of 10,000 jobs makes hundreds of thousands of short-lived ones, and at 700 the full
# collections that follow walk every cluster graph held in memory each time (10 clusters, 110,000 one-node jobs
# in SubmitJobs calls of 10,000: 0.74 s of collecting at 700, 0.30 s at 10,000).
GC_THRESHOLDS = (10_000, 10, 10)

DESCRIPTION = """\
Run the rainbow scheduler: clusters register with it and pull their jobs,
submitters send jobs it places on a cluster that can run them. One port serves
the RainbowScheduler and MemoryGraph gRPC services and the gRPC health check.
State lives in a SQLite file (--db) or, for several replicas, in PostgreSQL
(--store). Without --secret, a registration secret is generated on the first
start and printed once."""

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
    parser.add_argument("--store", help="store URL: postgresql://user:password@host:port/dbname runs this server "
                        "as one of several replicas sharing that database (overrides --db)")
    parser.add_argument("--secret", help="registration secret clusters must present (default: generated "
                        "on first start, stored hashed)")
    parser.add_argument("--global-token", help="one submit token for every cluster (default: one per cluster)")
    parser.add_argument("--name", default="rainbow", help="server name (default rainbow)")
    parser.add_argument("--config", dest="config_file", help="rainbow-config.yaml with a scheduler section")
    parser.add_argument("--select-algorithm", help="selection algorithm (default random)")
    parser.add_argument("--match-algorithm", help="match algorithm (default match)")
    parser.add_argument("--cleanup", action="store_true", help="delete the SQLite database file before starting "
                        "(a PostgreSQL store is never deleted)")
    parser.add_argument("--lease-seconds", type=float, default=300.0,
                        help="how long received jobs stay leased to their receiver (default 300)")
    parser.add_argument("--cluster-timeout", type=float, default=600.0,
                        help="seconds of silence after which a cluster is unreachable (0: never; default 600)")
    parser.add_argument("--store-wait", type=float, default=0.0, metavar="SECONDS",
                        help="at start, retry an unreachable store (a PostgreSQL server starting alongside) for up "
                        "to this long before giving up (default 0: fail at once)")
    parser.add_argument("--workers", type=int, default=16, help="worker threads for store and match work")
    defaults = Limits()
    limits = parser.add_argument_group("limits (past them: RESOURCE_EXHAUSTED)")
    limits.add_argument("--max-message-mb", type=int, default=defaults.max_message_bytes // MiB,
                        help="largest gRPC message in MiB (default %(default)s; a 16k-node JGF is ~300)")
    limits.add_argument("--max-vertices", type=int, default=defaults.max_jgf_vertices,
                        help="most vertices in one JGF (default %(default)s)")
    limits.add_argument("--max-edges", type=int, default=defaults.max_jgf_edges,
                        help="most edges in one JGF (default %(default)s)")
    limits.add_argument("--max-jobspec-kb", type=int, default=defaults.max_jobspec_bytes // 1024,
                        help="largest jobspec in KiB (default %(default)s)")
    limits.add_argument("--max-state-kb", type=int, default=defaults.max_state_bytes // 1024,
                        help="largest UpdateState payload in KiB (default %(default)s)")
    limits.add_argument("--max-state-keys", type=int, default=defaults.max_state_keys,
                        help="most keys in one UpdateState payload (default %(default)s)")
    limits.add_argument("--max-receive-jobs", type=int, default=defaults.max_receive_jobs,
                        help="most jobs handed out by one ReceiveJobs (default %(default)s)")
    limits.add_argument("--max-batch-jobs", type=int, default=defaults.max_batch_jobs,
                        help="most jobs in one SubmitJobs call, array copies counted (default %(default)s)")
    limits.add_argument("--max-batch-mb", type=int, default=defaults.max_batch_bytes // MiB,
                        help="most MiB of names and jobspecs in one SubmitJobs call (default %(default)s)")
    parser.add_argument("--cert", help="server certificate (PEM) for TLS")
    parser.add_argument("--key", help="server private key (PEM) for TLS")
    parser.add_argument("--ca-cert", help="CA certificate (PEM): require client certificates it signed (mutual TLS)")
    parser.add_argument("--metrics-port", type=int,
                        help="serve Prometheus metrics over HTTP on this port (0: a free one; default: off)")
    parser.add_argument("--metrics-host", default="127.0.0.1",
                        help="address the metrics endpoint listens on (default 127.0.0.1)")
    parser.add_argument("--web", metavar="HOST:PORT",
                        help="serve the web dashboard on this address, e.g. 127.0.0.1:8080 (port 0: a free one; "
                        "TLS with --cert/--key as gRPC; needs the web extra; default: off)")
    users = parser.add_argument_group("users (docs/users.md)")
    users.add_argument("--legacy-user", default="legacy", metavar="NAME",
                       help="the user that requests without a user token (cluster tokens, the global token) act "
                       "as (default legacy)")
    users.add_argument("--no-legacy", action="store_true",
                       help="refuse requests without a user token (UNAUTHENTICATED); agents are not affected")
    users.add_argument("--oidc-jwks", metavar="FILE_OR_URL",
                       help="accept JWTs signed by these keys (a JWKS file or URL) as user tokens")
    users.add_argument("--oidc-issuer", metavar="ISS", help="the issuer (iss) an OIDC token must name")
    users.add_argument("--oidc-audience", metavar="AUD", help="the audience (aud) an OIDC token must name")
    users.add_argument("--oidc-user-claim", default="sub", help="the claim naming the user (default sub)")
    users.add_argument("--oidc-groups-claim", default="groups",
                       help="the claim listing the user's groups (default groups)")
    fairshare = parser.add_argument_group("fair share (docs/users.md)")
    fairshare.add_argument("--fairshare-half-life", default="7d", metavar="FSD",
                           help="usage counts half as much this long after it happened (a Flux duration such as "
                           "7d or 12h; 0: never decays; default 7d)")
    fairshare.add_argument("--fairshare-refresh", type=float, default=10.0, metavar="SECONDS",
                           help="seconds usage, shares and quotas read from the store are reused (default 10)")
    parser.add_argument("--log-level", "--loglevel", dest="loglevel", metavar="LEVEL", type=log_level,
                        default=logging.INFO,
                        help="info (default: start-up, placements, job states, warnings), debug (also one line "
                        "per request, selection traces), warning, error, or 0-5 as the Go server counts")


class _Formatter(logging.Formatter):
    """The standard format, with the time text made once per second instead of once per line; each line
    of a record of several lines (``scheduler.context.log_lines``) gets the prefix a record of its own would."""

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

    def formatMessage(self, record: logging.LogRecord) -> str:
        text = super().formatMessage(record)
        if not getattr(record, EACH_LINE, False):
            return text
        prefix = text[: len(text) - len(record.message)]  # the format ends with the message
        return "\n".join(prefix + line for line in record.message.split("\n"))


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
        store=args.store,
        secret=args.secret,
        global_token=args.global_token,
        name=args.name,
        config_file=args.config_file,
        select_algorithm=args.select_algorithm,
        match_algorithm=args.match_algorithm,
        cleanup=args.cleanup,
        lease_seconds=args.lease_seconds,
        cluster_timeout=args.cluster_timeout,
        store_wait=args.store_wait,
        workers=args.workers,
        limits=Limits(
            max_message_bytes=args.max_message_mb * MiB,
            max_jgf_vertices=args.max_vertices,
            max_jgf_edges=args.max_edges,
            max_jobspec_bytes=args.max_jobspec_kb * 1024,
            max_state_bytes=args.max_state_kb * 1024,
            max_state_keys=args.max_state_keys,
            max_receive_jobs=args.max_receive_jobs,
            max_batch_jobs=args.max_batch_jobs,
            max_batch_bytes=args.max_batch_mb * MiB,
        ),
        cert=args.cert,
        key=args.key,
        ca_cert=args.ca_cert,
        metrics_port=args.metrics_port,
        metrics_host=args.metrics_host,
        web=args.web,
        legacy_user=None if args.no_legacy else args.legacy_user,
        oidc=_oidc_settings(args),
        fairshare_half_life=parse_duration(args.fairshare_half_life, "fairshare-half-life"),
        fairshare_refresh=args.fairshare_refresh,
    )
    gc.set_threshold(*GC_THRESHOLDS)
    asyncio.run(serve(config))
    return 0


def _oidc_settings(args: argparse.Namespace) -> OIDCSettings | None:
    """The OIDC settings, when any of the three that go together is given (OIDCKeys checks all three are)."""
    if not (args.oidc_jwks or args.oidc_issuer or args.oidc_audience):
        return None
    return OIDCSettings(args.oidc_jwks or "", args.oidc_issuer or "", args.oidc_audience or "",
                        args.oidc_user_claim, args.oidc_groups_claim)
