"""VM changes under the power guard, through the real azure-mgmt clients against the sandbox:
one journaled deallocation per VM for all its changes (and its disks'), started again only if it
was running, the same in reverse on undo, and resume putting back a VM a crash left deallocated."""

from __future__ import annotations

from collections import defaultdict

from ztwizard import journal as J
from ztwizard import power
from ztwizard.apply import apply_changes, start_session, unset_params
from ztwizard.engine import inspect
from ztwizard.resume import reconcile
from ztwizard.undo import undo_changes

from .conftest import without_one_way

VM_TYPE = "microsoft.compute/virtualmachines"


def _vms(w) -> list[str]:
    return [r["id"] for r in w.sb.export() if r.get("type", "").lower() == VM_TYPE]


def _power(w) -> dict[str, str]:
    return {vm.rsplit("/", 1)[-1]: w.gw.power_state(vm) for vm in _vms(w)}


def _apply(w, **kw):
    changes = inspect(w.gw).changes()
    sid = start_session(w.journal, w.gw, changes)
    kw.setdefault("allow_disruptive", True)
    kw.setdefault("allow_cost", True)
    return sid, changes, apply_changes(w.gw, w.journal, sid, changes, **kw)


def _stages(w, sid, since: int = 0) -> dict[str, list[str]]:
    """VM name -> its power-guard stages in the order the journal recorded them."""
    out: dict[str, list[str]] = defaultdict(list)
    for e in w.journal.events(sid):
        if e["id"] > since and e["kind"] in J.POWER_STAGES:
            out[e["message"].split(" ")[0].rsplit("/", 1)[-1]].append(e["kind"])
    return dict(out)


def _offline(changes) -> list:
    return [c for c in changes if power.needs_deallocation(c.resource_id, c.after)]


def test_each_vm_is_deallocated_once_for_all_its_changes_and_started_again(world):
    w = world(estate="reference")
    sid, changes, report = _apply(w)
    offline = _offline(changes)
    assert offline, "the reference estate proposes VM changes that need a deallocated VM"
    assert not report.failed, "\n".join(report.lines())
    stages = _stages(w, sid)
    full = [J.POWER_WAS, J.DEALLOCATING, J.DEALLOCATED, J.STARTING, J.RESTORED]
    touched = {c.resource_id.rsplit("/", 1)[-1] for c in offline if "virtualMachines" in c.resource_id}
    assert touched <= set(stages)
    assert all(seq == full for seq in stages.values()), stages  # one deallocation per VM
    assert set(_power(w).values()) == {"running"}
    # Every write that needs it went while its VM was deallocated: between `deallocated` and `starting`.
    events = w.journal.events(sid)
    for c in offline:
        if report.outcomes and next(o for o in report.outcomes if o.change_id == c.id).result != "applied":
            continue
        vm = c.resource_id
        sent = next(e["id"] for e in events if e["change_id"] == c.id and e["kind"] == J.IN_FLIGHT)
        down = [e["id"] for e in events if e["kind"] == J.DEALLOCATED and e["message"].startswith(vm)]
        up = [e["id"] for e in events if e["kind"] == J.STARTING and e["message"].startswith(vm)]
        assert down and up and down[0] < sent < up[0], c.id
    assert not w.journal.power_guards(sid)


def test_undo_takes_vm_changes_back_under_one_deallocation_and_restores_the_estate(world):
    w = world(estate="reference")
    original = w.view()
    sid, _changes, report = _apply(w)
    mark = w.journal.events(sid)[-1]["id"]
    w.register_feature("Microsoft.Compute", "UseStandardSecurityType")  # Trusted Launch back to Standard
    undo = undo_changes(w.gw, w.journal, sid)
    assert undo.ok, "\n".join(undo.lines())
    assert len(undo.undone) + len(undo.skipped) == len(report.applied)
    assert all(o.message.startswith("one-way") for o in undo.skipped)
    stages = _stages(w, sid, since=mark)
    assert stages and all(seq == [J.POWER_WAS, J.DEALLOCATING, J.DEALLOCATED, J.STARTING, J.RESTORED]
                          for seq in stages.values()), stages
    assert set(_power(w).values()) == {"running"}
    assert without_one_way(w.view(), w.journal, sid) == without_one_way(original, w.journal, sid)


