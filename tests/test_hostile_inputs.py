"""The bad-input campaign as a table: every row is one hostile invocation of the real CLI in its
own process, and each must end with the contract's exit code, one sentence and a hint on stderr,
no traceback, no "unexpected …", within a bounded time, and with nothing written or clobbered in
the directories it was given.

Disk full is a real one: a 1 MB tmpfs filled to the last block (the tests run as root here; when
`mount` is not allowed those rows are skipped, not faked). Read-only file systems are tmpfs
mounts remounted read-only. "Permission denied" rows run the CLI as user nobody, since root
passes every permission check."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import sqlite3
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ztwizard import journal as J
from ztwizard.model import Change

CLI = [sys.executable, "-m", "ztwizard.cli"]
# "Permission denied" needs a user the kernel checks: root passes every permission check.
AS_NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
SUB = "00000000-0000-0000-0000-0000000000aa"
TIMEOUT = 60  # the machine may be shared: generous, the lock rows assert their own bound


@dataclass
class Case:
    name: str
    setup: Callable[[Ctx], list[str]]  # returns argv (after `ztwizard`)
    code: int
    says: str = ""  # a fragment the error sentence must contain (case-insensitive)
    check: Callable[[Ctx], None] | None = None  # more assertions on what is left on disk
    nobody: bool = False
    mounts: bool = False
    stdin: bytes | None = None


@dataclass
class Ctx:
    d: Path  # the case's own directory (snapshotted before and after)
    mounts: Mounts | None
    holders: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def hold(self, code: str) -> subprocess.Popen[bytes]:
        """A process running `code` that prints 'ready' once it holds what it holds."""
        p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert p.stdout is not None
        line = p.stdout.readline()
        assert line.strip() == b"ready", p.stderr.read() if p.stderr else line
        self.holders.append(p)
        return p


# ---- file system fixtures ----------------------------------------------------------------------

class Mounts:
    """A full tmpfs and a read-only tmpfs (with a valid journal and a file in it)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.full = root / "full"
        self.ro = root / "ro"
        self.mounted: list[Path] = []
        for m, size in ((self.full, "1m"), (self.ro, "1m")):
            m.mkdir()
            subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(m)], check=True,
                           capture_output=True)
            self.mounted.append(m)
        # the full one: an output file and a state dir made before the disk filled up
        (self.full / "out").mkdir()
        (self.full / "out" / "plan.txt").write_text("the previous plan\n")
        (self.full / "state").mkdir()
        for name, chunk in (("filler", 65536), ("filler2", 512)):  # the last partial block too
            with contextlib.suppress(OSError), open(self.full / name, "wb") as fh:
                while True:
                    fh.write(b"\0" * chunk)
                    fh.flush()
        # the read-only one: a real journal with a session, and an empty state dir
        _journal_with_session(self.ro / "journal-state")
        (self.ro / "empty-state").mkdir()
        (self.ro / "plan.txt").write_text("kept\n")
        subprocess.run(["mount", "-o", "remount,ro", str(self.ro)], check=True, capture_output=True)

    def close(self) -> None:
        for m in reversed(self.mounted):
            subprocess.run(["umount", "-l", str(m)], capture_output=True)


def _can_mount(tmp: Path) -> bool:
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    probe = tmp / "probe"
    probe.mkdir()
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)], capture_output=True)
    if ok.returncode != 0:
        return False
    subprocess.run(["umount", str(probe)], capture_output=True)
    return True


def _journal_with_session(state: Path, *, applied: bool = True) -> str:
    """A valid journal holding one session with an applied create (undo has work to do)."""
    rid = f"/subscriptions/{SUB}/resourceGroups/rg-x/providers/Microsoft.Network/publicIPAddresses/pip-x"
    ch = Change(check="vm-6a", resource_id=rid, action="create", method="PUT", body={"location": "westeurope"},
                before={}, after={"location": "westeurope"}, id="vm-6a-0000000001")
    with J.Journal(state) as j:
        sid = j.create_session("sandbox", subscriptions=[SUB])
        j.record_plan(sid, [("vm-6", ch)])
        if applied:
            j.update_change(sid, ch.id, state=J.IN_FLIGHT)
            j.update_change(sid, ch.id, state=J.APPLIED)
    return sid


# ---- snapshot: nothing written, nothing clobbered ----------------------------------------------

