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


# In the message of a write ARM kept answering 409 AnotherOperationInProgress through the
# retries: an operation this run did not start (a deployment, a backup, an extension install)
# holds the resource. Reports pick such failures out by it.
BUSY_NOTE = "another operation was still running on it"


class EtagMismatch(ArmError):
    """412 PreconditionFailed: someone else changed the resource since it was read."""


class Throttled(ArmError):
    """429 after the retries the pipeline allows."""


class OperationTimedOut(ZtwError):
    """A long-running operation did not finish within the LRO deadline: whether the write landed
    is unknown until ARM is read again (resume reconciles it)."""

    def __init__(self, message: str, hint: str = "", *, resource_id: str = "") -> None:
        super().__init__(message, hint)
        self.resource_id = resource_id


class ParamError(UsageError):
    """An edited parameter of a proposed change breaks its rule, or does not exist."""


# ---- OS and SQLite errors as user errors -----------------------------------------------------
# The one place where an OSError or sqlite3.Error becomes a sentence and a hint. Paths the user
# named (a state dir, an output file) that cannot be used are input errors (exit 2); a full disk,
# a busy or damaged journal are runtime failures (exit 1).

_PATH_HINT = "Pass a path you can write to (check its permissions and mount), or another --state-dir."


def _where(exc: OSError, what: str) -> str:
    name = exc.filename if exc.filename is not None else ""
    if what and name:
        return f"{what} {name}"
    return what or (str(name) if name else "a file")


def from_os_error(exc: OSError, what: str = "") -> ZtwError:
    """`exc` as a user error; `what` names the thing ("The state dir", "Output file")."""
    import errno

    where = _where(exc, what)
    code = exc.errno
    if code in (errno.EACCES, errno.EPERM):
        return UsageError(f"{where} cannot be used: permission denied.", _PATH_HINT)
    if code == errno.EROFS:
        return UsageError(f"{where} is on a read-only file system.", _PATH_HINT)
    if code == errno.ENOTDIR:
        return UsageError(f"{where} is not usable: a part of its path is not a directory.",
                          "Check the path; each component but the last must be a directory.")
    if code == errno.EISDIR:
        return UsageError(f"{where} is a directory.", "Pass a file name.")
    if code == errno.ENOENT:
        return UsageError(f"{where} does not exist.", "Check the path, or create the directory first.")
    if code in (errno.ENOSPC, errno.EDQUOT):
        return ZtwError(f"No space left on the device holding {where}; nothing more was written.",
                        "Free some space (or pass a --state-dir on another file system), then run the "
                        "command again; the journal keeps what was committed.")
    if code == errno.EEXIST:
        return UsageError(f"{where} exists but is not a directory (a file, or a link to nothing).",
                          "Pass a directory, or remove what is at that path.")
    if code == errno.ENAMETOOLONG:
        return UsageError(f"{where} has a name that is too long.", "Pass a shorter path.")
    if code == errno.ELOOP:
        return UsageError(f"{where} is a loop of symbolic links.", "Pass a path that resolves to a file.")
    if code in (errno.ENXIO, errno.ENODEV):
        return UsageError(f"{where} is a device or socket, not a regular file.", "Pass a regular file.")
    reason = exc.strerror or exc.__class__.__name__
    return ZtwError(f"{where} cannot be used ({reason}).", "Check the path and the file system, then try again.")


def from_sqlite_error(exc: Exception, path: object) -> ZtwError:
    """A sqlite3 error on the journal at `path` as a user error. Only SQLite's own verdict
    ("malformed", "not a database") calls the file corrupt, and then the hint keeps it: it holds
    the undo history."""
    import errno
    import sqlite3

    text = str(exc)
    low = text.lower()
    code = getattr(exc, "sqlite_errorcode", None)
    keep = (f"Keep a copy of it (it holds the undo history) and try `sqlite3 {path} .recover`, or pass "
            "another --state-dir for new sessions.")
    if "malformed" in low or "not a database" in low or code in (getattr(sqlite3, "SQLITE_CORRUPT", 11),
                                                                  getattr(sqlite3, "SQLITE_NOTADB", 26)):
        return ZtwError(f"The journal {path} is damaged (SQLite: {text}); it was left untouched.", keep)
    if "locked" in low or "busy" in low:
        return ZtwError(f"The journal {path} is locked by another process.",
                        "Wait for the other ztwizard (or sqlite3 session) to finish, then try again.")
    if "readonly" in low or "read-only" in low:
        return UsageError(f"The journal {path} cannot be written (read-only file or file system).",
                          _PATH_HINT)
    if "disk is full" in low or "full" in low.split():
        return from_os_error(OSError(errno.ENOSPC, "No space left on device", str(path)), "The journal")
    if "unable to open" in low or "cannot open" in low:
        return UsageError(f"The journal {path} cannot be opened (its directory is missing or unwritable).",
                          _PATH_HINT)
    if "disk i/o" in low:
        return ZtwError(f"The journal {path} could not be written (disk I/O error; a full disk or a "
                        "failing device); nothing more was written.", "Check the device and free space, "
                        "then run the command again; the journal keeps what was committed.")
    return ZtwError(f"The journal {path} could not be used (SQLite: {text}).",
                    "Check the state dir's file system, then try again.")


def user_error(exc: BaseException) -> ZtwError | None:
    """Any OS or SQLite error as a user error (main() uses this); None for anything else."""
    import sqlite3

    if isinstance(exc, ZtwError):
        return exc
    if isinstance(exc, sqlite3.Error):
        return from_sqlite_error(exc, "in the state dir")
    if isinstance(exc, OSError) and exc.errno is not None:
        return from_os_error(exc)
    return None
