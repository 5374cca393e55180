"""The wizard recognises what it created itself: a half-failed create (the Bastion's public IP
created, the Bastion's long-running operation failed) is completed by the next apply, and the
RDP/SSH closes that wait for the Bastion then go in. Through the real azure-mgmt clients."""

from __future__ import annotations

from ztwizard import journal as J
from ztwizard.apply import apply_changes, start_session
from ztwizard.engine import inspect
from ztwizard.sandbox.faults import Faults

BASTIONS = "microsoft.network/bastionhosts"
PIPS = "microsoft.network/publicipaddresses"


def _type(resource_id: str) -> str:
    parts = resource_id.lower().split("/providers/")[-1].split("/")
    return "/".join(parts[:2])


def _apply(w, on_event=None):
    plan = inspect(w.gw, step_ids=["vm-6"])
    changes = plan.changes()
    sid = start_session(w.journal, w.gw, changes)
    # One change at a time: the tests switch a fault on between two changes, and a change running
    # beside the Bastion would fail with it.
    return changes, apply_changes(w.gw, w.journal, sid, changes, allow_disruptive=True, allow_cost=True,
                                  on_event=on_event, parallel=1)


def test_half_failed_bastion_create_is_completed_on_the_next_apply(world):
    w = world(estate="reference")

    def fail_the_bastion(ev):  # the public IP lands; the Bastion's operation (only) then fails
        if ev.kind == "applied" and _type(ev.change.resource_id) == PIPS:
            w.sb.faults = Faults.parse("lro-fail:1.0")
        elif ev.kind == "failed" and _type(ev.change.resource_id) == BASTIONS:
            w.sb.faults = Faults.parse("")

    changes, first = _apply(w, fail_the_bastion)
    assert any(_type(c.resource_id) == BASTIONS for c in changes), "the plan creates a Bastion"
    assert [_type(o.resource_id) for o in first.failed] == [BASTIONS]
    waiting = [o for o in first.blocked if o.message.startswith("depends on")]
    assert waiting, "the closes that wait for the Bastion are skipped as blocked"
    pip = next(o for o in first.applied if _type(o.resource_id) == PIPS)
    assert w.gw.read(pip.resource_id) is not None
    assert w.journal.created_by_wizard(pip.resource_id) is not None

    changes2, second = _apply(w)
    by_id = {o.resource_id.lower(): o for o in second.outcomes}
    assert by_id[pip.resource_id.lower()].result == "adopted", second.lines()
    assert "created by this wizard" in by_id[pip.resource_id.lower()].message
    bastion = next(o for o in second.outcomes if _type(o.resource_id) == BASTIONS)
    assert bastion.result == "applied", second.lines()
    assert not second.failed, second.lines()
    # only prerequisites of unselected steps (vm-2) may still wait; nothing waits for the Bastion
    assert not [o for o in second.blocked if o.message.startswith("depends on")], second.lines()
    assert {o.change_id for o in waiting} <= {o.change_id for o in second.applied}, second.lines()
    # the Bastion now reaches the VMs: a third plan proposes nothing for it
    assert not [c for c in inspect(w.gw, step_ids=["vm-6"]).changes() if _type(c.resource_id) in (BASTIONS, PIPS)]


def test_a_resource_someone_else_created_under_the_planned_name_is_not_adopted(world):
    w = world(estate="reference")
    plan = inspect(w.gw, step_ids=["vm-6"])
    pip = next(c for c in plan.changes() if _type(c.resource_id) == PIPS)
    theirs = dict(pip.body, sku={"name": "Basic"}, properties={"publicIPAllocationMethod": "Dynamic"})
    w.gw.write("PUT", pip.resource_id, theirs)
    sid = start_session(w.journal, w.gw, plan.changes())
    report = apply_changes(w.gw, w.journal, sid, plan.changes(), allow_disruptive=True, allow_cost=True)
    out = next(o for o in report.outcomes if o.resource_id.lower() == pip.resource_id.lower())
    assert out.result == "skipped" and "already exists" in out.message
    assert w.journal.change(sid, pip.id).state == J.SKIPPED
    assert (w.gw.read(pip.resource_id)["sku"]["name"]).lower() == "basic", "someone else's resource untouched"