def test_a_deallocated_vm_stays_deallocated_and_a_stopped_one_is_stopped_again(world):
    w = world(estate="reference")
    plan = inspect(w.gw)
    vms = sorted({c.resource_id for c in _offline(plan.changes()) if "virtualMachines" in c.resource_id})
    assert len(vms) >= 2
    parked, stopped = vms[0], vms[1]
    w.gw.vm_action(parked, "deallocate")
    w.gw.vm_action(stopped, "powerOff")
    sid, _changes, report = _apply(w)
    assert not report.failed, "\n".join(report.lines())
    assert w.gw.power_state(parked) == "deallocated"
    assert w.gw.power_state(stopped) == "stopped"
    stages = _stages(w, sid)
    assert stages[parked.rsplit("/", 1)[-1]] == [J.POWER_WAS, J.DEALLOCATED, J.RESTORED]  # nothing sent
    assert stages[stopped.rsplit("/", 1)[-1]] == [J.POWER_WAS, J.DEALLOCATING, J.DEALLOCATED, J.STARTING,
                                                  J.RESTORED]
    was = {g.vm_id: g.original for g in w.journal.power_guards(sid, open_only=False)}
    assert was[parked] == "deallocated" and was[stopped] == "stopped"


def test_without_allow_disruptive_no_vm_is_touched(world):
    w = world(estate="reference")
    sid, changes, report = _apply(w, allow_disruptive=False)
    skipped = {o.change_id: o.message for o in report.skipped}
    for c in _offline(changes):
        assert "--allow-disruptive" in skipped[c.id]
    assert not _stages(w, sid)
    assert set(_power(w).values()) == {"running"}


def test_resume_starts_a_vm_a_crash_left_deallocated_and_closes_its_guard(world):
    w = world(estate="reference")
    vm = _vms(w)[0]
    sid = start_session(w.journal, w.gw, [])
    guard = power.PowerGuard(w.gw, w.journal, sid)
    guard.hold(vm)  # ... and the process dies here, before any change or the start
    assert w.gw.power_state(vm) == "deallocated"
    assert [g.stage for g in w.journal.power_guards(sid)] == [J.DEALLOCATED]
    report = reconcile(w.gw, w.journal, sid)
    assert w.gw.power_state(vm) == "running"
    assert report.powered and "started again" in report.powered[0][1]
    assert not w.journal.power_guards(sid)
    assert any("started again" in line for line in report.lines())


def test_resume_leaves_a_vm_deallocated_that_was_deallocated(world):
    w = world(estate="reference")
    vm = _vms(w)[0]
    w.gw.vm_action(vm, "deallocate")
    sid = start_session(w.journal, w.gw, [])
    power.PowerGuard(w.gw, w.journal, sid).hold(vm)
    reconcile(w.gw, w.journal, sid)
    assert w.gw.power_state(vm) == "deallocated"
    assert not w.journal.power_guards(sid)


def test_a_guard_left_open_keeps_the_state_it_first_recorded(world):
    """A second hold in the same session (resume could not restore) must not take `deallocated`
    for the VM's original state."""
    w = world(estate="reference")
    vm = _vms(w)[0]
    sid = start_session(w.journal, w.gw, [])
    power.PowerGuard(w.gw, w.journal, sid).hold(vm)
    again = power.PowerGuard(w.gw, w.journal, sid)
    again.hold(vm)
    again.release()
    assert w.gw.power_state(vm) == "running"


