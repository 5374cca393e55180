"""Each resource kind's read and write path, through the real azure-mgmt clients and pipeline."""

from __future__ import annotations

import json

import pytest
from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.resource.features import FeatureClient
from azure.mgmt.resource.resources import ResourceManagementClient
from azure.mgmt.resource.subscriptions import SubscriptionClient
from azure.mgmt.security import SecurityCenter
from azure.mgmt.storage import StorageManagementClient

SUB = "00000000-0000-0000-0000-0000000000a1"  # the subscriptions of the small estate (conftest)
SUB2 = "00000000-0000-0000-0000-0000000000b2"

RG_NET = f"/subscriptions/{SUB}/resourceGroups/rg-net"


def test_storage_account_create_update_list(sandbox, arm_client):
    sb = sandbox(page_size=2)
    st = arm_client(StorageManagementClient, sb, SUB)
    acct = st.storage_accounts.get_properties("rg-st", "stblob01")
    assert acct.minimum_tls_version == "TLS1_0"
    poller = st.storage_accounts.begin_create(
        "rg-st", "stfiles01", {"location": "westeurope", "kind": "StorageV2", "sku": {"name": "Standard_LRS"},
                               "properties": {"minimumTlsVersion": "TLS1_2"}})
    created = poller.result()
    assert created.provisioning_state == "Succeeded" and created.minimum_tls_version == "TLS1_2"
    updated = st.storage_accounts.update("rg-st", "stblob01", {"properties": {"minimumTlsVersion": "TLS1_2",
                                                                             "allowBlobPublicAccess": False}})
    assert updated.minimum_tls_version == "TLS1_2" and updated.allow_blob_public_access is False
    assert updated.network_rule_set.default_action == "Allow"  # PATCH merged, not replaced
    names = sorted(a.name for a in st.storage_accounts.list())
    assert names == ["stblob01", "stfiles01"]
    # storage create answers 202 + Location, the monitor 202 then 200 with the resource
    statuses = [(m, s) for m, p, s in sb.request_log if p.lower().endswith("stfiles01") or "/operations/" in p]
    assert statuses[0] == ("PUT", 202)
    assert ("GET", 202) in statuses and statuses[-1] == ("GET", 200)


def test_nsg_and_security_rule_with_default_rules_and_subnet_backrefs(sandbox, arm_client):
    sb = sandbox()
    net = arm_client(NetworkManagementClient, sb, SUB)
    nsg = net.network_security_groups.get("rg-net", "nsg-app")
    assert [r.name for r in nsg.security_rules] == ["allow-ssh"]
    assert len(nsg.default_security_rules) == 6
    assert {r.priority for r in nsg.default_security_rules} == {65000, 65001, 65500}
    assert [s.id.rsplit("/", 1)[1] for s in nsg.subnets] == ["app"]
    rule = net.security_rules.begin_create_or_update("rg-net", "nsg-app", "deny-rdp", {
        "properties": {"priority": 110, "direction": "Inbound", "access": "Deny", "protocol": "Tcp",
                       "sourcePortRange": "*", "destinationPortRange": "3389", "sourceAddressPrefix": "*",
                       "destinationAddressPrefix": "*"}}).result()
    assert rule.provisioning_state == "Succeeded" and rule.etag.startswith('W/"')
    again = net.network_security_groups.get("rg-net", "nsg-app")
    assert sorted(r.name for r in again.security_rules) == ["allow-ssh", "deny-rdp"]
    assert again.etag != nsg.etag  # a child write changes the parent's etag
    net.security_rules.begin_delete("rg-net", "nsg-app", "allow-ssh").result()
    assert [r.name for r in net.network_security_groups.get("rg-net", "nsg-app").security_rules] == ["deny-rdp"]


def test_nsg_put_with_inline_rules_replaces_the_rule_set(sandbox, arm_client):
    sb = sandbox()
    net = arm_client(NetworkManagementClient, sb, SUB)
    nsg = net.network_security_groups.get("rg-net", "nsg-app")
    body = nsg.as_dict() if hasattr(nsg, "as_dict") else dict(nsg)
    body = {"location": "westeurope", "properties": {"securityRules": [
        {"name": "only", "properties": {"priority": 200, "direction": "Inbound", "access": "Deny",
                                        "protocol": "*", "sourcePortRange": "*", "destinationPortRange": "*",
                                        "sourceAddressPrefix": "Internet", "destinationAddressPrefix": "*"}}]}}
    poller = net.network_security_groups.begin_create_or_update("rg-net", "nsg-app", body)
    assert poller.result().provisioning_state == "Succeeded"
    rules = list(net.security_rules.list("rg-net", "nsg-app"))
    assert [r.name for r in rules] == ["only"]
    # the subnet reference survives a PUT of the NSG (it lives on the subnet)
    assert len(net.network_security_groups.get("rg-net", "nsg-app").subnets) == 1


