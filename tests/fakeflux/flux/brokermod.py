"""Fake ``flux.brokermod`` (tests only): enough for ``flux_plugins/rainbow_agent.py`` to be loaded."""

from __future__ import annotations

from typing import Any


def request_handler(topic: str, prefix: bool = True, allow_guest: bool = False) -> Any:
    def decorator(func: Any) -> Any:
        func._flux_handler = {"topic": topic, "prefix": prefix, "allow_guest": allow_guest}
        return func

    return decorator


class BrokerModule:
    def __init__(self, h: Any, *args: str) -> None:
        self._h = h
        self._args = args

    @property
    def handle(self) -> Any:
        return self._h

    @property
    def name(self) -> str:
        return "rainbow_agent"

    @property
    def args(self) -> tuple[str, ...]:
        return self._args

    def run(self) -> None:
        pass
