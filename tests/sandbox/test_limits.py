"""Platform limits a write must respect (notes §3) and dangling references, through the real SDK
clients: each refused as ARM refuses it, next to the write that is allowed."""

from __future__ import annotations

import uuid

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.monitor import MonitorManagementClient
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient
from azure.mgmt.storage import StorageManagementClient

SUB = "00000000-0000-0000-0000-0000000000a1"  # the small estate's (conftest)
SUB2 = "00000000-0000-0000-0000-0000000000b2"
NET = f"/subscriptions/{SUB}/resourceGroups/rg-net/providers/Microsoft.Network"
ACCOUNT = f"/subscriptions/{SUB}/resourceGroups/rg-st/providers/Microsoft.Storage/storageAccounts/stblob01"


def _refused(call, status: int, code: str) -> str:
    with pytest.raises(HttpResponseError) as err:
        call()
    assert err.value.status_code == status and err.value.error.code == code, err.value.message
    return str(err.value.error.message)


def test_one_network_watcher_per_region_and_subscription(sandbox, arm_client):
    sb = sandbox()
    net = arm_client(NetworkManagementClient, sb, SUB)
    res = arm_client(ResourceManagementClient, sb, SUB)
    res.resource_groups.create_or_update("NetworkWatcherRG", {"location": "westeurope"})
    net.network_watchers.create_or_update("NetworkWatcherRG", "NetworkWatcher_westeurope", {"location": "westeurope"})
    msg = _refused(lambda: net.network_watchers.create_or_update("rg-net", "nw-second", {"location": "westeurope"}),
                   400, "NetworkWatcherCountLimitReached")
    assert "NetworkWatcher_westeurope" in msg
    net.network_watchers.create_or_update("NetworkWatcherRG", "NetworkWatcher_westeurope", {
        "location": "westeurope", "tags": {"a": "b"}})  # updating the one there is fine
    net.network_watchers.create_or_update("rg-net", "nw-north", {"location": "northeurope"})  # another region
    other = arm_client(NetworkManagementClient, sb, SUB2)  # another subscription
    arm_client(ResourceManagementClient, sb, SUB2).resource_groups.create_or_update("rg-nw", {"location": "westeurope"})
    other.network_watchers.create_or_update("rg-nw", "nw-weu", {"location": "westeurope"})


def test_custom_role_names_are_unique_in_the_tenant(sandbox, arm_client):
    sb = sandbox()
    auth = arm_client(AuthorizationManagementClient, sb, SUB)

    def role(scope: str, rid: str, scopes: list[str]):
        return auth.role_definitions.create_or_update(scope, rid, {"properties": {
            "roleName": "Network Operator", "type": "CustomRole", "description": "joins subnets",
            "permissions": [{"actions": ["Microsoft.Network/virtualNetworks/subnets/join/action"]}],
            "assignableScopes": scopes}})

    first = str(uuid.uuid4())
    role(f"/subscriptions/{SUB}", first, [f"/subscriptions/{SUB}"])
    msg = _refused(lambda: role(f"/subscriptions/{SUB2}", str(uuid.uuid4()), [f"/subscriptions/{SUB2}"]),
                   409, "RoleDefinitionWithSameNameExists")
    assert first in msg
    # the allowed path: one definition that lists both subscriptions
    done = role(f"/subscriptions/{SUB}", first, [f"/subscriptions/{SUB}", f"/subscriptions/{SUB2}"])
    assert len(done.assignable_scopes) == 2


def test_the_nics_of_an_asg_are_in_one_vnet(sandbox, arm_client):
    sb = sandbox()
    net = arm_client(NetworkManagementClient, sb, SUB)
    asg = net.application_security_groups.begin_create_or_update("rg-net", "asg-web", {"location": "westeurope"}).result()
    other = net.application_security_groups.begin_create_or_update("rg-net", "asg-web-hub",
                                                                   {"location": "westeurope"}).result()
    net.virtual_networks.begin_create_or_update("rg-net", "vnet-two", {"location": "westeurope", "properties": {
        "addressSpace": {"addressPrefixes": ["10.9.0.0/16"]},
        "subnets": [{"name": "web", "properties": {"addressPrefix": "10.9.1.0/24"}}]}}).result()

    def nic(name: str, vnet: str, subnet: str, group: str):
        return net.network_interfaces.begin_create_or_update("rg-net", name, {"location": "westeurope", "properties": {
            "ipConfigurations": [{"name": "ipconfig1", "properties": {
                "subnet": {"id": f"{NET}/virtualNetworks/{vnet}/subnets/{subnet}"},
                "applicationSecurityGroups": [{"id": group}]}}]}}).result()

    nic("nic-a", "vnet-spoke", "app", asg.id)
    nic("nic-b", "vnet-spoke", "data", asg.id)  # same VNet, another subnet: fine
    msg = _refused(lambda: nic("nic-c", "vnet-two", "web", asg.id), 400, "ApplicationSecurityGroupNotInSameVnet")
    assert "vnet-spoke" in msg
    assert sb.store.get(f"{NET}/networkInterfaces/nic-c") is None
    nic("nic-c", "vnet-two", "web", other.id)  # one ASG per VNet


