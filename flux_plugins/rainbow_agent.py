"""Rainbow's pull agent as a Flux broker module (flux-core >= 0.84).

    flux module load /path/to/flux_plugins/rainbow_agent.py --config-path=/path/rainbow-config.yaml
    flux module stats rainbow_agent          # what the agent did (also: the rainbow_agent.stats topic)
    flux module remove rainbow_agent

Arguments are those of ``flux python -m rainbow.agent`` (``--interval=2``,
``--hooks=FILE``, ``--max-jobs=N``...); the executor is always Flux. ``rainbow``
must be importable by the broker's Python (e.g. ``PYTHONPATH`` or
``FLUX_PYTHONPATH_PREPEND`` when the instance starts).
"""

import flux
import flux.message
from flux.brokermod import BrokerModule, request_handler


class RainbowAgent(BrokerModule):
    """Runs the agent in a thread; the reactor answers stats requests and stops it on unload."""

    def __init__(self, h: "flux.Flux", *args: str) -> None:
        super().__init__(h, *args)
        import logging

        from rainbow.flux.module import AgentService, FluxLogHandler, parse_module_args

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