def test_vnet_and_subnet(sandbox, arm_client):
    sb = sandbox()
    net = arm_client(NetworkManagementClient, sb, SUB)
    vnet = net.virtual_networks.get("rg-net", "vnet-spoke")
    assert sorted(s.name for s in vnet.subnets) == ["app", "data"]
    rt_id = f"{RG_NET}/providers/Microsoft.Network/routeTables/rt-app"
    sub = net.subnets.get("rg-net", "vnet-spoke", "data")
    sub.route_table = {"id": rt_id}
    res = net.subnets.begin_create_or_update("rg-net", "vnet-spoke", "data", sub).result()
    assert res.route_table.id == rt_id
    rt = net.route_tables.get("rg-net", "rt-app")
    assert [s.id.rsplit("/", 1)[1] for s in rt.subnets] == ["data"]
    created = net.subnets.begin_create_or_update("rg-net", "vnet-spoke", "AzureBastionSubnet",
                                                 {"properties": {"addressPrefix": "10.1.250.0/26"}}).result()
    assert created.id.endswith("/virtualNetworks/vnet-spoke/subnets/AzureBastionSubnet")
    assert sorted(s.name for s in net.subnets.list("rg-net", "vnet-spoke")) == ["AzureBastionSubnet", "app", "data"]
    net.subnets.begin_delete("rg-net", "vnet-spoke", "data").result()
    assert net.route_tables.get("rg-net", "rt-app").subnets in (None, [])


def test_route_table_routes(sandbox, arm_client):
    sb = sandbox()
    net = arm_client(NetworkManagementClient, sb, SUB)
    net.routes.begin_create_or_update("rg-net", "rt-app", "default", {
        "properties": {"addressPrefix": "0.0.0.0/0", "nextHopType": "VirtualAppliance",
                       "nextHopIpAddress": "10.0.1.4"}}).result()
    rt = net.route_tables.get("rg-net", "rt-app")
    assert [(r.name, r.next_hop_type) for r in rt.routes] == [("default", "VirtualAppliance")]


def test_nic_public_ip_and_tags_patch(sandbox, arm_client):
    sb = sandbox()
    net = arm_client(NetworkManagementClient, sb, "00000000-0000-0000-0000-0000000000a1")
    nic = net.network_interfaces.get("rg-vm", "nic-web")
    nsg_id = f"{RG_NET}/providers/Microsoft.Network/networkSecurityGroups/nsg-app"
    nic.network_security_group = {"id": nsg_id}
    net.network_interfaces.begin_create_or_update("rg-vm", "nic-web", nic).result()
    nsg = net.network_security_groups.get("rg-net", "nsg-app")
    assert [n.id.rsplit("/", 1)[1] for n in nsg.network_interfaces] == ["nic-web"]
    pip = net.public_ip_addresses.get("rg-net", "pip-1")
    assert pip.public_ip_allocation_method == "Static"
    tagged = net.public_ip_addresses.update_tags("rg-net", "pip-1", {"tags": {"env": "prod"}})
    assert tagged.tags == {"env": "prod"} and tagged.public_ip_allocation_method == "Static"
    net.public_ip_addresses.begin_delete("rg-net", "pip-1").result()
    with pytest.raises(ResourceNotFoundError) as err:
        net.public_ip_addresses.get("rg-net", "pip-1")
    assert err.value.error.code == "ResourceNotFound"
    assert "Microsoft.Network/publicIPAddresses/pip-1" in err.value.error.message
    assert "rg-net" in err.value.error.message


