"""Estate files: every accepted dialect loads into the one stored shape, every malformed file is
refused with one sentence naming the entry, and a loaded file serves the real clients."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.network import NetworkManagementClient

from ztwizard.errors import UsageError
from ztwizard.estate import load_estate_file, parse_estate
from ztwizard.resource_id import parse
from ztwizard.sandbox.estates import load_estate

DATA = Path(__file__).parent / "data" / "estates"
SUB = "11111111-2222-4333-8444-555555555555"
RG = f"/subscriptions/{SUB}/resourceGroups/rg-demo"
VNET = f"{RG}/providers/Microsoft.Network/virtualNetworks/vnet-demo"
NSG = f"{RG}/providers/Microsoft.Network/networkSecurityGroups/nsg-web"
VM = f"{RG}/providers/Microsoft.Compute/virtualMachines/vm-web"
FWP = f"{RG}/providers/Microsoft.Network/firewallPolicies/fwp-demo"

INLINE = {
    "Microsoft.Network/virtualNetworks": [("properties", "subnets"), ("properties", "virtualNetworkPeerings")],
    "Microsoft.Network/networkSecurityGroups": [("properties", "securityRules")],
    "Microsoft.Network/routeTables": [("properties", "routes")],
    "Microsoft.Compute/virtualMachines": [(None, "resources")],
    "Microsoft.Network/firewallPolicies": [("properties", "ruleCollectionGroups")],
}


def by_id(resources):
    return {r["id"].lower(): r for r in resources}


def assert_stored_shape(resources):
    """What the sandbox stores: type from the id, unique ids, no inline child lists."""
    ids = [r["id"].lower() for r in resources]
    assert len(ids) == len(set(ids))
    for r in resources:
        assert r["type"] == parse(r["id"]).type
        assert r["name"] == parse(r["id"]).name
        for holder, key in INLINE.get(r["type"], []):
            where = r.get(holder, {}) if holder else r
            assert key not in where, f"{r['id']} keeps inline {key}"
        for col in ("subscriptionId", "resourceGroup", "tenantId"):
            assert col not in r or r["type"] == "Microsoft.Resources/subscriptions"


# ---- accepted dialects -------------------------------------------------------------------------
def test_array_lifts_inline_children_into_entries_of_their_own():
    res = load_estate_file(DATA / "array.json")
    assert_stored_shape(res)
    idx = by_id(res)
    assert f"{VNET}/subnets/snet-web".lower() in idx
    data = idx[f"{VNET}/subnets/snet-data".lower()]  # had only a name inline: the id is built
    assert data["type"] == "Microsoft.Network/virtualNetworks/subnets"
    assert data["properties"]["addressPrefix"] == "10.9.2.0/24"
    assert idx[f"{VNET}/virtualNetworkPeerings/peer-to-hub".lower()]["properties"]["allowForwardedTraffic"] is True
    rule = idx[f"{NSG}/securityRules/allow-rdp".lower()]
    assert rule["properties"]["destinationPortRange"] == "3389"
    assert f"{RG}/providers/Microsoft.Network/routeTables/rt-web/routes/default".lower() in idx
    # the VM's inline extension and its own entry are one resource, and the own entry wins
    ext = [r for r in res if r["type"] == "Microsoft.Compute/virtualMachines/extensions"]
    assert len(ext) == 1 and ext[0]["properties"]["provisioningState"] == "Succeeded"
    # ARM lists rule collection groups by id only: a reference, not a second copy
    rcg = [r for r in res if r["type"] == "Microsoft.Network/firewallPolicies/ruleCollectionGroups"]
    assert len(rcg) == 1 and rcg[0]["properties"]["priority"] == 200


def test_resource_groups_named_only_in_ids_get_an_entry():
    res = load_estate_file(DATA / "array.json")
    groups = [r for r in res if r["type"] == "Microsoft.Resources/resourceGroups"]
    assert [g["id"] for g in groups] == [RG]
    assert groups[0]["location"] == "westeurope"
    # a peering's remote VNet in another group is a reference, not a resource: no group for it
    assert not any("rg-hub" in r["id"] for r in res)


def test_arm_list_and_array_give_the_same_estate():
    assert load_estate_file(DATA / "arm-list.json") == load_estate_file(DATA / "array.json")


def test_resource_graph_rows_get_arm_casing_and_lose_graph_columns():
    res = load_estate_file(DATA / "resource-graph.json")
    assert_stored_shape(res)
    idx = by_id(res)
    nsg = idx[NSG.lower()]
    assert nsg["type"] == "Microsoft.Network/networkSecurityGroups"  # graph sent it lower-cased
    assert "kind" not in nsg and "sku" not in nsg and "managedBy" not in nsg  # graph's empty columns
    assert idx[RG.lower()]["type"] == "Microsoft.Resources/resourceGroups"  # graph's resourcecontainers type
    assert idx[RG.lower()]["tags"] == {"env": "demo"}
    assert f"{NSG}/securityRules/allow-rdp".lower() in idx
    pricing = idx[f"/subscriptions/{SUB}/providers/Microsoft.Security/pricings/VirtualMachines".lower()]
    assert pricing["type"] == "Microsoft.Security/pricings" and "location" not in pricing
    # same resources as the ARM export, less the child rows Resource Graph does not have
    arm_ids = {r["id"].lower() for r in load_estate_file(DATA / "array.json")}
    assert set(idx) <= arm_ids
    assert arm_ids - set(idx) == {f"{RG}/providers/Microsoft.Storage/storageAccounts/stdemo01/blobServices/default".lower(),
                                  f"{VM}/extensions/AADSSHLoginForLinux".lower(),
                                  f"{FWP}/ruleCollectionGroups/DefaultNetworkRuleCollectionGroup".lower()}


def test_resource_graph_table_format_is_read_as_rows():
    res = load_estate_file(DATA / "resource-graph-table.json")
    assert_stored_shape(res)
    assert {r["type"] for r in res} >= {"Microsoft.Network/virtualNetworks",
                                         "Microsoft.Network/networkSecurityGroups",
                                         "Microsoft.Network/virtualNetworks/subnets"}


def test_graph_row_whose_subscription_column_disagrees_with_its_id_is_refused():
    row = {"id": NSG, "type": "microsoft.network/networksecuritygroups",
           "subscriptionId": "22222222-2222-4222-8222-222222222222", "properties": {}}
    with pytest.raises(UsageError, match=r"Entry 0 .* has subscriptionId 2222"):
        parse_estate({"data": [row]}, "graph.json")


def test_an_empty_estate_is_valid():
    assert parse_estate([], "empty.json") == []
    assert parse_estate({"value": []}, "empty.json") == []


def test_utf8_bom_is_accepted(tmp_path):
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + (DATA / "array.json").read_bytes())
    assert load_estate_file(path) == load_estate_file(DATA / "array.json")


@pytest.mark.parametrize("name", ["array.json", "arm-list.json", "resource-graph.json", "resource-graph-table.json"])
def test_parsing_data_of_its_own_gives_what_parsing_a_copy_gives(name):
    """load_estate_file hands parse_estate the decoded file to keep (no copy): same result."""
    text = (DATA / name).read_text()
    assert parse_estate(json.loads(text), name, owned=True) == parse_estate(json.loads(text), name)


def test_parsing_does_not_touch_the_caller_data():
    data = json.loads((DATA / "array.json").read_text())
    before = json.dumps(data, sort_keys=True)
    parse_estate(data, "array.json")
    assert json.dumps(data, sort_keys=True) == before


# ---- refused files -----------------------------------------------------------------------------
BAD = {
    "not-json.json": r"is not valid JSON \(.* at line 4, column \d+\)",
    "single-object.json": r"holds a single resource, not a list",
    "object-without-list.json": r'without a "value" or "data" list',
    "scalar.json": r"holds a JSON number, not a list of resources",
    "graph-data-not-list.json": r'"data" is not a list of resources',
    "entry-not-object.json": r"^Entry 1 in .* is a JSON string, not a resource object\.$",
    "missing-id.json": r"^Entry 1 \(name 'vnet-demo'\) in .* has no \"id\"\.$",
    "bad-id.json": r"^Entry 0 \(name 'vnet-demo'\) .* does not start with /subscriptions/\.$",
    "truncated-id.json": r"^Entry 0 \(name 'vnet-demo'\) .* does not end in a resource type and name\.$",
    "type-mismatch.json": r"^Entry 1 \(.*/networkSecurityGroups/nsg-web\) .* has type "
                          r"'Microsoft.Network/virtualNetworks', but its id names a "
                          r"Microsoft.Network/networkSecurityGroups\.$",
    "duplicate-ids.json": r"^Entry 2 \(.*STDEMO01\) .* repeats the id of entry 0\.$",
    "bad-subscription.json": r"^Entry 0 \(name 'stdemo01'\) .* subscription 'prod-workload' is not a GUID\.$",
    "properties-not-object.json": r"^Entry 0 \(.*stdemo01\) .* has a \"properties\" that is not a JSON object\.$",
    "inline-child-wrong-parent.json": r"^Child 0 of \"properties.subnets\" in entry 0 \(.*vnet-demo\) .* "
                                      r"is not a subnets child of its parent\.$",
    "inline-child-without-name.json": r"^Child 0 of \"properties.securityRules\" in entry 0 .* has neither "
                                      r"an id nor a name\.$",
    "management-group-scope.json": r"^Entry 0 .* at management-group or tenant scope",
}


def test_every_malformed_sample_has_a_case():
    assert sorted(p.name for p in (DATA / "bad").glob("*.json")) == sorted(BAD)


@pytest.mark.parametrize("name", sorted(BAD))
def test_malformed_file_is_one_sentence_with_a_hint_and_exit_2(name):
    path = DATA / "bad" / name
    with pytest.raises(UsageError) as err:
        load_estate_file(path)
    e = err.value
    assert e.exit_code == 2
    assert "\n" not in e.message and e.message.endswith(".")
    assert e.hint, "every refusal says what to do"
    assert str(path) in e.message  # the file is named
    assert re.search(BAD[name], e.message), e.message
    assert e.__cause__ is None and (e.__context__ is None or e.__suppress_context__)  # nothing chained


def test_missing_and_unreadable_paths(tmp_path):
    with pytest.raises(UsageError, match="does not exist") as err:
        load_estate_file(tmp_path / "nope.json")
    assert err.value.exit_code == 2
    with pytest.raises(UsageError, match="is a directory"):
        load_estate_file(tmp_path)
    binary = tmp_path / "export.bin"
    binary.write_bytes(b"\xff\xfe\x00\x00garbage")
    with pytest.raises(UsageError, match="not UTF-8"):
        load_estate_file(binary)
    if os.geteuid() != 0:  # root reads anything
        locked = tmp_path / "locked.json"
        locked.write_text("[]")
        locked.chmod(0)
        with pytest.raises(UsageError, match="permission denied"):
            load_estate_file(locked)


def test_deeply_nested_json_is_refused_not_crashed(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(UsageError):
        load_estate_file(path)


@pytest.mark.parametrize("bad_id, pattern", [
    (f"{RG}//providers/Microsoft.Network/virtualNetworks/v", "empty segment"),
    (f"{RG}/providers/Microsoft.Network/virtualNetworks/v\n", "control character"),
    (f"/subscriptions/{SUB}/resourcegroupz/rg/providers/Microsoft.Network/virtualNetworks/v",
     "'resourcegroupz' where resourceGroups or providers belongs"),
    (42, "not a string"),
])
def test_malformed_ids(bad_id, pattern):
    with pytest.raises(UsageError, match=pattern):
        parse_estate([{"id": bad_id, "properties": {}}], "ids.json")


def test_names_with_spaces_are_ids_too():
    setting = f"/subscriptions/{SUB}/providers/Microsoft.Insights/diagnosticSettings/Send to workspace"
    [res] = parse_estate([{"id": setting, "properties": {"logs": []}}], "spaces.json")
    assert res["name"] == "Send to workspace" and res["type"] == "Microsoft.Insights/diagnosticSettings"


def test_sandbox_export_loads_back_as_the_same_estate(sandbox, tmp_path):
    """`ztwizard sandbox export` output is an estate file: it reloads into the same state."""
    first = sandbox(estate="reference").export()
    path = tmp_path / "export.json"
    path.write_text(json.dumps(first))
    again = sandbox(estate=str(path)).export()
    assert again == first


# ---- the loader entry point ------------------------------------------------------------------
def test_load_estate_dispatches_on_the_spec():
    assert load_estate(str(DATA / "array.json")) == load_estate_file(DATA / "array.json")
    assert len(load_estate("scale:10")) == 10
    assert len(load_estate("SCALE:1_000")) == 1000
    assert any(r["type"] == "Microsoft.Network/azureFirewalls" for r in load_estate(" reference "))


@pytest.mark.parametrize("spec, pattern", [
    ("scale:0", "positive whole number"),
    ("scale:-5", "positive whole number"),
    ("scale:lots", "positive whole number"),
    ("scale:", "positive whole number"),
    ("scale:99999999", "more than"),
    ("", "No estate given"),
    ("refrence", "Unknown estate 'refrence'"),
    ("estates/missing.json", "does not exist"),
])
def test_load_estate_refuses_bad_specs(spec, pattern):
    with pytest.raises(UsageError, match=pattern) as err:
        load_estate(spec)
    assert err.value.exit_code == 2 and err.value.hint


def test_a_file_named_like_a_scale_spec_is_still_a_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("scale:3").write_text((DATA / "array.json").read_text())
    assert load_estate("scale:3") == load_estate_file(DATA / "array.json")


# ---- a loaded file serves the real clients -----------------------------------------------------
@pytest.mark.parametrize("name", ["array.json", "resource-graph.json"])
def test_estate_file_in_the_sandbox_reads_back_through_the_sdk(name, sandbox, arm_client):
    sb = sandbox(estate=str(DATA / name))
    net = arm_client(NetworkManagementClient, sb, SUB)
    vnet = net.virtual_networks.get("rg-demo", "vnet-demo")
    assert sorted(s.name for s in vnet.subnets) == ["snet-data", "snet-web"]
    assert vnet.virtual_network_peerings[0].allow_forwarded_traffic is True
    nsg = net.network_security_groups.get("rg-demo", "nsg-web")
    assert [(r.name, r.destination_port_range) for r in nsg.security_rules] == [("allow-rdp", "3389")]
    subnet = net.subnets.get("rg-demo", "vnet-demo", "snet-web")
    assert subnet.network_security_group.id.lower() == NSG.lower()
    compute = arm_client(ComputeManagementClient, sb, SUB)
    vm = compute.virtual_machines.get("rg-demo", "vm-web")
    assert vm.hardware_profile.vm_size == "Standard_B2s"
    if name == "array.json":
        assert [e.name for e in compute.virtual_machine_extensions.list("rg-demo", "vm-web").value] == \
            ["AADSSHLoginForLinux"]


# ---- the command line --------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["type-mismatch.json", "not-json.json", "duplicate-ids.json"])
def test_cli_refuses_a_malformed_estate_with_exit_2_and_no_traceback(name, capsys, tmp_path):
    from ztwizard.cli import main

    code = main(["--state-dir", str(tmp_path / "state"), "--estate", str(DATA / "bad" / name), "plan"])
    out, err = capsys.readouterr()
    assert code == 2
    assert "Traceback" not in err and "Traceback" not in out
    assert name in err and "hint:" in err
    assert not (tmp_path / "state" / "sandbox").exists()  # nothing written for a refused estate


def test_cli_audits_an_estate_file(capsys, tmp_path):
    from ztwizard.cli import main

    code = main(["--state-dir", str(tmp_path), "--estate", str(DATA / "array.json"), "plan", "--format", "json"])
    plan = json.loads(capsys.readouterr().out)
    assert code == 0
    assert plan["target"]["subscriptions"] == [SUB]
    findings = [f for s in plan["steps"] for f in s["findings"]]
    assert any(f["check"] == "storage-1b" and f["status"] == "fail" and f["resource_id"].endswith("stdemo01")
               for f in findings)
    assert any(f["check"] == "spoke-3a" and f["status"] == "fail" and f["resource_id"].endswith("/subnets/snet-data")
               for f in findings)  # the subnet that came inline, without an NSG
