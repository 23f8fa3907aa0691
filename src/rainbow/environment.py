"""Command options from environment variables, the way containers are configured.

Every option ``--some-flag`` of ``rainbow server`` can be given as ``RAINBOW_SERVER_SOME_FLAG`` (of
``rainbow agent``: ``RAINBOW_AGENT_SOME_FLAG``), and as ``RAINBOW_SERVER_SOME_FLAG_FILE`` naming a file that
holds the value (a mounted Kubernetes or podman secret; one trailing newline is dropped). A flag on the
command line wins over the variable. Switches take ``1/true/yes/on`` or ``0/false/no/off``; options that
can be repeated take one value.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path

from rainbow.errors import InvalidArgument

TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off", "")


def variable_name(prefix: str, option: str) -> str:
    """``RAINBOW_SERVER_`` + ``--metrics-port`` -> ``RAINBOW_SERVER_METRICS_PORT``."""
    return prefix + option.lstrip("-").replace("-", "_").upper()


def _raw_value(name: str, environ: Mapping[str, str]) -> str | None:
    if name in environ:
        return environ[name]
    path = environ.get(name + "_FILE")
    if path is None:
        return None
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise InvalidArgument(f"{name}_FILE: cannot read {path}: {exc.strerror}", field=name) from None
    return text[:-1] if text.endswith("\n") else text


def _convert(action: argparse.Action, name: str, value: str) -> object:
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        if value.strip().lower() not in TRUE + FALSE:
            raise InvalidArgument(f"{name}: expected one of {', '.join(TRUE + FALSE[:-1])}, got {value!r}", field=name)
        switched = value.strip().lower() in TRUE
        return switched if isinstance(action, argparse._StoreTrueAction) else not switched
    converted: object = value
    if action.type is not None:
        try:
            converted = action.type(value)
        except (argparse.ArgumentTypeError, TypeError, ValueError) as exc:
            detail = str(exc) if isinstance(exc, argparse.ArgumentTypeError) else f"invalid value {value!r}"
            raise InvalidArgument(f"{name}: {detail}", field=name) from None
    if action.choices is not None and converted not in action.choices:
        raise InvalidArgument(f"{name}: {value!r} is not one of {', '.join(map(str, action.choices))}", field=name)
    if isinstance(action, argparse._AppendAction):
        return [converted]
    return converted


def apply_environment(
    parser: argparse.ArgumentParser, prefix: str, environ: Mapping[str, str] | None = None
) -> list[str]:
    """Make the variables that are set the defaults of ``parser``'s options; the names of those used.

    Raises InvalidArgument naming the variable when a value is not one the option takes.
    """
    environ = os.environ if environ is None else environ
    used = []
    for action in parser._actions:
        long_options = [option for option in action.option_strings if option.startswith("--")]
        if not long_options or action.dest in (argparse.SUPPRESS, "help"):
            continue
        name = variable_name(prefix, long_options[0])
        value = _raw_value(name, environ)
        if value is None:
            continue
        action.default = _convert(action, name, value)
        action.required = False
        used.append(name)
    return used
