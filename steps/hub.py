"""Hub virtual network (azure-infrastructure-networking.md): four steps around the shared firewall.

Network helpers (hub/spoke detection, the firewall serving a VNet, naming) live in spoke.py."""

from __future__ import annotations

from typing import Any

from ztwizard import remedy
from ztwizard import resource_id as rid
from ztwizard.inventory import Inventory
from ztwizard.model import CheckResult, Finding, change_id
from ztwizard.paths import get_path, set_path

from ._base import Check, Context, Param, Step, not_applicable, property_check, unreadable
from .common import ASSESSMENT, NIC
from .spoke import (
    APPGW,
    FW,
    FWP,
    NSG_EXEMPT_SUBNETS,
    PIP,
    RT,
    SUBNET,
    VNET,
    WATCHER,
    appgw_subnets,
    combine,
    diagnostics_check,
    firewall_for,
    firewall_ip,
    hubs,
    kids,
    linked,
    loc,
    low,
    namer,
    of,
    peers,
    pricing_check,
    ref,
    rg_of,
    spokes,
    subnets_of,
    unique_name,
    vnet_of,
    watcher_id,
    workspace_for,
)
from .spoke import (
    props as spoke_props,
)

DDOS = "Microsoft.Network/ddosProtectionPlans"
RCG = f"{FWP}/ruleCollectionGroups"
GATEWAY = "Microsoft.Network/virtualNetworkGateways"
BASTION = "Microsoft.Network/bastionHosts"
ALERT = "Microsoft.Insights/metricAlerts"
ACTION_GROUP = "Microsoft.Insights/actionGroups"
POLICY_ASSIGNMENT = "Microsoft.Authorization/policyAssignments"
SEC_ALERT = "Microsoft.Security/locations/alerts"
MCSB_INITIATIVE = "1f3afdf9-d0c9-4c3d-847f-89da613e70a8"


def hub_subs(inv: Inventory) -> list[str]:
    seen: dict[str, str] = {}
    for v in hubs(inv):
        s = rid.subscription_of(v["id"]) or ""
        seen.setdefault(s.lower(), s)
    return list(seen.values())


def _tier(pol: dict[str, Any]) -> str:
    return str(get_path(pol, "properties.sku.tier") or "Standard")


def _premium(pol: dict[str, Any]) -> bool:
    return _tier(pol).lower() == "premium"


# ---- step 1: Azure Firewall Premium -----------------------------------------------------------
hub_1a = property_check(
    id="hub-1a", title="Azure Firewall runs the Premium tier", resource_type=FW, path="properties.sku.tier",
    expected="Premium", default="Standard", remediation="advisory", what="Azure Firewall",
    fail_message="The firewall is not Premium, so it cannot inspect TLS or run IDPS.",
    instruction="Upgrade it to Premium in a maintenance window (Firewall Manager's in-place upgrade from "
                "Standard; Basic needs a new Premium firewall), with a Premium policy (hub-1c), so TLS "
                "inspection and IDPS become available.",
    risk="Premium costs more and the upgrade needs a maintenance window.", billable=True,
    mcsb="NS-3", policy="Azure Firewall Standard should be upgraded to Premium for next generation protection")

hub_1b = property_check(
    id="hub-1b", title="The firewall is managed by a firewall policy", resource_type=FW,
    path="properties.firewallPolicy.id", expected="a firewall policy", compliant=bool, remediation="advisory",
    what="Azure Firewall", fail_message="The firewall still uses classic rules.",
    instruction="In Firewall Manager, migrate its classic rules to a new firewall policy and associate the policy, "
                "so threat intelligence, IDPS and TLS inspection can be managed centrally.",
    mcsb="NS-3", risk="Migrating rules can change rule processing order; review before switching.", policy="Azure Firewall Classic Rules should be migrated to Firewall Policy")


def _hub_1c(inv: Inventory) -> CheckResult:
    out = CheckResult()
    pols = of(inv, FWP)
    if not pols:
        out.findings.append(not_applicable("hub-1c", "firewall policy", inv))
        return out
    names = {low(p["id"]) for p in pols}
    used = {low(ref(get_path(fw, "properties.firewallPolicy"))) for fw in of(inv, FW)}
    spare = [p for p in pols if _premium(p) and low(p["id"]) not in used]
    for pol in pols:
        tier = _tier(pol)
        if _premium(pol):
            out.findings.append(Finding("hub-1c", pol["id"], "pass", "properties.sku.tier", tier, "Premium",
                                        f"Policy {pol['name']} is Premium."))
            continue
        ready = [p for p in spare if loc(p) == loc(pol)]
        if ready:
            out.findings.append(Finding(
                "hub-1c", pol["id"], "manual", "properties.sku.tier", tier, "Premium",
                f"Policy {pol['name']} is {tier} and Premium policy {ready[0]['name']} is ready: copy the rule "
                f"collection groups across, upgrade the firewall to Premium (hub-1a), then associate "
                f"{ready[0]['name']} with it."))
            continue
        name = unique_name(inv, rg_of(pol["id"]), FWP, f"{pol['name']}-premium", names)
        new_id = f"{rg_of(pol['id'])}/providers/{FWP}/{name}"
        keep = {k: v for k, v in spoke_props(pol).items()
                if k in ("threatIntelMode", "threatIntelWhitelist", "dnsSettings", "sql", "explicitProxy", "snat")}
        body = {"location": pol.get("location"),
                "properties": {**keep, "sku": {"tier": "Premium"},
                               "threatIntelMode": "Deny", "intrusionDetection": {"mode": "Deny"}}}
        for path, value in (_hub_1i_fix(pol, inv) or {}).items():
            set_path(body, path, value)  # policy analytics from the start when a workspace exists
        out.findings.append(Finding("hub-1c", pol["id"], "fail", "properties.sku.tier", tier, "Premium",
                                    f"Policy {pol['name']} is {tier}; IDPS and TLS inspection need Premium."))
        out.changes.append(remedy.create(
            "hub-1c", new_id, body, params={"name": name},
            title=f"Create Premium policy {name} beside {pol['name']}",
            risk="Premium policies cost more. Rule collection groups are not copied; associate the new policy "
                 "with a Premium firewall once its rules are in place.", billable=True))
    return out


def _classic(fw: dict[str, Any]) -> bool:
    return not ref(get_path(fw, "properties.firewallPolicy"))


