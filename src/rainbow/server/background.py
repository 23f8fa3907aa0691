"""A real server on its own event loop in a background thread (the demo, tests, embedding)."""

from __future__ import annotations

import asyncio
import threading

from rainbow.scheduler import Scheduler
from rainbow.server.serve import RainbowServer, ServerConfig, start


class BackgroundServer:
    """``start()`` binds ``config.host`` (port 0: a free one) and serves until ``stop()``."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.port: int | None = None
        self.scheduler: Scheduler | None = None
        self.server: RainbowServer | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="rainbow-server", daemon=True)

    @property
    def address(self) -> str:
        return f"{self.config.host.rsplit(':', 1)[0]}:{self.port}"

    def _main(self) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
        finally:
            self._finish_tasks()
            self._loop.close()

    def _finish_tasks(self) -> None:
        """Cancel what still runs on the loop (stream handlers, timers) and let it end, as ``asyncio.run``
        does: a task left pending when the loop closes is reported as destroyed."""
        pending = [task for task in asyncio.all_tasks(self._loop) if not task.done()]
        for task in pending:
            task.cancel()
        if pending:
            self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self._loop.run_until_complete(self._loop.shutdown_asyncgens())

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        self.server = await start(self.config)
        self.scheduler, self.port = self.server.scheduler, self.server.port
        self._ready.set()
        await self._stop.wait()
        await self.server.stop(grace=0.5)

    def start(self, timeout: float = 30) -> BackgroundServer:
        """Start serving; raises what start-up raised (bad settings, a port in use...)."""
        self._thread.start()
        self._ready.wait(timeout)
        if self._error is not None:
            raise self._error
        return self

    def stop(self, timeout: float = 30) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout)
