"""ARM JSON as the wizard handles it: paths, merge, diff, inverse and inline children."""

from __future__ import annotations

import copy

import pytest

from ztwizard import armjson as A
from ztwizard.estate import parse_estate
from ztwizard.inventory import Inventory

SUB = "00000000-0000-0000-0000-000000000001"
VNET = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/vnet"


# ---- paths -------------------------------------------------------------------------------------

def test_paths_parse_and_format_round_trip_with_dotted_keys():
    assert A.parse_path("properties.minimumTlsVersion") == ("properties", "minimumTlsVersion")
    assert A.parse_path('properties.criteria["odata.type"]') == ("properties", "criteria", "odata.type")
    assert A.parse_path('tags["cost.center"]') == ("tags", "cost.center")
    assert A.parse_path(("tags", "a.b")) == ("tags", "a.b")
    for path in [("properties", "criteria", "odata.type"), ("tags", 'say "hi"'), ("tags", "a[0]"), ("x",)]:
        assert A.parse_path(A.format_path(path)) == path
    assert A.format_path(("tags", "cost.center")) == 'tags["cost.center"]'
    for bad in ["", "a..b", "a.", 'a["unterminated]', "a]b"]:
        with pytest.raises(ValueError):
            A.parse_path(bad)


def test_reads_are_case_insensitive_and_exact_first():
    res = {"properties": {"minimumTlsVersion": "TLS1_0", "criteria": {"odata.type": "Static"}}}
    assert A.get_path(res, "PROPERTIES.minimumtlsversion") == "TLS1_0"
    assert A.get_path(res, 'properties.criteria["odata.type"]') == "Static"
    assert A.get_path(res, "properties.criteria.odata.type", "absent") == "absent"  # dots split keys
    assert A.get_path({"a": 1, "A": 2}, "A") == 2
    assert A.get_path(res, "properties.minimumTlsVersion.deeper") is None
    # a dict built in code may hold a key that is not a string: the case-folded lookup still works
    mixed = {7: "seven", "Name": "vm-1"}
    assert A.get_path(mixed, "name") == "vm-1"
    assert A.get_path(mixed, "absent", "none") == "none"


def test_a_write_updates_the_existing_key_whatever_its_case():
    res = {"properties": {"minimumTlsVersion": "TLS1_0"}}
    A.set_path(res, "Properties.minimumtlsversion", "TLS1_2")
    assert res == {"properties": {"minimumTlsVersion": "TLS1_2"}}
    A.set_path(res, ("tags", "cost.center"), "42")  # a dotted key is one key
    assert res["tags"] == {"cost.center": "42"}
    A.set_path(res, 'TAGS["COST.CENTER"]', "43")
    assert res["tags"] == {"cost.center": "43"}
    A.set_path(res, "properties.explicit", None)  # set writes an explicit null; remove removes
    assert res["properties"]["explicit"] is None
    A.remove_path(res, "PROPERTIES.Explicit")
    assert "explicit" not in res["properties"]
    assert A.nested({"properties.a.b": 1, ("tags", "x.y"): "z"}) == {"properties": {"a": {"b": 1}},
                                                                    "tags": {"x.y": "z"}}


# ---- merge, apply, diff, inverse ---------------------------------------------------------------

def test_merge_follows_patch_semantics():
    base = {"properties": {"networkAcls": {"defaultAction": "Allow", "ipRules": [{"value": "1.2.3.4"}]},
                           "allowBlobPublicAccess": True, "minimumTlsVersion": "TLS1_0"}, "tags": {"a": "1"}}
    patch = {"properties": {"networkAcls": {"ipRules": []}, "allowblobpublicaccess": None,
                            "MinimumTlsVersion": "TLS1_2", "new": {"x": None, "y": 1}}}
    out = A.merge(base, patch)
    assert out == {"properties": {"networkAcls": {"defaultAction": "Allow", "ipRules": []},
                                  "minimumTlsVersion": "TLS1_2", "new": {"y": 1}}, "tags": {"a": "1"}}
    assert base["properties"]["allowBlobPublicAccess"] is True  # the input is not modified


def test_diff_then_apply_gives_the_new_tree_and_inverse_gives_the_old_back():
    old = {"properties": {"minimumTlsVersion": "TLS1_0", "networkAcls": {"defaultAction": "Allow"},
                          "unchanged": "same"}}
    new = {"properties": {"minimumTlsVersion": "TLS1_2", "networkAcls": {"defaultAction": "Deny", "bypass": "None"},
                          "unchanged": "SAME"}}
    delta = A.diff(old, new)
    assert delta == {("properties", "minimumTlsVersion"): ("TLS1_0", "TLS1_2"),
                     ("properties", "networkAcls", "defaultAction"): ("Allow", "Deny"),
                     ("properties", "networkAcls", "bypass"): (None, "None")}
    before = A.nested({p: o for p, (o, _n) in delta.items()})
    after = A.nested({p: n for p, (_o, n) in delta.items()})
    forward = A.apply_values(old, after)
    assert A.holds(forward, new) and not A.diff(forward, new)
    back = A.apply_values(forward, A.inverse(before, after).tree)
    assert not A.diff(back, old) and A.side(back, before, after) == "before"
    assert A.diff(old, old) == {}