hub_1d_policy = property_check(
    id="hub-1d", change_title="Set threat intelligence on {name} to alert and deny",
    title="Threat intelligence alerts and denies", resource_type=FWP, path="properties.threatIntelMode",
    expected="Deny", default="Alert", remediation="auto-put", fix={"properties.threatIntelMode": "Deny"},
    what="firewall policy", fail_message="Threat intelligence does not deny: traffic to known-malicious addresses passes.", risk="Known-bad addresses get blocked; allow-list false positives in threatIntelWhitelist.",
    mcsb="NS-3", policy="Azure Firewall Policy should enable Threat Intelligence")
hub_1d_classic = property_check(
    id="hub-1d", change_title="Set threat intelligence on {name} to alert and deny",
    title="Threat intelligence alerts and denies", resource_type=FW, path="properties.threatIntelMode",
    expected="Deny", default="Alert", remediation="auto-put", fix={"properties.threatIntelMode": "Deny"},
    applies=lambda fw, inv: _classic(fw), what="classic-rule firewall",
    fail_message="Threat intelligence does not deny: traffic to known-malicious addresses passes.",
    risk="Known-bad addresses get blocked; allow-list false positives.",
    mcsb="NS-3", policy="Azure Firewall Standard - Classic Rules should enable Threat Intelligence")

hub_1e = property_check(
    id="hub-1e", change_title="Set IDPS on policy {name} to alert and deny",
    title="IDPS alerts and denies", resource_type=FWP, path="properties.intrusionDetection.mode",
    expected="Deny", default="Off", remediation="auto-put",
    fail_message="IDPS does not block: signature matches pass (Off or Alert only).",
    fix=lambda pol, inv: {"properties.intrusionDetection.mode": "Deny"} if _premium(pol) else None,
    instruction="IDPS needs a Premium policy: create one (hub-1c), set intrusion detection to Alert and deny, "
                "and associate it with a Premium firewall.",
    what="firewall policy", risk="Signature hits block traffic; tune with signature overrides.", mcsb="NS-4")

hub_1f = property_check(
    id="hub-1f", title="TLS inspection has a CA certificate", resource_type=FWP,
    path="properties.transportSecurity.certificateAuthority.keyVaultSecretId", expected="a Key Vault CA certificate",
    compliant=bool, remediation="advisory", what="firewall policy",
    fail_message="The policy has no CA certificate for TLS inspection.",
    instruction="Put an intermediate CA certificate that clients trust into Key Vault, give the policy a "
                "user-assigned identity with get access to its secrets, and set it under TLS inspection (Premium "
                "only), so encrypted traffic can be inspected.",
    risk="Workloads that pin certificates or do not support TLS termination break.", mcsb="NS-4")


