"""ARM protocol fidelity: auth, errors, LROs, paging, throttling, faults, Resource Graph."""

from __future__ import annotations

import json

import pytest
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
)
from azure.mgmt.core.polling.arm_polling import ARMPolling
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.resourcegraph import ResourceGraphClient
from azure.mgmt.resourcegraph.models import QueryRequest, QueryRequestOptions
from azure.mgmt.storage import StorageManagementClient

from ztwizard.sandbox.schema import supported_api_versions

SUB = "00000000-0000-0000-0000-0000000000a1"
SUB2 = "00000000-0000-0000-0000-0000000000b2"
HOST = "https://management.azure.com"
NSG = f"/subscriptions/{SUB}/resourceGroups/rg-net/providers/Microsoft.Network/networkSecurityGroups/nsg-app"


def call(sb, method, path, body=None, token=None, headers=None, api="supported"):
    """A raw request to the core, for what the SDK cannot send (no token, bad JSON, no api-version)."""
    if api == "supported":  # the version the sandbox answers for this type
        api = (supported_api_versions(method, path) or ("2024-01-01",))[0]
    url = HOST + path + (f"?api-version={api}" if api else "")
    hdrs = {"Authorization": f"Bearer {sb.token if token is None else token}"} if token != "" else {}
    hdrs.update(headers or {})
    raw = body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None else b"")
    status, out_headers, data = sb.handle(method, url, hdrs, raw)
    return status, out_headers, (json.loads(data) if data else None)


def test_401_without_a_valid_token(sandbox, arm_client):
    sb = sandbox()
    status, headers, body = call(sb, "GET", NSG, token="")
    assert status == 401 and body["error"]["code"] == "AuthenticationFailed"
    assert headers["WWW-Authenticate"].startswith("Bearer ")
    net = NetworkManagementClient(type(arm_client(NetworkManagementClient, sb, SUB)._config.credential)("wrong"),
                                  SUB, transport=sb.transport())
    with pytest.raises(ClientAuthenticationError):
        net.network_security_groups.get("rg-net", "nsg-app")
    assert sb.token not in repr(sb) and all(sb.token not in p for _, p, _ in sb.request_log)


def test_reader_gets_403_on_writes_with_arms_message(sandbox, arm_client):
    sb = sandbox()
    st = arm_client(StorageManagementClient, sb, SUB, reader=True)
    assert st.storage_accounts.get_properties("rg-st", "stblob01").name == "stblob01"
    with pytest.raises(HttpResponseError) as err:
        st.storage_accounts.update("rg-st", "stblob01", {"properties": {"minimumTlsVersion": "TLS1_2"}})
    assert err.value.status_code == 403 and err.value.error.code == "AuthorizationFailed"
    msg = err.value.error.message
    assert "does not have authorization to perform action 'Microsoft.Storage/storageAccounts/write'" in msg
    assert "over scope '/subscriptions/" in msg and "please refresh your credentials" in msg
    assert sb.store.get(f"/subscriptions/{SUB}/resourceGroups/rg-st/providers/Microsoft.Storage/storageAccounts/"
                        "stblob01")["properties"]["minimumTlsVersion"] == "TLS1_0"


def test_read_only_sandbox_refuses_every_write(sandbox, arm_client):
    sb = sandbox(read_only=True)
    net = arm_client(NetworkManagementClient, sb, SUB)
    with pytest.raises(HttpResponseError) as err:
        net.network_security_groups.update_tags("rg-net", "nsg-app", {"tags": {"a": "b"}})
    assert err.value.status_code == 403


def test_bad_requests_get_arms_codes(sandbox):
    sb = sandbox()
    assert call(sb, "GET", NSG, api=None)[2]["error"]["code"] == "MissingApiVersionParameter"
    status, _, body = call(sb, "PUT", NSG, body=b"{not json")
    assert status == 400 and body["error"]["code"] == "InvalidRequestContent"
    status, _, body = call(sb, "GET", "/subscriptions/nope/resourceGroups/x")
    assert status == 404 and body["error"]["code"] == "SubscriptionNotFound"
    status, _, body = call(sb, "GET", f"/subscriptions/{SUB}/resourceGroups/nope/providers/Microsoft.Network/"
                                      "networkSecurityGroups/x")
    assert status == 404 and body["error"]["code"] == "ResourceGroupNotFound"
    status, _, body = call(sb, "PUT", f"/subscriptions/{SUB}/resourceGroups/rg-net/providers/Microsoft.Network/"
                                      "virtualNetworks/ghost/subnets/s1", body={"properties": {}})
    assert status == 404 and body["error"]["code"] == "ParentResourceNotFound"
    status, _, body = call(sb, "PUT", NSG, body={"location": "westeurope"}, headers={"If-Match": 'W/"stale"'})
    assert status == 412 and body["error"]["code"] == "PreconditionFailed"
    status, _, body = call(sb, "DELETE", NSG)
    assert status == 400 and body["error"]["code"] == "InUseNetworkSecurityGroupCannotBeDeleted"


