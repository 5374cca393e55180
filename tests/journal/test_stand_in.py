"""A change that stands in for a broader one (storage-4c's own Defender setting for an account that
only inherits the subscription's off plan, instead of storage-4a turning that plan on): not sent
once the broader change is in place, held back when it failed, and sent when the apply leaves the
broader change out. Through the real clients against the sandbox (reference estate)."""

from __future__ import annotations

import json

from ztwizard import journal as J
from ztwizard import planfile
from ztwizard.apply import apply_changes, start_session
from ztwizard.engine import inspect

DEFENDER = "microsoft.security/defenderforstoragesettings"
PLAN_PUT = "/providers/microsoft.security/pricings/storageaccounts"


def _plan(w, *, fresh=True):
    changes = inspect(w.gw, check_ids=["storage-4a", "storage-4c"]).changes()
    plans = {c.id: c for c in changes if c.check == "storage-4a"}
    stand_ins = [c for c in changes if c.instead_of]
    opted_out = [c for c in changes if c.check == "storage-4c" and not c.instead_of]
    # the reference estate: accounts inheriting an off plan, and one that opts out on its own
    assert stand_ins and all(c.instead_of in plans for c in stand_ins)
    assert opted_out or not fresh
    return changes, plans, stand_ins, opted_out


def _defender_writes(w):
    return [(m, p) for (m, p, s) in w.sb.request_log if m == "PUT" and DEFENDER in p.lower() and s < 300]


def _verdicts(w):
    return {f.resource_id.lower(): (f.status, f.message)
            for s in inspect(w.gw, check_ids=["storage-4c"]).steps for f in s.findings}


def test_an_account_inheriting_the_plan_being_turned_on_gets_no_setting_of_its_own(world):
    w = world(estate="reference")
    changes, _plans, stand_ins, opted_out = _plan(w)
    sid = start_session(w.journal, w.gw, changes)
    report = apply_changes(w.gw, w.journal, sid, changes, allow_cost=True, parallel=8, verify=False)
    by_id = {o.change_id: o for o in report.outcomes}
    assert not report.failed and not report.blocked, "\n".join(report.lines())
    for c in stand_ins:
        assert by_id[c.id].result == "skipped" and by_id[c.id].message.startswith(f"not needed: {c.instead_of}")
        assert w.journal.change(sid, c.id).state == J.SKIPPED
    # only the account that opted out on its own was written to
    assert [p.lower() for _m, p in _defender_writes(w)] == [c.resource_id.lower() for c in opted_out]
    verdicts = _verdicts(w)
    for c in stand_ins:
        account = c.resource_id.lower().split("/providers/microsoft.security/")[0]
        assert verdicts[account] == ("pass", "Defender for Storage is on for the account (inherited from the "
                                             "subscription plan).")


def test_the_stand_in_waits_when_the_plan_fails_and_the_rerun_ends_as_without_the_failure(world):
    w = world(estate="reference")
    real = w.sb.handle

    def refuse_the_plan(method, url, headers, body):
        if method == "PUT" and PLAN_PUT in url.lower():
            return 400, {"content-type": "application/json"}, json.dumps(
                {"error": {"code": "InvalidInput", "message": "refused for the test"}}).encode()
        return real(method, url, headers, body)

    w.sb.handle = refuse_the_plan
    w.gw = w.gateway()  # a gateway takes the sandbox's handler when it is made
    changes, plans, stand_ins, _opted_out = _plan(w)
    sid = start_session(w.journal, w.gw, changes)
    report = apply_changes(w.gw, w.journal, sid, changes, allow_cost=True, parallel=8, verify=False)
    by_id = {o.change_id: o for o in report.outcomes}
    assert {by_id[p].result for p in plans} == {"failed"}
    # held back, and counted among the blocked (the apply exits 1): no per-account setting was
    # sent in place of a plan that did not come
    assert {o.change_id for o in report.blocked} == {c.id for c in stand_ins}
    assert all(by_id[c.id].message.startswith(f"depends on {c.instead_of}, which was not applied")
               for c in stand_ins)
    written = {p.lower() for _m, p in _defender_writes(w)}
    assert not written & {c.resource_id.lower() for c in stand_ins}
    # the provider takes the plan again: the next apply ends where a clean one does
    w.sb.handle = real
    w.gw = w.gateway()
    changes, _plans, stand_ins, _ = _plan(w, fresh=False)
    sid = start_session(w.journal, w.gw, changes)
    report = apply_changes(w.gw, w.journal, sid, changes, allow_cost=True, parallel=8, verify=False)
    assert not report.failed and not report.blocked, "\n".join(report.lines())
    assert all(s == "pass" for s, _ in _verdicts(w).values())
    assert not {p.lower() for _m, p in _defender_writes(w)} & {c.resource_id.lower() for c in stand_ins}


def test_without_the_plan_change_the_account_gets_its_own_setting(world):
    # -g, or storage-4a left out: the account's own setting is the only way to protect it
    w = world(estate="reference")
    _changes, _plans, stand_ins, _ = _plan(w)
    sid = start_session(w.journal, w.gw, stand_ins)
    report = apply_changes(w.gw, w.journal, sid, stand_ins, allow_cost=True, verify=False)
    assert [o.result for o in report.outcomes] == ["applied"] * len(stand_ins), "\n".join(report.lines())
    verdicts = _verdicts(w)
    for c in stand_ins:
        account = c.resource_id.lower().split("/providers/microsoft.security/")[0]
        assert verdicts[account] == ("pass", "Defender for Storage is on for the account (account-level setting).")


def test_a_resumed_session_whose_plan_change_landed_sends_no_stand_in(world):
    # The plan change applied before the run stopped; the rest of the session continues alone.
    w = world(estate="reference")
    changes, plans, stand_ins, _ = _plan(w)
    sid = start_session(w.journal, w.gw, changes)
    first = apply_changes(w.gw, w.journal, sid, [c for c in changes if c.id in plans], allow_cost=True,
                          verify=False)
    assert [o.result for o in first.outcomes] == ["applied"] * len(plans)
    rest = apply_changes(w.gw, w.journal, sid, stand_ins, allow_cost=True, verify=False)
    assert all(o.result == "skipped" and o.message.startswith("not needed") for o in rest.outcomes)
    assert not _defender_writes(w)


def test_a_saved_plan_whose_plan_change_is_refused_holds_the_stand_ins_back(world, tmp_path):
    w = world(estate="reference")
    plan = inspect(w.gw, check_ids=["storage-4a", "storage-4c"])
    path = tmp_path / "plan.json"
    planfile.save(path, planfile.build(plan, w.gw, {"checks": ["storage-4a", "storage-4c"]}))
    saved = planfile.load(path)
    stand_ins = [c for c in saved.changes if c.instead_of]
    assert stand_ins, "the stand-ins keep what they stand in for through the file"
    refused = {stand_ins[0].instead_of: "changed since the plan was saved"}
    held = planfile.blocked_by(saved, refused)
    assert set(held) == {c.id for c in stand_ins if c.instead_of in refused}
