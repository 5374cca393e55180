"""Files that must never be half-written: state, exports, reports.

Output files (`plan --output`, `sandbox export --output`) follow one policy, documented in the
README: `-` is stdout; the path must be a regular file or not exist yet; a symlink is followed to
the regular file it names, and that file is replaced atomically (the link stays); a device, FIFO,
socket or directory is refused; a missing parent directory is refused (nothing is created);
the file is written 0600, and a failed write leaves what was there before untouched. A writer
whose output people edit afterwards (`export`) also refuses an existing file without --force."""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

from .errors import UsageError, from_os_error


def atomic_write(path: Path, data: bytes | Iterable[bytes], mode: int = 0o600, *, parents: bool = True) -> None:
    """Write `data` (bytes, or chunks of them as they are produced) so that a crash leaves
    either the old file or the new one, never a mix."""
    if parents:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            for chunk in (data,) if isinstance(data, bytes) else data:
                fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def file_kind(mode: int) -> str:
    """'a directory', 'a FIFO', … for a message."""
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISREG, "a regular file")):
        if test(mode):
            return name
    return "not a regular file"


def output_target(output: str, what: str = "Output file") -> Path:
    """The regular file that writing `output` replaces, after the checks of the module docstring."""
    if not output.strip():
        raise UsageError(f"{what} is an empty path.", "Pass a file name, or `-` for stdout.")
    dest = Path(output).expanduser()
    try:
        if dest.is_symlink():
            real = Path(os.path.realpath(dest))
            if not real.exists():
                raise UsageError(f"{what} {dest} is a symbolic link to {real}, which does not exist.",
                                 "Point --output at a regular file (or remove the dangling link).")
            dest = real
        if dest.exists():
            mode = dest.stat().st_mode
            if not stat.S_ISREG(mode):
                raise UsageError(f"{what} {dest} is {file_kind(mode)}; only regular files are written.",
                                 "Pass the path of a regular file, or `-` for stdout.")
        parent = dest.parent
        if not parent.exists():
            raise UsageError(f"The directory {parent} for {what.lower()} {dest.name} does not exist.",
                             "Create it first, or pick another path.")
        if not parent.is_dir():
            raise UsageError(f"{parent} (for {what.lower()} {dest.name}) is not a directory.",
                             "Pick a path inside a directory.")
    except OSError as e:
        raise from_os_error(e, what) from None
    return dest


def refuse_existing(output: str | None, force: bool, what: str = "Output file") -> None:
    """For writers that must not clobber (`export`): an existing file is replaced only with
    --force. Checked before any work, like the rest of the policy above."""
    if output in (None, "-") or force:
        return
    dest = output_target(output, what)
    if dest.exists():
        raise UsageError(f"{what} {output} exists, and it is replaced only when told to.",
                         "Pass --force to replace it, or name another file.")


def write_output(output: str | None, text: str | Iterable[str], what: str = "Output file") -> None:
    """stdout for None or `-`; else the file, checked and written atomically, 0600. `text` may
    come in chunks (a large report streams instead of being held whole)."""
    chunks = (text,) if isinstance(text, str) else text
    if output is None or output == "-":
        for chunk in chunks:
            sys.stdout.write(chunk)
        sys.stdout.flush()
        return
    dest = output_target(output, what)
    try:
        atomic_write(dest, (c.encode() for c in chunks), 0o600, parents=False)
    except OSError as e:  # named after the file asked for, not the temporary one beside it
        raise from_os_error(OSError(e.errno, e.strerror, str(dest)), what) from None
