"""Apply, undo and resume against the sandbox, through the real azure-mgmt clients and pipeline."""

from __future__ import annotations

import json
import os
import stat

import pytest
from conftest import SUB

from ztwizard import journal as J
from ztwizard.apply import _moved_by_us, apply_changes, start_session
from ztwizard.armjson import apply_values
from ztwizard.engine import inspect
from ztwizard.errors import UsageError
from ztwizard.model import Change
from ztwizard.resume import continue_session, reconcile
from ztwizard.undo import reapply, undo_changes

from .conftest import without_one_way

ST = f"/subscriptions/{SUB}/resourceGroups/rg-st/providers/Microsoft.Storage/storageAccounts/stblob01"
SUBNET = (f"/subscriptions/{SUB}/resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/vnet-spoke"
          "/subnets/data")


def _apply(w, gw=None, steps=(), checks=(), **kw):
    gw = gw or w.gw
    plan = inspect(gw, step_ids=list(steps), check_ids=list(checks))
    changes = plan.changes()
    sid = start_session(w.journal, gw, changes)
    kw.setdefault("allow_disruptive", True)
    kw.setdefault("allow_cost", True)
    return sid, changes, apply_changes(gw, w.journal, sid, changes, **kw)


def _accounted(report, changes):
    ids = [o.change_id for o in report.outcomes]
    assert sorted(ids) == sorted(c.id for c in changes), "every change reported exactly once"


def test_reference_estate_apply_everything_then_undo_restores_it(world):
    w = world(estate="reference")
    original = w.view()
    sid, changes, report = _apply(w)
    _accounted(report, changes)
    assert len(report.applied) > 50
    assert not report.failed, "\n".join(report.lines())
    # The re-inspection shows every applied update passing, and no applied change proposed again.
    verdict = {(f.check, f.resource_id.lower()): f.status for s in report.verification for f in s.findings}
    for o in report.applied:
        ch = next(c for c in changes if c.id == o.change_id)
        if ch.action == "update" and (ch.check, ch.resource_id.lower()) in verdict:
            assert verdict[(ch.check, ch.resource_id.lower())] == "pass", o.line()
    rows = w.journal.changes(sid)
    assert {r.state for r in rows} <= {J.APPLIED, J.SKIPPED}
    assert all(r.before_image is not None for r in rows if r.state == J.APPLIED and r.action != "create")
    assert w.journal.session(sid).status == J.DONE
    # Two changes to one resource: the second is planned afresh on what the first left, never
    # skipped as "changed since the plan" because of the wizard's own write.
    # (On the strict sandbox the Defender plan's provider adds the malware-scanning extension
    # itself, so storage-4b is found in place rather than re-planned.)
    assert any(e["message"].startswith("re-planned") for e in w.journal.events(sid)) or \
        any(o.message.startswith("already in place after an earlier change") for o in report.skipped)
    assert not any("changed since the plan" in o.message for o in report.skipped)

    # Going back from Trusted Launch to Standard needs a subscription feature the estate lacks: undo
    # leaves those changes in place, says what to register, and is not ok; registered, it finishes.
    first = undo_changes(w.gw, w.journal, sid)
    assert not first.ok and first.unmet, "\n".join(first.lines())
    assert all("UseStandardSecurityType" in o.message and "az feature register" in o.message for o in first.unmet)
    w.register_feature("Microsoft.Compute", "UseStandardSecurityType")
    undo = undo_changes(w.gw, w.journal, sid)
    one_way = [o for o in undo.skipped if o.message.startswith("one-way")]
    assert one_way, "the plan's one-way changes (SAS expiration policy) stay, saying so"
    assert undo.ok and len(first.undone) + len(undo.undone) + len(one_way) == len(report.applied), \
        "\n".join(undo.lines())
    assert without_one_way(w.view(), w.journal, sid) == without_one_way(original, w.journal, sid)
    assert w.view() != original  # ... and they are the only difference
    assert w.journal.session(sid).status == J.UNDONE_SESSION


