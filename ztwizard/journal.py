"""The write-ahead journal: every session and every change the wizard sends to ARM, in SQLite.

Before a write reaches ARM its before-image, body and etag are committed; after ARM answers the
outcome is committed. A crash at any instant therefore leaves each touched resource recorded as
changed, or as in flight with what it held before, which is what resume and undo need.

Durability: WAL with synchronous=FULL; concurrent writers share a commit (one fsync). Privacy: the file is created 0600 (no window) and bodies
are scrubbed of secrets before they are stored. Exclusivity: a writer holds an flock on a
sidecar lock file, which dies with its process, and records its PID there for the error message.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import json
import os
import re
import signal
import sqlite3
import stat
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import UsageError, ZtwError, from_os_error, from_sqlite_error
from .model import Change
from .redact import REDACTED, scrub

__all__ = ["REDACTED", "scrub"]  # kept importable from here: older callers use journal.scrub

DB_NAME = "journal.sqlite3"
APPLICATION_ID = 0x5A545721  # "ZTW!": marks the file as ours, so a foreign database is refused
SQLITE_HEADER = b"SQLite format 3\x00"

# Change states. `planned` rows are the session's plan; the rest follow the write's life.
PLANNED = "planned"
SKIPPED = "skipped"
IN_FLIGHT = "in_flight"
APPLIED = "applied"
FAILED = "failed"
NOT_APPLIED = "not_applied"
DRIFTED = "drifted"
UNDO_IN_FLIGHT = "undo_in_flight"
UNDONE = "undone"
UNDO_FAILED = "undo_failed"
STATES = (PLANNED, SKIPPED, IN_FLIGHT, APPLIED, FAILED, NOT_APPLIED, DRIFTED,
          UNDO_IN_FLIGHT, UNDONE, UNDO_FAILED)
# Still holding what the wizard wrote, so undo has something to do.
UNDOABLE = (APPLIED, UNDO_FAILED)
# Nothing is known about ARM's side until a read settles it.
UNSETTLED = (IN_FLIGHT, UNDO_IN_FLIGHT)

# Power-guard stages of a VM, in order: its state was recorded, the deallocation was sent, it is
# deallocated (the changes go now), the start was sent, it is back as it was.
POWER_WAS = "power-was"
DEALLOCATING = "deallocating"
DEALLOCATED = "deallocated"
STARTING = "starting"
RESTORED = "restored"
POWER_STAGES = (POWER_WAS, DEALLOCATING, DEALLOCATED, STARTING, RESTORED)

# Session statuses.
OPEN = "open"
DONE = "done"
UNDONE_SESSION = "undone"

KILL_ENV = "ZTWIZARD_TEST_KILL_AFTER_COMMITS"
# "KIND[@TEXT][+MS]": die after the commit of the first event of KIND (whose change id or message
# holds TEXT), or MS milliseconds later: a kill point named by what the wizard was doing.
KILL_AT_EVENT_ENV = "ZTWIZARD_TEST_KILL_AT_EVENT"
# How long to wait for another process's SQLite lock before saying who holds it.
BUSY_SECONDS = 2.0


# ---- schema and migrations ------------------------------------------------------------------

def _script(db: sqlite3.Connection, sql: str) -> None:
    """Statement by statement: executescript() would commit the migration's transaction early."""
    for stmt in sql.split(";"):
        if stmt.strip():
            db.execute(stmt)


def _v1(db: sqlite3.Connection) -> None:
    _script(db, """
        CREATE TABLE sessions (
            id TEXT PRIMARY KEY,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            target_kind TEXT NOT NULL,
            endpoint TEXT NOT NULL DEFAULT '',
            subscriptions TEXT NOT NULL DEFAULT '[]',
            resource_groups TEXT NOT NULL DEFAULT '[]',
            step TEXT,
            status TEXT NOT NULL DEFAULT 'open',
            pid INTEGER
        );
        CREATE TABLE changes (
            session_id TEXT NOT NULL REFERENCES sessions(id),
            change_id TEXT NOT NULL,
            ordinal INTEGER NOT NULL,
            step_id TEXT NOT NULL,
            check_id TEXT NOT NULL,
            resource_id TEXT NOT NULL,
            method TEXT NOT NULL,
            action TEXT NOT NULL,
            api_version TEXT NOT NULL DEFAULT '',
            body TEXT,
            plan_before TEXT NOT NULL DEFAULT '{}',
            plan_after TEXT NOT NULL DEFAULT '{}',
            before_image TEXT,
            etag_before TEXT,
            state TEXT NOT NULL,
            result_etag TEXT,
            after_image TEXT,
            error TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (session_id, change_id)
        );
    """)