def test_an_adopted_creation_is_its_own_kind_through_the_core(tmp_path):
    """The core's events and outcomes carry "adopted" (done, nothing sent), and the summary counts it."""
    from ztwizard.core import ChangeEvent, Core
    from ztwizard.gateway import Gateway
    from ztwizard.sandbox import Sandbox
    from ztwizard.target import in_process_target

    sb = Sandbox(None, estate="reference", lro_seconds=0)
    core = Core(Gateway(in_process_target(sb)), state_dir=tmp_path / "state", allow_disruptive=True,
                allow_cost=True)

    def fail_the_bastion(ev: ChangeEvent) -> None:
        if ev.kind == "applied" and _type(ev.change.resource_id) == PIPS:
            sb.faults = Faults.parse("lro-fail:1.0")
        elif ev.kind == "failed" and _type(ev.change.resource_id) == BASTIONS:
            sb.faults = Faults.parse("")

    core.inspect(["vm-6"])
    # One change at a time: the fault is switched on between two changes, and a change running
    # beside the Bastion would fail with it.
    first = core.apply(on_event=fail_the_bastion, parallel=1)
    assert not first.of("adopted") and [o.state for o in first.outcomes].count("failed") == 1
    core.inspect(["vm-6"])
    events: list[ChangeEvent] = []
    before = len(sb.request_log)
    second = core.apply(on_event=events.append)
    adopted = second.of("adopted")
    assert len(adopted) == 1 and adopted[0].ok, second.lines()
    assert "created by this wizard" in adopted[0].message
    assert [(e.change_id, e.state) for e in events if e.kind == "adopted"] == [(adopted[0].change_id, "adopted")]
    pip = next(o for o in second.report.outcomes if o.change_id == adopted[0].change_id).resource_id.lower()
    asked = [m for m, path, _ in list(sb.request_log)[before:] if path.split("?")[0].lower() == pip]
    assert "GET" in asked and set(asked) == {"GET"}, f"read, and nothing was sent for it: {asked}"
    assert second.lines()[0].endswith(", 1 adopted."), second.lines()[0]
    assert not second.of("failed"), second.lines()
    core.close()


def test_a_session_continued_after_an_adoption_sends_what_waited_for_it(world):
    """The adopted public IP settles the session's first run; continuing with the Bastion alone (as
    resume does after a stop) sends it instead of asking for the public IP's step again."""
    w = world(estate="reference")

    def fail_the_bastion(ev):
        if ev.kind == "applied" and _type(ev.change.resource_id) == PIPS:
            w.sb.faults = Faults.parse("lro-fail:1.0")
        elif ev.kind == "failed" and _type(ev.change.resource_id) == BASTIONS:
            w.sb.faults = Faults.parse("")

    _apply(w, fail_the_bastion)
    changes = inspect(w.gw, step_ids=["vm-6"]).changes()
    pips = [c for c in changes if _type(c.resource_id) == PIPS]
    bastions = [c for c in changes if _type(c.resource_id) == BASTIONS]
    assert pips and bastions and {p.id for p in pips} & set(bastions[0].depends_on), "the Bastion waits for its IP"
    sid = start_session(w.journal, w.gw, changes)
    first = apply_changes(w.gw, w.journal, sid, pips, allow_cost=True, parallel=1)
    assert [o.result for o in first.outcomes] == ["adopted"], first.lines()
    rest = apply_changes(w.gw, w.journal, sid, bastions, allow_disruptive=True, allow_cost=True, parallel=1)
    assert [o.result for o in rest.outcomes] == ["applied"], rest.lines()
    assert [r.state for r in w.journal.changes(sid, change_ids=[p.id for p in pips])] == [J.SKIPPED]