def test_undo_restores_a_vm_an_interrupted_run_left_deallocated_before_anything_else(world):
    w = world(estate="reference")
    sid, _changes, _report = _apply(w)
    vm = _vms(w)[0]
    power.PowerGuard(w.gw, w.journal, sid).hold(vm)
    w.register_feature("Microsoft.Compute", "UseStandardSecurityType")
    undo = undo_changes(w.gw, w.journal, sid)
    assert undo.ok, "\n".join(undo.lines())
    assert set(_power(w).values()) == {"running"}
    assert not w.journal.power_guards(sid)


def test_batching_keeps_dependencies_in_order():
    class C:
        def __init__(self, cid, vm, deps=()):
            self.id, self.vm, self.depends_on = cid, vm, list(deps)

    a1, x, a2, b1, a3 = C("a1", "A"), C("x", None), C("a2", "A"), C("b1", "B"), C("a3", "A", ["x2"])
    x2 = C("x2", None)
    items = [a1, x, a2, b1, x2, a3]
    out = power.batch_by_vm(items, lambda c: c.vm, lambda moving, other: other.id not in moving.depends_on)
    assert [c.id for c in out] == ["a1", "a2", "x", "b1", "x2", "a3"]  # a3 may not pass x2, which it needs


def test_needs_deallocation_by_type_and_path():
    vm = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/v"
    disk = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/disks/d"
    assert power.needs_deallocation(vm, {"properties": {"securityProfile": {"encryptionAtHost": True}}})
    assert power.needs_deallocation(vm, {"properties": {"securityProfile": {"uefiSettings": {"vTpmEnabled": True}}}})
    assert not power.needs_deallocation(vm, {"identity": {"type": "SystemAssigned"}})
    assert power.needs_deallocation(disk, {"properties": {"encryption": {"type": "EncryptionAtRestWithPlatformAndCustomerKeys"}}})
    assert not power.needs_deallocation(disk, {"properties": {"publicNetworkAccess": "Disabled"}})


def _unregister(w, namespace: str, name: str) -> None:
    from azure.core.rest import HttpRequest

    for sub in w.gw.list_subscriptions():
        url = (f"/subscriptions/{sub}/providers/Microsoft.Features/providers/{namespace}/features/{name}/unregister"
               "?api-version=2021-07-01")
        assert w.gw.client("resources", sub).send_request(HttpRequest("POST", url)).status_code == 200


def test_a_missing_feature_skips_the_change_before_anything_is_written(world):
    w = world(estate="reference")
    _unregister(w, "Microsoft.Compute", "EncryptionAtHost")
    sid, changes, report = _apply(w)
    eah = [c for c in changes if c.check == "vm-4c"]
    assert eah
    by_id = {o.change_id: o for o in report.outcomes}
    for c in eah:
        o = by_id[c.id]
        assert o.result == "skipped", o.line()
        assert "Microsoft.Compute/EncryptionAtHost" in o.message
        assert "az feature register --namespace Microsoft.Compute --name EncryptionAtHost" in o.message
    assert not report.failed, "\n".join(report.lines())  # ARM would have refused it: nothing was sent
    # A VM whose only offline change waits for the feature is never deallocated.
    others = {c.resource_id for c in _offline(changes) if c.check != "vm-4c"}
    alone = {c.resource_id.rsplit("/", 1)[-1] for c in eah if c.resource_id not in others}
    assert alone and not alone & set(_stages(w, sid))
    assert set(_power(w).values()) == {"running"}


def test_a_size_without_the_capability_skips_encryption_at_host(world):
    from ztwizard.sandbox import Sandbox

    resources = Sandbox(None, estate="reference").export()
    vm = next(r for r in resources if r["id"].endswith("/vm-web-01"))
    vm["properties"]["hardwareProfile"]["vmSize"] = "Standard_A2_v2"
    w = world(estate=resources)
    _sid, changes, report = _apply(w)
    target = next(c for c in changes if c.check == "vm-4c" and c.resource_id.endswith("/vm-web-01"))
    o = next(o for o in report.outcomes if o.change_id == target.id)
    assert o.result == "skipped" and "Standard_A2_v2" in o.message and "EncryptionAtHostSupported" in o.message
    assert not report.failed, "\n".join(report.lines())


