"""What a caller may pass for a document: a path, the text itself, or a dict (graphs, state, jobspecs)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rainbow.errors import InvalidArgument
from rainbow.jobspec import Jobspec, parse_jobspec

PathOrText = str | os.PathLike

_FILE_SUFFIXES = (".json", ".yaml", ".yml")


def read_input(value: PathOrText, what: str) -> str:
    """The text of ``value``: a path to a file, or the text itself.

    A one-line string naming an existing file is read; one that only looks like
    a file name (``*.json``/``*.yaml``) but does not exist is an error, so a
    typo is not sent as a document.
    """
    if isinstance(value, os.PathLike):
        return _read_file(Path(value), what)
    if not isinstance(value, str):
        raise InvalidArgument(f"{what}: expected a path or text, not {type(value).__name__}", field=what)
    if "\n" not in value and value.strip() and not value.lstrip().startswith(("{", "[")):
        path = Path(value).expanduser()
        if path.is_file() or value.endswith(_FILE_SUFFIXES):
            return _read_file(path, what)
    return value


def _read_file(path: Path, what: str) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        raise InvalidArgument(f"{what} file {path} does not exist", field=what) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise InvalidArgument(f"{what} file {path} cannot be read: {reason}", field=what) from None


def graph_text(nodes: PathOrText | Mapping[str, Any], what: str) -> str:
    if isinstance(nodes, Mapping):
        return json.dumps(nodes)
    return read_input(nodes, what)


def state_payload(state_data: PathOrText | Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    if isinstance(state_data, Mapping):
        data = dict(state_data)
    else:
        text = read_input(state_data, "state")
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise InvalidArgument(f"state is not valid JSON: {exc}", field="state") from None
    if not isinstance(data, dict):
        raise InvalidArgument("state must be a JSON object of key/value pairs", field="state")
    return json.dumps(data), data


def jobspec_input(jobspec: Jobspec | Mapping[str, Any] | PathOrText) -> tuple[Jobspec, str]:
    """The parsed jobspec and the text to send (the user's own text when there is one)."""
    if isinstance(jobspec, Jobspec):
        return jobspec, jobspec.to_yaml()
    if isinstance(jobspec, Mapping):
        parsed = parse_jobspec(dict(jobspec))
        return parsed, parsed.to_yaml()
    text = read_input(jobspec, "jobspec")
    try:
        return parse_jobspec(text), text
    except InvalidArgument as exc:
        if isinstance(jobspec, os.PathLike) or text is not jobspec:  # read from a file: name it
            raise InvalidArgument(f"{os.fspath(jobspec)}: {exc.message}", field=exc.field) from None
        raise


def option_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value)
