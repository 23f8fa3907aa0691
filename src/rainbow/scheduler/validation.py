"""Checks of request fields that are not credentials: names, cluster state, job states, output locations."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from rainbow.errors import InvalidArgument, ResourceExhausted
from rainbow.lifecycle import JobState, parse_state
from rainbow.limits import Limits
from rainbow.queues import STATE_KEY as QUEUES_KEY
from rainbow.queues import QueueSet

# What an agent may say about where a job's output is (JobOutput on the wire), and how long each may be.
JOB_OUTPUT_FIELDS = ("host", "stdout", "stderr", "command")
MAX_OUTPUT_FIELD = 4096


def check_name(value: str, what: str, limits: Limits) -> str:
    """Names are any non-blank text up to the configured length (quotes, unicode... are fine)."""
    if not value or not value.strip():
        raise InvalidArgument(f"{what} is required", field=what)
    if len(value) > limits.max_name_length:
        raise InvalidArgument(f"{what} is longer than {limits.max_name_length} characters", field=what)
    return value


def check_idempotency_key(key: str, limits: Limits) -> None:
    if key and len(key) > limits.max_name_length:
        raise InvalidArgument(f"idempotency_key is longer than {limits.max_name_length} characters",
                              field="idempotency_key")


def parse_state_payload(payload: str, limits: Limits) -> dict[str, Any]:
    """A flat JSON object of scalar values, within the size and key limits."""
    if not payload:
        raise InvalidArgument("payload is required (a flat JSON object)", field="payload")
    if len(payload.encode("utf-8", "surrogatepass")) > limits.max_state_bytes:
        raise ResourceExhausted(f"payload is larger than {limits.max_state_bytes} bytes", field="payload")
    try:
        data = json.loads(payload)
    except ValueError as exc:
        raise InvalidArgument(f"payload is not valid JSON: {exc}", field="payload") from None
    except RecursionError:
        raise InvalidArgument("payload is nested too deeply (state must be flat)", field="payload") from None
    if isinstance(data, str):
        # The published Python client sends json.dumps(file text): a JSON string holding the object.
        try:
            data = json.loads(data)
        except (ValueError, RecursionError):
            data = None
        if not isinstance(data, dict):
            raise InvalidArgument("payload is a JSON string that does not hold a JSON object", field="payload")
    if not isinstance(data, dict):
        raise InvalidArgument("payload must be a JSON object of key/value pairs", field="payload")
    if len(data) > limits.max_state_keys:
        raise ResourceExhausted(f"payload has more than {limits.max_state_keys} keys", field="payload")
    for key, value in data.items():
        if not key:
            raise InvalidArgument("payload: keys must be non-empty", field="payload")
        if isinstance(value, (dict, list)):
            raise InvalidArgument(
                f"payload.{key}: state must be flat (strings, numbers, booleans or null)", field=f"payload.{key}"
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidArgument(f"payload.{key}: numbers must be finite", field=f"payload.{key}")
    return data


def check_queues_state(updates: Mapping[str, Any]) -> None:
    """The ``queues`` state key (``rainbow.queues.STATE_KEY``) must be a readable queue description (JSON text)."""
    value = updates.get(QUEUES_KEY)
    if value is None:
        return
    if not isinstance(value, str):
        raise InvalidArgument(f"payload.{QUEUES_KEY}: must be the queues as JSON text", field=f"payload.{QUEUES_KEY}")
    QueueSet.from_json(value, f"payload.{QUEUES_KEY}")


def job_state(value: str, what: str = "state") -> JobState:
    try:
        return parse_state(value)
    except ValueError as exc:
        raise InvalidArgument(f"{what}: {exc}", field=what) from None


def output_json(output: Mapping[str, str] | None) -> str | None:
    """The stored form of a reported output location (None when nothing was said)."""
    if not output:
        return None
    kept = {}
    for key, value in output.items():
        if key not in JOB_OUTPUT_FIELDS:
            raise InvalidArgument(f"output.{key}: unknown field", field=f"output.{key}")
        if len(value) > MAX_OUTPUT_FIELD:
            raise InvalidArgument(f"output.{key}: longer than {MAX_OUTPUT_FIELD} characters", field=f"output.{key}")
        if value:
            kept[key] = value
    return json.dumps(kept, sort_keys=True) if kept else None
