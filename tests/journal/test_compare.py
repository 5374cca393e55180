"""How apply, undo and resume decide what ARM holds: pure comparisons, no ARM involved."""

from __future__ import annotations

import copy

from ztwizard import journal as J
from ztwizard.armjson import apply_values, holds, inverse, leaves, mismatches, same, side
from ztwizard.resume import classify
from ztwizard.steps import step_of
from ztwizard.undo import three_way

RID = "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups/nsg"


def test_leaves_flatten_dicts_but_keep_lists_whole():
    tree = {"properties": {"a": {"b": 1}, "rules": [{"name": "x"}], "empty": {}}}
    assert leaves(tree) == {("properties", "a", "b"): 1, ("properties", "rules"): [{"name": "x"}],
                            ("properties", "empty"): {}}
    assert leaves({"criteria": {"odata.type": "X"}}) == {("criteria", "odata.type"): "X"}  # dotted keys stay whole


def test_same_follows_arm_semantics():
    assert same("TLS1_2", "tls1_2")  # ARM enums and ids are case-insensitive
    assert same(None, None) and not same(None, "x") and not same("x", None)
    assert same({"id": RID.upper()}, {"id": RID, "etag": 'W/"1"'})  # subset; ARM adds fields
    assert same([{"name": "a", "etag": "e1"}], [{"name": "a", "etag": "e2", "provisioningState": "Succeeded"}])
    assert not same([{"name": "a"}], [{"name": "a"}, {"name": "b"}])  # a removed entry is a difference
    assert not same(True, 1) and same(False, False) and not same(False, None)


def test_mismatches_and_holds():
    res = {"properties": {"minimumTlsVersion": "TLS1_2", "allowBlobPublicAccess": True}}
    assert holds(res, {"properties": {"minimumTlsVersion": "TLS1_2"}})
    assert mismatches(res, {"properties": {"minimumTlsVersion": "TLS1_0", "allowBlobPublicAccess": True,
                                           "absent": None}}) == [("properties", "minimumTlsVersion")]


def test_apply_values_sets_and_removes_without_touching_the_rest():
    base = {"location": "westeurope", "properties": {"a": 1, "b": {"c": 2, "d": 3}}}
    out = apply_values(base, {"properties": {"a": 5, "b": {"c": None}, "new": {"x": 1}}})
    assert out == {"location": "westeurope", "properties": {"a": 5, "b": {"d": 3}, "new": {"x": 1}}}
    assert base["properties"]["a"] == 1  # the input is not modified


def test_side_prefers_the_more_specific_tree():
    before = {"properties": {"ipConfigurations": [{"name": "ip1", "properties": {"subnet": {"id": "s"}}}]}}
    after = {"properties": {"ipConfigurations": [{"name": "ip1", "properties": {"subnet": {"id": "s"},
                                                                              "applicationSecurityGroups": [{"id": "a"}]}}]}}
    assert side(copy.deepcopy(after), before, after) == "after"  # holds both under subset rules
    assert side(copy.deepcopy(before), before, after) == "before"
    # The reverse: a change that removes a key inside a list entry.
    assert side(copy.deepcopy(after), after, before) == "before"
    assert side(copy.deepcopy(before), after, before) == "after"
    assert side({"properties": {"ipConfigurations": []}}, before, after) == "neither"


def test_inverse_tree_removes_what_the_change_added():
    before = {"properties": {"networkAcls": {"defaultAction": "Allow"}, "nsg": None}}
    after = {"properties": {"networkAcls": {"defaultAction": "Deny", "ipRules": []}, "nsg": {"id": "x"}}}
    assert inverse(before, after).tree == {"properties": {"networkAcls": {"defaultAction": "Allow", "ipRules": None},
                                                          "nsg": None}}


def test_step_of_check():
    assert step_of("storage-1b") == "storage-1"
    assert step_of("hub-4d") == "hub-4"


def _rec(action: str, state: str, before: dict, after: dict) -> J.ChangeRecord:
    return J.ChangeRecord(session_id="s", change_id="c", ordinal=1, step_id="vm-6", check_id="vm-6c",
                          resource_id=RID, method="PUT" if action != "delete" else "DELETE", action=action,
                          api_version="", body=None, plan_before=before, plan_after=after, before_image=None,
                          etag_before=None, state=state, result_etag=None, after_image=None, error=None,
                          created_at="", updated_at="", flags={}, note=None, seq=1, undo_image=None, undo_body=None)


def test_classify_in_flight_update():
    before, after = {"properties": {"x": "old"}}, {"properties": {"x": "new"}}
    rec = _rec("update", J.IN_FLIGHT, before, after)
    assert classify(rec, {"properties": {"x": "new"}})[0] == J.APPLIED
    assert classify(rec, {"properties": {"x": "old"}})[0] == J.NOT_APPLIED
    assert classify(rec, {"properties": {"x": "theirs"}})[0] == J.DRIFTED
    assert classify(rec, None)[0] == J.DRIFTED


def test_classify_create_delete_and_undo():
    body = {"location": "westeurope", "properties": {}}
    create = _rec("create", J.IN_FLIGHT, {}, body)
    assert classify(create, None)[0] == J.NOT_APPLIED
    assert classify(create, {"id": RID, **body})[0] == J.APPLIED
    delete = _rec("delete", J.IN_FLIGHT, {"properties": {"p": 1}}, {})
    assert classify(delete, None)[0] == J.APPLIED
    assert classify(delete, {"properties": {"p": 1}})[0] == J.NOT_APPLIED
    undo = _rec("create", J.UNDO_IN_FLIGHT, {}, body)
    assert classify(undo, None)[0] == J.UNDONE
    assert classify(undo, {"id": RID, **body})[0] == J.APPLIED



def test_classify_create_whose_empty_list_later_gained_an_entry():
    # an NSG created with no rules that a later change of ours gave one is still the one we made:
    # judged drifted, its undo would never delete it
    body = {"location": "westeurope", "properties": {"securityRules": []}}
    create = _rec("create", J.IN_FLIGHT, {}, body)
    grown = {"id": RID, "location": "westeurope", "properties": {"securityRules": [{"name": "deny-all"}]}}
    assert classify(create, grown)[0] == J.APPLIED
    assert classify(create, {"id": RID, "location": "eastus", "properties": {}})[0] == J.DRIFTED

def test_three_way_names_each_side():
    rec = _rec("update", J.APPLIED, {"properties": {"x": "old", "y": 1}}, {"properties": {"x": "new", "y": 2}})
    drift = three_way(rec, {"properties": {"x": "theirs", "y": 2}})
    assert drift.rows == [("properties.x", "old", "new", "theirs")]
    text = "\n".join(drift.lines())
    assert "before 'old'" in text and "wizard wrote 'new'" in text and "now 'theirs'" in text