def _v2(db: sqlite3.Connection) -> None:
    """v2: the session's selection, change flags and write order, undo images, an event log."""
    _script(db, """
        ALTER TABLE sessions ADD COLUMN selection TEXT NOT NULL DEFAULT '{}';
        ALTER TABLE changes ADD COLUMN flags TEXT NOT NULL DEFAULT '{}';
        ALTER TABLE changes ADD COLUMN note TEXT;
        ALTER TABLE changes ADD COLUMN seq INTEGER;
        ALTER TABLE changes ADD COLUMN undo_image TEXT;
        ALTER TABLE changes ADD COLUMN undo_body TEXT;
        CREATE TABLE events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            session_id TEXT NOT NULL,
            change_id TEXT,
            at TEXT NOT NULL,
            kind TEXT NOT NULL,
            message TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX changes_state ON changes(session_id, state);
    """)


def _v3(db: sqlite3.Connection) -> None:
    """v3: VM power guards, so that a VM deallocated for a change is started again after a crash."""
    _script(db, """
        CREATE TABLE power (
            session_id TEXT NOT NULL,
            vm_id TEXT NOT NULL,
            original TEXT NOT NULL,
            stage TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (session_id, vm_id)
        );
    """)


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_v1, _v2, _v3]
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(db: sqlite3.Connection) -> int:
    """Bring the schema to SCHEMA_VERSION, one transaction per version step."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise ZtwError(f"The journal was written by a newer ztwizard (schema v{version}; this one knows v{SCHEMA_VERSION}).",
                       "Upgrade ztwizard, or use another --state-dir.")
    while version < SCHEMA_VERSION:
        step = MIGRATIONS[version]
        db.execute("BEGIN IMMEDIATE")
        try:
            step(db)
            version += 1
            db.execute(f"PRAGMA user_version = {version}")
            if version == 1:
                db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    return version


# ---- records --------------------------------------------------------------------------------

@dataclass
class SessionInfo:
    id: str
    created_at: str
    updated_at: str
    target_kind: str
    endpoint: str
    subscriptions: list[str]
    resource_groups: list[str]
    step: str | None
    status: str
    pid: int | None
    selection: dict[str, Any]
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def in_flight(self) -> int:
        """Changes whose write (or undo) went out with no answer journalled."""
        return sum(self.counts.get(s, 0) for s in UNSETTLED)

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass
class PowerRecord:
    """A VM the wizard deallocates for a change: what it was, and how far the guard got."""

    vm_id: str
    original: str
    stage: str


@dataclass
class ChangeRecord:
    session_id: str
    change_id: str
    ordinal: int
    step_id: str
    check_id: str
    resource_id: str
    method: str
    action: str
    api_version: str
    body: Any
    plan_before: dict[str, Any]
    plan_after: dict[str, Any]
    before_image: dict[str, Any] | None
    etag_before: str | None
    state: str
    result_etag: str | None
    after_image: dict[str, Any] | None
    error: str | None
    created_at: str
    updated_at: str
    flags: dict[str, Any]
    note: str | None
    seq: int | None
    undo_image: dict[str, Any] | None
    undo_body: Any

    @property
    def depends_on(self) -> list[str]:
        return list(self.flags.get("depends_on") or [])

    @property
    def instead_of(self) -> str:
        return str(self.flags.get("instead_of") or "")

    @property
    def title(self) -> str:
        return str(self.flags.get("title") or self.check_id)

    @property
    def in_place(self) -> bool:
        """Applied, or skipped because ARM already held it (adopted, set by someone else, or by an
        earlier change): either way what it writes is there, and what waits for it may go."""
        return self.state == APPLIED or (self.state == SKIPPED and bool(self.flags.get("in_place")))

    def to_change(self) -> Change:
        return Change(check=self.check_id, resource_id=self.resource_id, action=self.action,
                      method=self.method, body=copy.deepcopy(self.body), before=copy.deepcopy(self.plan_before),
                      after=copy.deepcopy(self.plan_after), api_version=self.api_version,
                      disruptive=bool(self.flags.get("disruptive")), billable=bool(self.flags.get("billable")),
                      risk=str(self.flags.get("risk") or ""), title=str(self.flags.get("title") or ""),
                      etag=self.etag_before, depends_on=self.depends_on, id=self.change_id,
                      instead_of=self.instead_of)

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


_JSON_COLS = {"body", "plan_before", "plan_after", "before_image", "after_image", "flags",
              "undo_image", "undo_body"}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _dump(value: Any) -> str | None:
    if value is None:
        return None
    return json.dumps(scrub(value), sort_keys=True)


def _load(text: str | None) -> Any:
    return None if text is None else json.loads(text)


# ---- the lock -------------------------------------------------------------------------------

class _Lock:
    """An exclusive flock on `<db>.lock`; the kernel drops it when the process dies."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None

    def acquire(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as e:
            raise from_os_error(e, "The journal's lock file") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = ""
            with contextlib.suppress(OSError):
                holder = os.pread(fd, 200, 0).decode(errors="replace").strip()
            os.close(fd)
            pid, _, session = holder.partition(" ")
            who = f"PID {pid}" if pid.isdigit() else "another process"
            what = f"Session {session}" if session else "A session"
            raise ZtwError(f"{what} is in use by {who} (the journal takes one writer at a time).",
                           "Wait for that wizard to finish (or stop it), then try again.") from None
        self.fd = fd
        self.note("")

    def note(self, session_id: str) -> None:
        if self.fd is None:
            return
        data = f"{os.getpid()} {session_id}".strip().encode()
        with contextlib.suppress(OSError):  # the note only names the holder; a full disk must not stop here
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, data, 0)

    def release(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, 0)
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


