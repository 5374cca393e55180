"""The application core both front ends drive: inspect with events, edit parameters, apply with an
event per change and cancellation between writes, undo, resume, the journal with drift.

Everything goes through the real gateway and azure-mgmt clients into an in-process sandbox on the
small estate (storage-1 proposes five updates of stblob01, one disruptive; spoke-3 proposes an
NSG create and the subnet association that names it)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import SUB, SUB2

from ztwizard import journal as J
from ztwizard.core import ChangeEvent, Core, ProgressEvent, StepEvent
from ztwizard.engine import inspect
from ztwizard.errors import UsageError
from ztwizard.gateway import Gateway
from ztwizard.sandbox import Sandbox
from ztwizard.target import in_process_target


@pytest.fixture
def make_core(tmp_path: Path, small_estate):
    """A core on the test's sandbox and journal; call again for a second front end on the same state."""
    made: list[Core] = []

    def make(*, dry_run: bool = False, **flags) -> Core:
        sandbox = Sandbox(tmp_path / "sandbox", estate=small_estate)
        core = Core(Gateway(in_process_target(sandbox)), state_dir=tmp_path / "state", dry_run=dry_run, **flags)
        made.append(core)
        return core

    yield make
    for c in made:
        c.close()

# storage-1's checks that the wizard fixes alone (storage-1g waits for a Key Vault key to be named)
STORAGE_1_AUTO = ["storage-1a", "storage-1b", "storage-1c", "storage-1d", "storage-1e", "storage-1f", "storage-1h"]


def _without_clock(plan) -> dict:
    d = plan.to_dict()
    d.pop("generated_at")
    return d


def test_inspect_reports_progress_then_each_step_and_matches_the_engine(make_core):
    core = make_core()
    events = []
    plan = core.inspect(["storage-1", "spoke-3"], on_event=events.append)
    progress = [e for e in events if isinstance(e, ProgressEvent)]
    steps = [e.result.id for e in events if isinstance(e, StepEvent)]
    assert steps == ["storage-1", "spoke-3"]  # each result as it was judged, in catalog order
    assert [p.done for p in progress] == sorted(p.done for p in progress)  # never goes back
    assert progress[-1].done == progress[-1].total == 4 + 2  # inventory phases, then one per step
    assert [s.id for s in plan.steps] == steps
    # one implementation: the CLI's engine.inspect gives the same plan
    assert _without_clock(plan) == _without_clock(inspect(core.gateway, step_ids=["storage-1", "spoke-3"]))


def test_inspecting_one_step_again_merges_into_the_plan(make_core):
    core = make_core()
    core.inspect(["storage-1", "spoke-3"])
    first = core.plan
    again = core.inspect(["spoke-3"])
    assert [s.id for s in again.steps] == ["spoke-3"]
    assert [s.id for s in core.plan.steps] == ["storage-1", "spoke-3"]
    assert core.plan.step("storage-1") is first.step("storage-1")
    assert core.plan.step("spoke-3") is again.step("spoke-3")


def test_edit_params_rebuilds_the_create_and_its_dependent(make_core):
    core = make_core()
    before = core.inspect(["spoke-3"])
    create = next(c for c in before.changes() if c.action == "create")
    association = next(c for c in before.changes() if create.id in c.depends_on)
    plan = core.edit_params(create.id, {"name": "nsg-data-edited"})
    edited = next(c for c in plan.changes() if c.id == create.id)  # the id stays: the journal knows it
    assert edited.resource_id.endswith("/networkSecurityGroups/nsg-data-edited")
    assert edited.params["name"] == "nsg-data-edited"
    follows = next(c for c in plan.changes() if c.id == association.id)
    assert "nsg-data-edited" in str(follows.body) and "nsg-data'" not in str(follows.body)
    assert create.resource_id.endswith("/nsg-data")  # the plan it came from is untouched
    assert core.plan is plan


def test_edit_params_refuses_unknown_changes_and_parameters(make_core):
    core = make_core()
    with pytest.raises(UsageError, match="no plan"):
        core.edit_params("spoke-3a-0000000000", {"name": "x"})
    plan = core.inspect(["storage-1", "spoke-3"])
    with pytest.raises(UsageError, match="No proposed change"):
        core.edit_params("spoke-3a-0000000000", {"name": "x"})
    create = next(c for c in plan.changes() if c.action == "create")
    with pytest.raises(UsageError, match="no parameter 'colour'"):
        core.edit_params(create.id, {"colour": "blue"})
    update = next(c for c in plan.changes() if c.check == "storage-1b")
    with pytest.raises(UsageError, match="no parameters"):
        core.edit_params(update.id, {"name": "x"})
    assert core.plan is plan  # a refused edit changes nothing


