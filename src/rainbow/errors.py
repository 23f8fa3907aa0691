"""Exceptions shared by every layer.

Pure modules (jgf, jobspec, graph, selection, store) raise these without
knowing gRPC; the server maps ``code`` to a gRPC status, and the client
raises the same classes from a gRPC error, so callers catch one hierarchy.
"""

from __future__ import annotations


class RainbowError(Exception):
    """Base of every rainbow error; ``code`` is a gRPC status code name."""

    code = "UNKNOWN"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def __str__(self) -> str:
        return self.message


class InvalidArgument(RainbowError):
    """The request (a jobspec, graph, payload, option...) is malformed."""

    code = "INVALID_ARGUMENT"


class PermissionDenied(RainbowError):
    """A secret or token is missing or wrong."""

    code = "PERMISSION_DENIED"


class Unauthenticated(RainbowError):
    code = "UNAUTHENTICATED"


class NotFound(RainbowError):
    code = "NOT_FOUND"


class AlreadyExists(RainbowError):
    code = "ALREADY_EXISTS"


class FailedPrecondition(RainbowError):
    """The request is well formed but cannot be done in the current state."""

    code = "FAILED_PRECONDITION"


class Aborted(RainbowError):
    """The caller's claim is stale: another holder took over the job's lease (fencing)."""

    code = "ABORTED"


class ResourceExhausted(RainbowError):
    """A configured limit (message size, vertices, payload keys...) was passed."""

    code = "RESOURCE_EXHAUSTED"


class Unavailable(RainbowError):
    code = "UNAVAILABLE"


class DeadlineExceeded(RainbowError):
    code = "DEADLINE_EXCEEDED"


class Internal(RainbowError):
    code = "INTERNAL"


class Cancelled(RainbowError):
    code = "CANCELLED"


ERRORS_BY_CODE: dict[str, type[RainbowError]] = {
    cls.code: cls
    for cls in (
        InvalidArgument,
        PermissionDenied,
        Unauthenticated,
        NotFound,
        AlreadyExists,
        FailedPrecondition,
        Aborted,
        ResourceExhausted,
        Unavailable,
        DeadlineExceeded,
        Internal,
        Cancelled,
    )
}


def error_for_code(code: str, message: str) -> RainbowError:
    """The RainbowError subclass for a gRPC status code name."""
    return ERRORS_BY_CODE.get(code, RainbowError)(message)