def test_write_during_a_running_operation_is_409(sandbox, arm_client):
    sb = sandbox(lro_polls=3, lro_seconds=60)
    net = arm_client(NetworkManagementClient, sb, SUB)
    new = NSG.replace("nsg-app", "nsg-new")
    status, headers, body = call(sb, "PUT", new, body={"location": "westeurope"})  # nobody polls yet
    assert status == 201 and body["properties"]["provisioningState"] == "Creating"
    monitor = headers["Azure-AsyncOperation"]
    assert monitor.startswith(HOST + "/") and headers["Retry-After"] == "0"
    assert net.network_security_groups.get("rg-net", "nsg-new").provisioning_state == "Creating"
    with pytest.raises(ResourceExistsError) as err:
        net.network_security_groups.begin_create_or_update("rg-net", "nsg-new", {"location": "northeurope"})
    assert err.value.status_code == 409 and err.value.error.code == "AnotherOperationInProgress"
    auth = {"Authorization": f"Bearer {sb.token}"}
    answers = [json.loads(sb.handle("GET", monitor, auth, b"")[2])["status"] for _ in range(4)]
    assert answers == ["InProgress", "InProgress", "InProgress", "Succeeded"]
    got = net.network_security_groups.get("rg-net", "nsg-new")
    assert got.location == "westeurope" and got.provisioning_state == "Succeeded"


def test_a_network_delete_answers_202_with_both_monitors_as_documented(sandbox, arm_client):
    # NetworkSecurityGroupDelete.json: 202 with Azure-AsyncOperation and Location; the status
    # monitor reports the operation, the Location one (final-state-via: location) ends in 204
    sb = sandbox(lro_polls=2, lro_seconds=60)
    auth = {"Authorization": f"Bearer {sb.token}"}
    status, headers, body = call(sb, "DELETE", f"{NSG}/securityRules/allow-ssh")
    assert status == 202 and body is None and headers["Retry-After"] == "0"
    status_url, result_url = headers["Azure-AsyncOperation"], headers["Location"]
    assert status_url != result_url and all(u.startswith(HOST + "/") for u in (status_url, result_url))
    pending = sb.handle("GET", result_url, auth, b"")
    assert pending[0] == 202 and pending[1]["Location"] and "Retry-After" in pending[1]
    answers = [json.loads(sb.handle("GET", status_url, auth, b"")[2])["status"] for _ in range(2)]
    assert answers == ["InProgress", "Succeeded"]
    assert sb.handle("GET", result_url, auth, b"")[:1] == (204,)
    assert call(sb, "GET", f"{NSG}/securityRules/allow-ssh")[0] == 404


@pytest.mark.parametrize("final_state_via", [None, "location", "azure-async-operation"])
def test_a_network_delete_ends_through_the_sdk_poller(sandbox, arm_client, final_state_via):
    sb = sandbox(lro_polls=2, lro_seconds=60)
    net = arm_client(NetworkManagementClient, sb, SUB)
    polling = ARMPolling(0, lro_options={"final-state-via": final_state_via}) if final_state_via else True
    poller = net.route_tables.begin_delete("rg-net", "rt-app", polling=polling)
    assert poller.result() is None and poller.status() == "Succeeded"
    with pytest.raises(ResourceNotFoundError):
        net.route_tables.get("rg-net", "rt-app")
    results = [s for m, p, s in sb.request_log if "/sandbox/operationresults/" in p.lower()]
    assert results == ([204] if final_state_via == "location" else [])  # the final GET only where asked
    statuses = [s for m, p, s in sb.request_log if "/sandbox/operations/" in p.lower()]
    assert statuses and set(statuses) == {200}


