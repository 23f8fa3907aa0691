"""``rainbow-config.yaml``: load, validate (JSON Schema) and save without losing keys.

The format is the one existing rainbow users have::

    scheduler: {name, secret, algorithms: {selection: {name, options}, match: {name, options}}}
    cluster: {name, secret}
    graphdatabase: {name, host, options: {host}}
    clusters: [{name, token}, ...]
    user: {name, token}          (a user's identity: their user token)

Unknown keys are kept on a round trip. Files that hold credentials are written
with mode 0600.
"""

from __future__ import annotations

import copy
import os
import tempfile
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from rainbow.errors import InvalidArgument
from rainbow.jobspec import yaml_problem

DEFAULT_PORT = 50051
DEFAULT_HOST = f"localhost:{DEFAULT_PORT}"


CONFIG_ENV = "RAINBOW_CONFIG"
DEFAULT_CONFIG_PATH = "rainbow-config.yaml"


def config_path(given: str | os.PathLike | None = None) -> tuple[Path, bool]:
    """The config file to use and whether it was named: ``given`` (--config-path), else
    ``$RAINBOW_CONFIG``, else ``./rainbow-config.yaml`` (the one default: it may not exist)."""
    if given:
        return Path(given), True
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV]), True
    return Path(DEFAULT_CONFIG_PATH), False


def with_port(address: str, port: int = DEFAULT_PORT) -> str:
    """``address`` with the rainbow port added when it names none ("127.0.0.1" -> "127.0.0.1:50051").

    gRPC itself would dial 443 for a bare host. Targets with a scheme (``dns:///``,
    ``unix:``, ``ipv4:``...) are left as they are.
    """
    text = address.strip()
    if not text or "://" in text or text.startswith(("unix:", "unix-abstract:", "dns:", "ipv4:", "ipv6:", "vsock:")):
        return text
    if text.startswith("["):
        return text if "]:" in text else f"{text}:{port}"
    if text.count(":") > 1:  # a bare IPv6 address
        return f"[{text}]:{port}"
    return text if ":" in text else f"{text}:{port}"
DEFAULT_MATCH = "match"
DEFAULT_SELECTION = "random"

_ALGORITHM = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "options": {"type": ["object", "null"]},
    },
}

CONFIG_SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "rainbow-config",
    "type": "object",
    "properties": {
        "scheduler": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "secret": {"type": "string"},
                "algorithms": {
                    "type": "object",
                    "properties": {"selection": _ALGORITHM, "match": _ALGORITHM},
                },
            },
        },
        "cluster": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "secret": {"type": "string"}},
        },
        "graphdatabase": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "host": {"type": "string"},
                "options": {"type": ["object", "null"]},
            },
        },
        "user": {
            "type": ["object", "null"],
            "properties": {"name": {"type": "string"}, "token": {"type": "string"}},
        },
        "clusters": {
            "type": ["array", "null"],
            "items": {
                "type": "object",
                "required": ["name"],
                "properties": {"name": {"type": "string"}, "token": {"type": "string"}},
            },
        },
    },
}


def _error_path(error: jsonschema.ValidationError) -> str:
    parts = []
    for part in error.absolute_path:
        parts.append(f"[{part}]" if isinstance(part, int) else f".{part}" if parts else str(part))
    return "".join(parts) or "(top level)"


def validate_config(data: Any, source: str = "config") -> None:
    """Raise InvalidArgument naming the first offending path."""
    if not isinstance(data, dict):
        raise InvalidArgument(f"{source}: expected a mapping at the top level")
    errors = sorted(jsonschema.Draft7Validator(CONFIG_SCHEMA).iter_errors(data), key=lambda e: e.path)
    if errors:
        error = errors[0]
        path = _error_path(error)
        raise InvalidArgument(f"{source}: {path}: {error.message}", field=path)


