"""``flux.Flux``: a handle to the current fake instance."""

from __future__ import annotations

import copy
import errno
import json
from typing import Any

from flux import _fake

FLUX_NODEID_ANY = 0xFFFFFFFF


class _RPC:
    """What ``h.rpc(topic)`` returns: ``get()`` gives the decoded JSON payload, ``get_str()`` its text."""

    def __init__(self, payload: Any) -> None:
        self._payload = payload

    def get(self) -> Any:
        return json.loads(self._payload) if isinstance(self._payload, str) else copy.deepcopy(self._payload)

    def get_str(self) -> str:
        return self._payload if isinstance(self._payload, str) else json.dumps(self._payload)


class _Failed:
    """An RPC whose response is an error: ``get()``/``get_str()`` raise it, as flux-core's futures do."""

    def __init__(self, error: OSError) -> None:
        self._error = error

    def get(self) -> Any:
        raise self._error

    def get_str(self) -> str:
        raise self._error


class Flux:
    def __init__(self, url: str | None = None, flags: int = 0) -> None:
        self.instance = _fake.current()
        if url is not None and url != self.instance.uri:
            raise OSError(errno.ENOENT, f"cannot connect to {url}")

    def attr_get(self, attr_name: str) -> str:
        try:
            return self.instance.attrs[attr_name]
        except KeyError:
            raise OSError(errno.ENOENT, "No such file or directory") from None

    def rpc(self, topic: str, payload: Any = None, nodeid: int = FLUX_NODEID_ANY, flags: int = 0) -> Any:
        if topic == "config.get":
            return _RPC(self.instance.config)
        if topic == "job-manager.queue-status":
            return self._queue_status((payload or {}).get("name"))
        if topic == "resource.topo-get":
            rank = 0 if nodeid == FLUX_NODEID_ANY else nodeid
            if not 0 <= rank < len(self.instance.xml) or self.instance.xml[rank] is None:
                return _Failed(OSError(errno.EHOSTUNREACH, "No route to host"))
            return _RPC(self.instance.xml[rank])
        return _Failed(OSError(errno.ENOSYS, f"Unknown service method '{topic}'"))

    def _queue_status(self, name: str | None) -> Any:
        """``{"enable", "start"}`` plus ``disable_reason`` for a disabled queue, as the job manager answers; a
        name the configuration does not have is an error, and so is none when it has queues."""
        queues = self.instance.config.get("queues", {})
        if (name or "") not in queues and (name or queues):
            error = f"'{name}' is not a valid queue" if name else "a named queue is required"
            return _Failed(OSError(errno.EINVAL, error))
        state = self.instance.queue_state.get(name or "", {})
        status = {"enable": state.get("enabled", True), "start": state.get("started", False)}
        if not status["enable"]:
            status["disable_reason"] = state.get("reason", "")
        return _RPC(status)