def test_vm_create_update_extension_disk(sandbox, arm_client):
    sb = sandbox()
    cmp = arm_client(ComputeManagementClient, sb, SUB)
    vm = cmp.virtual_machines.get("rg-vm", "vm-web")
    assert [r.name for r in vm.resources] == ["AzureMonitorLinuxAgent"]
    FeatureClient(cmp._config.credential, SUB, transport=sb.transport()).features.register(
        "Microsoft.Compute", "EncryptionAtHost")
    cmp.virtual_machines.begin_deallocate("rg-vm", "vm-web").result()
    upd = cmp.virtual_machines.begin_update("rg-vm", "vm-web", {
        "properties": {"securityProfile": {"encryptionAtHost": True}}}).result()
    cmp.virtual_machines.begin_start("rg-vm", "vm-web").result()
    assert upd.security_profile.encryption_at_host is True and upd.provisioning_state == "Succeeded"
    assert upd.hardware_profile.vm_size == "Standard_B2s"
    new = cmp.virtual_machines.begin_create_or_update("rg-vm", "vm-app", {
        "location": "westeurope", "properties": {"hardwareProfile": {"vmSize": "Standard_D2s_v5"}}}).result()
    assert new.provisioning_state == "Succeeded"
    ext = cmp.virtual_machine_extensions.begin_create_or_update("rg-vm", "vm-app", "AADSSHLoginForLinux", {
        "location": "westeurope", "properties": {"publisher": "Microsoft.Azure.ActiveDirectory",
                                                 "type": "AADSSHLoginForLinux", "typeHandlerVersion": "1.0"}}).result()
    assert ext.provisioning_state == "Succeeded"
    assert [e.name for e in cmp.virtual_machine_extensions.list("rg-vm", "vm-app").value] == ["AADSSHLoginForLinux"]
    disk = cmp.disks.begin_update("rg-vm", "disk-web-os", {"properties": {"networkAccessPolicy": "DenyAll"}}).result()
    assert disk.network_access_policy == "DenyAll" and disk.disk_size_gb == 64
    made = cmp.disks.begin_create_or_update("rg-vm", "disk-data", {
        "location": "westeurope", "sku": {"name": "Premium_LRS"},
        "properties": {"creationData": {"createOption": "Empty"}, "diskSizeGB": 32}}).result()
    assert made.provisioning_state == "Succeeded"
    assert sorted(d.name for d in cmp.disks.list_by_resource_group("rg-vm")) == ["disk-data", "disk-web-os"]
    cmp.virtual_machines.begin_deallocate("rg-vm", "vm-web").result()
    view = cmp.virtual_machines.instance_view("rg-vm", "vm-web")
    assert "PowerState/deallocated" in [s.code for s in view.statuses]


def test_pricing_settings_and_role_assignments(sandbox, arm_client):
    sb = sandbox()
    sec = arm_client(SecurityCenter, sb, SUB)
    scope = f"/subscriptions/{SUB}"
    p = sec.pricings.get(scope, "VirtualMachines")
    assert p.pricing_tier == "Free"
    p2 = sec.pricings.update(scope, "VirtualMachines", {"properties": {"pricingTier": "Standard",
                                                                      "subPlan": "P2"}})
    assert p2.pricing_tier == "Standard"
    assert [x.name for x in sec.pricings.list(scope).value] == ["VirtualMachines"]
    auth = arm_client(AuthorizationManagementClient, sb, SUB)
    ras = list(auth.role_assignments.list_for_scope(scope, filter="atScope()"))
    assert [r.principal_id for r in ras] == ["22222222-2222-2222-2222-222222222222"]
    rg_scope = f"{scope}/resourceGroups/rg-net"
    made = auth.role_assignments.create(rg_scope, "33333333-3333-3333-3333-333333333333", {
        "properties": {"roleDefinitionId": f"{scope}/providers/Microsoft.Authorization/roleDefinitions/"
                                           "acdd72a7-3385-48ef-bd42-f606fba81ae7",
                       "principalId": "44444444-4444-4444-4444-444444444444"}})
    assert made.id.lower() == (f"{rg_scope}/providers/Microsoft.Authorization/roleAssignments/"
                               "33333333-3333-3333-3333-333333333333").lower()
    assert len(list(auth.role_assignments.list_for_subscription())) == 2  # below the scope included
    assert len(list(auth.role_assignments.list_for_scope(scope, filter="atScope()"))) == 1
    assert len(list(auth.role_assignments.list_for_scope(rg_scope, filter="atScope()"))) == 2  # inherited


def test_subscriptions_and_resource_groups(sandbox, arm_client):
    sb = sandbox(page_size=1)
    subs = arm_client(SubscriptionClient, sb)
    assert sorted(s.subscription_id for s in subs.subscriptions.list()) == sorted([SUB, SUB2])
    res = arm_client(ResourceManagementClient, sb, SUB)
    assert sorted(g.name for g in res.resource_groups.list()) == ["rg-net", "rg-st", "rg-vm"]
    assert res.resource_groups.check_existence("rg-net") is True
    assert res.resource_groups.check_existence("nope") is False
    res.resource_groups.create_or_update("rg-new", {"location": "westeurope", "tags": {"a": "b"}})
    assert res.resource_groups.get("rg-new").tags == {"a": "b"}
    assert sorted(r.name for r in res.resources.list_by_resource_group("rg-net")) == [
        "nsg-app", "pip-1", "rt-app", "vnet-spoke"]
    res.resource_groups.begin_delete("rg-net").result()
    net = arm_client(NetworkManagementClient, sb, SUB)
    with pytest.raises(ResourceNotFoundError) as err:
        net.virtual_networks.get("rg-net", "vnet-spoke")
    assert err.value.error.code == "ResourceGroupNotFound"
    assert sb.store.get(f"{RG_NET}/providers/Microsoft.Network/virtualNetworks/vnet-spoke/subnets/app") is None