def test_skips_disruptive_and_billable_unless_allowed_and_dependents_wait(world):
    w = world()
    sid, changes, report = _apply(w, allow_disruptive=False, allow_cost=False)
    _accounted(report, changes)
    skipped = {o.change_id: o.message for o in report.skipped}
    for c in changes:
        if c.disruptive:
            assert "--allow-disruptive" in skipped[c.id]
        elif c.billable:
            assert "--allow-cost" in skipped[c.id]
    for c in changes:  # a change whose prerequisite was skipped is skipped too, saying why
        if any(d in skipped for d in c.depends_on) and not (c.disruptive or c.billable):
            assert "depends on" in skipped[c.id]
    tls = w.gw.read(ST)
    assert tls["properties"]["minimumTlsVersion"] == "TLS1_2"  # the plain ones went through


def test_dry_run_and_read_only_targets_refuse_before_writing(world):
    w = world()
    plan = inspect(w.gw, step_ids=["storage-1"])
    sid = start_session(w.journal, w.gw, plan.changes())
    with pytest.raises(UsageError, match="dry-run"):
        apply_changes(w.gw, w.journal, sid, plan.changes(), dry_run=True)
    with pytest.raises(UsageError, match="read-only"):
        apply_changes(w.gateway(read_only=True), w.journal, sid, plan.changes())
    assert all(r.state == J.PLANNED for r in w.journal.changes(sid))
    assert w.gw.read(ST)["properties"]["minimumTlsVersion"] == "TLS1_0"


def test_failed_change_is_recorded_with_arms_message_and_dependents_are_skipped(world):
    w = world()
    reader = w.gateway(reader=True)  # may read, 403 on every write
    sid, changes, report = _apply(w, gw=reader, steps=["spoke-3"])
    _accounted(report, changes)
    assert report.failed and not report.applied
    assert all("Permission denied" in o.message for o in report.failed)
    deps = [c for c in changes if c.depends_on]
    assert deps and all(o.change_id in {d.id for d in deps} for o in report.skipped)
    states = {r.change_id: r.state for r in w.journal.changes(sid)}
    assert all(states[o.change_id] == J.FAILED for o in report.failed)
    assert w.journal.change(sid, report.failed[0].change_id).error.startswith("Permission denied")


def test_change_between_plan_and_apply_is_not_clobbered(world):
    w = world()
    plan = inspect(w.gw, check_ids=["storage-1b"])
    w.gw.write("PATCH", ST, {"properties": {"minimumTlsVersion": "TLS1_1"}})  # someone else
    sid = start_session(w.journal, w.gw, plan.changes())
    report = apply_changes(w.gw, w.journal, sid, plan.changes())
    assert [o.result for o in report.outcomes] == ["skipped"]
    assert "changed since the plan" in report.outcomes[0].message
    assert w.gw.read(ST)["properties"]["minimumTlsVersion"] == "TLS1_1"
    assert w.journal.changes(sid)[0].state == J.SKIPPED


def _race_once(w, matches, edit, *, after=False):
    """Someone else's `edit` raced against the first request `matches(method, url, body)` accepts:
    just before the sandbox handles it, or with `after` once it has. Returns (their gateway, built
    before the hook so its own requests bypass it; the list the raced URL goes into)."""
    other = w.gateway()
    original = w.sb.handle
    raced: list[str] = []

    def racing_handle(method, url, headers, body):
        hit = not raced and matches(method, url, body)
        if hit:
            raced.append(url)
            if not after:
                edit(other)
        answer = original(method, url, headers, body)
        if hit and after:
            edit(other)
        return answer

    w.sb.handle = racing_handle
    return other, raced


