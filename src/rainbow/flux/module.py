"""The agent inside a Flux broker module (see ``flux_plugins/rainbow_agent.py``).

A broker module has one reactor: a blocking call in a callback stalls the
module. So the agent (gRPC calls to rainbow, and its Flux calls) runs in its
own thread with its own Flux handle, opened on the broker's ``local-uri``;
the reactor only answers requests (``<module>.stats``, and ``stats-get`` so
that ``flux module stats <module>`` shows what the agent did) from a
thread-safe snapshot, and stops the agent when the module is removed.
"""

from __future__ import annotations

import argparse
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger("rainbow.flux.module")


class ArgumentError(ValueError):
    """Bad module arguments (the module loader prints ValueErrors without a traceback)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise ArgumentError(f"{self.prog}: {message}")

    def exit(self, status: int = 0, message: str | None = None) -> None:  # type: ignore[override]
        raise ArgumentError(message or f"{self.prog}: exit {status}")


def parse_module_args(argv: Sequence[str], prog: str = "rainbow_agent") -> argparse.Namespace:
    """The agent's flags as module arguments (``--config-path=FILE --interval=2``...)."""
    from rainbow.agent.command import add_arguments

    parser = _Parser(prog=f"flux module load {prog}.py", add_help=False)
    add_arguments(parser)
    args = parser.parse_args(list(argv))
    if args.executor == "auto":
        args.executor = "flux"
    if args.once:
        raise ArgumentError("--once makes no sense in a broker module")
    return args


class FluxLogHandler(logging.Handler):
    """Python logging -> the broker's log (``flux dmesg``), through a handle of its own."""

    _LEVELS = ((logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6))

    def __init__(self, uri: str) -> None:
        super().__init__()
        from rainbow.flux.adapter import open_handle

        self._handle = open_handle(uri)
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        level = next((syslog for floor, syslog in self._LEVELS if record.levelno >= floor), 7)
        try:
            with self._lock:
                self._handle.log(level, self.format(record))
        except Exception:
            self.handleError(record)


class AgentService:
    """Runs the agent in a thread; ``snapshot()`` and ``stop()`` are safe from the reactor."""

    def __init__(self, args: argparse.Namespace, uri: str) -> None:
        from rainbow.agent.command import build_link, job_environment, parse_state
        from rainbow.errors import RainbowError

        self.args = args
        self.args.flux_uri = args.flux_uri or uri
        self.uri = uri
        try:
            self.link = build_link(args)
            job_environment(args.env)
            parse_state(args.state)
        except RainbowError as exc:
            raise ArgumentError(str(exc)) from exc
        for path in args.hooks:
            if not Path(path).is_file():
                raise ArgumentError(f"--hooks: {path} does not exist")
        self.agent: Any = None
        self.error = ""
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="rainbow-agent", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _main(self) -> None:
        from rainbow.agent.command import build_agent

        try:
            self.agent = build_agent(self.args, self.link)
            self._ready.set()
            log.info("rainbow agent for cluster %s started (server %s)", self.agent.cluster, self.agent.link.host)
            self.agent.run()
        except Exception as exc:
            self.error = str(exc)
            log.error("rainbow agent stopped: %s", exc)
        finally:
            self._ready.set()
            if self.agent is not None:
                self.agent.executor.close()
            self.link.client.close()

    def snapshot(self) -> dict[str, Any]:
        data: dict[str, Any] = self.agent.snapshot() if self.agent is not None else {}
        data["alive"] = self._thread.is_alive()
        data["error"] = self.error
        return data

    def stop(self, timeout: float = 10.0) -> None:
        if self.agent is not None:
            self.agent.stop()
        self._thread.join(timeout)