def test_operation_settles_without_polls_after_lro_seconds(sandbox, arm_client):
    sb = sandbox(lro_polls=5, lro_seconds=0.0)
    net = arm_client(NetworkManagementClient, sb, SUB)
    assert call(sb, "PUT", NSG.replace("nsg-app", "nsg-new"), body={"location": "westeurope"})[0] == 201
    assert net.network_security_groups.get("rg-net", "nsg-new").provisioning_state == "Succeeded"


def test_lro_failure_leaves_the_resource_as_it_was(sandbox, arm_client):
    sb = sandbox(faults="lro-fail:1.0")
    net = arm_client(NetworkManagementClient, sb, SUB)
    before = net.network_security_groups.get("rg-net", "nsg-app")
    poller = net.network_security_groups.begin_create_or_update(
        "rg-net", "nsg-app", {"location": "westeurope", "tags": {"new": "1"}})
    with pytest.raises(HttpResponseError) as err:
        poller.result()
    assert err.value.error.code == "InternalOperationError" and poller.status() == "Failed"
    after = net.network_security_groups.get("rg-net", "nsg-app")
    assert after.tags == before.tags and after.etag == before.etag
    assert [r.name for r in after.security_rules] == ["allow-ssh"]
    created = net.route_tables.begin_create_or_update("rg-net", "rt-new", {"location": "westeurope"})
    with pytest.raises(HttpResponseError):
        created.result()
    with pytest.raises(ResourceNotFoundError):
        net.route_tables.get("rg-net", "rt-new")
    st = arm_client(StorageManagementClient, sb, SUB)  # Location-style monitor: the poll itself fails
    with pytest.raises(HttpResponseError) as err:
        st.storage_accounts.begin_create("rg-st", "stnew", {"location": "westeurope", "kind": "StorageV2",
                                                            "sku": {"name": "Standard_LRS"}}).result()
    assert err.value.error.code == "InternalOperationError"
    assert sb.store.get(f"/subscriptions/{SUB}/resourceGroups/rg-st/providers/Microsoft.Storage/"
                        "storageAccounts/stnew") is None


def test_hung_operation_stays_in_progress(sandbox, arm_client):
    sb = sandbox(faults="lro-hang:1.0", lro_seconds=0.0)
    net = arm_client(NetworkManagementClient, sb, SUB)
    poller = net.network_security_groups.begin_create_or_update("rg-net", "nsg-app", {"location": "westeurope"})
    poller.wait(timeout=0.3)
    assert not poller.done() and poller.status().lower() == "inprogress"
    assert sum(1 for _, p, _ in sb.request_log if "/sandbox/operations/" in p) > 3
    assert net.network_security_groups.get("rg-net", "nsg-app").provisioning_state == "Updating"


def test_list_paging_across_pages(sandbox, arm_client):
    sb = sandbox(page_size=2)
    net = arm_client(NetworkManagementClient, sb, SUB)
    for i in range(5):
        net.network_security_groups.begin_create_or_update("rg-net", f"nsg-{i}", {"location": "westeurope"}).result()
    pages = list(net.network_security_groups.list_all().by_page())
    names = [n.name for page in pages for n in page]
    assert names == sorted(["nsg-app", *[f"nsg-{i}" for i in range(5)]], key=str.lower)
    assert len(pages) == 3
    # a continuation token (the nextLink) resumes the listing
    pager = net.network_security_groups.list("rg-net").by_page()
    next(pager)
    token = pager.continuation_token
    rest = [n.name for page in net.network_security_groups.list("rg-net").by_page(continuation_token=token)
            for n in page]
    assert rest == ["nsg-2", "nsg-3", "nsg-4", "nsg-app"]


def test_throttling_429_with_retry_after_honoured(sandbox, arm_client):
    sb = sandbox(reads_per_hour=2, throttle_window=3600.0)
    transport = sb.transport()
    net = arm_client(NetworkManagementClient, sb, SUB, transport=transport, retry_total=1)
    net.network_security_groups.get("rg-net", "nsg-app")
    net.network_security_groups.get("rg-net", "nsg-app")
    with pytest.raises(HttpResponseError) as err:
        net.network_security_groups.get("rg-net", "nsg-app")
    assert err.value.status_code == 429 and err.value.error.code == "TooManyRequests"
    assert transport.sleeps == [1800.0]  # one token refills in 3600/2 s: Retry-After said so
    status, headers, _ = call(sb, "GET", NSG)
    assert status == 429 and headers["Retry-After"] == "1800"


def test_remaining_reads_header(sandbox):
    sb = sandbox(reads_per_hour=10)
    _, headers, _ = call(sb, "GET", NSG)
    assert headers["x-ms-ratelimit-remaining-subscription-reads"] == "9"