def test_apply_emits_an_event_per_change_and_skips_disruptive_ones_by_default(make_core):
    core = make_core()
    core.inspect(None, STORAGE_1_AUTO)
    events: list[ChangeEvent] = []
    result = core.apply(on_event=events.append)
    disruptive = next(c for c in core.plan.changes() if c.disruptive)
    assert [o.change_id for o in result.of("skipped")] == [disruptive.id]
    assert "--allow-disruptive" in result.of("skipped")[0].message
    # storage-1f's SMB settings count too on an account without shares
    assert len(result.of("applied")) == 5 and not result.of("failed") and not result.interrupted
    starts = [e.change_id for e in events if e.kind == "start"]
    assert starts == [o.change_id for o in result.of("applied")]  # the skipped one never started
    assert all(e.state == "in_flight" for e in events if e.kind == "start")
    assert result.lines()[0].startswith(f"Session {result.session_id}: 5 applied, 0 failed, 1 skipped")
    with J.Journal(core.state_dir, write=False) as j:
        assert j.session(result.session_id).status == J.DONE


def test_apply_flags_of_the_core_and_per_call(make_core):
    core = make_core(allow_disruptive=True)
    core.inspect(None, STORAGE_1_AUTO)
    assert len(core.apply().of("applied")) == 6


def test_cancelling_stops_between_writes_and_resume_picks_up(make_core):
    core = make_core()
    plan = core.inspect(None, STORAGE_1_AUTO)
    applied: list[str] = []

    def on_event(ev: ChangeEvent) -> None:
        if ev.kind == "applied":
            applied.append(ev.change_id)

    result = core.apply(plan.changes(), allow_disruptive=True, on_event=on_event,
                        cancelled=lambda: len(applied) >= 2)
    assert result.interrupted and len(result.of("applied")) == 2
    sid = result.session_id
    with J.Journal(core.state_dir, write=False) as j:
        assert j.session(sid).status == J.OPEN  # offered for resume
        assert sum(1 for r in j.changes(sid) if r.state == J.APPLIED) == 2
    core.close()

    later = make_core()
    offered = later.unfinished_session()
    assert offered is not None and offered.id == sid
    resumed = later.resume(sid)
    assert resumed.step == "storage-1" and len(resumed.remaining) == 4
    assert set(resumed.remaining) == {c.id for c in plan.changes()} - set(applied)
    # the resumed core applies in the same session
    later.inspect(None, STORAGE_1_AUTO)
    again = later.apply(allow_disruptive=True)
    assert again.session_id == sid and len(again.of("applied")) == 4


def test_journal_shows_drift_and_undo_refuses_it_unless_overridden(make_core):
    core = make_core()
    core.inspect(["storage-1"])
    result = core.apply()
    tls = next(o.change_id for o in result.of("applied") if o.change_id.startswith("storage-1b"))
    view = core.journal()
    assert view.session_id == result.session_id and view.status == J.DONE
    assert {r.change_id for r in view.rows if r.state == J.APPLIED} == {o.change_id for o in result.of("applied")}
    assert all(not r.drift for r in view.rows)

    # someone else moves the TLS floor after the wizard wrote it
    account = f"/subscriptions/{SUB}/resourceGroups/rg-st/providers/Microsoft.Storage/storageAccounts/stblob01"
    core.gateway.write("PATCH", account, {"properties": {"minimumTlsVersion": "TLS1_1"}})
    row = next(r for r in core.journal().rows if r.change_id == tls)
    assert [(d.wrote, d.now) for d in row.drift] == [("TLS1_2", "TLS1_1")]

    events: list[ChangeEvent] = []
    refused = core.undo([tls], on_event=events.append)
    assert [o.state for o in refused.outcomes] == ["drift"] and tls in refused.drift and not refused.ok
    assert [e.state for e in events] == ["drift"]
    forced = core.undo([tls], override=True)
    assert [o.state for o in forced.outcomes] == ["undone"] and forced.ok
    assert core.gateway.read(account)["properties"]["minimumTlsVersion"] == "TLS1_0"


def test_undo_of_the_whole_session_marks_it_undone(make_core):
    core = make_core()
    core.inspect(["storage-1"])
    sid = core.apply().session_id
    candidates_sid, rows = core.undoable()
    assert candidates_sid == sid and len(rows) == 5
    assert [r.seq for r in rows] == sorted((r.seq for r in rows), reverse=True)  # latest first
    result = core.undo()
    assert len(result.of("undone")) == 5
    with J.Journal(core.state_dir, write=False) as j:
        assert j.session(sid).status == J.UNDONE_SESSION
    with pytest.raises(UsageError, match="No session"):
        core.undoable()


def test_dry_run_core_refuses_to_write(make_core):
    core = make_core(dry_run=True)
    core.inspect(["storage-1"])
    with pytest.raises(UsageError, match="dry-run"):
        core.apply()
    with pytest.raises(UsageError, match="dry-run"):
        core.undo(session_id="20260101-000000-abcdef")
    assert core.journal().rows == [] and core.sessions() == []  # no session was started


def test_scope_is_validated_and_subscriptions_are_listed(make_core):
    core = make_core()
    assert [s.id for s in core.list_subscriptions()] == [SUB, SUB2]
    assert sorted(core.inspect(["storage-1"]).target["subscriptions"]) == [SUB, SUB2]  # no scope: all
    with pytest.raises(UsageError, match="not a GUID"):
        core.set_scope(["prod"])
    core.set_scope([SUB])
    assert core.subscriptions == [SUB]
    assert core.inspect(["storage-1"]).target["subscriptions"] == [SUB]
