"""The gateway through the real azure-mgmt clients and pipeline, against the sandbox."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ztwizard.errors import Conflict, EtagMismatch, NotFound, PermissionDenied, Throttled, ZtwError
from ztwizard.gateway import API_VERSIONS, GRAPH_TYPES, SUBSCRIPTION_WIDE, Gateway, api_version_for
from ztwizard.sandbox import Sandbox
from ztwizard.sandbox.estates import reference as ref
from ztwizard.target import in_process_target, sandbox_target

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def reference_estate():
    from ztwizard.sandbox.estates import load_estate

    return load_estate("reference")


def gateway(estate, **knobs) -> tuple[Gateway, Sandbox]:
    sb = Sandbox(None, estate=estate, **knobs)
    return Gateway(in_process_target(sb)), sb


def test_read_returns_wire_json_with_etag_and_none_when_missing(reference_estate):
    gw, _ = gateway(reference_estate)
    nsg = gw.read(ref.NSG_SPOKE)
    assert nsg["etag"].startswith('W/"')
    assert isinstance(nsg["properties"]["securityRules"], list)
    assert gw.read(ref.NSG_SPOKE + "-gone") is None


def test_patch_storage_and_put_nsg_with_if_match(reference_estate):
    gw, _ = gateway(reference_estate)
    out = gw.write("PATCH", ref.BLOB_ACCOUNT, {"properties": {"minimumTlsVersion": "TLS1_2"}})
    assert out["properties"]["minimumTlsVersion"] == "TLS1_2"
    nsg = gw.read(ref.NSG_SPOKE)
    body = {k: v for k, v in nsg.items() if k != "etag"}
    body["tags"] = {"owner": "netops"}
    after = gw.write("PUT", ref.NSG_SPOKE, body, etag=nsg["etag"])
    assert after["tags"] == {"owner": "netops"} and after["etag"] != nsg["etag"]
    # The etag read before that write is stale now: ARM refuses, the gateway says why.
    with pytest.raises(EtagMismatch) as exc:
        gw.write("PUT", ref.NSG_SPOKE, body, etag=nsg["etag"])
    assert "changed by someone else" in exc.value.message
    assert "nsg-spoke-prod" in exc.value.message
    assert gw.read(ref.NSG_SPOKE)["tags"] == {"owner": "netops"}


def test_vm_patch_lro_and_delete_lro(reference_estate):
    gw, sb = gateway(reference_estate, lro_polls=3)
    vm_id = next(r["id"] for r in reference_estate if r["type"] == "Microsoft.Compute/virtualMachines")
    out = gw.write("PATCH", vm_id, {"tags": {"ztw": "1"}})
    assert out["properties"]["provisioningState"] == "Succeeded"
    polls = [p for m, p, s in sb.request_log if "/operations/" in p.lower() or "operationstatus" in p.lower()]
    assert polls, "the VM update must have been a long-running operation"
    rule = next(r["id"] for r in reference_estate if "/securityRules/" in r["id"])
    assert gw.write("DELETE", rule, None) is None
    assert gw.read(rule) is None


def test_reader_gets_permission_error_naming_action_and_scope(reference_estate):
    sb = Sandbox(None, estate=reference_estate)
    gw = Gateway(in_process_target(sb, reader=True))
    assert gw.read(ref.BLOB_ACCOUNT) is not None  # reading is allowed
    with pytest.raises(PermissionDenied) as exc:
        gw.write("PATCH", ref.BLOB_ACCOUNT, {"properties": {"minimumTlsVersion": "TLS1_2"}})
    assert "Microsoft.Storage/storageAccounts/write" in exc.value.message
    assert "stcontosoappdata" in exc.value.message
    assert exc.value.hint


def test_missing_parent_is_not_found_naming_the_resource(reference_estate):
    gw, _ = gateway(reference_estate)
    with pytest.raises(NotFound) as exc:
        gw.write("PUT", ref.SPOKE_VNET + "-gone/subnets/x", {"properties": {"addressPrefix": "10.9.0.0/24"}})
    assert "subnet x" in exc.value.message
    assert "its parent virtualNetwork vnet-spoke-prod-weu-gone" in exc.value.message


def test_write_during_running_operation_is_a_conflict(reference_estate):
    from azure.mgmt.network import NetworkManagementClient

    sb = Sandbox(None, estate=reference_estate, lro_polls=5, lro_seconds=120)
    target = in_process_target(sb)
    gw = Gateway(target)
    net = NetworkManagementClient(target.credential, ref.WORKLOAD_SUB, base_url=target.endpoint,
                                  transport=target.transport, polling_interval=0)
    nsg = net.network_security_groups.get("rg-spoke-network", "nsg-spoke-prod")
    # polling=False: nobody polls, so the operation stays in progress on the sandbox
    net.network_security_groups.begin_create_or_update("rg-spoke-network", "nsg-spoke-prod", nsg, polling=False)
    with pytest.raises(Conflict) as exc:
        gw.write("PUT", ref.NSG_SPOKE, {"location": "westeurope", "properties": {}})
    assert "another operation was still running on it after the retries" in exc.value.message
    assert "is still in progress" in exc.value.message, "ARM's own message is kept"
    assert exc.value.hint.startswith("Wait until that operation has finished")


def test_429_retry_after_is_honoured_without_sleeping(reference_estate):
    sb = Sandbox(None, estate=reference_estate, faults="429:0.2", seed=7, fault_retry_after=3)
    target = in_process_target(sb)
    gw = Gateway(target)
    inv = gw.inventory()
    assert len(inv.of_type("Microsoft.Storage/storageAccounts")) == 3
    assert 3 in target.transport.sleeps, "Retry-After: 3 must be the back-off used"
    assert not inv.unreadable


def test_throttled_after_retries_is_a_clear_error(reference_estate):
    sb = Sandbox(None, estate=reference_estate, faults="429:1.0", seed=1)
    gw = Gateway(in_process_target(sb), retry_total=1)
    with pytest.raises(Throttled) as exc:
        gw.read(ref.BLOB_ACCOUNT)
    assert "throttling" in exc.value.message


def test_bad_token_is_a_sign_in_error():
    from ztwizard.target import StaticTokenCredential

    sb = Sandbox(None, estate=[])
    target = in_process_target(sb)
    target.credential = StaticTokenCredential("not-the-token")
    with pytest.raises(ZtwError) as exc:
        Gateway(target).list_subscriptions()
    assert "401" in exc.value.message and "az login" in exc.value.hint


def test_graph_inventory_pages_and_matches_list_calls(reference_estate):
    gw, sb = gateway(reference_estate, page_size=7)
    rows = gw.graph_query([ref.WORKLOAD_SUB, ref.CONNECTIVITY_SUB], "resources | order by id asc", page_size=5)
    posts = [p for m, p, s in sb.request_log if m == "POST" and "resourcegraph" in p.lower()]
    assert len(posts) == -(-len(rows) // 5) and len(posts) > 2
    assert len({r["id"].lower() for r in rows}) == len(rows)

    by_graph = gw.inventory()
    by_lists = gw.inventory(use_graph=False)
    wanted = [t.lower() for types in GRAPH_TYPES.values() for t in types]
    ids_graph = {k for k, r in by_graph.resources.items() if r["type"].lower() in wanted}
    ids_lists = {k for k, r in by_lists.resources.items() if r["type"].lower() in wanted}
    assert ids_graph == ids_lists
    assert len(ids_graph) > 50
    # a row keeps no column Graph fills with null where ARM's own answer leaves it out, so a PUT
    # body built from it carries no "sku": null the list-read resource would not
    for key in ids_graph:
        empty = {c for c in ("kind", "managedBy", "sku", "plan", "identity", "zones", "extendedLocation")
                 if c in by_graph.resources[key] and by_graph.resources[key][c] in (None, "")}
        assert not empty, (key, empty)
        assert {c for c in ("kind", "sku", "identity", "zones") if c in by_graph.resources[key]} == \
            {c for c in ("kind", "sku", "identity", "zones") if by_lists.resources[key].get(c) not in (None, "")}, key
    # children that Graph does not index are read per parent
    assert by_graph.get(ref.FILES_ACCOUNT + "/fileServices/default") is not None
    assert by_graph.of_type("Microsoft.Network/virtualNetworks/subnets")


def test_resource_group_scope_narrows_the_inventory(reference_estate):
    gw, _ = gateway(reference_estate)
    inv = gw.inventory(resource_groups=["rg-storage"])
    groups = {r["id"].split("/")[4].lower() for r in inv.all() if "/resourcegroups/" in r["id"].lower()
              and r["type"] not in SUBSCRIPTION_WIDE}
    assert groups == {"rg-storage"}
    # Network Watchers are the exception: one per region, a create must see them wherever they are
    assert {r["type"] for r in inv.all() if "networkwatcherrg" in r["id"].lower()} <= set(SUBSCRIPTION_WIDE)


def test_api_versions_match_what_the_typed_clients_send(reference_estate):
    """The gateway writes with the api-version each typed SDK client reads with."""
    from azure.mgmt.compute import ComputeManagementClient
    from azure.mgmt.network import NetworkManagementClient
    from azure.mgmt.security import SecurityCenter
    from azure.mgmt.storage import StorageManagementClient

    sb = Sandbox(None, estate=reference_estate)
    t = in_process_target(sb)
    kw = {"base_url": t.endpoint, "transport": t.transport}
    seen: list[str] = []

    def hook(request):
        seen.append(request.http_request.url)

    sub = ref.WORKLOAD_SUB
    list(StorageManagementClient(t.credential, sub, **kw).storage_accounts.list(raw_request_hook=hook))
    list(NetworkManagementClient(t.credential, sub, **kw).network_security_groups.list_all(raw_request_hook=hook))
    list(ComputeManagementClient(t.credential, sub, **kw).virtual_machines.list_all(raw_request_hook=hook))
    list(ComputeManagementClient(t.credential, sub, **kw).disks.list(raw_request_hook=hook))
    SecurityCenter(t.credential, sub, **kw).pricings.list(f"subscriptions/{sub}", raw_request_hook=hook)
    samples = {
        "storageAccounts": ref.BLOB_ACCOUNT, "networkSecurityGroups": ref.NSG_SPOKE,
        "virtualMachines": f"{ref.RG_VMS}/providers/Microsoft.Compute/virtualMachines/x",
        "disks": f"{ref.RG_VMS}/providers/Microsoft.Compute/disks/x",
        "pricings": f"/subscriptions/{sub}/providers/Microsoft.Security/pricings/VirtualMachines",
    }
    for fragment, rid in samples.items():
        url = next(u for u in seen if f"/{fragment.lower()}" in u.lower())
        assert f"api-version={api_version_for(rid)}" in url, (fragment, url)
    assert len(API_VERSIONS) > 10



def test_raw_reads_send_the_requests_of_the_typed_operations_they_replace(reference_estate):
    """The plan reads these children and subscription lists as raw JSON through the resources
    client; each sends the path and api-version the typed operation sends (an SDK upgrade that
    moves one shows up here), and returns the JSON the typed model was built from."""
    from urllib.parse import parse_qs, urlsplit

    from azure.mgmt.compute import ComputeManagementClient
    from azure.mgmt.monitor import MonitorManagementClient
    from azure.mgmt.security import SecurityCenter

    from ztwizard import gateway as gm

    class Recording(Gateway):
        sent: list[str]

        def _before_send(self, request):
            self.sent.append(request.http_request.url)
            super()._before_send(request)

    jit_example = ROOT / "tests" / "data" / "rest-examples" / "security" / "GetJitNetworkAccessPolicy_example.json"
    jit = json.loads(jit_example.read_text().replace("20ff7fc3-e762-44dd-bd96-b71116dcdc23", ref.WORKLOAD_SUB)
                     .replace("myRg1", "rg-vms"))["responses"]["200"]["body"]  # the reference estate has none
    sb = Sandbox(None, estate=[*reference_estate, jit])
    t = in_process_target(sb)
    kw = {"base_url": t.endpoint, "transport": t.transport}
    typed: list[str] = []

    def hook(request):
        typed.append(request.http_request.url)

    def request_of(url):
        parts = urlsplit(url)
        return parts.path.replace("//", "/"), parse_qs(parts.query)

    gw = Recording(t)
    gw.sent = []
    work, hub = ref.WORKLOAD_SUB, ref.CONNECTIVITY_SUB
    vm = {"id": ref.VM_WEB_01}
    cases = [
        (lambda: SecurityCenter(t.credential, work, **kw).defender_for_storage.get(
            ref.FILES_ACCOUNT, "current", raw_request_hook=hook),
         lambda: gm._defender_for_storage(gw, {"id": ref.FILES_ACCOUNT})),
        (lambda: list(MonitorManagementClient(t.credential, hub, **kw).diagnostic_settings.list(
            ref.FIREWALL, raw_request_hook=hook)),
         lambda: gm._diagnostic_settings(gw, {"id": ref.FIREWALL})),
        (lambda: list(MonitorManagementClient(t.credential, hub, **kw).subscription_diagnostic_settings.list(
            raw_request_hook=hook)),
         lambda: gm._activity_log(gw, hub)),
        (lambda: list(SecurityCenter(t.credential, work, **kw).settings.list(raw_request_hook=hook)),
         lambda: list(gm._settings(gw, work))),
        (lambda: list(SecurityCenter(t.credential, work, **kw).jit_network_access_policies.list(
            raw_request_hook=hook)),
         lambda: list(gm._jit_policies(gw, work))),
        (lambda: ComputeManagementClient(t.credential, work, **kw).virtual_machines.instance_view(
            "rg-vms", ref.VM_WEB_01.rsplit("/", 1)[1], raw_request_hook=hook),
         lambda: gm._vm_instance_view(gw, vm) or [vm["properties"]["instanceView"]]),
    ]
    for typed_read, raw_read in cases:
        typed.clear()
        gw.sent.clear()
        items = typed_read()
        raw = raw_read()
        assert [request_of(u) for u in gw.sent] == [request_of(u) for u in typed], typed
        assert raw, typed  # each read finds something in the reference estate
        if not isinstance(items, list):
            items = [items]
        # every field the typed model kept, the raw JSON carries with the same value
        for model, item in zip(items, raw, strict=True):
            kept = {k: v for k, v in gm.wire(model).items() if k != "properties"}
            assert kept.items() <= item.items(), (kept, item)
    # an account without a Defender for Storage setting: 404 both ways, and the inventory holds
    # none for it without calling the type unreadable
    from azure.core.exceptions import ResourceNotFoundError

    with pytest.raises(ResourceNotFoundError):
        SecurityCenter(t.credential, work, **kw).defender_for_storage.get(ref.DIAG_ACCOUNT, "current")
    with pytest.raises(ResourceNotFoundError):
        gm._defender_for_storage(gw, {"id": ref.DIAG_ACCOUNT})
    inv = gw.inventory()
    assert not inv.children(ref.DIAG_ACCOUNT, "Microsoft.Security/defenderForStorageSettings")
    assert inv.children(ref.FILES_ACCOUNT, "Microsoft.Security/defenderForStorageSettings")
    assert "microsoft.security/defenderforstoragesettings" not in inv.unreadable


@pytest.mark.parametrize(("link", "want"), [
    # ARM's link as given when it carries the first request's api-version
    ("https://m/x?api-version=2020-01-01&$skipToken=a%3D", "https://m/x?api-version=2020-01-01&$skipToken=a%3D"),
    # a link without one, or with another, gets the first request's (the typed operations' rule)
    ("https://m/x?$skipToken=a%3D", "https://m/x?%24skipToken=a%3D&api-version=2020-01-01"),
    ("https://m/x?api-version=2019-01-01&$skipToken=b", "https://m/x?%24skipToken=b&api-version=2020-01-01"),
])
def test_a_next_page_is_asked_for_with_the_first_pages_api_version(link, want):
    from urllib.parse import parse_qs, urlsplit

    from ztwizard.gateway import next_page_url

    got = next_page_url(link, "/subscriptions/s/providers/Microsoft.Security/settings?api-version=2020-01-01")
    assert got == want
    assert parse_qs(urlsplit(got).query)["$skipToken"] == parse_qs(urlsplit(link).query)["$skipToken"]

def test_https_serve_and_an_independent_sdk_script(tmp_path):
    """`ztwizard sandbox serve` in its own process; examples/sandbox_client.py (SDK only) lists the
    estate, PATCHes a storage account, gets 412 on a stale If-Match and completes a VM LRO."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    server = subprocess.Popen([sys.executable, "-m", "ztwizard.cli", "--state-dir", str(tmp_path), "sandbox", "serve"],
                              stderr=subprocess.PIPE, env=env, text=True)
    try:
        conn_file = tmp_path / "sandbox" / "connection.json"
        deadline = time.time() + 30
        while not conn_file.exists() and time.time() < deadline:
            time.sleep(0.1)
        assert conn_file.exists(), "serve must write connection.json once listening"
        assert conn_file.stat().st_mode & 0o777 == 0o600
        conn = json.loads(conn_file.read_text())
        assert conn["endpoint"].startswith("https://127.0.0.1:")
        out = subprocess.run([sys.executable, str(ROOT / "examples" / "sandbox_client.py"), str(tmp_path)],
                             capture_output=True, text=True, timeout=120, env=env)
        assert out.returncode == 0, out.stderr
        result = json.loads(out.stdout)
        assert result == {"subscriptions": 2, "storage_accounts": 3, "nsgs": result["nsgs"], "vms": result["vms"],
                          "patched_tls": "TLS1_2", "stale_put": 412, "vm_update": "Succeeded"}
        assert result["nsgs"] >= 2 and result["vms"] >= 3
        # The wizard finds the live server through connection.json and talks HTTPS to it.
        target = sandbox_target(tmp_path)
        assert target.endpoint == conn["endpoint"] and target.transport is None
        assert Gateway(target).read(ref.BLOB_ACCOUNT)["properties"]["minimumTlsVersion"] == "TLS1_2"
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    assert not (tmp_path / "sandbox" / "connection.json").exists()