def test_reference_estate_converges_in_three_rounds_with_every_vm_running(world):
    """`apply --yes --allow-disruptive --allow-cost` until nothing is proposed: at most 3 rounds
    (a round's creates can make new findings: the next round proposes what they enable)."""
    w = world(estate="reference")
    rounds = []
    for _ in range(4):
        # a change waiting for a person's parameter (which Key Vault key) is not pending auto work
        changes = [c for c in inspect(w.gw).changes() if not unset_params(c)]
        rounds.append(len(changes))
        if not changes:
            break
        sid = start_session(w.journal, w.gw, changes)
        report = apply_changes(w.gw, w.journal, sid, changes, allow_disruptive=True, allow_cost=True)
        assert not report.failed, "\n".join(report.lines())
        assert set(_power(w).values()) == {"running"}
    assert rounds[-1] == 0 and len(rounds) <= 4, rounds  # ≤ 3 applying rounds, then nothing pending


def test_a_hung_deallocation_stops_apply_and_resume_starts_the_vm_again(world):
    import time

    import pytest

    from ztwizard.gateway import Gateway
    from ztwizard.outcomes import ApplyInterrupted
    from ztwizard.sandbox.faults import Faults
    from ztwizard.target import in_process_target

    w = world(estate="reference", lro_hang_seconds=2.0)
    gw = Gateway(in_process_target(w.sb), lro_timeout=0.3)  # --lro-timeout 0.3
    changes = inspect(gw, check_ids=["vm-4c"]).changes()
    assert changes
    sid = start_session(w.journal, gw, changes)
    w.sb.faults = Faults.parse("lro-hang:1.0")
    with pytest.raises(ApplyInterrupted) as stopped:
        apply_changes(gw, w.journal, sid, changes, allow_disruptive=True)
    assert "did not finish within 0.3 s" in stopped.value.message and "resume" in stopped.value.hint
    assert [g.stage for g in w.journal.power_guards(sid)] == [J.DEALLOCATING]
    assert all(r.state == J.PLANNED for r in w.journal.changes(sid)), "no change was sent"
    w.sb.faults = Faults.parse("")
    time.sleep(2.0)  # the stuck deallocation ends
    report = reconcile(gw, w.journal, sid)
    assert report.powered and "started again" in report.powered[0][1]
    assert set(_power(w).values()) == {"running"}
    assert not w.journal.power_guards(sid)


def test_cli_undo_exits_1_naming_the_missing_feature_and_0_once_registered(tmp_path, monkeypatch, capsys):
    from ztwizard import cli
    from ztwizard.gateway import Gateway
    from ztwizard.sandbox import Sandbox
    from ztwizard.target import sandbox_target

    from .conftest import register_feature

    monkeypatch.setenv("ZTWIZARD_SANDBOX_IN_PROCESS", "1")
    monkeypatch.delenv("ZTWIZARD_STATE_DIR", raising=False)
    Sandbox(tmp_path, estate="reference")

    def run(*args: str) -> int:
        return cli.main(["--sandbox", "--state-dir", str(tmp_path), *args])

    assert run("apply", "--yes", "--allow-disruptive", "--check", "vm-3a") == 0
    capsys.readouterr()
    assert run("undo", "--yes") == 1
    out, err = capsys.readouterr()
    assert "UseStandardSecurityType" in out and "az feature register" in out
    assert "wait for a missing prerequisite" in err and "Traceback" not in err
    register_feature(Gateway(sandbox_target(tmp_path)), "Microsoft.Compute", "UseStandardSecurityType")
    assert run("undo", "--yes") == 0