class RainbowConfig:
    """A ``rainbow-config.yaml`` document.

    ``RainbowConfig.load(path)`` reads and validates; ``save()`` writes it back
    atomically (0600) with every key it was loaded with.
    """

    def __init__(self, data: dict[str, Any] | None = None, path: str | os.PathLike | None = None) -> None:
        self.data: dict[str, Any] = data if data is not None else {}
        self.path = Path(path) if path else None
        validate_config(self.data, str(self.path or "config"))

    @classmethod
    def load(cls, path: str | os.PathLike) -> RainbowConfig:
        path = Path(path)
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise InvalidArgument(f"config file {path} does not exist", field="config") from None
        except OSError as exc:
            raise InvalidArgument(f"config file {path} cannot be read: {exc.strerror}", field="config") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InvalidArgument(f"{path}: not valid YAML: {yaml_problem(exc)}", field="config") from None
        return cls({} if data is None else data, path)

    @classmethod
    def new(
        cls,
        cluster_name: str,
        host: str = DEFAULT_HOST,
        match_algorithm: str = DEFAULT_MATCH,
        selection_algorithm: str = DEFAULT_SELECTION,
        path: str | os.PathLike | None = None,
    ) -> RainbowConfig:
        data = {
            "scheduler": {
                "name": "rainbow",
                "algorithms": {
                    "selection": {"name": selection_algorithm},
                    "match": {"name": match_algorithm},
                },
            },
            "cluster": {"name": cluster_name},
            "graphdatabase": {"name": "memory", "host": host, "options": {"host": host}},
            "clusters": [],
        }
        return cls(data, path)

    def save(self, path: str | os.PathLike | None = None) -> Path:
        """Write atomically with mode 0600 (the file may hold secrets and tokens)."""
        target = Path(path) if path else self.path
        if target is None:
            raise InvalidArgument("no path to save the config to", field="config")
        validate_config(self.data, str(target))
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as handle:
                yaml.safe_dump(self.data, handle, sort_keys=False, default_flow_style=False)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.path = target
        return target

    def _section(self, name: str) -> dict[str, Any]:
        value = self.data.get(name)
        if value is None:
            value = self.data[name] = {}
        return value

    def _algorithm(self, kind: str) -> dict[str, Any]:
        algorithms = self.data.get("scheduler", {}).get("algorithms") or {}
        return algorithms.get(kind) or {}

    def configured_algorithm(self, kind: str) -> str | None:
        """The ``match``/``selection`` algorithm the file names, or None when it names none."""
        return self._algorithm(kind).get("name") or None

    @property
    def match_algorithm(self) -> str:
        return self._algorithm("match").get("name") or DEFAULT_MATCH

    @property
    def selection_algorithm(self) -> str:
        return self._algorithm("selection").get("name") or DEFAULT_SELECTION

    @property
    def selection_options(self) -> dict[str, Any]:
        return copy.deepcopy(self._algorithm("selection").get("options") or {})

    def set_algorithm(self, kind: str, name: str) -> None:
        algorithms = self._section("scheduler").setdefault("algorithms", {})
        algorithms.setdefault(kind, {})["name"] = name

    @property
    def scheduler_secret(self) -> str | None:
        return self.data.get("scheduler", {}).get("secret")

    @property
    def scheduler_name(self) -> str | None:
        return self.data.get("scheduler", {}).get("name")

    @property
    def host(self) -> str | None:
        graph = self.data.get("graphdatabase") or {}
        return graph.get("host") or (graph.get("options") or {}).get("host")

    @property
    def cluster_name(self) -> str | None:
        return (self.data.get("cluster") or {}).get("name")

    @property
    def cluster_secret(self) -> str | None:
        return (self.data.get("cluster") or {}).get("secret")

    def set_cluster(self, name: str, secret: str | None = None) -> None:
        cluster = self._section("cluster")
        cluster["name"] = name
        if secret is not None:
            cluster["secret"] = secret

    @property
    def user_name(self) -> str | None:
        return (self.data.get("user") or {}).get("name")

    @property
    def user_token(self) -> str | None:
        return (self.data.get("user") or {}).get("token")

    def set_user(self, name: str, token: str) -> None:
        """Record the identity (user name and token) this config submits as."""
        self.data["user"] = {"name": name, "token": token}

    @property
    def clusters(self) -> list[dict[str, str]]:
        return list(self.data.get("clusters") or [])

    def token_for(self, name: str) -> str | None:
        for entry in self.clusters:
            if entry.get("name") == name:
                return entry.get("token")
        return None

    def add_cluster_token(self, name: str, token: str) -> None:
        """Record (or replace) the submit token of a cluster."""
        clusters = self.data.get("clusters") or []
        for entry in clusters:
            if entry.get("name") == name:
                entry["token"] = token
                break
        else:
            clusters.append({"name": name, "token": token})
        self.data["clusters"] = clusters