def test_injected_429_is_retried_after_retry_after(sandbox, arm_client):
    sb = sandbox(faults="429:0.5", seed=7)
    transport = sb.transport()
    net = arm_client(NetworkManagementClient, sb, SUB, transport=transport, retry_status=20, retry_total=20)
    for _ in range(10):
        assert net.network_security_groups.get("rg-net", "nsg-app").name == "nsg-app"
    throttled = [s for _, _, s in sb.request_log].count(429)
    assert throttled > 0 and transport.sleeps == [1.0] * throttled


def test_faults_are_deterministic_for_a_seed(sandbox):
    def statuses(seed):
        sb = sandbox(faults="429:0.2,500:0.1,503:0.1,reset:0.1", seed=seed)
        out = []
        for _ in range(40):
            try:
                out.append(call(sb, "GET", NSG)[0])
            except ConnectionError:
                out.append("reset")
        return out

    a, b, c = statuses(3), statuses(3), statuses(4)
    assert a == b and a != c
    assert {429, 500, 503, "reset", 200} <= set(a)


def test_connection_reset_surfaces_as_service_request_error(sandbox, arm_client):
    sb = sandbox(faults="reset:1.0")
    net = arm_client(NetworkManagementClient, sb, SUB, retry_total=0)
    with pytest.raises(ServiceRequestError):
        net.network_security_groups.get("rg-net", "nsg-app")


def test_faulted_writes_never_half_apply(sandbox):
    sb = sandbox(faults="500:0.3,503:0.2,reset:0.2,reset-after:0.1", seed=11)
    applied = 0
    for i in range(60):
        try:
            status = call(sb, "PATCH", NSG, body={"tags": {"n": str(i)}})[0]
        except ConnectionError:
            status = "reset"
        tags = sb.store.get(NSG).get("tags")
        if status == 200 or tags == {"n": str(i)}:
            applied += 1
            assert tags == {"n": str(i)}
        else:
            assert tags != {"n": str(i)}
    assert 0 < applied < 60
    log = [s for m, _, s in sb.request_log]
    assert 0 in log  # resets were logged with no status


def test_resource_graph_paging_and_filters(sandbox, arm_client):
    sb = sandbox()
    graph = arm_client(ResourceGraphClient, sb)
    q = ("Resources | where type in~ ('microsoft.network/networksecuritygroups', "
         "'Microsoft.Network/virtualNetworks', 'microsoft.network/routetables') | order by id asc")
    req = QueryRequest(subscriptions=[SUB, SUB2], query=q, options=QueryRequestOptions(top=2))
    rows, posts = [], 0
    while True:
        resp = graph.resources(req)
        posts += 1
        assert resp.total_records == 4 and resp.result_truncated == "false"
        rows.extend(resp.data)
        if not resp.skip_token:
            break
        req.options.skip_token = resp.skip_token
    assert posts == 2
    assert [r["name"] for r in rows] == ["nsg-app", "rt-app", "vnet-spoke", "vnet-hub"]
    assert rows[0]["type"] == "microsoft.network/networksecuritygroups"
    assert rows[0]["resourceGroup"] == "rg-net" and rows[0]["subscriptionId"] == SUB
    vnet = rows[2]
    assert sorted(s["name"] for s in vnet["properties"]["subnets"]) == ["app", "data"]
    one = graph.resources(QueryRequest(subscriptions=[SUB2], query=q)).data
    assert [r["name"] for r in one] == ["vnet-hub"]
    rg = graph.resources(QueryRequest(subscriptions=[SUB], query=q.replace(
        "| order", "| where resourceGroup in~ ('RG-NET') | where subscriptionId in~ ('" + SUB + "') | order"))).data
    assert len(rg) == 3


def test_resource_graph_tables_and_unindexed_children(sandbox, arm_client):
    sb = sandbox()
    graph = arm_client(ResourceGraphClient, sb)
    sec = graph.resources(QueryRequest(subscriptions=[SUB], query="securityresources | order by id asc")).data
    assert [r["type"] for r in sec] == ["microsoft.security/pricings"]
    auth = graph.resources(QueryRequest(subscriptions=[SUB], query="AuthorizationResources")).data
    assert [r["type"] for r in auth] == ["microsoft.authorization/roleassignments"]
    everything = graph.resources(QueryRequest(subscriptions=[SUB], query="resources | order by id asc")).data
    types = {r["type"] for r in everything}
    assert "microsoft.compute/virtualmachines/extensions" in types
    assert not types & {"microsoft.network/virtualnetworks/subnets",
                        "microsoft.network/networksecuritygroups/securityrules",
                        "microsoft.security/pricings", "microsoft.resources/resourcegroups"}
    vm = next(r for r in everything if r["type"] == "microsoft.compute/virtualmachines")
    assert "resources" not in vm or not vm["resources"]


