"""Smaller ARM shapes the catalog relies on: extension resources, inline child sets, caches."""

from __future__ import annotations

import json
import time

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.monitor import MonitorManagementClient
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient
from azure.mgmt.resourcegraph import ResourceGraphClient
from azure.mgmt.resourcegraph.models import QueryRequest
from azure.mgmt.security import SecurityCenter

from ztwizard.sandbox.schema import supported_api_versions

SUB = "00000000-0000-0000-0000-0000000000a1"
RG_NET = f"/subscriptions/{SUB}/resourceGroups/rg-net"
ACCOUNT = f"/subscriptions/{SUB}/resourceGroups/rg-st/providers/Microsoft.Storage/storageAccounts/stblob01"
HOST = "https://management.azure.com"


def raw(sb, method, path, body=None, token=None):
    version = (supported_api_versions(method, path) or ("2024-01-01",))[0]
    status, headers, data = sb.handle(method, f"{HOST}{path}?api-version={version}",
                                      {"Authorization": f"Bearer {token or sb.token}"},
                                      json.dumps(body).encode() if body is not None else b"")
    return status, headers, (json.loads(data) if data else None)


def test_diagnostic_settings_on_a_resource_and_unpaged_list(sandbox, arm_client):
    sb = sandbox(page_size=1)
    mon = arm_client(MonitorManagementClient, sb, SUB)
    for name in ("to-law", "to-archive"):
        made = mon.diagnostic_settings.create_or_update(f"{ACCOUNT}/blobServices/default", name, {
            "properties": {"workspaceId": "/subscriptions/x/resourceGroups/y/providers/"
                                          "Microsoft.OperationalInsights/workspaces/law",
                           "logs": [{"category": "StorageRead", "enabled": True}]}})
        assert made.name == name
    listed = mon.diagnostic_settings.list(f"{ACCOUNT}/blobServices/default")
    items = list(listed.value if hasattr(listed, "value") else listed)
    assert sorted(d.name for d in items) == ["to-archive", "to-law"]  # one page despite page_size=1
    with pytest.raises(ResourceNotFoundError):
        mon.diagnostic_settings.get(f"{ACCOUNT}/fileServices/default", "to-law")


def test_defender_for_storage_setting_is_an_extension_resource(sandbox, arm_client):
    sb = sandbox()
    status, _, body = raw(sb, "PUT", f"{ACCOUNT}/providers/Microsoft.Security/defenderForStorageSettings/current",
                          {"properties": {"isEnabled": True}})
    assert status == 200 and body["type"] == "Microsoft.Security/defenderForStorageSettings"
    assert raw(sb, "GET", f"{ACCOUNT}/providers/Microsoft.Security/defenderForStorageSettings/current")[2][
        "properties"] == {"isEnabled": True}
    missing = ACCOUNT.replace("stblob01", "ghost")
    status, _, body = raw(sb, "PUT", f"{missing}/providers/Microsoft.Security/defenderForStorageSettings/current",
                          {"properties": {"isEnabled": True}})
    assert status == 404 and body["error"]["code"] == "ResourceNotFound"
    sec = arm_client(SecurityCenter, sb, SUB)
    setting = sec.settings.update("WDATP", {"kind": "DataExportSettings", "properties": {"enabled": True}})
    assert setting.name == "WDATP"


def test_vnet_put_with_inline_subnets_replaces_the_set_and_keeps_references(sandbox, arm_client):
    sb = sandbox()
    net = arm_client(NetworkManagementClient, sb, SUB)
    vnet = net.virtual_networks.get("rg-net", "vnet-spoke")
    body = vnet.as_dict()
    body["properties"]["subnets"] = [s for s in body["properties"]["subnets"] if s["name"] == "app"]
    result = net.virtual_networks.begin_create_or_update("rg-net", "vnet-spoke", body).result()
    assert [s.name for s in result.subnets] == ["app"]
    assert result.subnets[0].network_security_group.id.endswith("/nsg-app")
    with pytest.raises(ResourceNotFoundError):
        net.subnets.get("rg-net", "vnet-spoke", "data")
    nsg = net.network_security_groups.get("rg-net", "nsg-app")
    assert [s.id.rsplit("/", 1)[1] for s in nsg.subnets] == ["app"]
    assert "defaultSecurityRules" not in json.dumps(sb.export())  # composed on read, never stored


def test_firewall_policy_lists_its_rule_collection_groups_by_reference(sandbox):
    pol = f"{RG_NET}/providers/Microsoft.Network/firewallPolicies/fwp"
    sb = sandbox(estate=[{"id": pol, "location": "westeurope", "properties": {"sku": {"tier": "Standard"}}},
                         {"id": f"{pol}/ruleCollectionGroups/net", "properties": {"priority": 200}}])
    body = raw(sb, "GET", pol)[2]
    assert body["properties"]["ruleCollectionGroups"] == [{"id": f"{pol}/ruleCollectionGroups/net"}]


