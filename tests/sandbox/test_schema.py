"""Request bodies checked against the REST specs' schemas (specs/schemas.json), and api-versions
per resource type, through the real azure-mgmt clients."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient
from azure.mgmt.storage import StorageManagementClient

from ztwizard.sandbox import schema

SUB = "00000000-0000-0000-0000-0000000000a1"
NSG = f"/subscriptions/{SUB}/resourceGroups/rg-net/providers/Microsoft.Network/networkSecurityGroups/nsg-app"
ROOT = Path(__file__).resolve().parents[2]


def test_a_rule_without_a_required_property_is_refused_and_nothing_changes(sandbox, arm_client):
    sb = sandbox()
    net = arm_client(NetworkManagementClient, sb, SUB)
    with pytest.raises(HttpResponseError) as err:
        net.security_rules.begin_create_or_update("rg-net", "nsg-app", "no-access", {"properties": {
            "priority": 200, "direction": "Inbound", "protocol": "Tcp", "sourcePortRange": "*",
            "destinationPortRange": "443", "sourceAddressPrefix": "*", "destinationAddressPrefix": "*"}}).result()
    assert err.value.status_code == 400 and err.value.error.code == "InvalidRequestFormat"
    assert "'properties.access' is missing" in err.value.error.message
    assert [r.name for r in net.security_rules.list("rg-net", "nsg-app")] == ["allow-ssh"]


def test_a_rule_without_properties_is_refused_and_nothing_changes(sandbox, arm_client):
    sb = sandbox()
    net = arm_client(NetworkManagementClient, sb, SUB)
    for body in ({}, {"name": "bare"}, {"properties": None}):
        with pytest.raises(HttpResponseError) as err:
            net.security_rules.begin_create_or_update("rg-net", "nsg-app", "bare", body).result()
        assert err.value.status_code == 400 and err.value.error.code == "InvalidRequestFormat", body
        assert "'properties' is missing" in err.value.error.message
    assert [r.name for r in net.security_rules.list("rg-net", "nsg-app")] == ["allow-ssh"]


_COMPLETE = {"priority": 210, "direction": "Inbound", "access": "Allow", "protocol": "Tcp",
             "sourcePortRange": "*", "destinationPortRange": "443", "sourceAddressPrefix": "10.0.0.0/24",
             "destinationAddressPrefix": "*"}


@pytest.mark.parametrize("left_out, code", [
    (("sourceAddressPrefix",), "SecurityRuleInvalidAddressPrefix"),
    (("destinationAddressPrefix",), "SecurityRuleInvalidAddressPrefix"),
    (("sourcePortRange",), "SecurityRuleInvalidPortRange"),
    (("destinationPortRange",), "SecurityRuleInvalidPortRange"),
])
def test_a_rule_without_a_source_destination_or_ports_is_refused(sandbox, arm_client, left_out, code):
    sb = sandbox()
    net = arm_client(NetworkManagementClient, sb, SUB)
    props = {k: v for k, v in _COMPLETE.items() if k not in left_out}
    with pytest.raises(HttpResponseError) as err:
        net.security_rules.begin_create_or_update("rg-net", "nsg-app", "partial", {"properties": props}).result()
    assert err.value.status_code == 400 and err.value.error.code == code
    assert left_out[0] in err.value.error.message
    # inline in the group's PUT it is refused the same way, and the group keeps its rules
    nsg = net.network_security_groups.get("rg-net", "nsg-app").as_dict()
    with pytest.raises(HttpResponseError) as err:
        net.network_security_groups.begin_create_or_update("rg-net", "nsg-app", {
            "location": nsg["location"], "properties": {"securityRules": [
                {"name": "partial", "properties": props}]}}).result()
    assert err.value.status_code == 400 and err.value.error.code == code
    assert [r.name for r in net.security_rules.list("rg-net", "nsg-app")] == ["allow-ssh"]
    # the alternatives count: a list of prefixes or of ranges names the side as well
    plural = {f"{k}es" if k.endswith("Prefix") else f"{k}s": [_COMPLETE[k]] for k in left_out}
    made = net.security_rules.begin_create_or_update("rg-net", "nsg-app", "partial",
                                                     {"properties": {**props, **plural}}).result()
    assert made.provisioning_state == "Succeeded"


def test_a_value_outside_the_enum_is_refused(sandbox, arm_client):
    sb = sandbox()
    st = arm_client(StorageManagementClient, sb, SUB)
    with pytest.raises(HttpResponseError) as err:
        st.storage_accounts.update("rg-st", "stblob01", {"properties": {"minimumTlsVersion": "TLS1_9"}})
    assert err.value.status_code == 400 and err.value.error.code == "InvalidRequestContent"
    assert "TLS1_9" in err.value.error.message and "TLS1_2" in err.value.error.message
    assert st.storage_accounts.get_properties("rg-st", "stblob01").minimum_tls_version == "TLS1_0"
    # enum values are matched case-insensitively, as the providers do
    st.storage_accounts.update("rg-st", "stblob01", {"properties": {"minimumTlsVersion": "tls1_2"}})


def test_a_patch_need_not_carry_required_properties_but_a_wrong_shape_is_refused(sandbox, arm_client):
    sb = sandbox()
    net = arm_client(NetworkManagementClient, sb, SUB)
    assert net.network_security_groups.update_tags("rg-net", "nsg-app", {"tags": {"a": "b"}}).tags == {"a": "b"}
    with pytest.raises(HttpResponseError) as err:
        net.network_security_groups.update_tags("rg-net", "nsg-app", {"tags": {"a": 5}})
    assert err.value.status_code == 400 and "tags" in err.value.error.message
    with pytest.raises(HttpResponseError) as err:
        net.network_security_groups.begin_create_or_update(
            "rg-net", "nsg-new", {"location": "westeurope", "properties": {"securityRules": {"not": "a list"}}}).result()
    assert err.value.status_code == 400 and "securityRules' must be an array" in err.value.error.message


def test_read_only_and_unknown_properties_are_accepted_and_counted(sandbox, arm_client):
    sb = sandbox()
    net = arm_client(NetworkManagementClient, sb, SUB)
    made = net.route_tables.begin_create_or_update("rg-net", "rt-new", {
        "location": "westeurope", "etag": "W/\"x\"",
        "properties": {"provisioningState": "Failed", "routes": [], "colour": "blue"}}).result()
    assert made.provisioning_state == "Succeeded"
    assert dict(sb.schema_stats.read_only) == {("microsoft.network/routetables", "etag"): 1,
                                               ("microsoft.network/routetables", "properties.provisioningState"): 1}
    assert dict(sb.schema_stats.unknown) == {("microsoft.network/routetables", "properties.colour"): 1}
    assert list(sb.schema_stats.requests) == [
        ("PUT", "microsoft.network/routetables", ("etag", "properties.provisioningState"), ("properties.colour",))]


def test_ignored_properties_are_not_kept_and_read_only_ones_keep_the_providers_value(sandbox, arm_client):
    sb = sandbox()
    net = arm_client(NetworkManagementClient, sb, SUB)
    net.route_tables.begin_create_or_update("rg-net", "rt-new", {
        "location": "westeurope", "properties": {"routes": [], "colour": "blue"}}).result()
    assert "colour" not in net.route_tables.get("rg-net", "rt-new").as_dict()  # unknown: dropped, as ARM does
    assert "colour" not in str(sb.store.get(NSG.replace("networkSecurityGroups/nsg-app", "routeTables/rt-new")))
    nic_id = f"/subscriptions/{SUB}/resourceGroups/rg-vm/providers/Microsoft.Network/networkInterfaces/nic-web"
    nic = sb.store.get(nic_id)
    nic["properties"]["macAddress"] = "00-0D-3A-00-00-01"  # what the provider computed
    body = {"location": "westeurope", "properties": {**nic["properties"], "macAddress": "66-66-66-66-66-66"}}
    body["properties"].pop("provisioningState", None)
    net.network_interfaces.begin_create_or_update("rg-vm", "nic-web", body).result()
    assert net.network_interfaces.get("rg-vm", "nic-web").mac_address == "00-0D-3A-00-00-01"
    assert sb.schema_stats.requests[-1][2] == ("properties.macAddress",)


def test_an_unknown_api_version_is_refused_with_arms_code(sandbox, arm_client):
    sb = sandbox()
    res = arm_client(ResourceManagementClient, sb, SUB)
    with pytest.raises(HttpResponseError) as err:
        res.resources.get_by_id(NSG, api_version="2099-01-01")
    assert err.value.status_code == 400 and err.value.error.code == "NoRegisteredProviderFound"
    assert "2026-03-01" in err.value.error.message and "networkSecurityGroups".lower() in err.value.error.message.lower()
    assert res.resources.get_by_id(NSG, api_version="2026-03-01").name == "nsg-app"


def test_the_schemas_cover_the_types_the_wizard_writes_at_versions_the_sandbox_serves():
    covered = schema.covered_types()
    for rtype in ("microsoft.storage/storageaccounts", "microsoft.network/networksecuritygroups",
                  "microsoft.network/networksecuritygroups/securityrules", "microsoft.network/virtualnetworks/subnets",
                  "microsoft.compute/virtualmachines", "microsoft.compute/virtualmachines/extensions",
                  "microsoft.security/pricings", "microsoft.authorization/roledefinitions",
                  "microsoft.insights/diagnosticsettings"):
        assert rtype in covered
    for rtype, version in covered.items():
        path = "/subscriptions/s/resourceGroups/g/providers/" + "/x/".join(rtype.split("/", 1)[1].split("/")) + "/x"
        path = path.replace("/providers/", f"/providers/{rtype.split('/')[0]}/", 1)
        assert version in (schema.supported_api_versions("PUT", path) or ()), rtype


def test_the_vendored_schemas_are_what_the_script_derives():
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "derive_schemas.py")], capture_output=True,
                         text=True, timeout=300, check=True)
    vendored = (ROOT / "ztwizard" / "sandbox" / "specs" / "schemas.json").read_text()
    assert json.loads(out.stdout) == json.loads(vendored)


def _apply_reference_plan(tmp_path):
    """The wizard's own apply of the whole reference plan, on an in-process sandbox."""
    from ztwizard.apply import apply_changes, start_session
    from ztwizard.engine import inspect
    from ztwizard.gateway import Gateway
    from ztwizard.journal import Journal
    from ztwizard.sandbox import Sandbox
    from ztwizard.target import in_process_target

    sb = Sandbox(None, estate="reference", lro_seconds=0)
    gw = Gateway(in_process_target(sb))
    journal = Journal(tmp_path / "state")
    try:
        changes = inspect(gw).changes()
        sid = start_session(journal, gw, changes)
        report = apply_changes(gw, journal, sid, changes, allow_disruptive=True, allow_cost=True)
    finally:
        journal.close()
    return sb, report


