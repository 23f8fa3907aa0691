"""``flux.Flux``: a handle to the current fake instance."""

from __future__ import annotations

import copy
import errno
from typing import Any

from flux import _fake


class _RPC:
    """What ``h.rpc(topic)`` returns: ``get()`` gives the response payload (a dict)."""

    def __init__(self, payload: Any) -> None:
        self._payload = payload

    def get(self) -> Any:
        return copy.deepcopy(self._payload)


class Flux:
    def __init__(self, url: str | None = None, flags: int = 0) -> None:
        self.instance = _fake.current()
        if url is not None and url != self.instance.uri:
            raise OSError(errno.ENOENT, f"cannot connect to {url}")

    def attr_get(self, name: str) -> str:
        try:
            return self.instance.attrs[name]
        except KeyError:
            raise OSError(errno.ENOENT, "No such file or directory") from None

    def rpc(self, topic: str, payload: Any = None, nodeid: int = 0, flags: int = 0) -> _RPC:
        if topic == "config.get":
            return _RPC(self.instance.config)
        if topic == "resource.get-xml":
            return _RPC({"xml": self.instance.xml})
        raise OSError(errno.ENOSYS, "Function not implemented")