def test_generic_resource_list_with_type_filter(sandbox, arm_client):
    sb = sandbox(page_size=2)
    res = arm_client(ResourceManagementClient, sb, SUB)
    names = [r.name for r in res.resources.list(filter="resourceType eq 'Microsoft.Network/networkSecurityGroups'")]
    assert names == ["nsg-app"]
    everything = [r.type for r in res.resources.list()]
    assert "Microsoft.Network/virtualNetworks/subnets" not in everything and len(everything) == 8


def test_graph_sees_writes_made_between_queries(sandbox, arm_client):
    sb = sandbox()
    graph = arm_client(ResourceGraphClient, sb)
    q = "resources | where type in~ ('microsoft.network/networksecuritygroups') | order by id asc"
    assert len(graph.resources(QueryRequest(subscriptions=[SUB], query=q)).data) == 1
    net = arm_client(NetworkManagementClient, sb, SUB)
    net.network_security_groups.begin_create_or_update("rg-net", "nsg-2", {"location": "westeurope"}).result()
    rows = graph.resources(QueryRequest(subscriptions=[SUB], query=q)).data
    assert [r["name"] for r in rows] == ["nsg-2", "nsg-app"]
    assert rows[0]["properties"]["provisioningState"] == "Succeeded"


def test_reader_can_query_and_gets_delete_named_in_403(sandbox, arm_client):
    sb = sandbox()
    graph = arm_client(ResourceGraphClient, sb, reader=True)
    assert graph.resources(QueryRequest(subscriptions=[SUB], query="resources")).total_records > 0
    net = arm_client(NetworkManagementClient, sb, SUB, reader=True)
    with pytest.raises(HttpResponseError) as err:
        net.route_tables.begin_delete("rg-net", "rt-app").result()
    assert "'Microsoft.Network/routeTables/delete'" in err.value.error.message


def test_write_quota_header_and_latency(sandbox):
    sb = sandbox(writes_per_hour=5, latency_ms=30)
    started = time.perf_counter()
    status, headers, _ = raw(sb, "PATCH", f"{RG_NET}/providers/Microsoft.Network/routeTables/rt-app",
                             {"tags": {"a": "b"}})
    assert time.perf_counter() - started >= 0.03
    assert status == 200 and headers["x-ms-ratelimit-remaining-subscription-writes"] == "4"


def test_storage_accounts_have_default_services(sandbox, arm_client):
    from azure.mgmt.storage import StorageManagementClient

    sb = sandbox()
    st = arm_client(StorageManagementClient, sb, SUB)
    assert [s.name for s in st.blob_services.list("rg-st", "stblob01")] == ["default"]
    props = st.blob_services.get_service_properties("rg-st", "stblob01")
    assert props.delete_retention_policy.enabled is False
    props.delete_retention_policy = {"enabled": True, "days": 14}
    st.blob_services.set_service_properties("rg-st", "stblob01", props)
    assert st.blob_services.get_service_properties("rg-st", "stblob01").delete_retention_policy.days == 14
    share = st.file_services.get_service_properties("rg-st", "stblob01")
    assert share.share_delete_retention_policy.days == 7


def test_location_scoped_resources_need_no_location_resource(sandbox):
    sb = sandbox()
    jit = (f"/subscriptions/{SUB}/resourceGroups/rg-vm/providers/Microsoft.Security/locations/westeurope/"
           "jitNetworkAccessPolicies/default")
    status, _, body = raw(sb, "PUT", jit, {"kind": "Basic", "properties": {"virtualMachines": []}})
    assert status == 200 and body["id"] == jit
    listed = raw(sb, "GET", jit.rsplit("/", 1)[0])[2]
    assert [x["name"] for x in listed["value"]] == ["default"]
    watcher_log = f"{RG_NET}/providers/Microsoft.Network/networkWatchers/NetworkWatcher_westeurope/flowLogs/fl"
    status, _, body = raw(sb, "PUT", watcher_log, {"location": "westeurope", "properties": {}})
    assert status == 404 and body["error"]["code"] == "ParentResourceNotFound"


def test_check_existence_by_id(sandbox, arm_client):
    sb = sandbox()
    res = arm_client(ResourceManagementClient, sb, SUB)
    nsg = f"{RG_NET}/providers/Microsoft.Network/networkSecurityGroups/nsg-app"
    assert res.resources.check_existence_by_id(nsg, api_version="2026-03-01") is True
    assert res.resources.check_existence_by_id(nsg + "x", api_version="2026-03-01") is False
    got = res.resources.get_by_id(nsg, api_version="2026-03-01")
    assert got.properties["securityRules"][0]["name"] == "allow-ssh"