def test_someone_elses_edit_between_two_of_our_writes_to_an_etagless_account_is_kept(world):
    # Storage accounts carry no etag, so "did our own write move it?" cannot be an etag check:
    # after the wizard's first PATCH to the account, someone else sets the TLS floor the next
    # change was planned on. That change must be skipped, not planned afresh over their edit.
    w = world()
    other, raced = _race_once(
        w, lambda method, url, body: method == "PATCH" and ST.lower() in url.lower()
        and b"minimumTlsVersion" not in (body or b""),
        lambda other: other.write("PATCH", ST, {"properties": {"minimumTlsVersion": "TLS1_1"}}), after=True)
    gw = w.gateway()
    plan = inspect(gw, check_ids=["storage-1a", "storage-1b"])
    changes = [c for c in plan.changes() if c.resource_id.lower() == ST.lower()]
    assert [c.check for c in changes] == ["storage-1a", "storage-1b"]
    sid = start_session(w.journal, gw, changes)
    report = apply_changes(gw, w.journal, sid, changes)
    assert raced
    by_check = {c.check: o for c in changes for o in report.outcomes if o.change_id == c.id}
    assert by_check["storage-1a"].result == "applied"
    assert by_check["storage-1b"].result == "skipped"
    assert "changed since the plan" in by_check["storage-1b"].message
    assert other.read(ST)["properties"]["minimumTlsVersion"] == "TLS1_1"  # their edit stands
    assert not any(e["message"].startswith("re-planned") for e in w.journal.events(sid))


def test_a_change_is_planned_afresh_only_over_the_runs_own_write():
    # What the replan decision sees: the resource now, and what this run's last write left on it.
    tls = Change("storage-1b", ST, "update", "PATCH", {"properties": {"minimumTlsVersion": "TLS1_2"}},
                 before={"properties": {"minimumTlsVersion": "TLS1_0"}},
                 after={"properties": {"minimumTlsVersion": "TLS1_2"}})
    ours = {"id": ST, "type": "Microsoft.Storage/storageAccounts",
            "properties": {"minimumTlsVersion": "TLS1_1", "supportsHttpsTrafficOnly": True}}
    # etag-less: the change's paths still hold what our write left (another path may differ)
    assert _moved_by_us(tls, {**ours, "properties": {**ours["properties"], "accessTier": "Cool"}}, ours)
    assert not _moved_by_us(tls, {**ours, "properties": {"minimumTlsVersion": "TLS1_0"}}, ours)
    assert not _moved_by_us(tls, ours, None)  # no write of ours to it this run, or we deleted it
    # with an etag, the etag decides
    assert _moved_by_us(tls, {**ours, "etag": 'W/"2"'}, {**ours, "etag": 'W/"2"'})
    assert not _moved_by_us(tls, {**ours, "etag": 'W/"3"'}, {**ours, "etag": 'W/"2"'})
    assert not _moved_by_us(tls, {**ours, "etag": 'W/"3"'}, ours)  # ARM gives it an etag now


def test_write_between_read_and_write_gets_412_and_nothing_is_overwritten(world):
    w = world()

    def their_edit(other):
        cur = other.read(SUBNET)
        cur["properties"]["privateEndpointNetworkPolicies"] = "Enabled"
        other.write("PUT", SUBNET, {"properties": cur["properties"]})

    other, raced = _race_once(w, lambda method, url, _body: method == "PUT" and SUBNET.lower() in url.lower(),
                              their_edit)
    gw = w.gateway()
    plan = inspect(gw, check_ids=["spoke-3a"])
    sid = start_session(w.journal, gw, plan.changes())
    report = apply_changes(gw, w.journal, sid, plan.changes())
    assert raced
    assoc = next(o for o in report.outcomes if o.resource_id.lower() == SUBNET.lower())
    assert assoc.result == "skipped" and "changed by someone else" in assoc.message
    now = other.read(SUBNET)
    assert now["properties"]["privateEndpointNetworkPolicies"] == "Enabled"  # their write stands
    assert not (now["properties"].get("networkSecurityGroup") or {}).get("id")  # ours never landed
    assert w.journal.change(sid, assoc.change_id).state == J.NOT_APPLIED


