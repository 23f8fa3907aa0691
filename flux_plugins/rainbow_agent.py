"""Rainbow's pull agent as a Flux broker module (flux-core >= 0.84).

    flux module load /path/to/flux_plugins/rainbow_agent.py --config-path=/path/rainbow-config.yaml
    flux module stats rainbow_agent          # what the agent did (also: the rainbow_agent.stats topic)
    flux module remove rainbow_agent

Arguments are those of ``flux python -m rainbow.agent`` (``--interval=2``,
``--hooks=FILE``, ``--max-jobs=N``...); the executor is always Flux. ``rainbow``
must be importable by the broker's Python (e.g. ``PYTHONPATH`` or
``FLUX_PYTHONPATH_PREPEND`` when the instance starts); when it is not, the load
fails with one line saying so instead of a traceback.
"""

import sys

import flux
import flux.message
from flux.brokermod import BrokerModule, request_handler


def cannot_import(exc: ImportError) -> str:
    """The one line the loader prints when rainbow (or a dependency) is missing from the broker's Python."""
    missing = exc.name or str(exc)
    what = "rainbow" if missing.split(".")[0] == "rainbow" else f"{missing} (needed by rainbow)"
    python = f"Python {sys.version_info.major}.{sys.version_info.minor} in {sys.prefix}"
    return (
        f"rainbow_agent: the broker's {python} cannot import {what}: install rainbow into it "
        "(flux python -m pip install /path/to/rainbow), or set PYTHONPATH or FLUX_PYTHONPATH_PREPEND "
        "to include it before the Flux instance starts"
    )


class RainbowAgent(BrokerModule):
    """Runs the agent in a thread; the reactor answers stats requests and stops it on unload."""

    def __init__(self, h: "flux.Flux", *args: str) -> None:
        super().__init__(h, *args)
        import logging

        try:
            import rainbow.agent.core  # noqa: F401 - the agent and its dependencies (grpc, yaml...)
            from rainbow.flux.module import AgentService, FluxLogHandler, parse_module_args
        except ImportError as exc:
            # The module loader prints a ValueError's message as one line, without a traceback.
            raise ValueError(cannot_import(exc)) from None

        uri = h.attr_get("local-uri")
        handler = FluxLogHandler(uri)
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        root = logging.getLogger("rainbow")
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        self.service = AgentService(parse_module_args(args, self.name), uri)
        self.service.start()

    @request_handler("stats")
    def stats(self, msg: "flux.message.Message") -> None:
        self.handle.respond(msg, self.service.snapshot())

    @request_handler("stats-get")
    def stats_get(self, msg: "flux.message.Message") -> None:
        self.handle.respond(msg, self.service.snapshot())

    def run(self) -> None:
        try:
            super().run()
        finally:
            self.service.stop()
