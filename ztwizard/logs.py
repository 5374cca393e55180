"""Logging: off by default, on with `--debug` (to stderr) or `--log-file FILE` (mode 0600).

Modules log to `logging.getLogger(__name__)` (the `ztwizard.*` tree). The Azure SDK's loggers
(`azure.*`, `msrest`, `msal`) are routed to the same handlers, so an SDK warning such as
"Discriminator … is absent or null" lands in the log, and never on stderr unless `--debug` asks
for it. Every record is scrubbed before any handler writes it: bearer tokens, Authorization
headers, SAS signatures, account keys, passwords and connection-string secrets become `***`."""

from __future__ import annotations

import logging
import os
import re
import sys
from typing import IO

from .errors import UsageError

ROUTED = ("ztwizard", "azure", "msrest", "msal")
REDACTED = "***"
FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"

_SECRET_WORDS = (r"sig|signature|access_token|refresh_token|id_token|client_secret|client_assertion|"
                 r"assertion|password|code_verifier")
_CONNECTION_WORDS = r"AccountKey|SharedAccessKey|SharedAccessSignature|Password|Pwd|SharedSecret|Secret"
_JSON_WORDS = (r"access_token|accessToken|refresh_token|refreshToken|id_token|client_secret|clientSecret|"
               r"password|adminPassword|sharedKey|primaryKey|secondaryKey|primaryConnectionString|"
               r"secondaryConnectionString|connectionString|key1|key2|token|commandToExecute|protectedSettings")
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # "Authorization: Bearer x", "'Authorization': 'x'", authorization=x
    (re.compile(r"""(\bAuthorization['"]?\s*[:=]\s*['"]?)[^'"\r\n,}]+""", re.I), rf"\1{REDACTED}"),
    (re.compile(r"(\bBearer\s+)[A-Za-z0-9._~+/=-]+", re.I), rf"\1{REDACTED}"),
    # SAS and OAuth secrets in query strings and form bodies
    (re.compile(rf"([?&;\s]|^)({_SECRET_WORDS})=[^&\s'\"]+", re.I), rf"\1\2={REDACTED}"),
    # connection strings: AccountKey=...; SharedAccessKey=...;
    (re.compile(rf"\b({_CONNECTION_WORDS})=[^;\s'\"]+", re.I), rf"\1={REDACTED}"),
    # JSON string values under secret-looking keys ({"key1": "..."}, 'password': '...')
    (re.compile(rf"""(['"](?:{_JSON_WORDS})['"]\s*:\s*)(['"])(?:(?!\2).)*\2""", re.I), rf"\1\2{REDACTED}\2"),
    # JWTs and long base64 blobs (storage account keys are 88 characters ending in "==")
    (re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), REDACTED),
    (re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{40,}={1,2}(?![A-Za-z0-9+/=])"), REDACTED),
]


def scrub(text: str) -> str:
    """`text` with every token, key, SAS signature and connection-string secret replaced."""
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


class Scrubber(logging.Filter):
    """Rewrites a record's message (and traceback) scrubbed, before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a bad format string: log what there is
            message = f"{record.msg} {record.args}"
        record.msg, record.args = scrub(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        return True


def _open_log_file(path: str) -> IO[str]:
    if not path:
        raise UsageError("--log-file needs a file name.", hint="Pass --log-file FILE.")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
    except IsADirectoryError:
        raise UsageError(f"Log file {path} is a directory.", hint="Pass a file name to --log-file.") from None
    except OSError as exc:
        raise UsageError(f"Cannot open log file {path} ({exc.strerror or exc}).",
                         hint="Pick a writable path that is not a symlink.") from None
    os.fchmod(fd, 0o600)  # an existing file may have been wider: logs may name resources
    return os.fdopen(fd, "a", encoding="utf-8")


def configure(*, debug: bool = False, log_file: str | None = None) -> None:
    """Install the handlers for this process: stderr with `debug`, FILE with `log_file`, nothing
    otherwise (records are dropped, and Python's last-resort stderr handler is never reached)."""
    handlers: list[logging.Handler] = []
    if debug:
        handlers.append(logging.StreamHandler(sys.stderr))
    if log_file is not None:
        handlers.append(logging.StreamHandler(_open_log_file(log_file)))
    off = not handlers
    if off:
        handlers.append(logging.NullHandler())
    scrubber = Scrubber()
    formatter = logging.Formatter(FORMAT)
    for h in handlers:
        h.addFilter(scrubber)
        h.setFormatter(formatter)
        h._ztwizard = True  # type: ignore[attr-defined]  # ours: replaced when configure runs again
    for name in ROUTED:
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if getattr(h, "_ztwizard", False)]:
            logger.removeHandler(old)
            if not isinstance(old, logging.NullHandler) and getattr(old, "stream", None) not in (sys.stderr, None):
                old.close()
        for h in handlers:
            logger.addHandler(h)
        # Off: the NullHandler keeps Python's last-resort handler (stderr) away, and records still
        # propagate to whatever the host configured (pytest's caplog, an embedding app). On: ours only,
        # our own records down to DEBUG, the SDK's from WARNING (its INFO is a header dump per request).
        logger.propagate = off
        if off:
            logger.setLevel(logging.NOTSET)
        else:
            logger.setLevel(logging.DEBUG if name == "ztwizard" else logging.WARNING)