# ---- the journal ----------------------------------------------------------------------------

# Journal files this process holds an SQLite connection to, and how many. POSIX drops every
# lock a process holds on a file when it closes any descriptor of that file, so reading the
# header again with open() would release the writer's WAL locks: another process's reader would
# then take itself for the last user, checkpoint and delete the -wal file, and the writer's later
# commits would go to an unlinked file (invisible to others, lost in a crash).
_HELD: dict[str, int] = {}
_HELD_LOCK = threading.Lock()


class Journal:
    """The journal under `state_dir`. `write=True` takes the writer lock (apply, undo, resume);
    readers (`sessions`, the TUI's journal view) may open it alongside a writer."""

    def __init__(self, state_dir: str | os.PathLike[str], *, write: bool = True) -> None:
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / DB_NAME
        self.write = write
        self._lock: _Lock | None = None
        self._mutex = threading.RLock()
        # Group commit: writers arriving while one transaction is open join it (each in its own
        # savepoint), and the last to finish its statements commits for all with one fsync.
        self._arrival = threading.Lock()
        self._arriving = 0  # writers waiting for the mutex to join the open transaction
        self._batch = 0  # the open (or last) transaction's number
        self._durable = 0  # the last transaction committed (or failed)
        self._failures: dict[int, sqlite3.Error] = {}
        self._settled = threading.Condition(self._mutex)
        self._open = False
        self._inside = 0  # blocks running in the open transaction (nested in this thread's)
        self._commits = 0
        # Crash tests: "N" dies right after the Nth commit; "N+MS" dies MS milliseconds later
        # (in the middle of the request that follows).
        kill = re.fullmatch(r"(\d+)(?:\+(\d+))?", os.environ.get(KILL_ENV, ""))
        self._kill_after = int(kill.group(1)) if kill else 0
        self._kill_delay = int(kill.group(2) or 0) / 1000 if kill else 0.0
        at = re.fullmatch(r"([a-z_-]+)(?:@([^+]+))?(?:\+(\d+))?", os.environ.get(KILL_AT_EVENT_ENV, ""))
        self._kill_event = (at.group(1), at.group(2) or "", int(at.group(3) or 0) / 1000) if at else None
        self._kill_armed = False
        self._ensure_dir()
        self._fresh = False  # this writer created the file (close() removes it if nothing was committed)
        self._held = False  # counted in _HELD: this journal's connection is open
        if write:
            self._lock = _Lock(self.path.with_name(DB_NAME + ".lock"))
            self._lock.acquire()
        try:
            self.db = self._connect()
        except BaseException:
            if self._lock:
                self._lock.release()
            raise

    # -- opening --
    def _ensure_dir(self) -> None:
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        except FileExistsError:
            raise UsageError(f"The state dir {self.state_dir} is not a directory.",
                             "Pass a directory to --state-dir (or set ZTWIZARD_STATE_DIR).") from None
        except OSError as e:
            raise from_os_error(e, "The state dir") from None
        if not self.state_dir.is_dir():
            raise UsageError(f"The state dir {self.state_dir} is not a directory.",
                             "Pass a directory to --state-dir (or set ZTWIZARD_STATE_DIR).")

    def _check_file(self) -> bool:
        """True when the file exists. Refuses anything that is not an SQLite database."""
        try:
            st = self.path.stat()
            if not stat.S_ISREG(st.st_mode):
                raise UsageError(f"The journal {self.path} is not a regular file.",
                                 "Remove what is at that path, or pass another --state-dir.")
            if st.st_size == 0:
                return True
            if _HELD.get(self._held_key()):  # checked when first opened, and open since (see _HELD)
                return True
            with open(self.path, "rb") as f:
                head = f.read(16)
        except FileNotFoundError:
            return False
        except OSError as e:
            raise from_os_error(e, "The journal") from None
        if head != SQLITE_HEADER:
            raise ZtwError(f"The journal {self.path} is not an SQLite database (damaged or a foreign file); "
                           "it was left untouched.",
                           "Keep it (it may hold undo history) and pass another --state-dir for new sessions.")
        return True

    def _connect(self) -> sqlite3.Connection:
        # The header is read, and this handle counted, under one lock: a header read closes its
        # descriptor only while no other thread of this process has the file open or is opening it.
        with _HELD_LOCK:
            existed = self._check_file()
            key = self._held_key()
            _HELD[key] = _HELD.get(key, 0) + 1
            self._held = True
        try:
            return self._open_db(existed)
        except BaseException:
            self._release_held()
            raise

    def _open_db(self, existed: bool) -> sqlite3.Connection:
        if not existed:
            if not self.write:
                # A reader never creates the file; an empty in-memory journal answers its queries.
                db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
                migrate(db)
                db.row_factory = sqlite3.Row
                self._release_held()  # no file is held open
                return db
            # Created 0600 before SQLite touches it, so there is no window with wider rights.
            try:
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
                self._fresh = True
            except FileExistsError:
                pass
            except OSError as e:
                raise from_os_error(e, "The journal") from None
        try:
            db = sqlite3.connect(self.path, isolation_level=None, timeout=BUSY_SECONDS, check_same_thread=False)
            db.row_factory = sqlite3.Row
            app_id = db.execute("PRAGMA application_id").fetchone()[0]
            version = db.execute("PRAGMA user_version").fetchone()[0]
            tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            if app_id != APPLICATION_ID and (tables or version):
                db.close()
                raise ZtwError(f"{self.path} is an SQLite database but not a ztwizard journal; it was left untouched.",
                               "Move it aside, or pass another --state-dir.")
            if app_id == APPLICATION_ID:
                db.execute("PRAGMA quick_check").fetchall()
            if self.write:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=FULL")
                migrate(db)
            elif version > SCHEMA_VERSION:
                raise ZtwError(f"The journal was written by a newer ztwizard (schema v{version}; this one knows "
                               f"v{SCHEMA_VERSION}).", "Upgrade ztwizard, or use another --state-dir.")
            elif version < SCHEMA_VERSION:
                raise ZtwError(f"The journal {self.path} has an older schema (v{version}).",
                               "Run any writing command (apply, undo, resume) once to upgrade it.")
            with contextlib.suppress(OSError):
                os.chmod(self.path, 0o600)
            return db
        except sqlite3.Error as e:
            if not existed:  # a journal this call began (a full disk): leave nothing half-made behind
                for leftover in (self.path, self.path.with_name(DB_NAME + "-wal"), self.path.with_name(DB_NAME + "-shm")):
                    with contextlib.suppress(OSError):
                        leftover.unlink()
            raise self._sqlite_error(e) from None

    def _held_key(self) -> str:
        return os.path.realpath(self.path)

    def _release_held(self) -> None:
        if not self._held:
            return
        self._held = False
        with _HELD_LOCK:
            key = self._held_key()
            _HELD[key] -= 1
            if not _HELD[key]:
                del _HELD[key]

    def _sqlite_error(self, e: sqlite3.Error) -> ZtwError:
        err = from_sqlite_error(e, self.path)
        if "locked" in str(e).lower() or "busy" in str(e).lower():
            pids = sqlite_lock_holders(self.path)
            who = f"PID {', '.join(map(str, pids))}" if pids else "another process"
            err = ZtwError(f"The journal {self.path} is locked by {who} (waited {BUSY_SECONDS:g} s).",
                           "Let that process finish (or stop it), then try again.")
        return err

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.db.close()
        self._release_held()
        if self._fresh and not self._commits:  # a writer that recorded nothing leaves no journal behind
            for leftover in (self.path, self.path.with_name(DB_NAME + "-wal"), self.path.with_name(DB_NAME + "-shm")):
                with contextlib.suppress(OSError):
                    leftover.unlink()
            self._fresh = False
        if self._lock:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transactions --
    def _q(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._mutex:
            try:
                return self.db.execute(sql, args).fetchall()
            except sqlite3.Error as e:
                raise self._sqlite_error(e) from None

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One durable transaction: when this returns, what the block wrote is committed
        (synchronous=FULL). Concurrent writers share one commit: each runs its block in a
        savepoint of the open transaction, and the one that finds nobody else arriving commits
        them all; the others wait for that commit, and fail with it."""
        if not self.write:
            raise ZtwError("The journal was opened read-only.", "Open it with write=True.")
        with self._arrival:
            self._arriving += 1
        joined = False
        try:
            self._mutex.acquire()
            joined = True
        finally:
            with self._arrival:
                self._arriving -= 1
            if not joined:  # interrupted while waiting: a writer that counted on this one must not wait for ever
                with self._mutex:
                    self._commit_unless_joined()
        try:
            try:
                if not self._open:
                    self.db.execute("BEGIN IMMEDIATE")
                    self._open = True
                    self._batch += 1
                batch = self._batch
                self.db.execute("SAVEPOINT joined")
                self._inside += 1
                try:
                    yield self.db
                except BaseException:
                    self._inside -= 1
                    with contextlib.suppress(sqlite3.Error):
                        self.db.execute("ROLLBACK TO joined")
                        self.db.execute("RELEASE joined")
                    self._commit_unless_joined()
                    raise
                self._inside -= 1
                self.db.execute("RELEASE joined")
            except sqlite3.Error as e:
                self._commit_unless_joined()
                raise self._sqlite_error(e) from None
            self._commit_unless_joined()
            while self._durable < batch and not self._inside:  # nested: the outer block's commit covers it
                self._settled.wait()
            failed = self._failures.get(batch)
        finally:
            self._mutex.release()
        if failed is not None:
            raise self._sqlite_error(failed)
        self._commits += 1
        if self._kill_after and self._commits == self._kill_after:
            _die(self._kill_delay)
        if self._kill_armed and self._kill_event is not None:
            delay = self._kill_event[2]
            self._kill_armed, self._kill_event = False, None
            _die(delay)

    def _commit_unless_joined(self) -> None:
        """With the mutex held: commit the open transaction unless another writer is about to
        join it (that one commits, or the next after it)."""
        if not self._open or self._inside:  # a block still running (this thread's own, nested) commits later
            return
        with self._arrival:
            if self._arriving:
                return
        batch, self._open = self._batch, False
        try:
            self.db.execute("COMMIT")
        except sqlite3.Error as e:
            with contextlib.suppress(sqlite3.Error):
                self.db.execute("ROLLBACK")
            self._failures[batch] = e
        self._durable = batch
        self._settled.notify_all()

    def _event(self, db: sqlite3.Connection, session_id: str, change_id: str | None, kind: str,
               message: str = "") -> None:
        if self._kill_event and kind == self._kill_event[0] and self._kill_event[1] in f"{change_id or ''} {message}":
            self._kill_armed = True  # dies once this transaction is committed
        db.execute("INSERT INTO events(session_id, change_id, at, kind, message) VALUES (?,?,?,?,?)",
                   (session_id, change_id, _now(), kind, message))

    # -- sessions --
    def create_session(self, target_kind: str, endpoint: str = "", *, subscriptions: Iterable[str] = (),
                       resource_groups: Iterable[str] = (), selection: dict[str, Any] | None = None) -> str:
        """A new open session held by this process; returns its id (sortable by creation)."""
        sid = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        now = _now()
        with self._tx() as db:
            db.execute("INSERT INTO sessions(id, created_at, updated_at, target_kind, endpoint, subscriptions,"
                       " resource_groups, step, status, pid, selection) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                       (sid, now, now, target_kind, endpoint, json.dumps(list(subscriptions)),
                        json.dumps(list(resource_groups)), None, OPEN, os.getpid(),
                        json.dumps(selection or {}, sort_keys=True)))
            self._event(db, sid, None, "session", f"created for {target_kind} {endpoint}".strip())
        if self._lock:
            self._lock.note(sid)
        return sid

    def hold(self, session_id: str) -> SessionInfo:
        """Take over an existing session (resume, undo): record this process as its holder."""
        info = self.session(session_id)
        with self._tx() as db:
            db.execute("UPDATE sessions SET pid=?, updated_at=? WHERE id=?", (os.getpid(), _now(), session_id))
        if self._lock:
            self._lock.note(session_id)
        return info

    def update_session(self, session_id: str, *, step: str | None = None, status: str | None = None) -> None:
        sets, args = ["updated_at=?"], [_now()]
        if step is not None:
            sets.append("step=?")
            args.append(step)
        if status is not None:
            sets.append("status=?")
            args.append(status)
        with self._tx() as db:
            db.execute(f"UPDATE sessions SET {', '.join(sets)} WHERE id=?", (*args, session_id))

    def _session_row(self, row: sqlite3.Row) -> SessionInfo:
        counts = {r[0]: r[1] for r in self._q(
            "SELECT state, COUNT(*) FROM changes WHERE session_id=? GROUP BY state", (row["id"],))}
        return SessionInfo(id=row["id"], created_at=row["created_at"], updated_at=row["updated_at"],
                           target_kind=row["target_kind"], endpoint=row["endpoint"],
                           subscriptions=json.loads(row["subscriptions"]),
                           resource_groups=json.loads(row["resource_groups"]), step=row["step"],
                           status=row["status"], pid=row["pid"], selection=json.loads(row["selection"] or "{}"),
                           counts=counts)

    def session(self, session_id: str) -> SessionInfo:
        rows = self._q("SELECT * FROM sessions WHERE id=?", (session_id,))
        row = rows[0] if rows else None
        if row is None:
            raise UsageError(f"There is no session {session_id!r} in the journal.",
                             "List them with `ztwizard sessions`.")
        return self._session_row(row)

    def sessions(self) -> list[SessionInfo]:
        """Newest first."""
        rows = self._q("SELECT * FROM sessions ORDER BY created_at DESC, id DESC")
        return [self._session_row(r) for r in rows]

    def open_session_on(self, endpoint: str) -> SessionInfo | None:
        """The newest open (interrupted) session on this endpoint: sessions on another target
        are not this wizard's to resume."""
        here = (endpoint or "").rstrip("/")
        return next((s for s in self.sessions() if s.status == OPEN
                     and (not here or not s.endpoint or s.endpoint.rstrip("/") == here)), None)

    def latest_session(self, *, unfinished: bool = False) -> SessionInfo | None:
        for s in self.sessions():
            if not unfinished or s.status == OPEN:
                return s
        return None

    # -- changes --
    def record_plan(self, session_id: str, planned: Iterable[tuple[str, Change]]) -> None:
        """The session's plan as `planned` rows ((step id, change) pairs), in order."""
        now = _now()
        with self._tx() as db:
            start = db.execute("SELECT COALESCE(MAX(ordinal), 0) FROM changes WHERE session_id=?",
                               (session_id,)).fetchone()[0]
            for i, (step_id, ch) in enumerate(planned, start=start + 1):
                exists = db.execute("SELECT 1 FROM changes WHERE session_id=? AND change_id=?",
                                    (session_id, ch.id)).fetchone()
                if exists:
                    continue
                db.execute(
                    "INSERT INTO changes(session_id, change_id, ordinal, step_id, check_id, resource_id, method,"
                    " action, api_version, body, plan_before, plan_after, etag_before, state, created_at,"
                    " updated_at, flags) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (session_id, ch.id, i, step_id, ch.check, ch.resource_id, ch.method, ch.action,
                     ch.api_version, _dump(ch.body), _dump(ch.before) or "{}", _dump(ch.after) or "{}",
                     ch.etag, PLANNED, now, now, _dump(_flags(ch))))

    def update_change(self, session_id: str, change_id: str, *, event: str = "",
                      set_flags: dict[str, Any] | None = None, **fields: Any) -> None:
        """Set columns of one change and commit durably (JSON columns are scrubbed); `set_flags`
        merges keys into its flags instead of replacing them."""
        cols = dict(fields)
        cols["updated_at"] = _now()
        with self._tx() as db:
            if cols.get("state") in (IN_FLIGHT, UNDO_IN_FLIGHT) and "seq" not in cols:
                cols["seq"] = db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM changes WHERE session_id=?",
                                         (session_id,)).fetchone()[0]
            names = list(cols)
            values = [_dump(cols[n]) if n in _JSON_COLS else scrub(cols[n]) for n in names]
            assigns = [f"{n}=?" for n in names]
            if set_flags:
                assigns.append("flags=json_patch(flags, ?)")
                values.append(_dump(set_flags))
            cur = db.execute(f"UPDATE changes SET {', '.join(assigns)} "
                             "WHERE session_id=? AND change_id=?", (*values, session_id, change_id))
            if cur.rowcount != 1:
                raise ZtwError(f"Change {change_id} is not in session {session_id}.")
            if event:
                self._event(db, session_id, change_id, str(cols.get("state", "")), scrub(event))

    def changes(self, session_id: str, *, states: Iterable[str] | None = None,
                step_ids: Iterable[str] | None = None, change_ids: Iterable[str] | None = None) -> list[ChangeRecord]:
        """The session's changes in plan order, optionally filtered."""
        rows = self._q("SELECT * FROM changes WHERE session_id=? ORDER BY ordinal", (session_id,))
        st = set(states) if states is not None else None
        steps = set(step_ids) if step_ids else None
        ids = set(change_ids) if change_ids else None
        out = []
        for r in rows:
            rec = _record(r)
            if st is not None and rec.state not in st:
                continue
            if steps is not None and rec.step_id not in steps:
                continue
            if ids is not None and rec.change_id not in ids:
                continue
            out.append(rec)
        return out

    def change(self, session_id: str, change_id: str) -> ChangeRecord:
        rows = self._q("SELECT * FROM changes WHERE session_id=? AND change_id=?", (session_id, change_id))
        row = rows[0] if rows else None
        if row is None:
            raise UsageError(f"There is no change {change_id!r} in session {session_id}.",
                             "List the session's changes with `ztwizard sessions --format json`.")
        return _record(row)

    def created_by_wizard(self, resource_id: str, *, exclude_change: tuple[str, str] | None = None) -> ChangeRecord | None:
        """The latest create of `resource_id` this journal records as sent (applied, in flight or
        failed after sending), in any session; None when the wizard never created it (or undid it)."""
        rows = self._q("SELECT * FROM changes WHERE lower(resource_id)=? AND action='create' AND state IN "
                       "(?,?,?,?) AND before_image IS NULL AND seq IS NOT NULL ORDER BY updated_at DESC",
                       (resource_id.lower(), APPLIED, IN_FLIGHT, FAILED, UNDO_FAILED))
        for row in rows:
            if exclude_change and (row["session_id"], row["change_id"]) == exclude_change:
                continue
            return _record(row)
        return None

    # -- power guards --
    def record_power(self, session_id: str, vm_id: str, stage: str, original: str | None = None) -> None:
        """A VM's power-guard stage (and, when it opens, its original power state), durably."""
        if stage not in POWER_STAGES:
            raise ValueError(stage)
        with self._tx() as db:
            if original is not None:
                db.execute("INSERT INTO power(session_id, vm_id, original, stage, updated_at) VALUES (?,?,?,?,?)"
                           " ON CONFLICT(session_id, vm_id) DO UPDATE SET original=excluded.original,"
                           " stage=excluded.stage, updated_at=excluded.updated_at",
                           (session_id, vm_id, original, stage, _now()))
            else:
                cur = db.execute("UPDATE power SET stage=?, updated_at=? WHERE session_id=? AND vm_id=?",
                                 (stage, _now(), session_id, vm_id))
                if cur.rowcount != 1:
                    raise ZtwError(f"No power guard is open for {vm_id} in session {session_id}.")
            was = f" (was {original})" if original is not None else ""
            self._event(db, session_id, None, stage, f"{vm_id}{was}")

    def power_guards(self, session_id: str, *, open_only: bool = True) -> list[PowerRecord]:
        """The session's VM power guards (by default those not yet restored)."""
        rows = self._q("SELECT * FROM power WHERE session_id=? ORDER BY updated_at", (session_id,))
        out = [PowerRecord(r["vm_id"], r["original"], r["stage"]) for r in rows]
        return [p for p in out if p.stage != RESTORED] if open_only else out

    def events(self, session_id: str) -> list[dict[str, Any]]:
        return [dict(r) for r in self._q("SELECT * FROM events WHERE session_id=? ORDER BY id", (session_id,))]

    def log(self, session_id: str, kind: str, message: str, change_id: str | None = None) -> None:
        with self._tx() as db:
            self._event(db, session_id, change_id, kind, scrub(message))