def test_drift_after_apply_makes_undo_refuse_with_three_way_diff_until_override(world):
    w = world()
    sid, _changes, report = _apply(w, checks=["storage-1b", "storage-1c"])
    assert len(report.applied) == 2
    w.gw.write("PATCH", ST, {"properties": {"minimumTlsVersion": "TLS1_1"}})  # someone edits afterwards
    undo = undo_changes(w.gw, w.journal, sid)
    assert [o.result for o in undo.outcomes if o.check == "storage-1b"] == ["refused"]
    assert [o.result for o in undo.outcomes if o.check == "storage-1c"] == ["undone"]
    (drift,) = undo.drifts
    assert drift.rows == [("properties.minimumTlsVersion", "TLS1_0", "TLS1_2", "TLS1_1")]
    assert "now 'TLS1_1'" in "\n".join(undo.lines())
    res = w.gw.read(ST)
    assert res["properties"]["minimumTlsVersion"] == "TLS1_1"  # not clobbered
    assert res["properties"]["allowBlobPublicAccess"] is True  # the other one was restored
    tls = next(r for r in w.journal.changes(sid) if r.check_id == "storage-1b")
    assert tls.state == J.APPLIED
    again = undo_changes(w.gw, w.journal, sid, change_ids=[tls.change_id], override=True)
    assert [o.result for o in again.outcomes] == ["undone"]
    assert w.gw.read(ST)["properties"]["minimumTlsVersion"] == "TLS1_0"
    assert w.journal.change(sid, tls.change_id).state == J.UNDONE


def test_undo_per_step_and_per_change_then_reapply(world):
    w = world()
    original = w.view()
    sid, _changes, report = _apply(w, steps=["storage-1", "spoke-3"])
    assert not report.failed
    nsg_create = next(r for r in w.journal.changes(sid) if r.check_id == "spoke-3a" and r.action == "create")
    # The NSG is still associated with the subnet: undoing it alone is refused, saying why.
    alone = undo_changes(w.gw, w.journal, sid, change_ids=[nsg_create.change_id])
    assert alone.skipped and "still needed by" in alone.skipped[0].message
    step = undo_changes(w.gw, w.journal, sid, step_ids=["spoke-3"])
    assert step.ok and len(step.undone) == 2
    assert w.gw.read(nsg_create.resource_id) is None
    assert w.journal.session(sid).status != J.UNDONE_SESSION
    rest = undo_changes(w.gw, w.journal, sid)
    assert rest.ok
    assert without_one_way(w.view(), w.journal, sid) == without_one_way(original, w.journal, sid)
    again = reapply(w.gw, w.journal, sid, [nsg_create.change_id])
    assert [o.result for o in again.outcomes] == ["applied"]
    assert w.gw.read(nsg_create.resource_id) is not None
    assert w.journal.change(sid, nsg_create.change_id).state == J.APPLIED
    with pytest.raises(UsageError):
        undo_changes(w.gw, w.journal, sid, change_ids=["no-such-change"])


def test_faults_do_not_lose_or_duplicate_changes(world):
    w = world(faults="429:0.15,500:0.05,503:0.05,reset-after:0.03", seed=11, fault_retry_after=2)
    original = w.view()
    sid, changes, report = _apply(w)
    _accounted(report, changes)
    assert not report.failed, "\n".join(report.lines())
    rows = w.journal.changes(sid)
    assert len(rows) == len({r.change_id for r in rows}) == len(changes)
    assert {r.state for r in rows} <= {J.APPLIED, J.SKIPPED}
    assert 2.0 in w.gw.target.transport.sleeps  # Retry-After honoured, without waiting
    faulted = [s for (_m, _p, s) in w.sb.request_log if s in (0, 429, 500, 503)]
    assert faulted, "the sandbox injected faults"
    undo = undo_changes(w.gw, w.journal, sid)
    assert undo.ok, "\n".join(undo.lines())
    assert without_one_way(w.view(), w.journal, sid) == without_one_way(original, w.journal, sid)