def test_inverse_uses_previous_values_defaults_and_flags_what_has_none():
    before = {"properties": {"networkAcls": {"defaultAction": "Allow"}, "nsg": None,
                             "securityProfile": {"encryptionAtHost": None}}}
    after = {"properties": {"networkAcls": {"defaultAction": "Deny", "ipRules": []}, "nsg": {"id": "x"},
                            "securityProfile": {"encryptionAtHost": True}}}
    inv = A.inverse(before, after, defaults={"properties.securityProfile.encryptionAtHost": False})
    assert inv.tree == {"properties": {"networkAcls": {"defaultAction": "Allow", "ipRules": None},
                                       "nsg": None, "securityProfile": {"encryptionAtHost": False}}}
    assert sorted(inv.no_inverse) == [("properties", "networkAcls", "ipRules"), ("properties", "nsg")]
    # Without defaults, as undo does today: removals (null) everywhere, each one flagged.
    plain = A.inverse(before, after)
    assert plain.tree["properties"]["securityProfile"] == {"encryptionAtHost": None}
    assert ("properties", "securityProfile", "encryptionAtHost") in plain.no_inverse
    # With the before-image, the outermost object that did not exist is removed, not an empty shell.
    image = {"properties": {"networkAcls": {"defaultAction": "Allow"}}}
    assert A.inverse(before, after, image).tree["properties"]["nsg"] is None


def test_same_is_arm_equality():
    assert A.same("TLS1_2", "tls1_2") and not A.same(True, 1) and A.same(None, {})
    assert A.same({"id": "A", "etag": "x"}, {"ID": "a", "etag": "y", "extra": 1})  # subset, read-only ignored
    assert A.same([{"name": "b", "v": 1}, {"name": "a"}], [{"name": "a"}, {"name": "b", "v": 1}])
    assert not A.same([{"name": "a"}], [{"name": "a"}, {"name": "b"}])


def test_writable_strips_read_only_fields_at_every_depth():
    res = {"etag": "e", "properties": {"provisioningState": "Succeeded", "subnets": [{"etag": "s", "name": "a"}]}}
    assert A.writable(res) == {"properties": {"subnets": [{"name": "a"}]}}
    assert res["etag"] == "e"


# ---- inline children ---------------------------------------------------------------------------

def _vnet() -> dict:
    return {"id": VNET, "type": "Microsoft.Network/virtualNetworks", "name": "vnet", "location": "westeurope",
            "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]},
                           "subnets": [{"name": "app", "properties": {"addressPrefix": "10.0.1.0/24"}},
                                       {"id": f"{VNET}/subnets/db", "name": "db",
                                        "properties": {"addressPrefix": "10.0.2.0/24"}},
                                       "not-an-object", {"properties": {}}]}}


def test_lift_children_gives_each_child_its_id_leniently():
    vnet = _vnet()
    kids = A.lift_children(vnet)
    assert [k["id"] for k in kids] == [f"{VNET}/subnets/app", f"{VNET}/subnets/db"]
    assert len(vnet["properties"]["subnets"]) == 4  # not removed unless asked
    A.lift_children(vnet, remove=True)
    assert "subnets" not in vnet["properties"]


def test_the_inventory_and_the_estate_loader_lift_the_same_children():
    vnet = _vnet()
    vnet["properties"]["subnets"] = vnet["properties"]["subnets"][:2]
    inv = Inventory.from_resources([copy.deepcopy(vnet)])
    loaded = parse_estate([copy.deepcopy(vnet)])
    inv_children = sorted(r["id"] for r in inv.all() if "/subnets/" in r["id"])
    file_children = sorted(r["id"] for r in loaded if "/subnets/" in r["id"])
    assert inv_children == file_children == [f"{VNET}/subnets/app", f"{VNET}/subnets/db"]
    # the inventory keeps the inline list ARM returns, rebuilt from the entries; the loader drops it
    assert [s["name"] for s in inv.get(VNET)["properties"]["subnets"]] == ["app", "db"]
    assert "subnets" not in next(r for r in loaded if r["id"] == VNET)["properties"]


def test_inline_holder_matches_case_insensitively():
    res = {"Properties": {"Subnets": []}}
    holder, key = A.inline_holder(res, "properties.subnets")
    assert holder is res["Properties"] and key == "Subnets"
    assert A.inline_holder({"properties": {}}, "properties.subnets") == (None, "subnets")
    holder, key = A.inline_holder({}, "properties.subnets", create=True)
    assert holder == {} and key == "subnets"


def test_clone_is_a_deep_copy_of_json_and_of_anything_else():
    from ztwizard.armjson import clone

    value = {"a": [1, 2.5, {"b": None, "c": True}], "d": "x", "e": {}, "t": (1, [2])}
    copied = clone(value)
    assert copied == copy.deepcopy(value)
    copied["a"][2]["b"] = "changed"
    copied["t"][1].append(3)  # a tuple goes through deepcopy: its list is a copy too
    assert value == {"a": [1, 2.5, {"b": None, "c": True}], "d": "x", "e": {}, "t": (1, [2])}


def test_writable_shares_no_object_with_the_resource():
    res = {"id": "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/networkSecurityGroups/n",
           "type": "Microsoft.Network/networkSecurityGroups", "etag": "W/1",
           "properties": {"provisioningState": "Succeeded", "securityRules": [{"name": "r", "properties": {"x": [1]}}]}}
    out = A.writable(res)
    out["properties"]["securityRules"][0]["properties"]["x"].append(2)
    out["properties"]["securityRules"].append({})
    assert res["properties"]["securityRules"] == [{"name": "r", "properties": {"x": [1]}}]
    assert "provisioningState" not in out["properties"]