def snapshot(root: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = os.lstat(p)
            kind = stat.S_IFMT(st.st_mode)
            digest = ""
            if stat.S_ISREG(st.st_mode) and st.st_size < 8 * 2**20:
                digest = hashlib.sha256(p.read_bytes()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                digest = os.readlink(p)
            size = 0 if stat.S_ISDIR(st.st_mode) else st.st_size  # a directory's size is not its content
            out[str(p.relative_to(root))] = (kind, stat.S_IMODE(st.st_mode), size, digest)
    return out


def _ignorable(path: str, entry: Any) -> bool:
    """An empty lock file is how a journal or a sandbox is opened at all; it holds nothing."""
    return path.endswith(".lock") and entry[2] == 0


def unchanged(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """What differs, leaving out new empty lock files and new directories holding nothing else
    (the state dir a command made before refusing): neither records or overwrites anything."""
    diffs = {}
    for k in sorted(set(before) | set(after)):
        if before.get(k) != after.get(k):
            if k not in before and _ignorable(k, after[k]):
                continue
            diffs[k] = f"{k}: {before.get(k)} -> {after.get(k)}"
    for k in list(diffs):
        new_dir = k not in before and stat.S_ISDIR(after[k][0])
        if new_dir and not any(o.startswith(k + "/") and not stat.S_ISDIR(after[o][0]) for o in diffs):
            del diffs[k]
    return list(diffs.values())


# ---- the table ---------------------------------------------------------------------------------

def w(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data)
    else:
        path.write_bytes(data)
    return path


def estate(c: Ctx, data: str | bytes, *extra: str) -> list[str]:
    f = w(c.d / "estate.json", data)
    return ["--estate", str(f), *extra, "plan"]


def state(c: Ctx) -> str:
    return str(c.d / "state")


def plan_to(path: Path | str) -> list[str]:
    return ["--estate", str(GOOD_ESTATE), "plan", "--output", str(path)]


def export_to(c: Ctx, path: Path | str) -> list[str]:
    sdir = c.d / "sb"
    subprocess.run([*CLI, "sandbox", "reset", "--state-dir", str(sdir), "--estate", str(GOOD_ESTATE)],
                   check=True, capture_output=True, timeout=TIMEOUT)
    return ["sandbox", "export", "--state-dir", str(sdir), "--output", str(path)]


def fifo(c: Ctx, name: str = "fifo") -> Path:
    p = c.d / name
    os.mkfifo(p)
    return p


def unix_socket(c: Ctx) -> Path:
    # AF_UNIX paths are short: make it in a short temporary dir, linked from the case dir
    p = c.d / "sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(p))
    SOCKETS.append(s)
    return p


SOCKETS: list[socket.socket] = []
GOOD_ESTATE = Path(__file__).parent / "data" / "estates" / "array.json"


def still(kind: Callable[[int], bool], path: str) -> Callable[[Ctx], None]:
    def check(c: Ctx) -> None:
        p = Path(path)
        assert kind(os.lstat(p).st_mode), f"{p} changed kind"
    return check


def journal_at(c: Ctx) -> Path:
    return c.d / "state" / J.DB_NAME


def _locked_sqlite(c: Ctx, mode: str) -> None:
    sid_state = c.d / "state"
    _journal_with_session(sid_state)
    code = (f"import sqlite3,sys,time\ndb=sqlite3.connect({str(journal_at(c))!r}, isolation_level=None)\n"
            f"db.execute('PRAGMA journal_mode=DELETE')\ndb.execute('BEGIN {mode}')\n"
            "db.execute('UPDATE sessions SET step=step')\nprint('ready', flush=True)\ntime.sleep(60)\n")
    c.hold(code)


def case_sqlite_locked_reader(c: Ctx) -> list[str]:
    _locked_sqlite(c, "EXCLUSIVE")
    return ["--state-dir", state(c), "sessions"]


def case_sqlite_locked_writer(c: Ctx) -> list[str]:
    _locked_sqlite(c, "EXCLUSIVE")
    return ["--state-dir", state(c), "--sandbox", "undo", "--yes"]


def case_journal_held(c: Ctx) -> list[str]:
    _journal_with_session(c.d / "state")
    c.hold(f"from ztwizard.journal import Journal\nimport time\nj=Journal({state(c)!r})\n"
           "print('ready', flush=True)\ntime.sleep(60)\n")
    return ["--state-dir", state(c), "--sandbox", "undo", "--yes"]


def case_corrupt_journal(c: Ctx) -> list[str]:
    _journal_with_session(c.d / "state")
    p = journal_at(c)
    raw = bytearray(p.read_bytes())
    for i in range(100, len(raw), 7):  # keep the header, damage the pages
        raw[i] = 0xA5
    p.write_bytes(bytes(raw))
    for side in ("-wal", "-shm"):
        Path(str(p) + side).unlink(missing_ok=True)
    return ["--state-dir", state(c), "sessions"]


def case_truncated_journal(c: Ctx) -> list[str]:
    _journal_with_session(c.d / "state")
    with J.Journal(c.d / "state") as j:  # fold the WAL in, so the main file is the whole journal
        j.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    p = journal_at(c)
    p.write_bytes(p.read_bytes()[: 4096 + 100])
    return ["--state-dir", state(c), "--sandbox", "undo", "--yes"]


def case_foreign_sqlite(c: Ctx) -> list[str]:
    (c.d / "state").mkdir()
    db = sqlite3.connect(journal_at(c))
    db.execute("CREATE TABLE songs(title TEXT)")
    db.commit()
    db.close()
    return ["--state-dir", state(c), "sessions"]


def case_text_journal(c: Ctx) -> list[str]:
    w(journal_at(c), "not a database\n" * 20)
    return ["--state-dir", state(c), "--sandbox", "undo", "--yes"]


def case_newer_journal(c: Ctx) -> list[str]:
    _journal_with_session(c.d / "state")
    db = sqlite3.connect(journal_at(c))
    db.execute(f"PRAGMA user_version = {J.SCHEMA_VERSION + 5}")
    db.commit()
    db.close()
    return ["--state-dir", state(c), "sessions"]


def case_journal_is_dir(c: Ctx) -> list[str]:
    journal_at(c).mkdir(parents=True)
    return ["--state-dir", state(c), "--sandbox", "undo", "--yes"]


def case_journal_is_fifo(c: Ctx) -> list[str]:
    (c.d / "state").mkdir()
    os.mkfifo(journal_at(c))
    return ["--state-dir", state(c), "sessions"]


def sparse(c: Ctx, size: int) -> Path:
    p = c.d / "big.json"
    with open(p, "wb") as fh:
        fh.write(b"[")
        fh.truncate(size)
    return p


def _ro(c: Ctx, sub: str) -> Path:
    assert c.mounts is not None
    return c.mounts.ro / sub


def _full(c: Ctx, sub: str) -> Path:
    assert c.mounts is not None
    return c.mounts.full / sub


def _nobody_dirs(c: Ctx) -> None:
    os.chmod(c.d, 0o755)


def case_unwritable_state(c: Ctx) -> list[str]:
    _nobody_dirs(c)
    (c.d / "state").mkdir(mode=0o755)
    return ["--state-dir", state(c), "--sandbox", "undo", "--yes"]


def case_unwritable_output_dir(c: Ctx) -> list[str]:
    _nobody_dirs(c)
    (c.d / "out").mkdir(mode=0o755)
    return plan_to(c.d / "out" / "plan.txt")


def case_unreadable_estate(c: Ctx) -> list[str]:
    _nobody_dirs(c)
    f = w(c.d / "estate.json", GOOD_ESTATE.read_text())
    os.chmod(f, 0o600)
    return ["--estate", str(f), "plan"]


def case_unwritable_existing_output(c: Ctx) -> list[str]:
    _nobody_dirs(c)
    out = w(c.d / "plan.txt", "root's file\n")
    os.chmod(out, 0o644)
    return plan_to(out)


def _deep(n: int) -> str:
    return "[" * n + "]" * n


S = "--state-dir"
CASES: list[Case] = [
    # -- flags --
    Case("port-too-big", lambda c: ["sandbox", "serve", S, state(c), "--port", "70000"], 2, "out of range"),
    Case("port-negative", lambda c: ["sandbox", "serve", S, state(c), "--port", "-1"], 2, "out of range"),
    Case("port-not-a-number", lambda c: ["sandbox", "serve", S, state(c), "--port", "http"], 2, "whole number"),
    Case("latency-negative", lambda c: ["sandbox", "serve", S, state(c), "--latency-ms", "-5"], 2, "out of range"),
    Case("latency-huge", lambda c: ["sandbox", "serve", S, state(c), "--latency-ms", "99999999"], 2, "out of range"),
    Case("latency-float", lambda c: ["sandbox", "serve", S, state(c), "--latency-ms", "1.5"], 2, "whole number"),
    Case("seed-negative", lambda c: ["sandbox", "serve", S, state(c), "--seed", "-3"], 2, "out of range"),
    Case("max-estate-zero", lambda c: ["--max-estate-mb", "0", "--estate", str(GOOD_ESTATE), "plan"], 2,
         "out of range"),
    Case("max-estate-word", lambda c: ["--max-estate-mb", "lots", "--estate", str(GOOD_ESTATE), "plan"], 2,
         "whole number"),
    Case("state-dir-empty", lambda c: ["--state-dir", "", "sessions"], 2, "empty path"),
    Case("state-dir-empty-after-command", lambda c: ["sessions", "--state-dir", ""], 2, "empty path"),
    Case("estate-empty-path", lambda c: ["--estate", "", "plan"], 2, "empty path"),
    Case("ca-bundle-empty", lambda c: ["--ca-bundle", "", "plan"], 2, "empty path"),
    Case("output-empty", lambda c: ["--estate", str(GOOD_ESTATE), "plan", "--output", ""], 2, "empty path"),
    Case("export-output-empty", lambda c: ["sandbox", "export", S, state(c), "--output", ""], 2, "empty path"),
    Case("serve-estate-empty", lambda c: ["sandbox", "serve", S, state(c), "--estate", ""], 2, "empty path"),
    Case("faults-rate-over-one", lambda c: ["sandbox", "serve", S, state(c), "--faults", "429:2"], 2, "between 0 and 1"),
    Case("faults-unknown-kind", lambda c: ["sandbox", "serve", S, state(c), "--faults", "meteor:0.1"], 2,
         "unknown fault"),
    Case("format-unknown", lambda c: ["--estate", str(GOOD_ESTATE), "plan", "--format", "yaml"], 2, "invalid choice"),
    Case("command-unknown", lambda c: ["destroy-everything"], 2, "invalid choice"),
    # -- ids --
    Case("step-unknown", lambda c: ["--estate", str(GOOD_ESTATE), "plan", "--step", "storage-99"], 2,
         "unknown step"),
    Case("check-unknown", lambda c: ["--estate", str(GOOD_ESTATE), "plan", "--check", "hub-3z"], 2, "unknown check"),
    Case("subscription-not-guid", lambda c: ["-s", "production", "--estate", str(GOOD_ESTATE), "plan"], 2,
         "not a guid"),
    Case("session-unknown", lambda c: [S, state(c), "--sandbox", "undo", "--yes", "--session", "nope"], 2,
         "no session"),
    Case("change-unknown", lambda c: (_journal_with_session(c.d / "state"), [S, state(c), "--sandbox", "undo",
                                      "--yes", "--change", "nope"])[1], 2, "no change"),
    Case("resume-unknown-session", lambda c: [S, state(c), "--sandbox", "resume", "nope"], 2, "no session"),
    Case("estate-with-sandbox", lambda c: ["--estate", str(GOOD_ESTATE), "--sandbox", "plan"], 2, "cannot be combined"),
    Case("apply-on-estate", lambda c: [S, state(c), "--estate", str(GOOD_ESTATE), "apply", "--yes"], 2, "dry-run"),
    Case("apply-without-terminal", lambda c: [S, state(c), "--sandbox", "apply"], 2, "confirmation"),
    Case("reset-scale-word", lambda c: ["sandbox", "reset", S, state(c), "--estate", "scale:many"], 2),
    Case("reset-scale-negative", lambda c: ["sandbox", "reset", S, state(c), "--estate", "scale:-4"], 2),
    # -- estate-file shapes --
    Case("estate-missing", lambda c: ["--estate", str(c.d / "nope.json"), "plan"], 2, "does not exist"),
    Case("estate-directory", lambda c: ["--estate", str(c.d), "plan"], 2, "directory"),
    Case("estate-dev-zero", lambda c: ["--estate", "/dev/zero", "plan"], 2, "not a regular file"),
    Case("estate-fifo", lambda c: ["--estate", str(fifo(c)), "plan"], 2, "not a regular file"),
    Case("estate-socket", lambda c: ["--estate", str(unix_socket(c)), "plan"], 2, "not a regular file"),
    Case("serve-estate-fifo", lambda c: ["sandbox", "serve", S, state(c), "--estate", str(fifo(c))], 2,
         "not a regular file"),
    Case("estate-empty-file", lambda c: estate(c, ""), 2, "not valid json"),
    Case("estate-not-json", lambda c: estate(c, "resources: many\n"), 2, "not valid json"),
    Case("estate-number", lambda c: estate(c, "5"), 2),
    Case("estate-value-not-list", lambda c: estate(c, '{"value": 5}'), 2, "not a list"),
    Case("estate-data-not-list", lambda c: estate(c, '{"data": "x"}'), 2, "not a list"),
    Case("estate-list-of-numbers", lambda c: estate(c, "[5]"), 2),
    Case("estate-id-not-string", lambda c: estate(c, '[{"id": 5, "type": "x"}]'), 2),
    Case("estate-nested-deep", lambda c: estate(c, _deep(200_000)), 2),
    Case("estate-not-utf8", lambda c: estate(c, b"[\xff\xfe\x00\x01]"), 2, "utf-8"),
    Case("estate-duplicate-ids", lambda c: estate(c, json.dumps(json.loads(GOOD_ESTATE.read_text()) * 2)), 2,
         "repeats"),
    Case("estate-over-limit", lambda c: estate(c, "[" + " " * (2 * 2**20) + "]", "--max-estate-mb", "1"), 2,
         "over the 1 mb limit"),
    Case("estate-over-default-limit", lambda c: ["--estate", str(sparse(c, 2**30 + 4096)), "plan"], 2,
         "over the 1024 mb limit"),
    Case("estate-symlink-loop", lambda c: (os.symlink(c.d / "b", c.d / "a"), os.symlink(c.d / "a", c.d / "b"),
                                           ["--estate", str(c.d / "a"), "plan"])[2], 2),
    # -- output paths --
    Case("output-dev-full", lambda c: plan_to("/dev/full"), 2, "character device",
         check=still(stat.S_ISCHR, "/dev/full")),
    Case("output-dev-null", lambda c: plan_to("/dev/null"), 2, "character device",
         check=still(stat.S_ISCHR, "/dev/null")),
    Case("output-fifo", lambda c: plan_to(fifo(c)), 2, "fifo"),
    Case("output-socket", lambda c: plan_to(unix_socket(c)), 2, "socket"),
    Case("output-directory", lambda c: plan_to(c.d), 2, "directory"),
    Case("output-missing-parent", lambda c: plan_to(c.d / "no" / "such" / "plan.txt"), 2, "does not exist"),
    Case("output-parent-is-file", lambda c: plan_to(w(c.d / "afile", "x") / "plan.txt"), 2, "not a directory"),
    Case("output-dangling-symlink", lambda c: (os.symlink(c.d / "nowhere", c.d / "link"),
                                               plan_to(c.d / "link"))[1], 2, "does not exist"),
    Case("output-symlink-to-fifo", lambda c: (os.symlink(fifo(c), c.d / "link"), plan_to(c.d / "link"))[1], 2,
         "fifo"),
    Case("output-symlink-to-device", lambda c: (os.symlink("/dev/full", c.d / "link"), plan_to(c.d / "link"))[1], 2,
         "character device"),
    Case("export-dev-full", lambda c: export_to(c, "/dev/full"), 2, "character device",
         check=still(stat.S_ISCHR, "/dev/full")),
    Case("export-fifo", lambda c: export_to(c, fifo(c, "out-fifo")), 2, "fifo"),
    Case("export-directory", lambda c: export_to(c, c.d), 2, "directory"),
    Case("export-missing-parent", lambda c: export_to(c, c.d / "no" / "such" / "estate.json"), 2, "does not exist"),
    Case("export-no-state", lambda c: ["sandbox", "export", S, state(c), "--output", str(c.d / "x.json")], 2,
         "no sandbox state"),
    # -- journal states --
    Case("journal-held-by-another-wizard", case_journal_held, 1, "in use by pid"),
    Case("journal-sqlite-locked-reader", case_sqlite_locked_reader, 1, "locked by pid"),
    Case("journal-sqlite-locked-writer", case_sqlite_locked_writer, 1, "locked by pid"),
    Case("journal-corrupt-pages", case_corrupt_journal, 1, "damaged"),
    Case("journal-truncated", case_truncated_journal, 1, "damaged"),
    Case("journal-foreign-sqlite", case_foreign_sqlite, 1, "not a ztwizard journal"),
    Case("journal-text-file", case_text_journal, 1, "not an sqlite database"),
    Case("journal-newer-schema", case_newer_journal, 1, "newer ztwizard"),
    Case("journal-is-directory", case_journal_is_dir, 2, "not a regular file"),
    Case("journal-is-fifo", case_journal_is_fifo, 2, "not a regular file"),
    # -- state-dir states --
    Case("state-dir-is-file", lambda c: ["--state-dir", str(w(c.d / "f", "x")), "--sandbox", "undo", "--yes"], 2,
         "not a directory"),
    Case("state-dir-under-file", lambda c: ["--state-dir", str(w(c.d / "f", "x") / "sub"), "sessions"], 2,
         "not a directory"),
    Case("state-dir-dangling-symlink", lambda c: (os.symlink(c.d / "gone", c.d / "st"),
                                                  ["--state-dir", str(c.d / "st"), "--sandbox", "undo", "--yes"])[1],
         2),
    Case("state-dir-unwritable", case_unwritable_state, 2, "permission denied", nobody=True),
    Case("output-dir-unwritable", case_unwritable_output_dir, 2, "permission denied", nobody=True),
    Case("output-file-unwritable", case_unwritable_existing_output, 2, "permission denied", nobody=True),
    Case("estate-unreadable", case_unreadable_estate, 2, "permission denied", nobody=True),
    # -- read-only and full file systems (real mounts) --
    Case("state-dir-read-only-fs", lambda c: ["--state-dir", str(_ro(c, "empty-state")), "--sandbox", "undo",
                                              "--yes"], 2, "read-only", mounts=True),
    Case("journal-on-read-only-fs-undo", lambda c: ["--state-dir", str(_ro(c, "journal-state")), "--sandbox",
                                                    "undo", "--yes"], 2, "read-only", mounts=True),
    Case("output-on-read-only-fs", lambda c: plan_to(_ro(c, "plan.txt")), 2, "read-only", mounts=True),
    Case("output-on-full-disk", lambda c: plan_to(_full(c, "out/plan.txt")), 1, "no space left", mounts=True),
    Case("journal-on-full-disk", lambda c: ["--state-dir", str(_full(c, "state")), "--sandbox", "undo", "--yes"], 1,
         "no space left", mounts=True),
]


# ---- running the table -------------------------------------------------------------------------

@dataclass
class Result:
    case: Case
    code: int | None
    stderr: str
    seconds: float
    diffs: list[str]
    error: str = ""


def _roots(c: Ctx) -> list[Path]:
    roots = [c.d]
    if c.mounts is not None:
        roots += [c.mounts.full, c.mounts.ro]
    return roots


def _run_case(case: Case, base: Path, mounts: Mounts | None) -> Result:
    d = Path(tempfile.mkdtemp(prefix=f"{case.name[:20]}-", dir=base))
    c = Ctx(d, mounts)
    try:
        try:
            argv = case.setup(c)
        except Exception as exc:  # the table itself is broken: say so in the test
            return Result(case, None, "", 0.0, [], f"setup failed: {exc!r}")
        before = {str(r): snapshot(r) for r in _roots(c)}
        env = {k: v for k, v in os.environ.items() if not k.startswith("ZTWIZARD_")}
        env["HOME"] = str(d)
        prefix = AS_NOBODY if case.nobody else []
        start = time.monotonic()
        try:
            out = subprocess.run([*prefix, *CLI, *argv], env=env, capture_output=True, timeout=TIMEOUT, cwd=d,
                                 input=case.stdin or b"")
            code, stderr = out.returncode, out.stderr.decode(errors="replace")
        except subprocess.TimeoutExpired as exc:
            code, stderr = None, f"hung for {TIMEOUT} s: {(exc.stderr or b'').decode(errors='replace')}"
        seconds = time.monotonic() - start
        diffs = []
        for r in _roots(c):
            diffs += unchanged(before[str(r)], snapshot(r))
        err = ""
        if case.check:
            try:
                case.check(c)
            except AssertionError as exc:
                err = str(exc)
        return Result(case, code, stderr, seconds, diffs, err)
    finally:
        for p in c.holders:
            p.kill()
            p.wait()


@pytest.fixture(scope="module")
def campaign(tmp_path_factory) -> Iterator[dict[str, Result]]:
    base = Path(tempfile.mkdtemp(prefix="ztw-hostile-"))  # not under pytest's 0700 dir: nobody must reach it
    os.chmod(base, 0o755)
    mroot = tmp_path_factory.mktemp("mounts")
    mounts = Mounts(mroot) if _can_mount(mroot) else None
    try:
        as_nobody = os.geteuid() == 0 and shutil.which("setpriv") is not None
        cases = [c for c in CASES if (mounts is not None or not c.mounts) and (as_nobody or not c.nobody)]
        with ThreadPoolExecutor(max_workers=4) as pool:
            results = list(pool.map(lambda c: _run_case(c, base, mounts), cases))
        yield {r.case.name: r for r in results}
    finally:
        for s in SOCKETS:
            s.close()
        if mounts is not None:
            mounts.close()
        shutil.rmtree(base, ignore_errors=True)


def clean(r: Result) -> list[str]:
    """What is wrong with one result ([] when the invocation was clean)."""
    problems = []
    if r.error:
        problems.append(r.error)
    if r.code != r.case.code:
        problems.append(f"exit {r.code}, expected {r.case.code}")
    text = r.stderr
    if "Traceback" in text:
        problems.append("a traceback")
    if "unexpected" in text.lower():
        problems.append("an 'unexpected …' message")
    errors = [line for line in text.splitlines() if "error:" in line]
    if len(errors) != 1:
        problems.append(f"{len(errors)} error lines")
    else:
        sentence = errors[0].split("error:", 1)[1].strip()
        if not sentence or len(sentence) > 300:
            problems.append("no one-sentence message")
        if r.case.says and r.case.says not in text.lower():
            problems.append(f"message does not say {r.case.says!r}")
        argparse_style = errors[0].startswith("ztwizard") and "usage:" in text
        if not argparse_style and "hint:" not in text:
            problems.append("no hint")
    if r.diffs:
        problems.append("wrote or clobbered: " + "; ".join(r.diffs[:5]))
    return [f"{p}\n  stderr: {text.strip()[:500]}" for p in problems]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_refused_cleanly(campaign, case):
    if case.name not in campaign:
        pytest.skip("needs root with `mount -t tmpfs` and `setpriv`: these rows use real mounts and user nobody")
    r = campaign[case.name]
    assert not clean(r), f"{case.name}: " + "\n".join(clean(r))
    if "locked" in case.says:
        assert r.seconds < 10, f"the lock wait is bounded ({r.seconds:.1f} s)"


def test_the_campaign_is_at_least_sixty_inputs_and_reports_its_figure(campaign, figure):
    tried = len(campaign)
    ok = sum(1 for r in campaign.values() if not clean(r))
    figure(f"bad inputs clean: {ok}/{tried}")
    assert tried >= 60
    assert ok == tried


def test_output_through_a_symlink_replaces_the_target_atomically_and_keeps_the_link(tmp_path):
    target = w(tmp_path / "real" / "plan.txt", "old plan\n")
    os.chmod(target, 0o644)
    link = tmp_path / "plan-link.txt"
    os.symlink(target, link)
    out = subprocess.run([*CLI, *plan_to(link)], capture_output=True, text=True, timeout=TIMEOUT)
    assert out.returncode == 0, out.stderr
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text().startswith("ztwizard plan")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(p.name for p in target.parent.iterdir()) == ["plan.txt"], "no temporary file left behind"


def test_dash_means_stdout_for_both_commands(tmp_path):
    out = subprocess.run([*CLI, "--estate", str(GOOD_ESTATE), "plan", "--format", "json", "--output", "-"],
                         capture_output=True, text=True, timeout=TIMEOUT, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["schema"] == "ztwizard.plan/v1"
    assert not (tmp_path / "-").exists()
    sdir = tmp_path / "sb"
    subprocess.run([*CLI, "sandbox", "reset", "--state-dir", str(sdir), "--estate", str(GOOD_ESTATE)], check=True,
                   capture_output=True, timeout=TIMEOUT)
    out = subprocess.run([*CLI, "sandbox", "export", "--state-dir", str(sdir), "--output", "-"],
                         capture_output=True, text=True, timeout=TIMEOUT, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert isinstance(json.loads(out.stdout), list)
    assert not (tmp_path / "-").exists()