def test_a_sas_policy_needs_rotated_keys(sandbox, arm_client):
    sb = sandbox()
    st = arm_client(StorageManagementClient, sb, SUB)
    policy = {"properties": {"sasPolicy": {"sasExpirationPeriod": "1.00:00:00", "expirationAction": "Log"}}}
    assert st.storage_accounts.get_properties("rg-st", "stblob01").key_creation_time is None
    msg = _refused(lambda: st.storage_accounts.update("rg-st", "stblob01", policy), 400,
                   "InvalidValuesForRequestParameters")
    assert "keyCreationTime" in msg and "Rotate" in msg
    keys = st.storage_accounts.regenerate_key("rg-st", "stblob01", {"keyName": "key1"})
    assert [k["keyName"] for k in keys["keys"]] == ["key1", "key2"]
    _refused(lambda: st.storage_accounts.update("rg-st", "stblob01", policy), 400, "InvalidValuesForRequestParameters")
    st.storage_accounts.regenerate_key("rg-st", "stblob01", {"keyName": "key2"})
    done = st.storage_accounts.update("rg-st", "stblob01", policy)
    assert done.sas_policy.expiration_action == "Log" and done.key_creation_time.key2 is not None
    assert all(k["value"] not in str(sb.store.get(ACCOUNT)) for k in keys["keys"])  # the secret is not kept
    # a new account has its keys from the start
    made = st.storage_accounts.begin_create("rg-st", "stnew01", {"location": "westeurope", "kind": "StorageV2",
                                                                 "sku": {"name": "Standard_LRS"}}).result()
    assert made.key_creation_time.key1 is not None
    st.storage_accounts.update("rg-st", "stnew01", policy)


def test_at_most_five_diagnostic_settings_per_resource(sandbox, arm_client):
    sb = sandbox()
    mon = arm_client(MonitorManagementClient, sb, SUB)
    target = f"{ACCOUNT}/blobServices/default"
    body = {"properties": {"workspaceId": "/subscriptions/x/resourceGroups/y/providers/"
                                          "Microsoft.OperationalInsights/workspaces/law",
                           "logs": [{"category": "StorageRead", "enabled": True}]}}
    for i in range(5):
        mon.diagnostic_settings.create_or_update(target, f"diag-{i}", body)
    msg = _refused(lambda: mon.diagnostic_settings.create_or_update(target, "diag-5", body), 400, "BadRequest")
    assert "limit of 5" in msg
    mon.diagnostic_settings.create_or_update(target, "diag-4", body)  # changing one of the five is fine
    mon.diagnostic_settings.create_or_update(f"{ACCOUNT}/fileServices/default", "diag-5", body)  # another resource


@pytest.mark.parametrize("make, bad, good", [
    ("nsg", "nsg with space", "nsg-web_01"),
    ("nsg", "-starts-with-dash", "ends.with_"),
    ("nsg", "x" * 81, "x" * 80),
    ("storage", "StBlobUpper", "stblobokay"),
    ("storage", "st", "st1"),
    ("group", "rg-ends-with.", "rg-(ok)"),
])
def test_names_follow_the_rules_of_their_type(sandbox, arm_client, make, bad, good):
    sb = sandbox()
    net = arm_client(NetworkManagementClient, sb, SUB)
    st = arm_client(StorageManagementClient, sb, SUB)
    res = arm_client(ResourceManagementClient, sb, SUB)
    create = {
        "nsg": lambda n: net.network_security_groups.begin_create_or_update("rg-net", n, {"location": "westeurope"})
        .result(),
        "storage": lambda n: st.storage_accounts.begin_create("rg-st", n, {"location": "westeurope", "kind": "StorageV2",
                                                                           "sku": {"name": "Standard_LRS"}}).result(),
        "group": lambda n: res.resource_groups.create_or_update(n, {"location": "westeurope"}),
    }[make]
    code = "InvalidResourceGroupName" if make == "group" else "InvalidResourceName"
    _refused(lambda: create(bad), 400, code)
    assert create(good).name == good


def test_a_reference_to_a_missing_resource_is_refused(sandbox, arm_client):
    sb = sandbox()
    net = arm_client(NetworkManagementClient, sb, SUB)
    ghost = f"{NET}/networkSecurityGroups/nsg-ghost"
    subnet = {"properties": {"addressPrefix": "10.1.2.0/24", "networkSecurityGroup": {"id": ghost}}}
    msg = _refused(lambda: net.subnets.begin_create_or_update("rg-net", "vnet-spoke", "data", subnet).result(),
                   400, "InvalidResourceReference")
    assert ghost in msg
    assert "networkSecurityGroup" not in sb.store.get(f"{NET}/virtualNetworks/vnet-spoke/subnets/data")["properties"]
    rt = {"properties": {"addressPrefix": "10.1.2.0/24", "routeTable": {"id": f"{NET}/routeTables/rt-ghost"}}}
    _refused(lambda: net.subnets.begin_create_or_update("rg-net", "vnet-spoke", "data", rt).result(),
             400, "InvalidResourceReference")
    plan = {"location": "westeurope", "properties": {"addressSpace": {"addressPrefixes": ["10.1.0.0/16"]},
                                                     "enableDdosProtection": True,
                                                     "ddosProtectionPlan": {"id": f"{NET}/ddosProtectionPlans/ghost"}}}
    _refused(lambda: net.virtual_networks.begin_create_or_update("rg-net", "vnet-x", plan).result(),
             400, "InvalidResourceReference")
    subnet["properties"]["networkSecurityGroup"] = {"id": f"{NET}/networkSecurityGroups/nsg-app"}
    done = net.subnets.begin_create_or_update("rg-net", "vnet-spoke", "data", subnet).result()
    assert done.network_security_group.id.lower().endswith("nsg-app")
