"""argparse `type=` validators: a bad flag value is refused at parse time (exit 2) with the
range it must be in, instead of surfacing later as an OverflowError or silently as a default."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def path(value: str) -> str:
    """A path flag: not empty (an empty --state-dir would silently mean the default)."""
    if not value.strip():
        raise argparse.ArgumentTypeError("an empty path is not a path; pass a file or directory name")
    if "\x00" in value:
        raise argparse.ArgumentTypeError("a path cannot contain a NUL character")
    return value


def _integer(value: str, what: str) -> int:
    try:
        return int(value.strip(), 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number; pass {what}") from None


def bounded_int(low: int, high: int, what: str) -> Callable[[str], int]:
    """A whole number in [low, high]; `what` says what to pass ("a port from 0 to 65535")."""

    def parse(value: str) -> int:
        n = _integer(value, what)
        if not low <= n <= high:
            raise argparse.ArgumentTypeError(f"{n} is out of range; pass {what}")
        return n

    parse.__name__ = "number"  # argparse names the type in its messages
    return parse


port = bounded_int(0, 65535, "a port from 1 to 65535 (0 picks a free one)")
latency_ms = bounded_int(0, 60_000, "milliseconds from 0 to 60000")
seed = bounded_int(0, 2**63 - 1, "a seed of 0 or more")
# Estate files: 1 GiB by default (an export of a large tenant is a few hundred MB).
DEFAULT_MAX_ESTATE_MB = 1024
estate_mb = bounded_int(1, 1024 * 1024, "a size in MB from 1 to 1048576")
# A long-running operation's wait, in seconds: 30 min by default (a Bastion takes ~10), one day at most.
DEFAULT_LRO_TIMEOUT = 1800
lro_timeout = bounded_int(1, 86_400, "seconds from 1 to 86400")


# What az users pass to -o/--output, and the --format that does it here (--output is a file).
FORMAT_NAMES = {"json": "json", "jsonc": "json", "yaml": "json", "yml": "json", "table": "text", "tsv": "text",
                "none": "text", "text": "text", "markdown": "markdown", "md": "markdown", "sarif": "sarif"}


def format_hint(value: str, formats: bool = True) -> str:
    """What to write instead of az's `-o VALUE` / `--output VALUE`; `formats`: the command has
    --format (`sandbox export` writes JSON only)."""
    fmt = FORMAT_NAMES.get(value.lower())
    if fmt is None:
        return f"write --output {value} to save to that file"
    choose = (f"pick the format with --format {fmt} (stdout)" if formats
              else "this command writes JSON only, to stdout without --output")
    return f"{choose}; name a file with --output FILE, e.g. --output ./{value} for a file called {value}"


def _output(value: str, formats: bool) -> str:
    from .errors import UsageError
    from .files import output_target

    if value == "-":
        return value
    if value.lower() in FORMAT_NAMES:  # no separator, no extension: "./json" is a file
        raise argparse.ArgumentTypeError(f"{value!r} is a format name, not a file: --output takes a path here.\n"
                                         f"hint: {format_hint(value, formats)}")
    try:
        output_target(value)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(f"{exc.message[0].lower()}{exc.message[1:]} {exc.hint}") from None
    return value


def output_file(value: str) -> str:
    """`--output`: `-` (stdout) or a path that files.write_output will accept, checked before any
    work is done (the write itself checks again, and reports a full disk or a read-only mount).
    A bare format name (`--output json`, az's habit) is refused rather than written as a file."""
    return _output(value, formats=True)


def export_file(value: str) -> str:
    """`--output` of a command without --format (`sandbox export`): as `output_file`."""
    return _output(value, formats=False)