def test_gateway_inventory_sees_what_the_estate_holds(reference_estate):
    """No false findings from missing reads: every resource type the catalog judges comes back
    through the gateway exactly as the estate holds it."""
    from ztwizard.engine import make_plan
    from ztwizard.inventory import Inventory

    gw, _ = gateway(reference_estate)
    live = gw.inventory()
    direct = Inventory.from_resources(reference_estate)
    assert not live.unreadable
    skip = {"microsoft.resources/subscriptions"}
    missing = sorted(k for k, r in direct.resources.items() if k not in live.resources and r["type"].lower() not in skip)
    assert missing == []
    plan_live = make_plan(live).to_dict()["steps"]
    plan_direct = make_plan(direct).to_dict()["steps"]
    for a, b in zip(plan_live, plan_direct, strict=True):
        assert (a["id"], a["status"], len(a["findings"]), len(a["changes"])) == \
               (b["id"], b["status"], len(b["findings"]), len(b["changes"]))


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", None])
def test_the_environment_ca_bundle_is_honoured_though_read_once(tmp_path, monkeypatch, variable):
    """The gateway reads requests' environment settings once instead of per request: a CA bundle
    named there still verifies the endpoint, and without one the endpoint's certificate is refused."""
    from ztwizard.sandbox.server import running
    from ztwizard.target import StaticTokenCredential, Target

    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    with running(tmp_path / "sb", estate="reference") as srv:
        conn = srv.connection
        if variable:
            monkeypatch.setenv(variable, conn["ca_bundle"])
        target = Target(kind="sandbox", endpoint=conn["endpoint"], credential=StaticTokenCredential(conn["token"]))
        gw = Gateway(target)
        if variable:
            assert len(gw.list_subscriptions()) == 2
        else:
            with pytest.raises(ZtwError):
                gw.list_subscriptions()
        gw.close()