def test_resource_graph_rejects_unknown_queries(sandbox, arm_client):
    sb = sandbox()
    graph = arm_client(ResourceGraphClient, sb)
    for query in ("Resources | summarize count() by type", "Events | order by id asc",
                  "Resources | where location =~ 'westeurope'"):
        with pytest.raises(HttpResponseError) as err:
            graph.resources(QueryRequest(subscriptions=[SUB], query=query))
        assert err.value.status_code == 400 and err.value.error.code == "InvalidQuery"
        assert "not supported" in err.value.error.message


def test_throttling_is_per_subscription_and_per_principal(sandbox):
    sb = sandbox(reads_per_hour=3)
    other = f"/subscriptions/{SUB2}/resourceGroups/rg-hub/providers/Microsoft.Network/virtualNetworks/vnet-hub"
    assert [call(sb, "GET", NSG)[0] for _ in range(3)] == [200, 200, 200]
    assert call(sb, "GET", NSG)[0] == 429
    assert call(sb, "GET", NSG, token=sb.reader_token)[0] == 429  # the subscription's bucket is shared
    assert [call(sb, "GET", other)[0] for _ in range(4)] == [200, 200, 200, 429]  # another subscription
    assert call(sb, "PATCH", NSG, body={"tags": {}})[0] == 200  # writes have their own bucket


def _all_rows(graph, subs, query, top):
    req = QueryRequest(subscriptions=subs, query=query, options=QueryRequestOptions(top=top))
    rows = []
    while True:
        resp = graph.resources(req)
        rows.extend(resp.data)
        if not resp.skip_token:
            return rows, resp.total_records
        req.options.skip_token = resp.skip_token


def test_graph_pages_a_generated_estate_exactly(sandbox, arm_client):
    sb = sandbox(estate="scale:800")
    graph = arm_client(ResourceGraphClient, sb)
    subs = sorted(s["subscriptionId"] for s in sb.store.subscriptions.values())
    rows, total = _all_rows(graph, subs, "resources | order by id asc", 150)
    ids = [r["id"].lower() for r in rows]
    assert ids == sorted(ids) and len(ids) == len(set(ids)) == total
    from ztwizard.sandbox.graph import table_of

    expected = [e for e in sb.store if table_of(e["type"]) == "resources"]
    assert total == len(expected)
    down, _ = _all_rows(graph, subs, "resources | order by id desc", 200)
    assert [r["id"].lower() for r in down] == ids[::-1]


@pytest.mark.slow
def test_graph_and_lists_on_a_large_estate(sandbox, arm_client):
    sb = sandbox(estate="scale:20000")
    graph = arm_client(ResourceGraphClient, sb)
    subs = sorted(s["subscriptionId"] for s in sb.store.subscriptions.values())
    rows, total = _all_rows(graph, subs, "resources | where type in~ ('microsoft.network/networksecuritygroups', "
                                         "'microsoft.compute/virtualmachines') | order by id asc", 1000)
    assert len(rows) == total > 0
    # every page followed to the end: each NSG and VM of the store exactly once
    expected = {e["id"].lower() for e in sb.store
                if e["type"].lower() in ("microsoft.network/networksecuritygroups", "microsoft.compute/virtualmachines")}
    assert {r["id"].lower() for r in rows} == expected


def test_failed_delete_restores_the_resource_and_its_children(sandbox, arm_client):
    sb = sandbox(faults="lro-fail:1.0")
    net = arm_client(NetworkManagementClient, sb, SUB)
    before = net.virtual_networks.get("rg-net", "vnet-spoke")
    with pytest.raises(HttpResponseError):
        net.virtual_networks.begin_delete("rg-net", "vnet-spoke").result()
    after = net.virtual_networks.get("rg-net", "vnet-spoke")
    assert after.etag == before.etag and sorted(s.name for s in after.subnets) == ["app", "data"]
    assert [s.id.rsplit("/", 1)[1] for s in net.network_security_groups.get("rg-net", "nsg-app").subnets] == ["app"]
