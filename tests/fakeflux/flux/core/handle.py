"""``flux.Flux``: a handle to the current fake instance."""

from __future__ import annotations

import errno

from flux import _fake


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
