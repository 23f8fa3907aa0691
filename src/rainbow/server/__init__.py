"""gRPC server: servicers, serving, the `rainbow server` command."""

from rainbow.server.serve import RainbowServer, ServerConfig, open_scheduler, serve

__all__ = ["RainbowServer", "ServerConfig", "open_scheduler", "serve"]
