"""The story the journal exists for: `ztwizard apply` is SIGKILLed at some instant while a sandbox
serves ARM in another process; `resume` settles the journal, every change is accounted for, and
`undo` brings the estate back to what it was.

Kill points come from ZTWIZARD_TEST_KILL_AFTER_COMMITS: "N" dies right after the Nth durable
commit, "N+MS" dies MS milliseconds later, in the middle of the request that follows."""

from __future__ import annotations

import pytest

from ztwizard import journal as J
from ztwizard.apply import DEFAULT_PARALLEL
from ztwizard.undo import one_way_of

from .conftest import without_one_way
from .served import APPLY, Served, run_cli

SETTLED = {J.PLANNED, J.SKIPPED, J.APPLIED, J.FAILED, J.NOT_APPLIED, J.DRIFTED, J.UNDONE}


def _crash_resume_undo(sb: Served, kill: str, original: dict, resume: bool = True) -> str:
    """One kill point. Without `resume`, undo settles the in-flight changes itself."""
    state = sb.state
    run = run_cli(APPLY, state, {J.KILL_ENV: kill})
    assert run.returncode == -9, run.stdout + run.stderr  # killed mid-apply
    with J.Journal(state, write=False) as j:
        session = j.latest_session()
        assert session is not None
        sid = session.id
    with J.Journal(state, write=False) as j:
        rows = j.changes(sid)
        assert rows, "the plan was recorded before any write"
        assert len(j.changes(sid, states=J.UNSETTLED)) <= DEFAULT_PARALLEL, "at most the writes under way are in flight"
        assert all(r.before_image is not None for r in j.changes(sid, states=J.UNSETTLED) if r.action != "create")
    applied: list = []
    settled = ""
    if resume:
        resumed = run_cli(["--sandbox", "resume", sid], state)
        assert resumed.returncode == 0, resumed.stderr
        settled = " ".join(line.split(": ", 1)[1].split(" (")[0] for line in resumed.stdout.splitlines()
                           if " -> " in line)
        with J.Journal(state, write=False) as j:
            rows = j.changes(sid)
            assert all(r.state in SETTLED for r in rows), {r.change_id: r.state for r in rows}
            assert len({r.change_id for r in rows}) == len(rows)
            applied = [r for r in rows if r.state == J.APPLIED]
            assert all(r.before_image is not None or r.action == "create" for r in applied)
    undone = run_cli(["--sandbox", "undo", "--yes", "--session", sid], state)
    assert undone.returncode == 0, undone.stdout + undone.stderr
    with J.Journal(state, write=False) as j:
        left = [r for r in j.changes(sid) if r.state in (*J.UNDOABLE, *J.UNSETTLED) and not one_way_of(r)]
        assert not left, "every applied change was undone"
    with J.Journal(state, write=False) as j:  # one-way changes stay (labelled so in the plan)
        now, original = without_one_way(sb.export(), j, sid), without_one_way(original, j, sid)
    if now != original:
        changed = {k for k in set(now) | set(original) if now.get(k) != original.get(k)}
        with J.Journal(state, write=False) as j:
            rows = [(r.change_id, r.state, r.note, r.error) for r in j.changes(sid)
                    if r.resource_id.lower() in changed]
            events = [(e["change_id"], e["kind"], e["message"]) for e in j.events(sid)
                      if any(e["change_id"] == r[0] for r in rows)]
        raise AssertionError(f"estate not restored after kill point {kill}: {sorted(changed)}\n{rows}\n{events}\n"
                             f"{undone.stdout}")
    return f"{kill}: {len(applied)} applied; {settled or 'nothing in flight'}"


def _commits_in_a_full_apply(sb: Served, original: dict) -> int:
    """Run the apply once to the end, count its journal commits, then undo it."""
    run = run_cli(APPLY, sb.state)
    assert run.returncode == 0, run.stdout + run.stderr
    with J.Journal(sb.state, write=False) as j:
        sid = j.latest_session().id
        n = len(j.events(sid))  # one event per commit that journaled a step of the work (a floor)
    undo = run_cli(["--sandbox", "undo", "--yes", "--session", sid], sb.state)
    assert undo.returncode == 0, undo.stdout + undo.stderr
    with J.Journal(sb.state, write=False) as j:
        assert without_one_way(sb.export(), j, sid) == without_one_way(original, j, sid)
    return n


def test_kill_apply_at_a_few_points_then_resume_and_undo(served):
    sb = served("--latency-ms", "5")
    original = sb.export()
    _crash_resume_undo(sb, "9+15", original)  # mid-request, then resume, then undo
    _crash_resume_undo(sb, "30", original, resume=False)  # right after a commit; undo settles it itself


@pytest.mark.slow
def test_kill_apply_at_twenty_points_spread_over_the_run(served):
    sb = served("--latency-ms", "10")
    original = sb.export()
    total = _commits_in_a_full_apply(sb, original)
    assert total > 40
    points = sorted({max(2, round(i * total / 22)) for i in range(1, 22)})
    kills = [f"{p}+{(i % 3) * 15}" if i % 3 else str(p) for i, p in enumerate(points)]
    assert len(kills) >= 20
    log = [_crash_resume_undo(sb, kill, original, resume=i % 4 != 3) for i, kill in enumerate(kills)]
    assert any("in_flight ->" in line for line in log), "\n".join(log)  # some kills caught a write under way


def test_a_new_apply_beside_a_killed_session_says_it_is_still_open(served):
    """The admin back after a dropped connection runs apply again instead of resume: it goes
    ahead as a new session, and says the old one is open with the commands that settle it."""
    sb = served()
    killed = run_cli(APPLY, sb.state, {J.KILL_ENV: "10+30"})
    assert killed.returncode == -9
    with J.Journal(sb.state, write=False) as j:
        old = j.latest_session().id
        in_flight = len(j.changes(old, states=J.UNSETTLED))
    assert in_flight, "the kill point leaves writes in flight"

    again = run_cli(APPLY, sb.state)
    assert again.returncode == 0, again.stdout + again.stderr
    note = [line for line in again.stderr.splitlines() if line.startswith("Note: ")]
    assert note == [f"Note: session {old} stopped unfinished ({in_flight} change(s) in flight); this apply "
                    f"starts a new session. `ztwizard --sandbox --state-dir {sb.state} resume {old} --yes` settles the old "
                    f"one, `ztwizard --sandbox --state-dir {sb.state} undo --session {old}` takes it back."], again.stderr
    with J.Journal(sb.state, write=False) as j:
        assert j.latest_session().id != old
    saved = sb.state / "plan.json"
    assert run_cli(["--sandbox", "plan", "--out", str(saved)], sb.state).returncode == 0
    from_file = run_cli(["--sandbox", "apply", str(saved), "--yes"], sb.state)
    assert f"Note: session {old} stopped unfinished ({in_flight} change(s) in flight)" in from_file.stderr, \
        "a saved plan's apply says so too"

    assert run_cli(["--sandbox", "resume", old, "--yes"], sb.state).returncode == 0
    quiet = run_cli(APPLY, sb.state)
    assert quiet.returncode == 0, quiet.stdout + quiet.stderr
    assert "stopped unfinished" not in quiet.stderr, "a settled session is not mentioned"
