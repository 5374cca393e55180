"""Errors a user sees: one sentence, a hint, and an exit code. Never a traceback."""

from __future__ import annotations


class ZtwError(Exception):
    """An error reported to the user as one sentence plus a hint; exit code 1."""

    exit_code = 1

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(ZtwError):
    """Bad flags or bad input (an estate file, an id); exit code 2, nothing written."""

    exit_code = 2


class ArmError(ZtwError):
    """ARM refused a request. `status` and `code` are ARM's own."""

    def __init__(self, message: str, hint: str = "", *, status: int = 0, code: str = "",
                 resource_id: str = "") -> None:
        super().__init__(message, hint)
        self.status = status
        self.code = code
        self.resource_id = resource_id


class PermissionDenied(ArmError):
    """403 AuthorizationFailed."""


class NotFound(ArmError):
    """404 ResourceNotFound / ResourceGroupNotFound."""


class Conflict(ArmError):
    """409: the resource is busy or in a state that forbids the write."""


class EtagMismatch(ArmError):
    """412 PreconditionFailed: someone else changed the resource since it was read."""


class Throttled(ArmError):
    """429 after the retries the pipeline allows."""


class ParamError(UsageError):
    """An edited parameter of a proposed change breaks its rule, or does not exist."""