def test_resume_settles_in_flight_changes_and_continues(world):
    w = world()
    plan = inspect(w.gw, step_ids=["storage-1"])
    changes = plan.changes()
    sid = start_session(w.journal, w.gw, changes, selection={"allow_disruptive": True, "allow_cost": True})
    landed, lost, theirs = changes[0], changes[1], changes[2]
    # A crash left three writes in flight: one reached ARM, one did not, one raced a human.
    for c in (landed, lost, theirs):
        w.journal.update_change(sid, c.id, state=J.IN_FLIGHT, before_image=w.gw.read(c.resource_id), body=c.body)
    w.gw.write("PATCH", ST, landed.body)
    prop, value = next(iter(theirs.after["properties"].items()))
    w.gw.write("PATCH", ST, {"properties": {prop: {"x": 1} if isinstance(value, dict) else "someone-else"}})
    report = reconcile(w.gw, w.journal, sid)
    states = {s.change_id: s.now for s in report.settled}
    assert states == {landed.id: J.APPLIED, lost.id: J.NOT_APPLIED, theirs.id: J.DRIFTED}
    assert report.next_step == "storage-1" and lost.id in report.remaining
    assert not w.journal.changes(sid, states=J.UNSETTLED)
    settled, applied = continue_session(w.gw, w.journal, sid)
    assert applied is not None and lost.id in {o.change_id for o in applied.applied}
    assert not w.journal.changes(sid, states=(J.PLANNED, J.NOT_APPLIED, *J.UNSETTLED))
    assert w.journal.session(sid).status == J.DONE


def test_a_jit_policy_whose_create_a_crash_cut_off_is_settled_as_applied_and_undo_deletes_it(world):
    """A JIT policy's location is read-only, its address's region: ARM answers with it, so the
    write that landed holds the change, resume says applied and undo takes the policy away."""
    w = world()
    plan = inspect(w.gw, check_ids=["vm-8c"])
    (jit,) = [c for c in plan.changes() if c.check == "vm-8c"]
    assert jit.action == "create" and jit.after["location"] == "westeurope"
    sid = start_session(w.journal, w.gw, [jit])
    w.journal.update_change(sid, jit.id, state=J.IN_FLIGHT, before_image=None, body=jit.body)
    w.gw.write("PUT", jit.resource_id, jit.body)  # the PUT reached ARM; the crash lost its answer
    report = reconcile(w.gw, w.journal, sid)
    assert [(s.change_id, s.now) for s in report.settled] == [(jit.id, J.APPLIED)]
    assert w.gw.read(jit.resource_id)["location"] == "westeurope"
    undo = undo_changes(w.gw, w.journal, sid)
    assert undo.ok, "\n".join(undo.lines())
    assert w.gw.read(jit.resource_id) is None
    assert w.journal.change(sid, jit.id).state == J.UNDONE


def test_journal_is_private_and_holds_no_secret(world, small_estate):
    estate = _with_secrets(json.loads(json.dumps(small_estate)))
    w = world(estate=estate)
    _apply(w, steps=["storage-1", "vm-3", "vm-6"])
    names = [n for n in os.listdir(w.state_dir) if n.startswith(J.DB_NAME)]
    assert J.DB_NAME in names
    raw = b""
    for n in names:
        assert stat.S_IMODE(os.stat(w.state_dir / n).st_mode) == 0o600, n
        raw += (w.state_dir / n).read_bytes()
    for secret in (w.sb.token, w.sb.reader_token, "Pa55w0rd!Secret", "c2VjcmV0LWN1c3RvbS1kYXRh",
                   "AccountKey=S3CR3TKEY", "protected-storage-key"):
        assert secret.encode() not in raw, secret
    assert b"stblob01" in raw  # the journal did record the work


def _with_secrets(estate):
    for res in estate:
        if res["id"].endswith("virtualMachines/vm-web"):
            res["properties"]["osProfile"] = {"computerName": "vm-web", "adminUsername": "azureuser",
                                              "adminPassword": "Pa55w0rd!Secret",
                                              "customData": "c2VjcmV0LWN1c3RvbS1kYXRh"}
        if res["id"].endswith("extensions/AzureMonitorLinuxAgent"):
            res["properties"]["protectedSettings"] = {"storageAccountKey": "protected-storage-key"}
        if res["id"].endswith("storageAccounts/stblob01"):
            res["tags"] = {"conn": "DefaultEndpointsProtocol=https;AccountName=stblob01;AccountKey=S3CR3TKEY"}
    return estate


