"""Resource Graph is an index, not the source of truth (notes §6): it indexes only what ARG
indexes, lags writes, and refuses what it does not understand; ARM's list calls refuse a
`$filter` they do not support. Through the real ResourceGraph, Network, Security and
Resource clients."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient
from azure.mgmt.resourcegraph import ResourceGraphClient
from azure.mgmt.resourcegraph.models import QueryRequest
from azure.mgmt.security import SecurityCenter

from ztwizard.cli import build_parser

SUB = "00000000-0000-0000-0000-0000000000a1"  # the small estate's (conftest)
JIT = (f"/subscriptions/{SUB}/resourceGroups/rg-vm/providers/Microsoft.Security/locations/westeurope/"
       "jitNetworkAccessPolicies/default")
NSG_QUERY = "resources | where type =~ 'microsoft.network/networksecuritygroups' | order by id asc"


def _rows(graph: ResourceGraphClient, query: str) -> list[dict]:
    return list(graph.resources(QueryRequest(subscriptions=[SUB], query=query)).data)


def test_jit_policies_are_not_in_resource_graph_but_in_their_list(sandbox, arm_client, small_estate):
    sb = sandbox(estate=[*small_estate, {"id": JIT, "kind": "Basic", "location": "westeurope",
                                         "properties": {"virtualMachines": []}}])
    graph = arm_client(ResourceGraphClient, sb)
    assert [r["type"] for r in _rows(graph, "securityresources | order by id asc")] == ["microsoft.security/pricings"]
    sec = arm_client(SecurityCenter, sb, SUB)
    assert [p.name for p in sec.jit_network_access_policies.list()] == ["default"]


def test_resource_groups_are_in_resourcecontainers_under_graphs_own_type_name(sandbox, arm_client):
    sb = sandbox()
    graph = arm_client(ResourceGraphClient, sb)
    listed = arm_client(ResourceManagementClient, sb, SUB).resource_groups.list()
    rows = _rows(graph, "resourcecontainers | where type in~ ('microsoft.resources/subscriptions/resourcegroups') "
                        "| order by id asc")
    assert [r["id"] for r in rows] == sorted((g.id for g in listed), key=str.lower)
    assert {r["type"] for r in rows} == {"microsoft.resources/subscriptions/resourcegroups"}
    assert all(r["resourceGroup"] == r["name"].lower() for r in rows)
    # ARM's type name is not Graph's: nothing answers to it, in either table
    for table in ("resourcecontainers", "resources"):
        assert _rows(graph, f"{table} | where type =~ 'microsoft.resources/resourcegroups'") == []
    assert not [r for r in _rows(graph, "resources") if "resourcegroups" in r["type"]]


def test_a_write_shows_in_resource_graph_only_after_the_lag(sandbox, arm_client):
    now = [0.0]  # the sandbox's clock, moved by hand: a slow machine cannot outrun the lag
    sb = sandbox(graph_lag_ms=300, clock=lambda: now[0])
    graph = arm_client(ResourceGraphClient, sb)
    net = arm_client(NetworkManagementClient, sb, SUB)
    net.network_security_groups.begin_create_or_update("rg-net", "nsg-new", {"location": "westeurope"}).result()
    net.network_security_groups.update_tags("rg-net", "nsg-app", {"tags": {"owner": "ops"}})
    assert net.network_security_groups.get("rg-net", "nsg-new").name == "nsg-new"  # ARM has it at once
    rows = _rows(graph, NSG_QUERY)
    assert [r["name"] for r in rows] == ["nsg-app"]  # the index has not caught up
    assert rows[0]["tags"] == {}  # nor with the tag
    now[0] += 0.299
    assert [r["name"] for r in _rows(graph, NSG_QUERY)] == ["nsg-app"]  # not yet
    now[0] += 0.002
    rows = _rows(graph, NSG_QUERY)
    assert [r["name"] for r in rows] == ["nsg-app", "nsg-new"]
    assert rows[0]["tags"] == {"owner": "ops"}
    net.network_security_groups.begin_delete("rg-net", "nsg-new").result()
    assert [r["name"] for r in _rows(graph, NSG_QUERY)] == ["nsg-app", "nsg-new"]  # still listed
    now[0] += 0.301
    assert [r["name"] for r in _rows(graph, NSG_QUERY)] == ["nsg-app"]


def test_without_a_lag_resource_graph_follows_every_write(sandbox, arm_client):
    sb = sandbox()  # the constructor's default: no lag
    graph = arm_client(ResourceGraphClient, sb)
    net = arm_client(NetworkManagementClient, sb, SUB)
    net.network_security_groups.begin_create_or_update("rg-net", "nsg-new", {"location": "westeurope"}).result()
    assert [r["name"] for r in _rows(graph, NSG_QUERY)] == ["nsg-app", "nsg-new"]


def test_serve_lags_resource_graph_by_default():
    args = build_parser().parse_args(["sandbox", "serve"])
    assert args.graph_lag_ms == 300
    assert build_parser().parse_args(["sandbox", "serve", "--graph-lag-ms", "0"]).graph_lag_ms == 0


@pytest.mark.parametrize("query", ["resources | project id, name", "resources | take 5",
                                   "resources | where properties.provisioningState =~ 'Succeeded'"])
def test_unknown_query_shapes_are_refused(sandbox, arm_client, query):
    graph = arm_client(ResourceGraphClient, sandbox())
    with pytest.raises(HttpResponseError) as err:
        _rows(graph, query)
    assert err.value.status_code == 400 and err.value.error.code == "InvalidQuery"


def test_list_calls_refuse_a_filter_they_do_not_support(sandbox, arm_client):
    sb = sandbox()
    res = arm_client(ResourceManagementClient, sb, SUB)
    nsgs = list(res.resources.list(filter="resourceType eq 'Microsoft.Network/networkSecurityGroups'"))
    assert [r.name for r in nsgs] == ["nsg-app"]
    with pytest.raises(HttpResponseError) as err:
        list(res.resources.list(filter="name eq 'nsg-app'"))
    assert err.value.status_code == 400 and err.value.error.code == "InvalidFilterInQueryString"
    auth = arm_client(AuthorizationManagementClient, sb, SUB)
    scope = f"/subscriptions/{SUB}"
    assert len(list(auth.role_assignments.list_for_scope(scope, filter="atScope()"))) == 1
    mine = list(auth.role_assignments.list_for_scope(
        scope, filter="principalId eq '22222222-2222-2222-2222-222222222222'"))
    assert len(mine) == 1
    assert list(auth.role_assignments.list_for_scope(scope, filter="principalId eq 'someone-else'")) == []
    with pytest.raises(HttpResponseError) as err:
        list(auth.role_assignments.list_for_scope(scope, filter="roleDefinitionName eq 'Owner'"))
    assert err.value.status_code == 400
    assert list(auth.role_definitions.list(scope, filter="type eq 'CustomRole'")) == []
    net = arm_client(NetworkManagementClient, sb, SUB)
    with pytest.raises(HttpResponseError) as err:
        list(net.network_security_groups.list("rg-net", params={"$filter": "name eq 'x'"}))
    assert err.value.status_code == 400
