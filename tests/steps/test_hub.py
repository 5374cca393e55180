"""Hub VNet article: firewall, DDoS, routing through the firewall and threat protection, judged on
small hub-and-spoke estates; every proposal, applied as ARM would, turns its finding into a pass."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest

from ztwizard.inventory import Inventory
from ztwizard.steps import CHECK_BY_ID, hub
from ztwizard.steps._base import REMEDIATIONS

from .conftest import statuses, verdicts
from .test_spoke import (
    CN,
    FW_IP,
    HUB,
    HUB_RG,
    SPOKE,
    SPOKE_RG,
    WL,
    N,
    appgw,
    assert_fixed,
    by_id,
    estate,
    firewall,
    hub_vnet,
    rid,
    route_table,
    run,
    spoke_vnet,
    subnet,
    vnet,
    watcher,
    workspace,
)

POLICY = rid(HUB_RG, f"{N}/firewallPolicies", "fwp-hub")
PIP_FW = rid(HUB_RG, f"{N}/publicIPAddresses", "pip-fw")


def policy(tier: str = "Standard", name: str = "fwp-hub", **props: Any) -> dict[str, Any]:
    return {"id": rid(HUB_RG, f"{N}/firewallPolicies", name), "location": "westeurope", "etag": 'W/"1"',
            "properties": {"sku": {"tier": tier}, **props}}


def rcg(rules: list[dict[str, Any]], action: str = "Allow", pol: str = POLICY) -> dict[str, Any]:
    return {"id": f"{pol}/ruleCollectionGroups/DefaultNetworkRuleCollectionGroup",
            "properties": {"priority": 200, "ruleCollections": [{
                "ruleCollectionType": "FirewallPolicyFilterRuleCollection", "name": "c1", "priority": 100,
                "action": {"type": action}, "rules": rules}]}}


def pip(name: str = "pip-fw", sku: str = "Standard", **ddos: Any) -> dict[str, Any]:
    p: dict[str, Any] = {"publicIPAllocationMethod": "Static"}
    if ddos:
        p["ddosSettings"] = ddos
    return {"id": rid(HUB_RG, f"{N}/publicIPAddresses", name), "location": "westeurope", "etag": 'W/"1"',
            "sku": {"name": sku}, "properties": p}


HUB_CHECKS = ["hub-1a", "hub-1b", "hub-1c", "hub-1d", "hub-1e", "hub-1f", "hub-1g", "hub-1h", "hub-1i", "hub-1j",
              "hub-1k", "hub-2a", "hub-2b", "hub-2c", "hub-2d", "hub-2e", "hub-3a", "hub-3b", "hub-3c", "hub-3d",
              "hub-4a", "hub-4b", "hub-4c", "hub-4d"]


def test_article_lists_every_check_of_the_spec():
    assert [s.id for s in hub.STEPS] == ["hub-1", "hub-2", "hub-3", "hub-4"]
    assert [c.id for s in hub.STEPS for c in s.checks] == HUB_CHECKS
    for s in hub.STEPS:
        assert s.article == "hub" and s.title and len(s.why) > 60
        for c in s.checks:
            assert c.title and c.mcsb and c.risk and c.remediation in REMEDIATIONS, c.id
    assert CHECK_BY_ID["hub-2a"].billable and CHECK_BY_ID["hub-4a"].billable
    assert CHECK_BY_ID["hub-3b"].disruptive and not CHECK_BY_ID["hub-2b"].disruptive
    assert not CHECK_BY_ID["hub-4d"].billable


# ---- step 1 --------------------------------------------------------------------------------------------
def test_hub_1a_premium_tier_is_advisory():
    result = run("hub-1a", [firewall()])
    assert verdicts(result) == ["fail/manual"] and "maintenance window" in result.findings[0].message
    assert not result.changes
    assert statuses(run("hub-1a", [firewall(tier="Premium")])) == ["pass"]
    assert statuses(run("hub-1a", [hub_vnet()])) == ["not_applicable"]


def test_hub_1b_policy_instead_of_classic_rules():
    assert verdicts(run("hub-1b", [firewall()])) == ["fail/manual"]
    assert statuses(run("hub-1b", [firewall(policy=POLICY), policy()])) == ["pass"]


def test_hub_1c_premium_policy_is_created_then_awaits_association():
    base = [hub_vnet(), firewall(policy=POLICY), policy(threatIntelMode="Deny")]
    result = run("hub-1c", base)
    assert statuses(result) == ["fail"]
    c = result.changes[0]
    assert c.action == "create" and c.billable and c.resource_id.endswith("/fwp-hub-premium")
    assert c.body["properties"]["sku"]["tier"] == "Premium" and c.body["location"] == "westeurope"
    from .conftest import apply_all
    after = apply_all(Inventory.from_resources(base), result.changes)
    res = run("hub-1c", after)
    st = by_id(res)
    # the new policy is Premium; the old one now only waits for a person to switch the firewall over
    assert st[c.resource_id.lower()] == "pass" and st[POLICY.lower()] == "fail"
    assert not res.changes
    # the created policy satisfies the IDPS and threat-intelligence checks from the start
    assert by_id(run("hub-1e", after))[c.resource_id.lower()] == "pass"
    assert by_id(run("hub-1d", after))[c.resource_id.lower()] == "pass"


def test_hub_1d_threat_intel_deny_on_policies_and_classic_firewalls():
    result = assert_fixed("hub-1d", [firewall(policy=POLICY), policy()])  # absent mode = Alert
    assert result.changes[0].resource_id == POLICY and result.changes[0].method == "PUT"
    assert result.changes[0].body["properties"]["sku"]["tier"] == "Standard"  # read-modify-write
    classic = firewall()
    classic["properties"]["threatIntelMode"] = "Alert"
    result = assert_fixed("hub-1d", [classic])
    assert result.changes[0].resource_id.endswith("/azureFirewalls/fw-hub")
    # a firewall with a policy is judged through its policy only
    assert statuses(run("hub-1d", [firewall(policy=POLICY), policy(threatIntelMode="Deny")])) == ["pass"]


def test_hub_1e_idps_needs_premium():
    assert_fixed("hub-1e", [policy("Premium", intrusionDetection={"mode": "Alert"})])
    result = run("hub-1e", [policy("Standard")])
    assert verdicts(result) == ["fail/manual"] and "Premium" in result.findings[0].message and not result.changes


def test_hub_1f_tls_inspection_certificate():
    assert verdicts(run("hub-1f", [policy("Premium")])) == ["fail/manual"]
    ok = policy("Premium", transportSecurity={"certificateAuthority": {
        "name": "ca", "keyVaultSecretId": "https://kv.vault.azure.net/secrets/ca"}})
    assert statuses(run("hub-1f", [ok])) == ["pass"]


def test_hub_1g_tls_terminating_application_rule():
    sns = [subnet("snet-agw", "10.1.4.0/24")]
    app = {"ruleType": "ApplicationRule", "name": "agw-to-app", "sourceAddresses": ["10.1.4.0/24"],
           "targetFqdns": ["app.contoso.com"], "protocols": [{"protocolType": "Https", "port": 443}]}
    result = run("hub-1g", [policy("Premium"), rcg([app]), spoke_vnet(sns), appgw("WAF_v2")])
    assert verdicts(result) == ["fail/manual"] and "10.1.4.0/24" in result.findings[0].message
    assert statuses(run("hub-1g", [policy("Premium"), rcg([{**app, "terminateTLS": True}])])) == ["pass"]


def test_hub_1h_firewall_logs():
    assert verdicts(run("hub-1h", [firewall()])) == ["fail/manual"]  # no workspace: a person chooses
    result = assert_fixed("hub-1h", [firewall(), workspace()])
    c = result.changes[0]
    assert c.action == "create" and c.billable
    assert c.resource_id.startswith(firewall()["id"] + "/providers/Microsoft.Insights/diagnosticSettings/")
    assert c.body["properties"]["logAnalyticsDestinationType"] == "Dedicated"
    partial = {"id": firewall()["id"] + "/providers/Microsoft.Insights/diagnosticSettings/d1",
               "properties": {"workspaceId": workspace()["id"],
                              "logs": [{"category": "AZFWNetworkRule", "enabled": True}]}}
    result = assert_fixed("hub-1h", [firewall(), partial])
    assert result.changes[0].action == "update"
    inv = Inventory.from_resources([firewall(), partial])
    inv.unreadable["microsoft.insights/diagnosticsettings"] = "403 AuthorizationFailed"
    assert statuses(run("hub-1h", inv)) == ["error"]


def storage_settings(scope: str, n: int, with_workspace: int = 0) -> list[dict[str, Any]]:
    """`n` diagnostic settings on `scope` sending to a storage account (the first `with_workspace`
    of them also to a workspace)."""
    sa = "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/starchive"
    return [{"id": f"{scope}/providers/Microsoft.Insights/diagnosticSettings/archive-{i}",
             "properties": {"storageAccountId": sa, **({"workspaceId": workspace()["id"]} if i < with_workspace else {}),
                            "logs": [{"category": "AZFWNetworkRule", "enabled": i < with_workspace}]}}
            for i in range(n)]


def test_hub_1h_extends_a_setting_when_five_exist():
    """ARM allows at most 5 diagnostic settings per resource: the sixth is not created, the
    workspace joins an existing one (its storage destination kept)."""
    res = [firewall(), workspace(), *storage_settings(firewall()["id"], 5)]
    result = assert_fixed("hub-1h", res)
    (c,) = result.changes
    assert c.action == "update" and c.resource_id.endswith("/diagnosticSettings/archive-0")
    assert c.body["properties"]["workspaceId"] == workspace()["id"]
    assert c.body["properties"]["storageAccountId"].endswith("/starchive")
    assert c.params == {"workspaceId": workspace()["id"]}
    # four settings: a fifth is still created
    (c,) = run("hub-1h", [firewall(), workspace(), *storage_settings(firewall()["id"], 4)]).changes
    assert c.action == "create"
    # five that all already have a workspace (but miss categories): the first is completed, none created
    full = storage_settings(firewall()["id"], 5, with_workspace=5)
    (c,) = run("hub-1h", [firewall(), workspace(), *full]).changes
    assert c.action == "update"


def test_hub_1i_policy_analytics():
    assert verdicts(run("hub-1i", [policy()])) == ["fail/manual"]  # needs a workspace
    result = assert_fixed("hub-1i", [policy(), workspace()])
    assert result.changes[0].billable
    assert result.changes[0].body["properties"]["insights"]["logAnalyticsResources"]["defaultWorkspaceId"]["id"]


def test_hub_1j_broad_egress():
    broad = {"ruleType": "ApplicationRule", "name": "allow-web", "sourceAddresses": ["10.1.0.0/16"],
             "targetFqdns": ["*"], "protocols": [{"protocolType": "Https", "port": 443}]}
    assert verdicts(run("hub-1j", [policy(), rcg([broad])])) == ["fail/manual"]
    filtered = {**broad, "targetFqdns": [], "webCategories": ["Business"]}
    assert statuses(run("hub-1j", [policy(), rcg([filtered])])) == ["pass"]
    assert statuses(run("hub-1j", [policy(), rcg([broad], action="Deny")])) == ["pass"]


def test_hub_1k_app_gateway_outside_the_hub():
    in_hub = appgw("WAF_v2", f"{HUB}/subnets/snet-agw")
    assert verdicts(run("hub-1k", [hub_vnet(), in_hub])) == ["fail/manual"]
    assert statuses(run("hub-1k", [hub_vnet(), spoke_vnet(), appgw("WAF_v2")])) == ["pass"]


# ---- step 2 --------------------------------------------------------------------------------------------
def test_hub_2a_ddos_plan_is_billable_and_always_asked():
    result = assert_fixed("hub-2a", estate())
    c = result.changes[0]
    assert c.action == "create" and c.billable and c.resource_id.startswith(HUB_RG)
    assert "monthly" in c.risk and c.params["name"]


def test_hub_2b_vnet_put_carries_subnets_and_waits_for_the_plan():
    result = assert_fixed("hub-2b", estate(), also=("hub-2a",))
    put = next(c for c in result.changes if c.resource_id == SPOKE)
    assert [s["name"] for s in put.body["properties"]["subnets"]] == ["snet-app", "snet-web"]
    assert put.depends_on and put.depends_on[0].startswith("hub-2a-")
    assert put.after == {"properties": {"enableDdosProtection": True,
                                        "ddosProtectionPlan": {"id": run("hub-2a", estate()).changes[0].resource_id}}}
    plan = {"id": rid(HUB_RG, f"{N}/ddosProtectionPlans", "ddos-plan"), "location": "westeurope", "properties": {}}
    result = run("hub-2b", [*estate(), plan])
    assert all(c.depends_on == [] for c in result.changes)


def pip_users() -> list[dict[str, Any]]:
    return [hub_vnet(), firewall(policy=POLICY)]


def test_hub_2c_public_ip_protection():
    protected = hub_vnet(enableDdosProtection=True, ddosProtectionPlan={"id": "/x/ddos"})
    assert statuses(run("hub-2c", [protected, firewall(), pip()])) == ["pass"]
    # inherited but the VNet is unprotected: the fix is hub-2b, nothing to change on the IP
    result = run("hub-2c", [*pip_users(), pip()])
    assert verdicts(result) == ["fail/manual"] and "hub-2b" in result.findings[0].message and not result.changes
    result = assert_fixed("hub-2c", [protected, firewall(), pip(protectionMode="Disabled")])
    assert result.changes[0].body["properties"]["ddosSettings"]["protectionMode"] == "VirtualNetworkInherited"
    assert verdicts(run("hub-2c", [pip("pip-old", sku="Basic")])) == ["fail/manual"]
    assert statuses(run("hub-2c", [pip("pip-x", protectionMode="Enabled")])) == ["pass"]


def test_hub_2c_disabled_in_unprotected_vnet_depends_on_hub_2b():
    assert_fixed("hub-2c", [*pip_users(), pip(protectionMode="Disabled"), estate()[2]], also=("hub-2a", "hub-2b"))


def test_hub_2d_ddos_logs_per_public_ip():
    assert verdicts(run("hub-2d", [pip()])) == ["fail/manual"]
    result = assert_fixed("hub-2d", [pip(), workspace()])
    assert result.changes[0].body["properties"]["metrics"] == [{"category": "AllMetrics", "enabled": True}]
    named = {"id": PIP_FW + "/providers/Microsoft.Insights/diagnosticSettings/d",
             "properties": {"workspaceId": workspace()["id"],
                            "logs": [{"category": c, "enabled": True} for c in hub.DDOS_LOGS],
                            "metrics": [{"category": "AllMetrics", "enabled": True}]}}
    assert statuses(run("hub-2d", [pip(), named])) == ["pass"]
    assert statuses(run("hub-2d", [pip("pip-b", sku="Basic")])) == ["not_applicable"]


def test_hub_2e_ddos_alert():
    group = {"id": f"/subscriptions/{CN}/resourceGroups/rg-mgmt/providers/Microsoft.Insights/actionGroups/ag-ops",
             "location": "global", "properties": {}}
    result = assert_fixed("hub-2e", [pip(), group])
    c = result.changes[0]
    assert c.body["properties"]["criteria"]["allOf"][0]["metricName"] == "IfUnderDDoSAttack"
    assert c.body["properties"]["actions"] == [{"actionGroupId": group["id"]}]


# ---- step 3 --------------------------------------------------------------------------------------------
def test_hub_3a_gateway_subnet_route_table_is_created_and_associated():
    result = assert_fixed("hub-3a", estate())
    create = next(c for c in result.changes if c.action == "create")
    put = next(c for c in result.changes if c.action == "update")
    routes = create.body["properties"]["routes"]
    assert [(r["properties"]["addressPrefix"], r["properties"]["nextHopIpAddress"]) for r in routes] == \
        [("10.1.0.0/16", FW_IP)]
    assert create.body["properties"]["disableBgpRoutePropagation"] is False
    assert put.resource_id == f"{HUB}/subnets/GatewaySubnet" and put.depends_on == [create.id]
    assert create.resource_id.startswith(HUB_RG)


def test_hub_3a_existing_table_gets_missing_spoke_routes_and_propagation_back_on():
    rt = route_table("rt-gateway", [("10.9.0.0/16", "VirtualAppliance", FW_IP)], rg=HUB_RG, disable_bgp=True)
    hv = hub_vnet()
    hv["properties"]["subnets"][1] = subnet("GatewaySubnet", "10.0.2.0/27", rt=rt["id"])
    res = [hv, firewall(), spoke_vnet(), rt]
    result = assert_fixed("hub-3a", res)
    body = result.changes[0].body["properties"]
    assert body["disableBgpRoutePropagation"] is False
    assert {r["properties"]["addressPrefix"] for r in body["routes"]} == {"10.9.0.0/16", "10.1.0.0/16"}
    default = route_table("rt-gateway", [("0.0.0.0/0", "VirtualAppliance", FW_IP)], rg=HUB_RG)
    result = run("hub-3a", [hv, firewall(), spoke_vnet(), default])
    assert verdicts(result) == ["fail/manual"] and "0.0.0.0/0" in result.findings[0].message


def test_hub_3a_without_firewall_is_manual_and_unpeered_hub_passes():
    result = run("hub-3a", [hub_vnet(), spoke_vnet()])
    assert verdicts(result) == ["fail/manual"] and "Azure Firewall" in result.findings[0].message
    lonely = vnet(HUB_RG, "vnet-hub", ["10.0.0.0/16"], [subnet("AzureFirewallSubnet", "10.0.1.0/26"),
                                                       subnet("GatewaySubnet", "10.0.2.0/27")])
    assert statuses(run("hub-3a", [lonely, firewall(), spoke_vnet(peer=False)])) == ["pass"]


def test_hub_3b_spoke_subnets_default_route_excludes_app_gateway():
    sns = [subnet("snet-web", "10.1.1.0/24"), subnet("snet-app", "10.1.2.0/24"), subnet("snet-agw", "10.1.4.0/24")]
    res = [hub_vnet(), firewall(), spoke_vnet(sns), appgw("WAF_v2")]
    result = assert_fixed("hub-3b", res)
    st = by_id(run("hub-3b", res))
    assert f"{SPOKE}/subnets/snet-agw".lower() not in st
    creates = [c for c in result.changes if c.action == "create"]
    assert len(creates) == 1  # one table shared by the spoke's subnets
    route = creates[0].body["properties"]["routes"][0]["properties"]
    assert route == {"addressPrefix": "0.0.0.0/0", "nextHopType": "VirtualAppliance", "nextHopIpAddress": FW_IP}
    assert creates[0].body["properties"]["disableBgpRoutePropagation"] is True
    puts = [c for c in result.changes if c.action == "update"]
    assert len(puts) == 2 and all(c.disruptive and c.depends_on == [creates[0].id] for c in puts)


def test_hub_3b_existing_table_is_fixed_once_for_all_its_subnets():
    rt = route_table("rt-spoke", [("0.0.0.0/0", "Internet", None), ("10.2.0.0/16", "VnetLocal", None)])
    sns = [subnet("snet-web", "10.1.1.0/24", rt=rt["id"]), subnet("snet-app", "10.1.2.0/24", rt=rt["id"])]
    result = assert_fixed("hub-3b", [hub_vnet(), firewall(), spoke_vnet(sns), rt])
    assert len(result.changes) == 1 and result.changes[0].resource_id == rt["id"]
    routes = result.changes[0].body["properties"]["routes"]
    assert {r["properties"]["addressPrefix"] for r in routes} == {"0.0.0.0/0", "10.2.0.0/16"}
    good = route_table("rt-spoke", [("0.0.0.0/0", "VirtualAppliance", FW_IP)], disable_bgp=True)
    assert set(statuses(run("hub-3b", [hub_vnet(), firewall(), spoke_vnet(sns), good]))) == {"pass"}
    # propagation still on is not enough
    half = route_table("rt-spoke", [("0.0.0.0/0", "VirtualAppliance", FW_IP)], disable_bgp=False)
    assert set(statuses(run("hub-3b", [hub_vnet(), firewall(), spoke_vnet(sns), half]))) == {"fail"}
    assert statuses(run("hub-3b", [hub_vnet(), spoke_vnet(sns), rt])) == ["not_applicable"]


def test_hub_3b_route_table_shared_with_app_gateway_is_manual():
    rt = route_table("rt-spoke", [])
    sns = [subnet("snet-web", "10.1.1.0/24", rt=rt["id"]), subnet("snet-agw", "10.1.4.0/24", rt=rt["id"])]
    result = run("hub-3b", [hub_vnet(), firewall(), spoke_vnet(sns), rt, appgw("WAF_v2")])
    assert verdicts(result) == ["fail/manual"] and not result.changes


def test_hub_3c_peering_topology():
    other = vnet(SPOKE_RG, "vnet-spoke2", ["10.2.0.0/16"], [subnet("snet-a", "10.2.1.0/24")], peer_to=SPOKE)
    result = run("hub-3c", [hub_vnet(), firewall(), spoke_vnet(), other])
    st = {f.resource_id.rsplit("/", 1)[-1]: f.status for f in result.findings}
    assert st["peer-vnet-spoke2"] == "fail" and st["peer-vnet-spoke"] == "pass" and st["peer-vnet-hub"] == "pass"
    gw = {"id": rid(HUB_RG, f"{N}/virtualNetworkGateways", "vpngw"), "location": "westeurope",
          "properties": {"ipConfigurations": [{"name": "c", "properties": {
              "subnet": {"id": f"{HUB}/subnets/GatewaySubnet"}}}]}}
    result = run("hub-3c", [hub_vnet(), firewall(), spoke_vnet(), gw])
    assert verdicts(result) == ["fail/manual", "fail/manual"]  # no gateway transit on the hub side, no remote gw on the spoke
    hv, sv = hub_vnet(), spoke_vnet()
    hv["properties"]["virtualNetworkPeerings"][0]["properties"]["allowGatewayTransit"] = True
    sv["properties"]["virtualNetworkPeerings"][0]["properties"]["useRemoteGateways"] = True
    assert set(statuses(run("hub-3c", [hv, firewall(), sv, gw]))) == {"pass"}


def test_hub_3d_explicit_firewall_rules():
    any_any = {"ruleType": "NetworkRule", "name": "any", "sourceAddresses": ["*"], "destinationAddresses": ["*"],
               "destinationPorts": ["*"], "ipProtocols": ["Any"]}
    assert verdicts(run("hub-3d", [policy(), rcg([any_any])])) == ["fail/manual"]
    assert verdicts(run("hub-3d", [policy()])) == ["fail/manual"]
    named = {**any_any, "sourceAddresses": ["192.168.0.0/16"], "destinationAddresses": ["10.1.1.0/24"],
             "destinationPorts": ["443"]}
    assert statuses(run("hub-3d", [policy(), rcg([named])])) == ["pass"]
    classic = firewall()
    classic["properties"]["networkRuleCollections"] = [{"name": "c", "properties": {
        "action": {"type": "Allow"}, "rules": [any_any]}}]
    assert verdicts(run("hub-3d", [classic])) == ["fail/manual"]


# ---- step 4 --------------------------------------------------------------------------------------------
def test_hub_4a_three_defender_plans_on_the_hub_subscription():
    result = assert_fixed("hub-4a", estate())
    assert sorted(c.resource_id.rsplit("/", 1)[-1] for c in result.changes) == ["Arm", "CloudPosture",
                                                                                "VirtualMachines"]
    assert all(c.resource_id.startswith(f"/subscriptions/{CN}/") and c.billable for c in result.changes)
    on = {"id": f"/subscriptions/{CN}/providers/Microsoft.Security/pricings/Arm",
          "type": "microsoft.security/pricings", "properties": {"pricingTier": "Standard"}}
    assert by_id(run("hub-4a", [*estate(), on]))[on["id"].lower()] == "pass"


def test_hub_4b_security_benchmark_assignment():
    assert statuses(run("hub-4b", estate())) == ["manual"]
    mcsb = {"id": f"/subscriptions/{CN}/providers/Microsoft.Authorization/policyAssignments/SecurityCenterBuiltIn",
            "properties": {"policyDefinitionId": "/providers/Microsoft.Authorization/policySetDefinitions/"
                                                 "1f3afdf9-d0c9-4c3d-847f-89da613e70a8"}}
    assert statuses(run("hub-4b", [*estate(), mcsb])) == ["pass"]


def test_hub_4c_unhealthy_hub_assessments():
    def assessment(code: str) -> dict[str, Any]:
        return {"id": firewall()["id"] + "/providers/Microsoft.Security/assessments/"
                                         "e3de1cc0-f4dd-3b34-e496-8b5381ba2d70",
                "properties": {"displayName": "DDoS protection", "status": {"code": code}}}

    result = run("hub-4c", [*estate(), assessment("Unhealthy")])
    assert verdicts(result) == ["fail/manual"] and "DDoS protection" in result.findings[0].message
    assert statuses(run("hub-4c", [*estate(), assessment("Healthy")])) == ["pass"]


def test_hub_4d_network_watcher_per_region():
    result = assert_fixed("hub-4d", estate())
    ids = sorted(c.resource_id for c in result.changes)
    assert len(ids) == 2  # one per subscription and region
    assert all(i.endswith("/networkWatchers/NetworkWatcher_westeurope") for i in ids)
    assert not any(c.billable for c in result.changes)
    # NetworkWatcherRG is used when it is known to exist
    res = [*estate(), watcher(sub=CN)]
    result = run("hub-4d", res)
    assert by_id(result)[HUB.lower()] == "pass" and by_id(result)[SPOKE.lower()] == "fail"
    other = copy.deepcopy(watcher(sub=WL, region="northeurope"))
    result = run("hub-4d", [*res, other])
    assert "/resourceGroups/NetworkWatcherRG/" in result.changes[0].resource_id


@pytest.mark.parametrize("check_id", HUB_CHECKS)
def test_every_hub_check_runs_on_an_empty_scope(check_id: str):
    result = run(check_id, [])
    assert statuses(result) in (["not_applicable"], [])
    assert not result.changes


@pytest.mark.parametrize("check_id", HUB_CHECKS)
def test_every_hub_check_reports_unreadable_types_as_error(check_id: str):
    check = CHECK_BY_ID[check_id]
    inv = Inventory.from_resources([*estate(), policy(), pip()])
    inv.unreadable[check.resource_type.lower()] = "403 AuthorizationFailed"
    assert statuses(check.run(inv)) == ["error"]


def test_hub_3b_subnet_without_table_joins_its_siblings_table_after_it_is_fixed():
    rt = route_table("rt-spoke", [("0.0.0.0/0", "Internet", None)])
    sns = [subnet("snet-web", "10.1.1.0/24"), subnet("snet-app", "10.1.2.0/24", rt=rt["id"])]
    result = assert_fixed("hub-3b", [hub_vnet(), firewall(), spoke_vnet(sns), rt])
    fix = next(c for c in result.changes if c.resource_id == rt["id"])
    join = next(c for c in result.changes if c.resource_id.endswith("/snet-web"))
    assert not any(c.action == "create" for c in result.changes)
    assert join.body["properties"]["routeTable"]["id"] == rt["id"] and join.depends_on == [fix.id]


def test_declarative_fixes_have_titles_naming_the_resource():
    assert run("hub-1d", [policy()]).changes[0].title == "Set threat intelligence on fwp-hub to alert and deny"
    assert "fwp-hub" in run("hub-1e", [policy("Premium")]).changes[0].title
    assert "fwp-hub" in run("hub-1i", [policy(), workspace()]).changes[0].title


def test_reference_estate_every_hub_step_has_work_and_some_passes():
    from ztwizard.sandbox.estates import load_estate

    inv = Inventory.from_resources(load_estate("reference"))
    seen_pass = False
    for step in hub.STEPS:
        found = [f.status for c in step.checks for f in c.run(inv).findings]
        assert {"fail", "manual"} & set(found), step.id
        assert "error" not in found, step.id
        seen_pass = seen_pass or "pass" in found
    assert seen_pass


def test_reference_estate_network_plan_converges():
    """Every network change proposed on the reference estate, applied together in dependency order,
    then once more for what the first round created (a new NSG still needs its deny-all rules),
    leaves no check of these two articles with a failing finding the wizard offers to fix."""
    from ztwizard.armjson import apply_values
    from ztwizard.engine import order_changes
    from ztwizard.remedy import writable
    from ztwizard.sandbox.estates import load_estate

    from .conftest import apply_change
    from .test_spoke import spoke

    checks = [c for s in [*spoke.STEPS, *hub.STEPS] for c in s.checks]
    after = Inventory.from_resources(load_estate("reference"))
    rounds = []
    for _ in range(3):
        changes = [ch for c in checks for ch in c.run(after).changes]
        if not changes:
            break
        rounds.append(len(changes))
        ids = [c.id for c in changes]
        assert len(ids) == len(set(ids))
        assert all(d in set(ids) for c in changes for d in c.depends_on)
        for ch in order_changes(changes):
            if ch.method == "PUT" and ch.action == "update":
                # as apply does: re-apply the change's `after` onto the resource as it is now, so an
                # earlier subnet PUT survives a later VNet PUT that carried the subnets as planned
                ch = dataclasses.replace(ch, body=apply_values(writable(after.get(ch.resource_id)), ch.after))
            after = apply_change(after, ch)
    assert len(rounds) == 2 and rounds[1] < 10, rounds
    for c in checks:
        left = [f for f in c.run(after).findings if f.status == "fail" and f.remediation != "manual"]
        assert not left, (c.id, left)


def test_network_plan_applies_through_the_sdk_on_the_sandbox(tmp_path):
    """The spoke and hub proposals, sent by the real azure-mgmt clients to the sandbox, are accepted,
    and what ARM then holds passes the same checks."""
    from ztwizard.apply import apply_changes, start_session
    from ztwizard.engine import inspect
    from ztwizard.gateway import Gateway
    from ztwizard.journal import Journal
    from ztwizard.sandbox import Sandbox
    from ztwizard.target import in_process_target

    from .test_spoke import spoke

    steps = [s.id for s in [*spoke.STEPS, *hub.STEPS]]
    gw = Gateway(in_process_target(Sandbox(None, estate="reference", lro_seconds=0)))
    journal = Journal(tmp_path / "state")
    try:
        changes = inspect(gw, step_ids=steps).changes()
        assert len(changes) > 30
        sid = start_session(journal, gw, changes)
        report = apply_changes(gw, journal, sid, changes, allow_disruptive=True, allow_cost=True)
        assert len(report.applied) == len(changes), "\n".join(report.lines())
        left = [(f.check, f.resource_id) for s in inspect(gw, step_ids=steps).steps for f in s.findings
                if f.status == "error" or (f.status == "fail" and f.remediation != "manual")]
        # only what the first round created is left: the new NSG's deny-all rule
        assert [c for c, _ in left] == ["spoke-5a"], left
    finally:
        journal.close()


def test_hub_checks_give_the_same_verdicts_on_resource_graph_rows():
    from .test_spoke import graph_shaped

    res = [*estate(), policy(), pip(), workspace()]
    plain, graph = Inventory.from_resources(res), Inventory.from_resources(graph_shaped(res))
    for check_id in HUB_CHECKS:
        a = sorted((f.resource_id.lower(), f.status) for f in run(check_id, plain).findings)
        b = sorted((f.resource_id.lower(), f.status) for f in run(check_id, graph).findings)
        assert a == b, check_id


def test_every_parameter_a_person_may_edit_appears_in_what_is_sent():
    """The wizard edits a create by swapping a parameter's value wherever it occurs, so each value
    must occur in the id or body it stands for (an empty or absent choice is no parameter)."""
    import json

    from ztwizard.sandbox.estates import load_estate

    from .test_spoke import spoke

    inv = Inventory.from_resources(load_estate("reference"))
    seen = 0
    for c in [ch for s in [*spoke.STEPS, *hub.STEPS] for chk in s.checks for ch in chk.run(inv).changes]:
        sent = c.resource_id + json.dumps(c.body)
        for key, value in c.params.items():
            assert value not in ("", None, [], {}), (c.id, key)
            assert str(value) in sent, (c.id, key, value)
            seen += 1
    assert seen > 20


def test_network_watcher_outside_the_g_scope_is_found_and_not_created_again():
    """One Network Watcher per region and subscription: with -g naming the spoke's group, the
    watcher in NetworkWatcherRG is still read (through the real clients), so hub-4d passes and
    spoke-5d's flow log goes under it instead of waiting for a second watcher."""
    from ztwizard.engine import inspect
    from ztwizard.gateway import Gateway
    from ztwizard.sandbox import Sandbox
    from ztwizard.sandbox.estates import load_estate
    from ztwizard.sandbox.estates import reference as ref
    from ztwizard.target import in_process_target

    watcher_id = f"{ref.RG_NETWORK_WATCHER}/providers/Microsoft.Network/networkWatchers/NetworkWatcher_westeurope"
    estate = [*load_estate("reference"), {"id": watcher_id, "type": "Microsoft.Network/networkWatchers",
                                          "location": "westeurope", "properties": {}}]
    gw = Gateway(in_process_target(Sandbox(None, estate=estate, lro_seconds=0)))
    for use_graph in (True, False):
        inv = gw.inventory(resource_groups=["rg-spoke-network"], use_graph=use_graph)
        assert inv.get(watcher_id) is not None, use_graph
        assert inv.get(ref.VM_WEB_01) is None  # the rest of the subscription stays out of scope
    plan = inspect(gw, check_ids=["hub-4d", "spoke-5d"], resource_groups=["rg-spoke-network", "rg-storage"])
    findings = {(f.check, f.resource_id.lower()): f for s in plan.steps for f in s.findings}
    assert findings[("hub-4d", ref.SPOKE_VNET.lower())].status == "pass"
    assert not [c for c in plan.changes() if c.check == "hub-4d"]
    logs = [c for c in plan.changes() if c.check == "spoke-5d"]
    assert logs and all(c.resource_id.lower().startswith(watcher_id.lower() + "/flowlogs/") and not c.depends_on
                        for c in logs)
    # with no watcher in the region, -g puts the new one in the scope, not in NetworkWatcherRG
    gw = Gateway(in_process_target(Sandbox(None, estate=load_estate("reference"), lro_seconds=0)))
    scoped = inspect(gw, check_ids=["hub-4d"], resource_groups=["rg-spoke-network"]).changes()
    assert [c.resource_id for c in scoped] == [
        f"{ref.RG_SPOKE}/providers/Microsoft.Network/networkWatchers/NetworkWatcher_westeurope"]
    wide = [c for c in inspect(gw, check_ids=["hub-4d"]).changes()
            if c.resource_id.lower().startswith(f"/subscriptions/{ref.WORKLOAD_SUB}".lower())]
    assert [c.resource_id for c in wide] == [
        f"{ref.RG_NETWORK_WATCHER}/providers/Microsoft.Network/networkWatchers/NetworkWatcher_westeurope"]