def test_arm_going_away_mid_apply_stops_saying_what_was_done_and_resume_settles_it(world):
    from ztwizard.apply import ApplyInterrupted
    from ztwizard.sandbox.faults import ConnectionReset

    w = world()
    real = w.sb.handle
    link = {"writes": 0, "down": False}

    def flaky(method, url, headers, body):
        if link["down"]:
            raise ConnectionReset("the link is down")
        if method in ("PUT", "PATCH") and "/operations/" not in url:
            link["writes"] += 1
            if link["writes"] == 3:  # this write lands, then the link drops before the answer
                real(method, url, headers, body)
                link["down"] = True
                raise ConnectionReset("the link dropped")
        return real(method, url, headers, body)

    w.sb.handle = flaky
    gw = w.gateway()
    plan = inspect(gw, step_ids=["storage-1"])
    sid = start_session(w.journal, gw, plan.changes())
    with pytest.raises(ApplyInterrupted) as stopped:
        apply_changes(gw, w.journal, sid, plan.changes(), allow_disruptive=True)
    assert len(stopped.value.report.applied) == 2
    assert "2 change(s) applied" in stopped.value.message and "resume" in stopped.value.hint
    (pending,) = w.journal.changes(sid, states=J.UNSETTLED)
    assert pending.before_image is not None
    link["down"] = False
    report = reconcile(gw, w.journal, sid)
    assert [(s.change_id, s.now) for s in report.settled] == [(pending.change_id, J.APPLIED)]
    assert report.next_step == "storage-1" and report.remaining


def test_undo_of_a_put_keeps_someone_elses_unrelated_edit(world):
    w = world()
    sid, _changes, report = _apply(w, checks=["spoke-3a"])
    assoc = next(o for o in report.applied if o.resource_id.lower() == SUBNET.lower())
    cur = w.gw.read(SUBNET)
    cur["properties"]["privateEndpointNetworkPolicies"] = "Enabled"  # someone else's edit, afterwards
    w.gw.write("PUT", SUBNET, {"properties": cur["properties"]})
    undo = undo_changes(w.gw, w.journal, sid)
    assert undo.ok, "\n".join(undo.lines())
    now = w.gw.read(SUBNET)
    assert not (now["properties"].get("networkSecurityGroup") or {}).get("id")  # the wizard's change is gone
    assert now["properties"]["privateEndpointNetworkPolicies"] == "Enabled"  # theirs stays
    assert w.journal.change(sid, assoc.change_id).state == J.UNDONE


def test_resume_and_undo_wait_for_an_operation_a_killed_run_left_running(world):
    w = world(lro_seconds=0.4)
    plan = inspect(w.gw, check_ids=["spoke-3a"])
    create = next(c for c in plan.changes() if c.action == "create")
    sid = start_session(w.journal, w.gw, [create])
    w.journal.update_change(sid, create.id, state=J.IN_FLIGHT, body=create.body)
    # The killed wizard's PUT reached ARM; nobody polls the operation it started.
    url = f"https://management.azure.com{create.resource_id}?api-version={w.gw.api_version_for(create.resource_id)}"
    status, _h, _b = w.sb.handle("PUT", url, {"Authorization": f"Bearer {w.sb.token}"}, json.dumps(create.body).encode())
    assert status == 201 and w.gw.read(create.resource_id)["properties"]["provisioningState"] == "Creating"
    report = reconcile(w.gw, w.journal, sid)
    assert [s.now for s in report.settled] == [J.APPLIED]
    undo = undo_changes(w.gw, w.journal, sid)  # a DELETE mid-operation would be refused (409)
    assert undo.ok and w.gw.read(create.resource_id) is None


def test_a_delete_is_undone_by_re_creating_the_resource_as_it_was(world):
    from ztwizard import remedy

    w = world()
    original = w.view()
    rule_id = (f"/subscriptions/{SUB}/resourceGroups/rg-net/providers/Microsoft.Network/networkSecurityGroups/"
               "nsg-app/securityRules/allow-ssh")
    rule = w.gw.read(rule_id)
    change = remedy.delete("vm-6c", rule, title="Delete allow-ssh")
    sid = start_session(w.journal, w.gw, [change])
    report = apply_changes(w.gw, w.journal, sid, [change], verify=False)
    assert [o.result for o in report.outcomes] == ["applied"]
    assert w.gw.read(rule_id) is None
    rec = w.journal.change(sid, change.id)
    assert rec.before_image["properties"]["destinationPortRange"] == "22"
    undo = undo_changes(w.gw, w.journal, sid)
    assert undo.ok, "\n".join(undo.lines())
    assert w.view() == original