def _app_rules(inv: Inventory, pol: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for g in kids(inv, pol["id"], RCG):
        for coll in get_path(g, "properties.ruleCollections") or []:
            if not isinstance(coll, dict):
                continue
            allow = str(get_path(coll, "action.type") or "Allow").lower() == "allow"
            for r in coll.get("rules") or []:
                if isinstance(r, dict):
                    out.append({**r, "_allow": allow})
    return out


def _hub_1g(inv: Inventory) -> CheckResult:
    out = CheckResult()
    pols = of(inv, FWP)
    if not pols:
        out.findings.append(not_applicable("hub-1g", "firewall policy", inv))
        return out
    gw_prefixes = [get_path(inv.get(s), "properties.addressPrefix") for s in sorted(appgw_subnets(inv))]
    src = ", ".join(p for p in gw_prefixes if p) or "the App GW subnet"
    for pol in pols:
        tls = [r["name"] for r in _app_rules(inv, pol)
               if str(r.get("ruleType", "")).lower() == "applicationrule" and r.get("terminateTLS")]
        if tls:
            out.findings.append(Finding("hub-1g", pol["id"], "pass", "properties.ruleCollections", tls,
                                        message=f"Policy {pol['name']} inspects TLS with rules {', '.join(tls)}."))
            continue
        out.findings.append(Finding(
            "hub-1g", pol["id"], "manual", "properties.ruleCollections", None, "an application rule with terminateTLS",
            f"Policy {pol['name']} has no TLS-inspecting rule: add an application rule from {src} to the web app's "
            f"FQDN over HTTPS 443 with TLS inspection on (Premium), so IDPS sees inbound web traffic in clear."))
    return out


def _hub_1i_fix(pol: dict[str, Any], inv: Inventory) -> dict[str, Any] | None:
    ws = workspace_for(inv, rid.subscription_of(pol["id"]) or "", loc(pol))
    if not ws:
        return None
    return {"properties.insights.isEnabled": True, "properties.insights.retentionDays": 30,
            "properties.insights.logAnalyticsResources.defaultWorkspaceId": {"id": ws["id"]}}


hub_1i = property_check(
    id="hub-1i", change_title="Turn on policy analytics for {name}",
    title="Policy analytics is on", resource_type=FWP, path="properties.insights.isEnabled",
    expected=True, default=False, remediation="auto-put", fix=_hub_1i_fix, what="firewall policy",
    fail_message="Policy analytics is off: unused and overly broad rules go unnoticed.",
    instruction="Create a Log Analytics workspace for the firewall's logs first, then turn on policy analytics, "
                "so unused and overly broad rules show up.",
    risk="Policy analytics is billed.", billable=True, mcsb="LT-4", policy="Azure Firewall Policy Analytics should be Enabled")


def _hub_1j(inv: Inventory) -> CheckResult:
    out = CheckResult()
    pols = of(inv, FWP)
    if not pols:
        out.findings.append(not_applicable("hub-1j", "firewall policy", inv))
        return out
    for pol in pols:
        broad = [r["name"] for r in _app_rules(inv, pol) if r["_allow"]
                 and str(r.get("ruleType", "")).lower() == "applicationrule"
                 and "*" in (r.get("targetFqdns") or []) and not r.get("webCategories") and not r.get("targetUrls")]
        if not broad:
            out.findings.append(Finding("hub-1j", pol["id"], "pass", "properties.ruleCollections",
                                        message=f"Policy {pol['name']} grants no open web egress."))
            continue
        out.findings.append(Finding(
            "hub-1j", pol["id"], "manual", "properties.ruleCollections", broad, "webCategories/targetUrls",
            f"Rules {', '.join(broad)} of {pol['name']} allow any web destination: narrow them with web categories "
            f"(deny e.g. gambling, malware) or URL filtering (Premium), so broad egress cannot reach risky sites."))
    return out


def _hub_1k(inv: Inventory) -> CheckResult:
    out = CheckResult()
    gws = of(inv, APPGW)
    if not gws:
        out.findings.append(not_applicable("hub-1k", "application gateway", inv))
        return out
    hub_ids = {low(v["id"]) for v in hubs(inv)}
    for gw in gws:
        vnets = {low(vnet_of(ref(get_path(c, "properties.subnet"))))
                 for c in get_path(gw, "properties.gatewayIPConfigurations") or []}
        if vnets & hub_ids:
            out.findings.append(Finding(
                "hub-1k", gw["id"], "manual", "properties.gatewayIPConfigurations", sorted(vnets), "a spoke VNet",
                f"{gw['name']} sits in the hub: redeploy it in the spoke of the app it publishes (its own subnet), so "
                f"the hub keeps only shared services and the app's traffic stays inside its spoke's controls."))
        else:
            out.findings.append(Finding("hub-1k", gw["id"], "pass", "properties.gatewayIPConfigurations",
                                        message=f"{gw['name']} is outside the hub."))
    return out


def _firewalls(inv: Inventory) -> list[dict[str, Any]]:
    return of(inv, FW)


hub_1h = diagnostics_check("hub-1h", "The firewall's logs go to Log Analytics", _firewalls, "Azure Firewall", (),
                           FW, "LT-4", "Enable logging by category group for Firewall "
                                       "(microsoft.network/azurefirewalls) to Log Analytics")


# ---- step 2: DDoS protection ---------------------------------------------------------------------
def _plan(inv: Inventory) -> tuple[str, dict[str, Any] | None]:
    """The DDoS plan in use or to be created: (id, existing plan or None)."""
    plans = of(inv, DDOS)
    if plans:
        return plans[0]["id"], plans[0]
    vnets = hubs(inv) or of(inv, VNET)
    if not vnets:
        return "", None
    anchor = vnets[0]
    return f"{rg_of(anchor['id'])}/providers/{DDOS}/ddos-{loc(anchor) or 'plan'}", None


def _hub_2a(inv: Inventory) -> CheckResult:
    out = CheckResult()
    plan_id, plan = _plan(inv)
    if not plan_id:
        out.findings.append(not_applicable("hub-2a", "virtual network", inv))
        return out
    anchor = (hubs(inv) or of(inv, VNET))[0]
    if plan:
        out.findings.append(Finding("hub-2a", anchor["id"], "pass", "properties.ddosProtectionPlan.id", plan_id,
                                    message=f"DDoS protection plan {plan['name']} exists."))
        return out
    name = rid.parse(plan_id).name
    out.findings.append(Finding("hub-2a", anchor["id"], "fail", "properties.ddosProtectionPlan.id", None,
                                "a DDoS protection plan",
                                "No DDoS protection plan exists; public endpoints get only basic infrastructure "
                                "protection."))
    out.changes.append(remedy.create(
        "hub-2a", plan_id, {"location": anchor.get("location"), "properties": {}},
        params={"name": name, "resourceGroup": rg_of(plan_id)},
        title=f"Create DDoS protection plan {name}",
        risk="Significant fixed monthly cost plus overage per protected resource; one plan can cover every "
             "VNet in the tenant.", billable=True))
    return out


def _hub_2b(inv: Inventory) -> CheckResult:
    stop = unreadable(inv, "hub-2b", DDOS)
    if stop:
        return stop
    out = CheckResult()
    vnets = of(inv, VNET)
    if not vnets:
        out.findings.append(not_applicable("hub-2b", "virtual network", inv))
        return out
    plan_id, plan = _plan(inv)
    deps = [] if plan else [change_id("hub-2a", plan_id, "PUT")]
    for vnet in vnets:
        on = get_path(vnet, "properties.enableDdosProtection") is True
        has = ref(get_path(vnet, "properties.ddosProtectionPlan"))
        if on and has:
            out.findings.append(Finding("hub-2b", vnet["id"], "pass", "properties.enableDdosProtection", True, True,
                                        f"{vnet['name']} is protected by a DDoS plan."))
            continue
        out.findings.append(Finding("hub-2b", vnet["id"], "fail", "properties.enableDdosProtection", on, True,
                                    f"{vnet['name']} is not linked to a DDoS protection plan."))
        out.changes.append(remedy.put(
            "hub-2b", vnet, {"properties.enableDdosProtection": True,
                             "properties.ddosProtectionPlan": {"id": has or plan_id}},
            depends_on=deps, title=f"Protect {vnet['name']} with DDoS plan {rid.parse(has or plan_id).name}",
            risk="Non-disruptive; each protected public IP beyond the plan's 100 is billed."))
    return out


def pip_vnets(inv: Inventory) -> dict[str, str]:
    """Public IP id (lower) -> VNet id of the resource using it (firewall, Bastion, gateway, App GW, NIC)."""
    out: dict[str, str] = {}
    for t in (FW, BASTION, GATEWAY, NIC):
        for res in of(inv, t):
            for c in get_path(res, "properties.ipConfigurations") or []:
                pip, sn = ref(get_path(c, "properties.publicIPAddress")), ref(get_path(c, "properties.subnet"))
                if pip and sn:
                    out[low(pip)] = vnet_of(sn)
    for gw in of(inv, APPGW):
        sns = [ref(get_path(c, "properties.subnet")) for c in get_path(gw, "properties.gatewayIPConfigurations") or []]
        for c in get_path(gw, "properties.frontendIPConfigurations") or []:
            pip = ref(get_path(c, "properties.publicIPAddress"))
            if pip and sns:
                out[low(pip)] = vnet_of(sns[0])
    return out


def _protected(inv: Inventory, vnet_id: str) -> bool:
    v = inv.get(vnet_id)
    return bool(v) and get_path(v, "properties.enableDdosProtection") is True


def _hub_2c(inv: Inventory) -> CheckResult:
    stop = unreadable(inv, "hub-2c", VNET)
    if stop:
        return stop
    out = CheckResult()
    pips = of(inv, PIP)
    if not pips:
        out.findings.append(not_applicable("hub-2c", "public IP address", inv))
        return out
    users = pip_vnets(inv)
    path = "properties.ddosSettings.protectionMode"
    for pip in pips:
        sku = str(get_path(pip, "sku.name") or "Basic")
        mode = get_path(pip, path) or "VirtualNetworkInherited"
        vnet_id = users.get(low(pip["id"]))
        vnet_name = rid.parse(vnet_id).name if vnet_id else ""
        if sku.lower() != "standard":
            out.findings.append(Finding(
                "hub-2c", pip["id"], "manual", "sku.name", sku, "Standard",
                f"{pip['name']} is a {sku} SKU public IP, which DDoS protection settings do not cover: upgrade it to "
                f"Standard (dissociate, upgrade, re-associate in a maintenance window)."))
        elif mode == "Enabled" or (mode == "VirtualNetworkInherited" and vnet_id and _protected(inv, vnet_id)):
            out.findings.append(Finding("hub-2c", pip["id"], "pass", path, mode, mode,
                                        f"{pip['name']} is DDoS protected ({mode})."))
        elif mode == "VirtualNetworkInherited" and vnet_id:
            out.findings.append(Finding(
                "hub-2c", pip["id"], "manual", path, mode, "VirtualNetworkInherited in a protected VNet",
                f"{pip['name']} inherits protection from {vnet_name}, which has none yet: link {vnet_name} to the "
                f"DDoS plan (hub-2a, hub-2b); nothing changes on the IP itself."))
        elif vnet_id:
            deps = [] if _protected(inv, vnet_id) else [change_id("hub-2b", vnet_id, "PUT")]
            out.findings.append(Finding("hub-2c", pip["id"], "fail", path, mode, "VirtualNetworkInherited",
                                        f"DDoS protection is {mode} on {pip['name']}."))
            out.changes.append(remedy.put(
                "hub-2c", pip, {path: "VirtualNetworkInherited"}, depends_on=deps,
                title=f"Let {pip['name']} inherit {vnet_name}'s DDoS protection",
                risk="None: covered by the VNet's plan."))
        else:
            out.findings.append(Finding(
                "hub-2c", pip["id"], "manual", path, mode, "Enabled",
                f"{pip['name']} is attached to nothing the wizard sees in a VNet: delete it if unused, or set its DDoS "
                f"protection to Enabled (IP Protection, billed per IP) if it fronts a service outside a VNet."))
    return out


DDOS_LOGS = ("DDoSProtectionNotifications", "DDoSMitigationFlowLogs", "DDoSMitigationReports")


def _standard_pips(inv: Inventory) -> list[dict[str, Any]]:
    return [p for p in of(inv, PIP) if str(get_path(p, "sku.name") or "").lower() == "standard"]


hub_2d = diagnostics_check("hub-2d", "DDoS logs of each public IP go to Log Analytics", _standard_pips,
                           "Standard public IP address", DDOS_LOGS, PIP, "LT-4",
                           "Public IP addresses should have resource logs enabled for Azure DDoS Protection",
                           metrics=True)


def _hub_2e(inv: Inventory) -> CheckResult:
    stop = unreadable(inv, "hub-2e", ALERT)
    if stop:
        return stop
    out = CheckResult()
    pips = _standard_pips(inv)
    if not pips:
        out.findings.append(not_applicable("hub-2e", "Standard public IP address", inv))
        return out
    alerts = of(inv, ALERT)
    groups = of(inv, ACTION_GROUP)
    for pip in pips:
        mine = [a for a in alerts if low(pip["id"]) in {low(s) for s in get_path(a, "properties.scopes") or []}
                and any(str(c.get("metricName", "")).lower() == "ifunderddosattack"
                        for c in get_path(a, "properties.criteria.allOf") or [])]
        if mine:
            out.findings.append(Finding("hub-2e", pip["id"], "pass", "properties.criteria", "IfUnderDDoSAttack",
                                        message=f"Alert {mine[0]['name']} fires when {pip['name']} is attacked."))
            continue
        name = f"alert-ddos-{pip['name']}"
        actions = [{"actionGroupId": groups[0]["id"]}] if groups else []
        body = {"location": "global", "properties": {
            "description": f"DDoS attack under way on {pip['name']}", "severity": 1, "enabled": True,
            "scopes": [pip["id"]], "evaluationFrequency": "PT1M", "windowSize": "PT5M",
            "criteria": {"odata.type": "Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria",
                         "allOf": [{"name": "UnderDDoSAttack", "metricName": "IfUnderDDoSAttack",
                                    "operator": "GreaterThan", "threshold": 0, "timeAggregation": "Maximum",
                                    "criterionType": "StaticThresholdCriterion"}]},
            "actions": actions}}
        out.findings.append(Finding("hub-2e", pip["id"], "fail", "properties.criteria", None, "IfUnderDDoSAttack",
                                    f"Nobody is alerted when {pip['name']} comes under DDoS attack."))
        out.changes.append(remedy.create(
            "hub-2e", f"{rg_of(pip['id'])}/providers/{ALERT}/{name}", body,
            params={"name": name, **({"actionGroupId": groups[0]["id"]} if groups else {})},
            title=f"Alert on DDoS attacks against {pip['name']}",
            risk="Alert rules are billed per monitored metric (cents a month)" +
                 ("" if groups else "; without an action group it shows in the portal only."), billable=True))
    return out


# ---- step 3: route gateway traffic through the firewall ---------------------------------------------
def _routes(inv: Inventory, table: dict[str, Any] | None) -> list[dict[str, Any]]:
    return kids(inv, table["id"], f"{RT}/routes") if table else []


def _prefixes(vnet: dict[str, Any]) -> list[str]:
    return [str(p) for p in get_path(vnet, "properties.addressSpace.addressPrefixes") or []]


def _spoke_name(inv: Inventory, prefix: str, vnet: dict[str, Any]) -> str:
    return f"to-{vnet['name']}" + ("" if len(_prefixes(vnet)) == 1 else f"-{prefix.replace('/', '_').replace('.', '-')}")


def _hub_3a(ctx: Context) -> None:
    inv = ctx.inv
    if ctx.unreadable(SUBNET, RT, FW):
        return
    gws = [(v, s) for v in hubs(inv) for s in subnets_of(inv, v) if s["name"].lower() == "gatewaysubnet"]
    if not gws:
        ctx.not_applicable("GatewaySubnet")
        return
    name_for = namer(inv, RT, "properties.routeTable", "rt-{}")
    taken = {low(r["id"]) for r in of(inv, RT)}
    path = "properties.routes"
    for hub, sn in gws:
        fw = firewall_for(inv, hub)
        ip = firewall_ip(fw)
        near = peers(inv, hub)
        spoke_vnets = [v for v in spokes(inv) if low(v["id"]) in near]
        wanted = [(p, v) for v in spoke_vnets for p in _prefixes(v)]
        if not ip:
            ctx.finding(sn["id"], "manual", path, None, "routes to the firewall",
                f"{hub['name']} has no Azure Firewall with a private IP: deploy it in AzureFirewallSubnet first, then "
                f"route GatewaySubnet's traffic to the spokes through it.")
            continue
        if not wanted:
            ctx.finding(sn["id"], "pass", path, message=f"No spoke is peered with "
                                                                                  f"{hub['name']}.")
            continue
        table = inv.get(ref(get_path(sn, "properties.routeTable")))
        new_routes: list[dict[str, Any]] = [{"name": _spoke_name(inv, p, v), "properties": {
            "addressPrefix": p, "nextHopType": "VirtualAppliance", "nextHopIpAddress": ip}} for p, v in wanted]
        if not table:
            # the new table is for this GatewaySubnet: its id stays when its name or next hop is edited
            p = ctx.params(sn["id"], name=unique_name(inv, rg_of(hub["id"]), RT, name_for(sn["name"]), taken),
                           firewallIp=ip)
            rt_id = f"{rg_of(hub['id'])}/providers/{RT}/{p['name']}"
            routes = [{**r, "properties": {**r["properties"], "nextHopIpAddress": p["firewallIp"]}}
                      for r in new_routes]
            ctx.finding(sn["id"], "fail", "properties.routeTable.id", None,
                        f"spoke prefixes via {ip}",
                        f"GatewaySubnet of {hub['name']} has no route table: traffic from on-premises "
                        f"reaches the spokes without passing the firewall.")
            create = ctx.create(rt_id, {"location": hub.get("location"), "properties": {
                "disableBgpRoutePropagation": False, "routes": routes}}, anchor=sn["id"],
                params=p, title=f"Create route table {p['name']} for GatewaySubnet", risk="None until associated.")
            ctx.put(sn, {"properties.routeTable": {"id": rt_id}}, depends_on=[create.id],
                title=f"Route {hub['name']}'s GatewaySubnet through the firewall",
                risk="On-premises traffic to the spokes is dropped unless firewall rules allow it (hub-3d); apply with "
                     "hub-3b so routing stays symmetric.")
            continue
        have = {(str(get_path(r, "properties.addressPrefix")), str(get_path(r, "properties.nextHopIpAddress")))
                for r in _routes(inv, table)
                if str(get_path(r, "properties.nextHopType") or "").lower() == "virtualappliance"}
        missing = [r for r in new_routes if (r["properties"]["addressPrefix"], ip) not in have]
        bgp_off = get_path(table, "properties.disableBgpRoutePropagation") is True
        default = [r["name"] for r in _routes(inv, table) if get_path(r, "properties.addressPrefix") == "0.0.0.0/0"]
        if default:
            ctx.finding(sn["id"], "manual", path, default, "no 0.0.0.0/0 route",
                f"Route table {table['name']} on GatewaySubnet has a 0.0.0.0/0 route ({', '.join(default)}), which the "
                f"gateway does not support: delete it and keep only the per-spoke routes via {ip}.")
            continue
        if not missing and not bgp_off:
            ctx.finding(sn["id"], "pass", path, message=f"Every spoke prefix goes to {ip}.")
            continue

        def mutate(body: dict[str, Any], missing: list[dict[str, Any]] = missing) -> None:
            props = body.setdefault("properties", {})
            props["disableBgpRoutePropagation"] = False
            names = {r["properties"]["addressPrefix"]: r for r in missing}
            kept = [r for r in props.get("routes") or []
                    if get_path(r, "properties.addressPrefix") not in names]
            props["routes"] = kept + [dict(r) for r in missing]

        ctx.finding(sn["id"], "fail", path,
            sorted(p for p, _h in have) or None, [r["properties"]["addressPrefix"] for r in new_routes],
            f"Route table {table['name']} on GatewaySubnet " +
            (f"misses routes via {ip} for {', '.join(r['properties']['addressPrefix'] for r in missing)}"
             if missing else "has gateway route propagation off, which stops the gateway") + ".")
        ctx.put_mutated(table, mutate, [path, "properties.disableBgpRoutePropagation"],
            title=f"Route spoke prefixes in {table['name']} through the firewall",
            risk="On-premises traffic to the spokes is dropped unless firewall rules allow it (hub-3d).")


DEFAULT_ROUTE = "default-to-firewall"


def _default_to(inv: Inventory, table: dict[str, Any], ip: str) -> bool:
    return any(get_path(r, "properties.addressPrefix") == "0.0.0.0/0"
               and str(get_path(r, "properties.nextHopType") or "").lower() == "virtualappliance"
               and get_path(r, "properties.nextHopIpAddress") == ip for r in _routes(inv, table))


def _table_ok(inv: Inventory, table: dict[str, Any], ip: str) -> bool:
    return _default_to(inv, table, ip) and get_path(table, "properties.disableBgpRoutePropagation") is True


def _shares_appgw(inv: Inventory, table: dict[str, Any], appgw: set[str]) -> list[dict[str, Any]]:
    return [s for s in linked(inv, SUBNET, "properties.routeTable").get(low(table["id"]), [])
            if low(s["id"]) in appgw]


def _hub_3b(ctx: Context) -> None:
    inv = ctx.inv
    if ctx.unreadable(SUBNET, RT, FW):
        return
    if not of(inv, FW):
        ctx.not_applicable("Azure Firewall")
        return
    appgw = appgw_subnets(inv)
    exempt = NSG_EXEMPT_SUBNETS | {"azurebastionsubnet"}
    name_for = namer(inv, RT, "properties.routeTable", "rt-{}")
    taken = {low(r["id"]) for r in of(inv, RT)}
    tables_done: dict[str, str] = {}
    risk = ("Disruptive: spoke egress and on-premises paths fail until firewall rules allow them; apply "
            "with hub-3a.")
    judged = 0
    for vnet in spokes(inv):
        fw = firewall_for(inv, vnet)
        ip = firewall_ip(fw)
        if not ip:
            continue
        judged_sns = [sn for sn in subnets_of(inv, vnet)
                      if sn["name"].lower() not in exempt and low(sn["id"]) not in appgw]
        # Subnets without a table join one their siblings already use (fixed first), else a new one.
        shared: tuple[str, list[str]] | None = None
        for sn in judged_sns:
            t = inv.get(ref(get_path(sn, "properties.routeTable")))
            if t and not _shares_appgw(inv, t, appgw):
                shared = (t["id"], [] if _table_ok(inv, t, ip) else [ctx.change_id_of(t)])
                break
        for sn in judged_sns:
            judged += 1
            table = inv.get(ref(get_path(sn, "properties.routeTable")))
            if not table:
                if shared is None:
                    # one new table per spoke VNet: its id stays when its name or next hop is edited
                    p = ctx.params(vnet["id"], firewallIp=ip,
                                   name=unique_name(inv, rg_of(vnet["id"]), RT, name_for(vnet["name"]), taken))
                    rt_id = f"{rg_of(vnet['id'])}/providers/{RT}/{p['name']}"
                    create = ctx.create(rt_id, {"location": vnet.get("location"), "properties": {
                        "disableBgpRoutePropagation": True, "routes": [{"name": DEFAULT_ROUTE, "properties": {
                            "addressPrefix": "0.0.0.0/0", "nextHopType": "VirtualAppliance",
                            "nextHopIpAddress": p["firewallIp"]}}]}}, anchor=vnet["id"],
                        params={"name": p["name"], "firewallIp": p["firewallIp"]},
                        title=f"Create route table {p['name']} sending {vnet['name']}'s traffic to the firewall",
                        risk="None until associated.")
                    shared = (rt_id, [create.id])
                ctx.finding(sn["id"], "fail", "properties.routeTable.id", None,
                                            f"0.0.0.0/0 via {ip}",
                                            f"Subnet {sn['name']} of {vnet['name']} reaches the internet and "
                                            f"on-premises without passing the firewall.")
                ctx.put(sn, {"properties.routeTable": {"id": shared[0]}}, depends_on=list(shared[1]),
                    title=f"Send subnet {sn['name']}'s traffic through the firewall via {rid.parse(shared[0]).name}",
                    risk=risk, disruptive=True)
                continue
            ok_route = _default_to(inv, table, ip)
            bgp_off = get_path(table, "properties.disableBgpRoutePropagation") is True
            if ok_route and bgp_off:
                ctx.finding(sn["id"], "pass", "properties.routes", "0.0.0.0/0", "0.0.0.0/0",
                                            f"Subnet {sn['name']} sends its traffic to the firewall.")
                continue
            expected = {"0.0.0.0/0": ip, "disableBgpRoutePropagation": True}
            msg = (f"Route table {table['name']} of subnet {sn['name']} " +
                   ("lacks 0.0.0.0/0 via the firewall" if not ok_route else "propagates gateway routes") + ".")
            shares_gw = _shares_appgw(inv, table, appgw)
            if shares_gw:
                ctx.finding(sn["id"], "manual", "properties.routes", None, expected,
                    f"{msg} It is shared with App GW subnet {shares_gw[0]['name']}, which must keep direct internet: "
                    f"give {sn['name']} its own route table with 0.0.0.0/0 via {ip} and propagation off.")
                continue
            ctx.finding(sn["id"], "fail", "properties.routes",
                                        {"route": ok_route, "disableBgpRoutePropagation": bgp_off}, expected, msg)
            if low(table["id"]) in tables_done:
                continue

            def mutate(body: dict[str, Any], ip: str = ip) -> None:
                props = body.setdefault("properties", {})
                props["disableBgpRoutePropagation"] = True
                kept = [r for r in props.get("routes") or [] if get_path(r, "properties.addressPrefix") != "0.0.0.0/0"]
                props["routes"] = kept + [{"name": DEFAULT_ROUTE, "properties": {
                    "addressPrefix": "0.0.0.0/0", "nextHopType": "VirtualAppliance", "nextHopIpAddress": ip}}]

            change = ctx.put_mutated(table, mutate, ["properties.routes", "properties.disableBgpRoutePropagation"],
                                     title=f"Send {table['name']}'s default route to the firewall", risk=risk,
                                     disruptive=True)
            tables_done[low(table["id"])] = change.id
    if not judged:
        ctx.not_applicable("spoke subnet with a firewall to route to")


def _hub_3c(inv: Inventory) -> CheckResult:
    out = CheckResult()
    hub_ids = {low(v["id"]) for v in hubs(inv)}
    has_gw = {low(v["id"]) for v in hubs(inv)
              if any(low(vnet_of(ref(get_path(c, "properties.subnet")))) == low(v["id"])
                     for g in of(inv, GATEWAY) for c in get_path(g, "properties.ipConfigurations") or [])}
    judged = 0
    for vnet in of(inv, VNET):
        mine_hub = low(vnet["id"]) in hub_ids
        for p in kids(inv, vnet["id"], f"{VNET}/virtualNetworkPeerings"):
            judged += 1
            remote = low(ref(get_path(p, "properties.remoteVirtualNetwork")))
            rname = rid.parse(remote).name if remote else "?"
            props = spoke_props(p)
            if not mine_hub and remote not in hub_ids:
                out.findings.append(Finding(
                    "hub-3c", p["id"], "manual", "properties.remoteVirtualNetwork.id", rname, "a hub VNet",
                    f"Spoke {vnet['name']} peers directly with spoke {rname}: remove peering {p['name']} (both sides) "
                    f"and let the two talk through the hub firewall, so that traffic is inspected and logged."))
            elif mine_hub and remote not in hub_ids and low(vnet["id"]) in has_gw \
                    and props.get("allowGatewayTransit") is not True:
                out.findings.append(Finding(
                    "hub-3c", p["id"], "manual", "properties.allowGatewayTransit", props.get("allowGatewayTransit"), True,
                    f"Hub peering {p['name']} to {rname} does not offer gateway transit: turn on 'Use this VNet's "
                    f"gateway' so the spoke reaches on-premises through the hub (and its firewall)."))
            elif not mine_hub and remote in has_gw and props.get("useRemoteGateways") is not True:
                out.findings.append(Finding(
                    "hub-3c", p["id"], "manual", "properties.useRemoteGateways", props.get("useRemoteGateways"), True,
                    f"Spoke peering {p['name']} to {rname} does not use the hub's gateway: turn on 'Use the remote "
                    f"VNet's gateway' so on-premises traffic follows the hub's routes through the firewall."))
            else:
                out.findings.append(Finding("hub-3c", p["id"], "pass", "properties.remoteVirtualNetwork.id", rname,
                                            message=f"Peering {p['name']} follows hub-and-spoke."))
    if not judged:
        out.findings.append(not_applicable("hub-3c", "VNet peering", inv))
    return out


def _any(values: Any) -> bool:
    return list(values or []) == ["*"] or values == "*"


def _hub_3d(inv: Inventory) -> CheckResult:
    out = CheckResult()
    targets = of(inv, FWP) + [f for f in of(inv, FW) if not ref(get_path(f, "properties.firewallPolicy"))]
    if not targets:
        out.findings.append(not_applicable("hub-3d", "firewall or firewall policy", inv))
        return out
    for t in targets:
        if t["type"].lower() == FWP.lower():
            rules = [r for r in _app_rules(inv, t) if str(r.get("ruleType", "")).lower() == "networkrule"]
            allow = [r for r in rules if r["_allow"]]
        else:
            allow = [r for c in get_path(t, "properties.networkRuleCollections") or []
                     if str(get_path(c, "properties.action.type") or "Allow").lower() == "allow"
                     for r in get_path(c, "properties.rules") or []]
        wide = [r.get("name", "?") for r in allow
                if _any(r.get("sourceAddresses")) and _any(r.get("destinationAddresses"))
                and _any(r.get("destinationPorts"))]
        if wide:
            out.findings.append(Finding(
                "hub-3d", t["id"], "manual", "properties.rules", wide, "explicit allow rules",
                f"Network rules {', '.join(wide)} of {t['name']} allow any source to any destination on any port: "
                f"replace them with rules naming the on-premises and spoke prefixes and the ports each flow needs."))
        elif not allow:
            out.findings.append(Finding(
                "hub-3d", t["id"], "manual", "properties.rules", None, "explicit allow rules",
                f"{t['name']} has no network rules for spoke↔on-premises flows: write explicit allow rules (source and "
                f"destination prefixes, ports) before routing the gateway and spokes through it (hub-3a/3b), or "
                f"that traffic is dropped."))
        else:
            out.findings.append(Finding("hub-3d", t["id"], "pass", "properties.rules", len(allow),
                                        message=f"{t['name']} allows only named flows."))
    return out


# ---- step 4: threat protection -------------------------------------------------------------------
def _hub_4b(inv: Inventory) -> CheckResult:
    out = CheckResult()
    subs = hub_subs(inv)
    if not subs:
        out.findings.append(not_applicable("hub-4b", "hub virtual network", inv))
        return out
    for sub in subs:
        found = [a for a in of(inv, POLICY_ASSIGNMENT)
                 if low(rid.subscription_of(a["id"])) in (low(sub), "")
                 and low(get_path(a, "properties.policyDefinitionId")).endswith(MCSB_INITIATIVE)]
        if found:
            out.findings.append(Finding("hub-4b", found[0]["id"], "pass", "properties.policyDefinitionId",
                                        message="The Microsoft cloud security benchmark is assigned."))
            continue
        out.findings.append(Finding(
            "hub-4b", f"/subscriptions/{sub}", "manual", "properties.policyDefinitionId", None, MCSB_INITIATIVE,
            f"The Microsoft cloud security benchmark initiative is not assigned to {sub} (or is assigned at a "
            f"management group the wizard cannot see): assign it under Defender for Cloud → Environment settings → "
            f"Security policies, then review the NS controls under Regulatory compliance."))
    return out


def _hub_4c(inv: Inventory) -> CheckResult:
    out = CheckResult()
    subs = hub_subs(inv)
    if not subs:
        out.findings.append(not_applicable("hub-4c", "hub virtual network", inv))
        return out
    hub_rgs = {low(rg_of(v["id"])) for v in hubs(inv)}
    for sub in subs:
        assessments = [a for a in of(inv, ASSESSMENT) if low(rid.subscription_of(a["id"])) == low(sub)
                       and low(rg_of(a["id"])) in hub_rgs]
        bad = [a for a in assessments if str(get_path(a, "properties.status.code") or "").lower() == "unhealthy"]
        alerts = [a for a in of(inv, SEC_ALERT) if low(rid.subscription_of(a["id"])) == low(sub)
                  and str(get_path(a, "properties.status") or "").lower() == "active"]
        if assessments and not bad and not alerts:
            out.findings.append(Finding("hub-4c", f"/subscriptions/{sub}", "pass", "properties.status.code",
                                        "Healthy", "Healthy", "Every hub assessment is healthy and no alert is active."))
            continue
        what = ", ".join(sorted({get_path(a, "properties.displayName") or a["name"] for a in bad})[:5])
        out.findings.append(Finding(
            "hub-4c", f"/subscriptions/{sub}", "manual", "properties.status.code", len(bad), 0,
            (f"{len(bad)} unhealthy hub recommendation(s) ({what}) and {len(alerts)} active alert(s) in {sub}: "
             if assessments or alerts else f"No Defender assessments are readable for the hub in {sub}: ") +
            "open Defender for Cloud → Recommendations filtered to the hub resource groups and Security alerts, "
            "fix or triage each, and use the network map to spot exposed hub resources."))
    return out


def _hub_4d(inv: Inventory) -> CheckResult:
    stop = unreadable(inv, "hub-4d", WATCHER)
    if stop:
        return stop
    out = CheckResult()
    vnets = of(inv, VNET)
    if not vnets:
        out.findings.append(not_applicable("hub-4d", "virtual network", inv))
        return out
    planned: set[str] = set()
    for vnet in vnets:
        sub, region = rid.subscription_of(vnet["id"]) or "", loc(vnet)
        have = [w for w in of(inv, WATCHER) if low(rid.subscription_of(w["id"])) == low(sub) and loc(w) == region]
        if have:
            out.findings.append(Finding("hub-4d", vnet["id"], "pass", "", have[0]["name"],
                                        message=f"Network Watcher {have[0]['name']} covers {region}."))
            continue
        wid = watcher_id(inv, sub, region, vnet)
        out.findings.append(Finding("hub-4d", vnet["id"], "fail", "", None, f"a Network Watcher in {region}",
                                    f"No Network Watcher in {region} for {vnet['name']}: no flow logs, "
                                    f"connection troubleshooting or topology there."))
        if low(wid) in planned:
            continue
        planned.add(low(wid))
        out.changes.append(remedy.create(
            "hub-4d", wid, {"location": vnet.get("location"), "properties": {}},
            params={"name": rid.parse(wid).name, "resourceGroup": rg_of(wid)},
            title=f"Create Network Watcher for {region} in {sub}", risk="None: Network Watcher itself is free."))
    return out


WHY = {
    1: "The hub firewall sees every flow between spokes, on-premises and the internet. Premium adds TLS "
       "inspection and intrusion prevention, and threat intelligence in deny mode drops traffic to known-bad "
       "addresses instead of merely logging it.",
    2: "Public endpoints in the hub (firewall, gateway, Bastion) are the first targets of volumetric attacks. "
       "A DDoS protection plan linked to every VNet adapts mitigation to their traffic and reports attacks.",
    3: "Traffic from on-premises should not bypass the firewall on its way to a spoke. Routing the gateway "
       "subnet and the spokes' default route through the firewall keeps both directions inspected and symmetric.",
    4: "Defender for Cloud watches the hub continuously, raises alerts and ranks misconfigurations, and Network "
       "Watcher gives the flow logs and diagnostics needed to investigate them.",
}

STEPS: list[Step] = [
    Step("hub-1", "hub", 1, "Use Azure Firewall Premium", WHY[1], (
        hub_1a, hub_1b,
        Check("hub-1c", "The firewall policy is Premium", "create", _hub_1c, resource_type=FWP, mcsb="NS-4",
              risk="Premium policies cost more.", billable=True),
        Check("hub-1d", "Threat intelligence alerts and denies", "auto-put",
              combine(hub_1d_policy, hub_1d_classic),
              resource_type=FW, mcsb="NS-3", policy="Azure Firewall Policy should enable Threat Intelligence",
              risk="Known-bad addresses get blocked; allow-list false positives."),
        hub_1e, hub_1f,
        Check("hub-1g", "Inbound web traffic is TLS-inspected", "advisory", _hub_1g, resource_type=RCG, mcsb="NS-4", risk="Workloads that pin certificates break under TLS inspection."),
        hub_1h, hub_1i,
        Check("hub-1j", "Broad web egress is filtered by category or URL", "advisory", _hub_1j, resource_type=RCG,
              mcsb="NS-3", risk="Category filtering can block sites the business needs."),
        Check("hub-1k", "Application Gateway is not in the hub", "advisory", _hub_1k, resource_type=APPGW,
              mcsb="NS-1", risk="Redeploying the gateway changes its IP addresses and needs downtime."),
    )),
    Step("hub-2", "hub", 2, "Protect public endpoints with DDoS Network Protection", WHY[2], (
        Check("hub-2a", "A DDoS protection plan exists", "create", _hub_2a, resource_type=DDOS, mcsb="NS-5",
              policy="Azure DDoS Protection should be enabled",
              risk="Significant fixed monthly cost plus overage per protected resource.", billable=True),
        Check("hub-2b", "Every VNet is linked to the DDoS plan", "auto-put", _hub_2b, resource_type=VNET,
              mcsb="NS-5", policy="Virtual networks should be protected by Azure DDoS Protection",
              risk="Non-disruptive."),
        Check("hub-2c", "Public IPs are DDoS protected", "auto-put", _hub_2c, resource_type=PIP, mcsb="NS-5",
              risk="Enabled on an individual IP is billed per IP."),
        hub_2d,
        Check("hub-2e", "DDoS attacks raise an alert", "create", _hub_2e, resource_type=PIP, mcsb="IR-2",
              risk="Alert rules are billed per monitored metric.", billable=True),
    )),
    Step("hub-3", "hub", 3, "Route gateway traffic through the firewall", WHY[3], (
        Check("hub-3a", "GatewaySubnet routes each spoke prefix to the firewall", "create", _hub_3a,
              takes_context=True, params=(
                  Param("name", "str", "name:routeTables", "Name of the new route table for GatewaySubnet."),
                  Param("firewallIp", "str", "ipv4", "Private IP of the hub firewall the routes send traffic to.")),
              resource_type=VNET, mcsb="NS-3",
              risk="On-premises traffic needs firewall rules first (hub-3d)."),
        Check("hub-3b", "Spoke subnets send 0.0.0.0/0 to the firewall", "create", _hub_3b, takes_context=True,
              params=(Param("name", "str", "name:routeTables", "Name of the new route table for the spoke's subnets."),
                      Param("firewallIp", "str", "ipv4", "Private IP of the firewall the default route points at.")), resource_type=VNET,
              mcsb="NS-3", policy="[Preview]: All Internet traffic should be routed via your deployed Azure Firewall",
              risk="Disruptive to on-premises and internet paths until firewall rules exist.", disruptive=True),
        Check("hub-3c", "Spokes peer only with the hub", "advisory", _hub_3c, resource_type=VNET, mcsb="NS-1", risk="Removing a peering cuts spoke-to-spoke traffic until the firewall routes it."),
        Check("hub-3d", "Firewall rules allow only explicit flows", "advisory", _hub_3d, resource_type=FW,
              mcsb="NS-3", risk="Narrowing rules drops any flow not named in them."),
    )),
    Step("hub-4", "hub", 4, "Turn on threat protection", WHY[4], (
        pricing_check("hub-4a", "Defender plans are on for the hub subscription",
                      ("CloudPosture", "VirtualMachines", "Arm"), hub_subs, "hub virtual network", "LT-1",
                      "Microsoft Defender CSPM should be enabled · Azure Defender for Resource Manager should be "
                      "enabled"),
        Check("hub-4b", "The security benchmark is assigned", "advisory", _hub_4b,
              resource_type=POLICY_ASSIGNMENT, mcsb="PV-2", risk="Audit-only: assigning the benchmark changes no resource."),
        Check("hub-4c", "Hub recommendations and alerts are worked through", "advisory", _hub_4c,
              resource_type=ASSESSMENT, mcsb="IR-3", risk="None: reviewing changes nothing."),
        Check("hub-4d", "Network Watcher runs in every region in use", "create", _hub_4d, resource_type=VNET,
              mcsb="IR-4", policy="Network Watcher should be enabled", risk="None: free."),
    )),
]