def test_etag_if_match(sandbox, arm_client):
    sb = sandbox()
    net = arm_client(NetworkManagementClient, sb, SUB)
    nsg = net.network_security_groups.get("rg-net", "nsg-app")
    stale = nsg.etag
    net.network_security_groups.update_tags("rg-net", "nsg-app", {"tags": {"x": "1"}})
    with pytest.raises(HttpResponseError) as err:
        net.network_security_groups.begin_create_or_update("rg-net", "nsg-app", {"location": "westeurope"},
                                                           headers={"If-Match": stale})
    assert err.value.status_code == 412 and err.value.error.code == "PreconditionFailed"
    fresh = net.network_security_groups.get("rg-net", "nsg-app").etag
    ok = net.network_security_groups.begin_create_or_update("rg-net", "nsg-app", {"location": "westeurope"},
                                                            headers={"If-Match": fresh}).result()
    assert ok.etag != fresh
    cmp = arm_client(ComputeManagementClient, sb, SUB)
    vm = cmp.virtual_machines.get("rg-vm", "vm-web")
    cmp.virtual_machines.begin_update("rg-vm", "vm-web", {"tags": {"a": "1"}}).result()
    with pytest.raises(ResourceModifiedError):
        cmp.virtual_machines.begin_update("rg-vm", "vm-web", {"tags": {"a": "2"}}, etag=vm.etag,
                                          match_condition=MatchConditions.IfNotModified)
    # If-None-Match: * on an existing VM, If-Match: * on a missing one: both 412
    with pytest.raises(ResourceExistsError) as exists:
        cmp.virtual_machines.begin_create_or_update("rg-vm", "vm-web", {"location": "westeurope"},
                                                    match_condition=MatchConditions.IfMissing)
    assert exists.value.status_code == 412
    with pytest.raises(ResourceNotFoundError) as missing:
        cmp.virtual_machines.begin_create_or_update("rg-vm", "vm-nope", {"location": "westeurope"},
                                                    match_condition=MatchConditions.IfPresent)
    assert missing.value.status_code == 412
    assert cmp.virtual_machines.get("rg-vm", "vm-web").tags == {"a": "1"}


def test_public_ip_follows_its_nic(sandbox, arm_client):
    sb = sandbox()
    net = arm_client(NetworkManagementClient, sb, SUB)
    pip_id = f"{RG_NET}/providers/Microsoft.Network/publicIPAddresses/pip-1"
    nic = net.network_interfaces.get("rg-vm", "nic-web").as_dict()
    nic["properties"]["ipConfigurations"][0]["properties"]["publicIPAddress"] = {"id": pip_id}
    net.network_interfaces.begin_create_or_update("rg-vm", "nic-web", nic).result()
    assert net.public_ip_addresses.get("rg-net", "pip-1").ip_configuration.id.endswith(
        "/networkInterfaces/nic-web/ipConfigurations/ipconfig1")
    nic["properties"]["ipConfigurations"][0]["properties"].pop("publicIPAddress")
    net.network_interfaces.begin_create_or_update("rg-vm", "nic-web", nic).result()
    assert net.public_ip_addresses.get("rg-net", "pip-1").ip_configuration is None


def test_write_only_secrets_are_never_kept(tmp_path, sandbox, arm_client):
    sb = sandbox(tmp_path)
    cmp = arm_client(ComputeManagementClient, sb, SUB)
    vm = cmp.virtual_machines.begin_create_or_update("rg-vm", "vm-secret", {
        "location": "westeurope", "properties": {"osProfile": {
            "computerName": "vm", "adminUsername": "azureuser", "adminPassword": "Sup3r-secret-pw!"}}}).result()
    assert vm.os_profile.admin_username == "azureuser" and vm.os_profile.admin_password is None
    cmp.virtual_machine_extensions.begin_create_or_update("rg-vm", "vm-secret", "script", {
        "location": "westeurope", "properties": {"publisher": "Microsoft.Azure.Extensions", "type": "CustomScript",
                                                 "typeHandlerVersion": "2.1",
                                                 "protectedSettings": {"commandToExecute": "Sup3r-secret-cmd"}}}).result()
    state = (tmp_path / "sandbox" / "state.json").read_text()
    assert "Sup3r-secret" not in state
    assert "Sup3r-secret" not in json.dumps(cmp.virtual_machines.get("rg-vm", "vm-secret").as_dict())