@pytest.fixture(scope="module")
def reference_applied(tmp_path_factory):
    return _apply_reference_plan(tmp_path_factory.mktemp("reference"))


def test_every_body_the_wizard_sends_passes_the_schemas(reference_applied):
    sb, report = reference_applied
    assert len(report.applied) > 50, "\n".join(report.lines())
    writes = [(m, p, s) for m, p, s in sb.request_log if m in ("PUT", "PATCH")]
    assert len(writes) > 50 and not [w for w in writes if w[2] == 400]


def test_the_reference_plan_applies_without_a_refusal(reference_applied):
    _, report = reference_applied
    assert not report.failed, "\n".join(report.lines())


@pytest.mark.xfail(strict=True, reason=(
    "the wizard's read-modify-write PUTs send back what it read: the id/name/type envelope, "
    "read-only properties (NIC macAddress/primary/virtualMachine/hostedWorkloads/tapConfigurations/"
    "vnetEncryptionSupported/dnsSettings.appliedDnsServers/internalDomainNameSuffix, firewall policy "
    "childPolicies/firewalls/ruleCollectionGroups, pricing freeTrialRemainingTime/enablementTime, route "
    "table subnets and hasBgpOverride, app gateway operationalState/privateEndpointConnections, "
    "fileServices sku, JIT location), and a NIC 'kind' and a peering 'routeServiceVips' the spec does "
    "not define; a wizard-side fix is due"))
def test_the_wizard_sends_no_read_only_or_unknown_property(reference_applied):
    sb, _ = reference_applied
    assert dict(sb.schema_stats.read_only) == {}
    assert dict(sb.schema_stats.unknown) == {}