def _die(delay: float) -> None:
    """The crash tests' SIGKILL: now, or `delay` seconds later (in the middle of what follows)."""
    if delay:
        timer = threading.Timer(delay, os.kill, (os.getpid(), signal.SIGKILL))
        timer.daemon = True
        timer.start()
    else:
        os.kill(os.getpid(), signal.SIGKILL)


def _flags(ch: Change) -> dict[str, Any]:
    return {"disruptive": ch.disruptive, "billable": ch.billable, "risk": ch.risk, "title": ch.title,
            "depends_on": list(ch.depends_on), "params": ch.params,
            **({"instead_of": ch.instead_of} if ch.instead_of else {})}


def _record(row: sqlite3.Row) -> ChangeRecord:
    d = dict(row)
    for k in _JSON_COLS:
        d[k] = _load(d.get(k))
    d["plan_before"] = d["plan_before"] or {}
    d["plan_after"] = d["plan_after"] or {}
    d["flags"] = d["flags"] or {}
    return ChangeRecord(**d)


def sqlite_lock_holders(path: Path) -> list[int]:
    """PIDs holding POSIX locks on `path` (SQLite's own locks), from /proc/locks; [] elsewhere."""
    try:
        st = path.stat()
        text = Path("/proc/locks").read_text()
    except OSError:
        return []
    dev = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    pids = []
    for line in text.splitlines():
        parts = line.split()
        if "->" in parts:  # a waiter, not a holder
            continue
        if len(parts) >= 6 and parts[5].lower() == dev and parts[4].isdigit():
            pid = int(parts[4])
            if pid != os.getpid() and pid not in pids:
                pids.append(pid)
    return pids


def wait_unlocked(state_dir: str | os.PathLike[str], timeout: float = 5.0) -> None:
    """Tests: wait until no process holds the writer lock."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            Journal(state_dir).close()
            return
        except ZtwError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
