"""The journal on its own: durability settings, 0600, migrations, corrupt files, the lock, secrets."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import textwrap

import pytest

from ztwizard import journal as J
from ztwizard.errors import UsageError, ZtwError
from ztwizard.model import Change

RID = "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/st1"


def _change(check: str = "storage-1b") -> Change:
    return Change(check=check, resource_id=RID, action="update", method="PATCH",
                  body={"properties": {"minimumTlsVersion": "TLS1_2"}},
                  before={"properties": {"minimumTlsVersion": "TLS1_0"}},
                  after={"properties": {"minimumTlsVersion": "TLS1_2"}}, title="TLS 1.2")


def test_new_journal_is_private_durable_and_current(tmp_path):
    with J.Journal(tmp_path) as j:
        sid = j.create_session("sandbox", "https://127.0.0.1:1", subscriptions=["0000"])
        assert j.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert j.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert j.db.execute("PRAGMA user_version").fetchone()[0] == J.SCHEMA_VERSION
        assert j.session(sid).status == J.OPEN
    for name in os.listdir(tmp_path):
        if name.startswith(J.DB_NAME):
            mode = stat.S_IMODE(os.stat(tmp_path / name).st_mode)
            assert mode == 0o600, (name, oct(mode))


def test_changes_round_trip_in_plan_order_with_states(tmp_path):
    with J.Journal(tmp_path) as j:
        sid = j.create_session("sandbox")
        a, b = _change("storage-1b"), _change("storage-1c")
        j.record_plan(sid, [("storage-1", a), ("storage-1", b)])
        j.record_plan(sid, [("storage-1", a)])  # idempotent
        recs = j.changes(sid)
        assert [r.change_id for r in recs] == [a.id, b.id]
        assert all(r.state == J.PLANNED for r in recs)
        j.update_change(sid, b.id, state=J.IN_FLIGHT, before_image={"id": RID, "properties": {}}, event="write")
        j.update_change(sid, b.id, state=J.APPLIED, result_etag='W/"2"')
        j.update_change(sid, a.id, state=J.IN_FLIGHT)
        rb, ra = j.change(sid, b.id), j.change(sid, a.id)
        assert rb.state == J.APPLIED and rb.seq == 1 and ra.seq == 2
        assert rb.before_image == {"id": RID, "properties": {}}
        assert rb.to_change().after == a.after and rb.title == "TLS 1.2"
        assert [r.change_id for r in j.changes(sid, states=J.UNSETTLED)] == [a.id]
        assert j.session(sid).counts == {J.APPLIED: 1, J.IN_FLIGHT: 1}
        with pytest.raises(UsageError):
            j.change(sid, "nope")


def test_sessions_newest_first(tmp_path):
    with J.Journal(tmp_path) as j:
        ids = [j.create_session("sandbox") for _ in range(3)]
        assert [s.id for s in j.sessions()] == ids[::-1]
        j.update_session(ids[2], status=J.DONE)
        assert j.latest_session(unfinished=True).id == ids[1]
    with pytest.raises(UsageError, match="no session"):
        J.Journal(tmp_path, write=False).session("missing")


def test_reader_on_missing_journal_creates_nothing(tmp_path):
    with J.Journal(tmp_path / "state", write=False) as j:
        assert j.sessions() == []
    assert not (tmp_path / "state" / J.DB_NAME).exists()


def test_migration_from_v1_keeps_rows(tmp_path):
    path = tmp_path / J.DB_NAME
    db = sqlite3.connect(path, isolation_level=None)
    J.MIGRATIONS[0](db)
    db.execute("PRAGMA user_version = 1")
    db.execute(f"PRAGMA application_id = {J.APPLICATION_ID}")
    db.execute("INSERT INTO sessions(id, created_at, updated_at, target_kind) VALUES ('s1','t','t','sandbox')")
    db.execute("INSERT INTO changes(session_id, change_id, ordinal, step_id, check_id, resource_id, method, action,"
               " state, created_at, updated_at) VALUES ('s1','c1',1,'storage-1','storage-1b',?, 'PATCH','update',"
               " 'applied','t','t')", (RID,))
    db.close()
    with J.Journal(tmp_path) as j:
        assert j.db.execute("PRAGMA user_version").fetchone()[0] == J.SCHEMA_VERSION
        rec = j.change("s1", "c1")
        assert rec.state == J.APPLIED and rec.flags == {} and rec.seq is None
        assert j.session("s1").selection == {}
        j.log("s1", "note", "events table exists after migration")
        assert j.events("s1")[-1]["message"].startswith("events table")


def test_newer_schema_is_refused(tmp_path):
    with J.Journal(tmp_path) as j:
        j.create_session("sandbox")  # a journal that holds something (an empty one is not kept)
        j.db.execute(f"PRAGMA user_version = {J.SCHEMA_VERSION + 1}")
    for write in (True, False):
        with pytest.raises(ZtwError, match="newer ztwizard"):
            J.Journal(tmp_path, write=write)


def test_a_writer_that_records_nothing_leaves_no_journal(tmp_path):
    with J.Journal(tmp_path / "state"):
        pass
    assert not (tmp_path / "state" / J.DB_NAME).exists()
    with J.Journal(tmp_path / "state") as j:
        j.create_session("sandbox")
    with J.Journal(tmp_path / "state"):
        pass
    assert (tmp_path / "state" / J.DB_NAME).exists(), "an existing journal is never removed"


@pytest.mark.parametrize("content", [b"this is not a database at all\n" * 10,
                                     J.SQLITE_HEADER + b"\x00garbage" * 500])
def test_corrupt_journal_gives_clear_error_and_stays_untouched(tmp_path, content):
    path = tmp_path / J.DB_NAME
    path.write_bytes(content)
    for write in (True, False):
        with pytest.raises(ZtwError) as e:
            J.Journal(tmp_path, write=write)
        assert "untouched" in e.value.message and e.value.hint
    assert path.read_bytes() == content
    assert sorted(os.listdir(tmp_path)) in ([J.DB_NAME], [J.DB_NAME, J.DB_NAME + ".lock"])


def test_foreign_sqlite_database_is_refused(tmp_path):
    path = tmp_path / J.DB_NAME
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE songs(title TEXT)")
    db.commit()
    db.close()
    before = path.read_bytes()
    with pytest.raises(ZtwError, match="not a ztwizard journal"):
        J.Journal(tmp_path)
    assert path.read_bytes() == before


def test_two_journals_on_one_file_in_process(tmp_path):
    with J.Journal(tmp_path) as j:
        with pytest.raises(ZtwError, match=rf"A session is in use by PID {os.getpid()} "):
            J.Journal(tmp_path)  # the holder has not started a session yet
        sid = j.create_session("sandbox")
        with pytest.raises(ZtwError, match=rf"Session {sid} is in use by PID {os.getpid()} "):
            J.Journal(tmp_path)
        # Readers are welcome alongside.
        with J.Journal(tmp_path, write=False) as r:
            assert r.sessions()[0].id == sid
    J.Journal(tmp_path).close()  # released on close


def test_lock_dies_with_a_killed_process(tmp_path):
    code = textwrap.dedent(f"""
        import os, signal, sys
        from ztwizard.journal import Journal
        j = Journal({str(tmp_path)!r})
        j.create_session("sandbox")
        print(os.getpid(), flush=True)
        sys.stdin.readline()
    """)
    p = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        pid = int(p.stdout.readline())
        with pytest.raises(ZtwError, match=f"in use by PID {pid}"):
            J.Journal(tmp_path)
        p.kill()
        p.wait(10)
    finally:
        if p.poll() is None:
            p.kill()
    J.wait_unlocked(tmp_path)  # no stale lock after SIGKILL


def test_secrets_never_reach_the_file(tmp_path):
    secrets = ["Sup3rS3cret!pw", "AKEYVALUEbase64==", "DefaultEndpointsProtocol=https;AccountName=x;AccountKey=abc123==",
               "sv=2022-11-02&ss=b&sig=SIGNATUREVALUE", "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl",
               "customDataPayload", "protectedValue42"]
    image = {
        "id": RID,
        "properties": {
            "allowSharedKeyAccess": True,
            "primaryEndpoints": {"blob": "https://st1.blob.core.windows.net/"},
            "osProfile": {"adminUsername": "azureuser", "adminPassword": secrets[0], "customData": secrets[5]},
            "keys": [{"keyName": "key1", "value": secrets[1]}],
            "connectionString": secrets[2],
            "sasUrl": "https://st1.blob.core.windows.net/c?" + secrets[3],
            "note": secrets[4],
            "protectedSettings": {"token": secrets[6]},
        },
    }
    with J.Journal(tmp_path) as j:
        sid = j.create_session("sandbox")
        ch = _change()
        j.record_plan(sid, [("storage-1", ch)])
        j.update_change(sid, ch.id, state=J.IN_FLIGHT, before_image=image, body=image, after_image=image)
        j.update_change(sid, ch.id, state=J.FAILED, error=f"ARM echoed {secrets[2]}", event=f"failed: {secrets[3]}")
        kept = j.change(sid, ch.id).before_image
    assert kept["properties"]["allowSharedKeyAccess"] is True
    assert kept["properties"]["primaryEndpoints"] == image["properties"]["primaryEndpoints"]
    assert kept["properties"]["osProfile"]["adminUsername"] == "azureuser"
    raw = b"".join((tmp_path / n).read_bytes() for n in os.listdir(tmp_path))
    for s in secrets:
        assert s.encode() not in raw, s


def test_one_journal_shared_by_threads(tmp_path):
    import threading

    with J.Journal(tmp_path) as j:
        sid = j.create_session("sandbox")
        changes = [_change(f"storage-1{c}") for c in "abcdefgh"]
        j.record_plan(sid, [("storage-1", c) for c in changes])
        errors: list[BaseException] = []

        def work(c: Change) -> None:
            try:
                for _ in range(20):
                    j.update_change(sid, c.id, state=J.IN_FLIGHT, before_image={"id": RID})
                    j.changes(sid)
                    j.update_change(sid, c.id, state=J.APPLIED)
            except BaseException as exc:  # collected for the assertion
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(c,)) for c in changes]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        rows = j.changes(sid)
        assert {r.state for r in rows} == {J.APPLIED}
        assert sorted(r.seq for r in rows) == sorted(set(r.seq for r in rows))  # write order is unique


def test_concurrent_writers_share_commits_without_losing_or_mixing_rows(tmp_path):
    """Writers in many threads (apply's workers) share commits: every row lands with its own
    seq, and one writer's failure rolls back only its own update, not the others' in its commit."""
    import threading

    changes = [Change(check="storage-1b", resource_id=f"{RID}{i}", action="update", method="PATCH",
                      body={}, before={}, after={}) for i in range(16)]
    errors: list[BaseException] = []
    with J.Journal(tmp_path) as j:
        sid = j.create_session("sandbox")
        j.record_plan(sid, [("storage-1", c) for c in changes])
        start = threading.Barrier(len(changes) + 1)

        def work(ch: Change | None) -> None:
            start.wait()
            try:
                if ch is None:
                    j.update_change(sid, "not-in-the-plan", state=J.APPLIED)
                    return
                j.update_change(sid, ch.id, state=J.IN_FLIGHT, event="PATCH sent")
                j.update_change(sid, ch.id, state=J.APPLIED, result_etag="e", event="applied")
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(c,)) for c in [*changes, None]]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(errors) == 1 and isinstance(errors[0], ZtwError) and "not-in-the-plan" in str(errors[0])
    # What another process reads from the file once the writer is gone:
    db = sqlite3.connect(tmp_path / J.DB_NAME)
    rows = db.execute("SELECT state, seq FROM changes WHERE session_id=?", (sid,)).fetchall()
    assert sorted(r[0] for r in rows) == [J.APPLIED] * len(changes)
    assert sorted(r[1] for r in rows) == list(range(1, len(changes) + 1))
    kinds = [r[0] for r in db.execute("SELECT kind FROM events WHERE session_id=? AND change_id IS NOT NULL", (sid,))]
    assert sorted(kinds) == sorted([J.IN_FLIGHT, J.APPLIED] * len(changes))
    db.close()


def _events_seen_elsewhere(state, session_id: str) -> int:
    """How many of the session's events another process reads (`ztwizard sessions` in a second
    terminal, an auditor's export)."""
    code = (f"from ztwizard import journal as J; import sys; "
            f"print(len(J.Journal(sys.argv[1], write=False).events({session_id!r})))")
    out = subprocess.run([sys.executable, "-c", code, str(state)], capture_output=True, text=True, check=True)
    return int(out.stdout)


def test_a_reader_opened_beside_the_writer_keeps_its_commits_durable_and_visible(tmp_path):
    """The wizard reads its own journal through a second handle while it writes (the TUI's
    resume offer, the sessions list). Re-reading the file's header then closed a descriptor of
    the database, which drops every POSIX lock the process held on it: the next reader in
    another process took itself for the last user and deleted the -wal file, and the writer's
    later commits went to the unlinked file, seen by no one else and lost in a crash."""
    writer = J.Journal(tmp_path, write=True)
    try:
        sid = writer.create_session("sandbox", "https://127.0.0.1:1")
        J.Journal(tmp_path, write=False).close()  # a second handle in this process
        seen = _events_seen_elsewhere(tmp_path, sid)
        assert (tmp_path / (J.DB_NAME + "-wal")).exists(), "the writer's write-ahead log is still there"
        writer.log(sid, "note", "committed after another process read")
        assert _events_seen_elsewhere(tmp_path, sid) == seen + 1 == len(writer.events(sid))
    finally:
        writer.close()


def test_readers_opened_while_the_writer_opens_leave_its_locks_alone(tmp_path):
    """The same, with the second handle opened in another thread at the moment the writer opens
    (the TUI's journal view loading as an undo starts): many rounds, none may lose the log."""
    import threading

    with J.Journal(tmp_path, write=True) as first:
        first.create_session("sandbox", "")  # the file exists, closed again
    for _ in range(30):
        go = threading.Barrier(2)

        def read(go: threading.Barrier = go) -> None:
            go.wait()
            J.Journal(tmp_path, write=False).close()

        reader = threading.Thread(target=read)
        reader.start()
        go.wait()
        writer = J.Journal(tmp_path, write=True)
        reader.join()
        try:
            sid = writer.create_session("sandbox", "")
            _events_seen_elsewhere(tmp_path, sid)
            writer.log(sid, "note", "after")
            assert _events_seen_elsewhere(tmp_path, sid) == len(writer.events(sid))
        finally:
            writer.close()