def test_peering_state_follows_both_sides(sandbox, arm_client):
    sb = sandbox()
    spoke = arm_client(NetworkManagementClient, sb, SUB)
    hub = arm_client(NetworkManagementClient, sb, SUB2)
    hub_id = f"/subscriptions/{SUB2}/resourceGroups/rg-hub/providers/Microsoft.Network/virtualNetworks/vnet-hub"
    spoke_id = f"{RG_NET}/providers/Microsoft.Network/virtualNetworks/vnet-spoke"
    one = spoke.virtual_network_peerings.begin_create_or_update("rg-net", "vnet-spoke", "to-hub", {
        "properties": {"remoteVirtualNetwork": {"id": hub_id}, "allowForwardedTraffic": True}}).result()
    assert one.peering_state == "Initiated"
    hub.virtual_network_peerings.begin_create_or_update("rg-hub", "vnet-hub", "to-spoke", {
        "properties": {"remoteVirtualNetwork": {"id": spoke_id}}}).result()
    assert spoke.virtual_network_peerings.get("rg-net", "vnet-spoke", "to-hub").peering_state == "Connected"
    assert [p.peering_state for p in spoke.virtual_networks.get("rg-net", "vnet-spoke").virtual_network_peerings] \
        == ["Connected"]
    hub.virtual_networks.begin_delete("rg-hub", "vnet-hub").result()
    assert spoke.virtual_network_peerings.get("rg-net", "vnet-spoke", "to-hub").peering_state == "Disconnected"


def test_nic_names_the_vm_that_holds_it(sandbox, arm_client):
    sb = sandbox()
    net = arm_client(NetworkManagementClient, sb, SUB)
    cmp = arm_client(ComputeManagementClient, sb, SUB)
    nic = net.network_interfaces.begin_create_or_update("rg-vm", "nic-2", {
        "location": "westeurope", "properties": {"ipConfigurations": [{"name": "ipconfig1", "properties": {
            "subnet": {"id": f"{RG_NET}/providers/Microsoft.Network/virtualNetworks/vnet-spoke/subnets/app"}}}]}}).result()
    assert nic.virtual_machine is None
    cmp.virtual_machines.begin_create_or_update("rg-vm", "vm-2", {
        "location": "westeurope", "properties": {"networkProfile": {"networkInterfaces": [{"id": nic.id}]}}}).result()
    assert net.network_interfaces.get("rg-vm", "nic-2").virtual_machine.id.endswith("/virtualMachines/vm-2")
    cmp.virtual_machines.begin_delete("rg-vm", "vm-2").result()
    assert net.network_interfaces.get("rg-vm", "nic-2").virtual_machine is None


def test_put_without_computed_properties_keeps_them(sandbox, arm_client):
    """A read-modify-write that strips read-only fields (as the wizard's PUTs do) must not lose
    what ARM computed, such as a VNet's resourceGuid."""
    from azure.mgmt.network import NetworkManagementClient

    sb = sandbox()
    net = arm_client(NetworkManagementClient, sb, SUB)
    net.virtual_networks.begin_create_or_update(
        "rg-net", "vnet-new", {"location": "westeurope",
                               "properties": {"addressSpace": {"addressPrefixes": ["10.9.0.0/16"]}}}).result()
    vnet = net.virtual_networks.get("rg-net", "vnet-new").as_dict()
    guid = vnet["properties"].get("resourceGuid")
    assert guid
    body = {k: v for k, v in vnet.items() if k != "etag"}
    del body["properties"]["resourceGuid"]
    body["tags"] = {"t": "1"}
    after = net.virtual_networks.begin_create_or_update("rg-net", "vnet-new", body).result().as_dict()
    assert after["properties"]["resourceGuid"] == guid and after["tags"] == {"t": "1"}


def test_defender_plans_exist_on_every_subscription_as_free(sandbox, arm_client):
    from azure.mgmt.security import SecurityCenter

    sb = sandbox()
    sec = arm_client(SecurityCenter, sb, SUB)
    plan = sec.pricings.get(f"subscriptions/{SUB}", "CloudPosture")
    assert plan.pricing_tier == "Free"
    with pytest.raises(ResourceNotFoundError):
        sec.pricings.get(f"subscriptions/{SUB}", "NoSuchPlan")