def test_hub_3a_rerouting_on_premises_traffic_is_disruptive_and_says_who_loses_access():
    """Routing GatewaySubnet through the firewall cuts on-premises users off every spoke workload
    the firewall does not allow: the association and the route update are disruptive."""
    assert CHECK_BY_ID["hub-3a"].disruptive
    result = run("hub-3a", estate())
    assoc = next(c for c in result.changes if c.action == "update")
    assert assoc.disruptive and "on-premises users lose access" in assoc.risk
    table = next(c for c in result.changes if c.action == "create")
    assert not table.disruptive  # a route table nobody uses yet changes nothing
    # an existing table that gains the spoke routes re-routes the same traffic
    rt = route_table("rt-gateway", [("10.9.0.0/16", "VirtualAppliance", FW_IP)], rg=HUB_RG)
    hv = hub_vnet()
    hv["properties"]["subnets"][1] = subnet("GatewaySubnet", "10.0.2.0/27", rt=rt["id"])
    res = [r for r in estate() if r["id"] != hv["id"]] + [hv, rt]
    (update,) = run("hub-3a", res).changes
    assert update.resource_id == rt["id"] and update.disruptive and "on-premises users lose access" in update.risk


@pytest.mark.parametrize("check_id, who", [
    ("hub-1e", "lose access"), ("storage-1b", "lose access"), ("storage-1c", "loses access"),
    ("spoke-5e", "get\n403".replace("\n", " ")), ("vm-8c", "does not override existing allow rules")])
def test_risk_text_says_who_loses_access(check_id, who):
    risk = " ".join(CHECK_BY_ID[check_id].risk.split())
    assert who in risk, risk
