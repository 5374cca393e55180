"""Verdicts after a write, through the real SDK on the strict sandbox: a 201 whose extensions
failed is a failed change naming them (and stays undoable: the plan's tier landed); what a
provider adds on its own is neither a failed verification nor drift; undo is `undone` only when
a fresh GET shows the previous values; one-way changes are labelled before apply."""

from __future__ import annotations

import json
from pathlib import Path

from ztwizard import journal as J
from ztwizard.apply import apply_changes, failed_extensions, start_session
from ztwizard.armjson import mismatches, same
from ztwizard.engine import inspect
from ztwizard.report import markdown as to_markdown
from ztwizard.report import text as to_text
from ztwizard.undo import undo_changes

DATA = Path(__file__).parent / "data"


def _apply(w, **kw):
    changes = inspect(w.gw, **kw).changes()
    sid = start_session(w.journal, w.gw, changes)
    return sid, changes, apply_changes(w.gw, w.journal, sid, changes, allow_disruptive=True, allow_cost=True)


def test_failed_extensions_of_the_documented_partial_success():
    example = json.loads((DATA / "PutPricingByNamePartialSuccess_example.json").read_text())
    failed = failed_extensions(example["responses"]["201"]["body"])
    assert [f.split(" failed")[0] for f in failed] == [
        "extension AgentlessVmScanning", "extension AgentlessDiscoveryForKubernetes", "extension SensitiveDataDiscovery"]
    assert "first party application client ID" in failed[0]
    assert not failed_extensions({"properties": {"pricingTier": "Standard", "extensions": [
        {"name": "AgentlessVmScanning", "isEnabled": "True", "operationStatus": {"code": "Succeeded"}}]}})


def test_a_defender_plan_answered_201_with_a_failed_extension_is_a_failed_change(world):
    w = world(estate="reference", faults="partial:1.0")
    original = w.view()
    sid, changes, report = _apply(w, step_ids=["vm-8", "storage-4"])
    failed = {o.change_id: o for o in report.failed}
    assert failed, "\n".join(report.lines())
    for o in failed.values():
        assert "applied it only in part" in o.message and "extension" in o.message and "failed" in o.message
        assert w.journal.change(sid, o.change_id).state == J.APPLIED  # the tier landed: undo takes it back
    undo = undo_changes(w.gw, w.journal, sid)
    assert undo.ok, "\n".join(undo.lines())
    plans = [k for k in original if "/microsoft.security/pricings/" in k]
    assert {k: w.view()[k].get("properties", {}).get("pricingTier") for k in plans} == \
        {k: original[k].get("properties", {}).get("pricingTier") for k in plans}


def test_provider_added_plan_extensions_are_neither_a_failed_verification_nor_drift(world):
    w = world(estate="reference")
    sid, changes, report = _apply(w, step_ids=["storage-4", "vm-8"])
    assert not report.failed, "\n".join(report.lines())
    plans = [c for c in changes if "/pricings/" in c.resource_id]
    assert plans and not [o for o in report.outcomes if o.change_id in {c.id for c in plans} and o.message
                          and not o.message.startswith("already in place")]  # no "does not hold" note
    now = w.gw.read(plans[0].resource_id)
    exts = now["properties"]["extensions"]
    assert len(exts) >= 2, "the provider filled in the plan's extensions"
    named = {"properties": {"extensions": [{"name": exts[0]["name"], "isEnabled": exts[0]["isEnabled"]}]}}
    assert not mismatches(now, named)  # only the entries a change names count ...
    assert not same(named["properties"]["extensions"], exts)  # ... where lists otherwise compare whole
    assert all(f.status == "pass" for s in report.verification for f in s.findings if f.check in ("storage-4a", "vm-8a"))
    undo = undo_changes(w.gw, w.journal, sid)
    assert undo.ok and not undo.refused and not undo.drifts, "\n".join(undo.lines())


def test_undo_is_incomplete_when_the_fresh_read_does_not_show_the_previous_value(world):
    """A property added by PATCH whose removal the provider ignores and a PUT cannot express:
    the SAS expiration policy is labelled one-way; forcing its inverse anyway reports what stayed."""
    from ztwizard.undo import UndoReport, _undo_one

    w = world(estate="reference")
    sid, changes, report = _apply(w, check_ids=["storage-2b"])
    applied = [o for o in report.applied]
    assert applied, "\n".join(report.lines())
    rec = w.journal.change(sid, applied[0].change_id)
    out = UndoReport(sid)
    outcomes = []
    _undo_one(w.gw, w.journal, sid, rec, False, out, lambda r, res, msg="": outcomes.append((res, msg)))
    assert outcomes[0][0] == "failed" and outcomes[0][1].startswith("undo incomplete: properties.sasPolicy")
    assert w.journal.change(sid, rec.change_id).state == J.UNDO_FAILED
    # undo proper knows it is one-way and says so instead
    undo = undo_changes(w.gw, w.journal, sid)
    assert all(o.message.startswith("one-way") for o in undo.skipped) and undo.skipped


def test_one_way_changes_are_labelled_in_the_plan_before_apply(world):
    w = world(estate="reference")
    plan = inspect(w.gw, check_ids=["storage-2b"])
    changes = plan.changes()
    assert changes and all("SAS expiration policy" in c.one_way for c in changes)
    assert all(c.to_dict()["one_way"] for c in changes)  # JSON
    assert "[one-way: undo cannot take it back]" in to_text(plan) and "one-way: Storage keeps" in to_text(plan)
    assert "**one-way**" in to_markdown(plan) and "- One-way: Storage keeps" in to_markdown(plan)
    others = inspect(w.gw, check_ids=["storage-1b", "vm-4c"]).changes()
    assert others and not any(c.one_way for c in others)