def test_a_prerequisite_someone_else_already_made_lets_its_dependents_proceed(world):
    # vm-8c's JIT policy waits for vm-8a's Defender for Servers plan. Someone turns that plan on
    # between the plan and the apply: vm-8a is skipped as already holding, and JIT still goes in
    # (it used to be held back as if its prerequisite had failed).
    w = world(estate="reference")
    changes = inspect(w.gw, check_ids=["vm-8a", "vm-8c"]).changes()
    plans = {c.id: c for c in changes if c.check == "vm-8a"}
    waiting = [c for c in changes if c.check == "vm-8c" and set(c.depends_on) & set(plans)]
    assert waiting, "the reference estate's JIT policies wait for the Servers plan"
    for plan in plans.values():
        w.gw.write("PUT", plan.resource_id, apply_values({"properties": {}}, plan.after))
    sid = start_session(w.journal, w.gw, changes)
    report = apply_changes(w.gw, w.journal, sid, changes, allow_cost=True, allow_disruptive=True, verify=False)
    by_id = {o.change_id: o for o in report.outcomes}
    assert all(by_id[p].message.startswith("already holds the change") for p in plans), "\n".join(report.lines())
    assert [by_id[c.id].result for c in waiting] == ["applied"] * len(waiting), "\n".join(report.lines())
    assert not report.blocked


def test_a_session_continued_after_its_prerequisite_was_found_in_place_sends_the_dependents(world):
    # The same, with the session stopped after vm-8a's skip: continuing with the rest alone (as
    # resume does) sends the JIT policies instead of asking for vm-8a's step again.
    w = world(estate="reference")
    changes = inspect(w.gw, check_ids=["vm-8a", "vm-8c"]).changes()
    plans = [c for c in changes if c.check == "vm-8a"]
    waiting = [c for c in changes if c.check == "vm-8c" and {p.id for p in plans} & set(c.depends_on)]
    assert waiting
    for plan in plans:
        w.gw.write("PUT", plan.resource_id, apply_values({"properties": {}}, plan.after))
    sid = start_session(w.journal, w.gw, changes)
    first = apply_changes(w.gw, w.journal, sid, plans, allow_cost=True, verify=False)
    assert {o.result for o in first.outcomes} == {"skipped"}
    rest = apply_changes(w.gw, w.journal, sid, waiting, allow_cost=True, allow_disruptive=True, verify=False)
    assert [o.result for o in rest.outcomes] == ["applied"] * len(waiting), "\n".join(rest.lines())


def test_a_session_journalled_before_the_in_place_flag_still_sends_the_dependents(world):
    # A session an earlier ztwizard paused said "already holds" only in the note: continuing it
    # with this one still counts the prerequisite as in place.
    w = world(estate="reference")
    changes = inspect(w.gw, check_ids=["vm-8a", "vm-8c"]).changes()
    plans = [c for c in changes if c.check == "vm-8a"]
    waiting = [c for c in changes if c.check == "vm-8c" and {p.id for p in plans} & set(c.depends_on)]
    for plan in plans:
        w.gw.write("PUT", plan.resource_id, apply_values({"properties": {}}, plan.after))
    sid = start_session(w.journal, w.gw, changes)
    apply_changes(w.gw, w.journal, sid, plans, allow_cost=True, verify=False)
    for rec in w.journal.changes(sid, change_ids=[p.id for p in plans]):
        assert rec.in_place
        w.journal.update_change(sid, rec.change_id, flags={k: v for k, v in rec.flags.items() if k != "in_place"})
    assert not any(r.in_place for r in w.journal.changes(sid, change_ids=[p.id for p in plans]))
    rest = apply_changes(w.gw, w.journal, sid, waiting, allow_cost=True, allow_disruptive=True, verify=False)
    assert [o.result for o in rest.outcomes] == ["applied"] * len(waiting), "\n".join(rest.lines())
