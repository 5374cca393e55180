"""Hub virtual network (azure-infrastructure-networking.md): four steps around the shared firewall.

The steps and every check's data are in hub.toml; this module holds the evaluators of the checks
that are more than one property, registered by id, and the helpers the data names. Network
helpers (hub/spoke detection, the firewall serving a VNet, naming) live in spoke.py."""

from __future__ import annotations

from typing import Any

from ztwizard import resource_id as rid
from ztwizard.armjson import get_path, set_path
from ztwizard.inventory import Inventory

from ._base import Context, memo
from .catalog import article_steps, check
from .common import ASSESSMENT, BASTION, NIC, VNET_GATEWAY, defender_plans, watcher_anchor
from .spoke import (
    APPGW,
    DIAG,
    DIAG_LIMIT,
    FW,
    FWP,
    NSG_EXEMPT_SUBNETS,
    PIP,
    RT,
    SUBNET,
    VNET,
    WATCHER,
    appgw_subnets,
    diag_of,
    firewall_for,
    firewall_ip,
    full_settings,
    hubs,
    kids,
    linked,
    loc,
    low,
    namer,
    of,
    peers,
    ref,
    rg_of,
    setting_to_extend,
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
GATEWAY = VNET_GATEWAY
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


def holds_hub(sub: dict[str, Any], inv: Inventory) -> bool:
    """hub-4b reads a subscription's policy assignments only when a hub VNet is in it."""
    return low(sub["name"]) in memo(inv, "hub_sub_keys", lambda: {low(s) for s in hub_subs(inv)})


def _tier(pol: dict[str, Any]) -> str:
    return str(get_path(pol, "properties.sku.tier") or "Standard")


def _premium(pol: dict[str, Any]) -> bool:
    return _tier(pol).lower() == "premium"


def _group_id(resource_id: str, group: str) -> str:
    """The id of resource group `group` in the subscription of `resource_id`."""
    return f"/subscriptions/{rid.subscription_of(resource_id)}/resourceGroups/{group}"


# ---- step 1: Azure Firewall Premium -----------------------------------------------------------
def is_set(value: Any) -> bool:
    """hub-1b, hub-1f: compliant when the property holds anything (a policy, a certificate)."""
    return bool(value)


def idps_fix(pol: dict[str, Any], inv: Inventory) -> dict[str, Any] | None:
    """hub-1e: IDPS can deny only on a Premium policy; a Standard one gets the instruction."""
    return {"properties.intrusionDetection.mode": "Deny"} if _premium(pol) else None


def policy_analytics_fix(pol: dict[str, Any], inv: Inventory) -> dict[str, Any] | None:
    """hub-1i (and a new hub-1c policy): analytics into the workspace of the policy's subscription
    and region; none there means the instruction."""
    ws = workspace_for(inv, rid.subscription_of(pol["id"]) or "", loc(pol))
    if not ws:
        return None
    return {"properties.insights.isEnabled": True, "properties.insights.retentionDays": 30,
            "properties.insights.logAnalyticsResources.defaultWorkspaceId": {"id": ws["id"]}}


@check("hub-1c")
def _premium_policy(ctx: Context) -> None:
    inv = ctx.inv
    pols = of(inv, FWP)
    if not pols:
        ctx.not_applicable("firewall policy")
        return
    names = {low(p["id"]) for p in pols}
    used = {low(ref(get_path(fw, "properties.firewallPolicy"))) for fw in of(inv, FW)}
    spare = [p for p in pols if _premium(p) and low(p["id"]) not in used]
    for pol in pols:
        tier = _tier(pol)
        if _premium(pol):
            ctx.finding(pol["id"], "pass", "properties.sku.tier", tier, "Premium", f"Policy {pol['name']} is Premium.")
            continue
        ready = [p for p in spare if loc(p) == loc(pol)]
        if ready:
            ctx.fail_by_hand(pol["id"], "properties.sku.tier", tier, "Premium",
                        f"Policy {pol['name']} is {tier} and Premium policy {ready[0]['name']} is ready: copy the rule "
                        f"collection groups across, upgrade the firewall to Premium (hub-1a), then associate "
                        f"{ready[0]['name']} with it.")
            continue
        # the new policy is for the one it replaces: its id stays when its name is edited
        p = ctx.params(pol["id"], name=unique_name(inv, rg_of(pol["id"]), FWP, f"{pol['name']}-premium", names))
        keep = {k: v for k, v in spoke_props(pol).items()
                if k in ("threatIntelMode", "threatIntelWhitelist", "dnsSettings", "sql", "explicitProxy", "snat")}
        body = {"location": pol.get("location"),
                "properties": {**keep, "sku": {"tier": "Premium"},
                               "threatIntelMode": "Deny", "intrusionDetection": {"mode": "Deny"}}}
        for path, value in (policy_analytics_fix(pol, inv) or {}).items():
            set_path(body, path, value)  # policy analytics from the start when a workspace exists
        ctx.finding(pol["id"], "fail", "properties.sku.tier", tier, "Premium",
                    f"Policy {pol['name']} is {tier}; IDPS and TLS inspection need Premium.")
        ctx.create(f"{rg_of(pol['id'])}/providers/{FWP}/{p['name']}", body, anchor=pol["id"], params=p,
                   fields={"policy": pol["name"]},
                   risk="Premium policies cost more. Rule collection groups are not copied; associate the new "
                        "policy with a Premium firewall once its rules are in place.", billable=True)


THREAT_INTEL = "properties.threatIntelMode"


@check("hub-1d")
def _threat_intel(ctx: Context) -> None:
    """Threat intelligence is set on the policy, or on the firewall itself while it runs classic
    rules: both are judged, `not_applicable` only when neither exists."""
    inv = ctx.inv
    policies_unread = ctx.unreadable(FWP)  # an `error` finding; the classic firewalls are still judged
    judged = [(pol, "Known-bad addresses get blocked; allow-list false positives in threatIntelWhitelist.")
              for pol in ([] if policies_unread else of(inv, FWP))]
    judged += [(fw, ctx.check.risk) for fw in of(inv, FW) if not ref(get_path(fw, "properties.firewallPolicy"))]
    if not judged:
        if not policies_unread:
            ctx.not_applicable("firewall policy")
        return
    for res, risk in judged:
        mode = get_path(res, THREAT_INTEL) or "Alert"
        if mode == "Deny":
            ctx.finding(res["id"], "pass", THREAT_INTEL, mode, "Deny", f"threatIntelMode is {mode!r}.")
            continue
        ctx.finding(res["id"], "fail", THREAT_INTEL, mode, "Deny",
                    "Threat intelligence does not deny: traffic to known-malicious addresses passes.")
        ctx.put(res, {THREAT_INTEL: "Deny"}, risk=risk, disruptive=False, billable=False)


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


@check("hub-1g")
def _tls_inspection_rule(ctx: Context) -> None:
    inv = ctx.inv
    pols = of(inv, FWP)
    if not pols:
        ctx.not_applicable("firewall policy")
        return
    gw_prefixes = [get_path(inv.get(s), "properties.addressPrefix") for s in sorted(appgw_subnets(inv))]
    src = ", ".join(p for p in gw_prefixes if p) or "the App GW subnet"
    for pol in pols:
        tls = [r["name"] for r in _app_rules(inv, pol)
               if str(r.get("ruleType", "")).lower() == "applicationrule" and r.get("terminateTLS")]
        if tls:
            ctx.finding(pol["id"], "pass", "properties.ruleCollections", tls,
                        message=f"Policy {pol['name']} inspects TLS with rules {', '.join(tls)}.")
            continue
        ctx.fail_by_hand(pol["id"], "properties.ruleCollections", None, "an application rule with terminateTLS",
                    f"Policy {pol['name']} has no TLS-inspecting rule: add an application rule from {src} to the web "
                    f"app's FQDN over HTTPS 443 with TLS inspection on (Premium), so IDPS sees inbound web traffic in "
                    f"clear.")


@check("hub-1j")
def _web_egress_filtered(ctx: Context) -> None:
    inv = ctx.inv
    pols = of(inv, FWP)
    if not pols:
        ctx.not_applicable("firewall policy")
        return
    for pol in pols:
        broad = [r["name"] for r in _app_rules(inv, pol) if r["_allow"]
                 and str(r.get("ruleType", "")).lower() == "applicationrule"
                 and "*" in (r.get("targetFqdns") or []) and not r.get("webCategories") and not r.get("targetUrls")]
        if not broad:
            ctx.finding(pol["id"], "pass", "properties.ruleCollections",
                        message=f"Policy {pol['name']} grants no open web egress.")
            continue
        ctx.fail_by_hand(pol["id"], "properties.ruleCollections", broad, "webCategories/targetUrls",
                    f"Rules {', '.join(broad)} of {pol['name']} allow any web destination: narrow them with web "
                    f"categories (deny e.g. gambling, malware) or URL filtering (Premium), so broad egress cannot "
                    f"reach risky sites.")


@check("hub-1k")
def _appgw_outside_hub(ctx: Context) -> None:
    inv = ctx.inv
    gws = of(inv, APPGW)
    if not gws:
        ctx.not_applicable("application gateway")
        return
    hub_ids = {low(v["id"]) for v in hubs(inv)}
    for gw in gws:
        vnets = {low(vnet_of(ref(get_path(c, "properties.subnet"))))
                 for c in get_path(gw, "properties.gatewayIPConfigurations") or []}
        if vnets & hub_ids:
            ctx.fail_by_hand(gw["id"], "properties.gatewayIPConfigurations", sorted(vnets), "a spoke VNet",
                        f"{gw['name']} sits in the hub: redeploy it in the spoke of the app it publishes (its own "
                        f"subnet), so the hub keeps only shared services and the app's traffic stays inside its "
                        f"spoke's controls.")
        else:
            ctx.finding(gw["id"], "pass", "properties.gatewayIPConfigurations", message=f"{gw['name']} is outside the hub.")


def diagnostics(ctx: Context, targets: list[dict[str, Any]], what: str, categories: tuple[str, ...] = (),
                metrics: bool = False) -> None:
    """Resource logs of each target sent to a Log Analytics workspace (hub-1h, hub-2d).

    Compliant: a setting with a workspace that enables `allLogs` or every named category (with no
    categories named: `allLogs` into resource-specific tables, `Dedicated`). A setting that falls
    short is rewritten (PUT); none at all is created when a workspace exists in scope (its
    workspace editable), otherwise the finding is `manual`, because choosing where logs go is a
    person's call."""
    inv = ctx.inv
    if ctx.unreadable(DIAG):
        return
    if not targets:
        ctx.not_applicable(what)
        return
    risk = ctx.check.risk

    def covers(setting: dict[str, Any]) -> bool:
        if not get_path(setting, "properties.workspaceId"):
            return False
        on = {str(x.get("categoryGroup") or x.get("category") or "").lower()
              for x in get_path(setting, "properties.logs") or [] if x.get("enabled")}
        if "alllogs" not in on and not (categories and all(c.lower() in on for c in categories)):
            return False
        if not categories and get_path(setting, "properties.logAnalyticsDestinationType") != "Dedicated":
            return False  # resource-specific tables, which the firewall's workbooks expect
        if metrics and not any(m.get("enabled") for m in get_path(setting, "properties.metrics") or []):
            return False
        return True

    def complete(props: dict[str, Any]) -> None:
        props["logs"] = [{"categoryGroup": "allLogs", "enabled": True}]
        if not categories:
            props["logAnalyticsDestinationType"] = "Dedicated"
        if metrics:
            props["metrics"] = [{"category": "AllMetrics", "enabled": True}]

    expected = "allLogs to a workspace"
    for res in targets:
        settings = diag_of(inv, res["id"])
        if any(covers(s) for s in settings):
            ctx.finding(res["id"], "pass", "properties.logs", "allLogs", "allLogs",
                        f"{res['name']} sends its logs to a Log Analytics workspace.")
            continue
        with_ws = [s for s in settings if get_path(s, "properties.workspaceId")]
        if with_ws:
            setting = with_ws[0]
            ctx.finding(res["id"], "fail", "properties.logs", get_path(setting, "properties.logs"), expected,
                        f"Diagnostic setting {setting['name']} on {res['name']} leaves log categories off.")
            ctx.put_mutated(setting, lambda body: complete(body.setdefault("properties", {})),
                            ["properties.logs", "properties.logAnalyticsDestinationType"],
                            fields={"resource": res["name"], "workspace": "its workspace"}, risk=risk, billable=True)
            continue
        ws = workspace_for(inv, rid.subscription_of(res["id"]) or "", loc(res))
        spare = setting_to_extend(settings)
        if ws and spare:
            # a sixth setting would be refused: the workspace joins a setting that exists
            p = ctx.update_params(spare, workspaceId=ws["id"])

            def extend(body: dict[str, Any], p: dict[str, Any] = p) -> None:
                props = body.setdefault("properties", {})
                props["workspaceId"] = p["workspaceId"]
                complete(props)

            ws_name = rid.parse(p["workspaceId"]).name
            ctx.finding(res["id"], "fail", "properties.logs", None, expected,
                        f"{res['name']} sends no logs to a workspace and already has {len(settings)} diagnostic "
                        f"settings, the most ARM allows: {spare['name']} is extended with workspace {ws_name}.")
            ctx.put_mutated(spare, extend, ["properties.workspaceId", "properties.logs",
                                            "properties.logAnalyticsDestinationType"],
                            params=p, fields={"resource": res["name"], "workspace": ws_name}, risk=risk,
                            billable=True)
            continue
        if ws and len(settings) >= DIAG_LIMIT:
            ctx.fail_by_hand(res["id"], "properties.logs", None, expected, full_settings(res, settings))
            continue
        if not ws:
            ctx.fail_by_hand(res["id"], "properties.logs", None, expected,
                        f"{res['name']} sends no logs anywhere and there is no Log Analytics workspace in scope: "
                        f"create one (or pick your central one), then add a diagnostic setting on {res['name']} "
                        f"with category group allLogs and resource-specific tables, so incidents can be traced.")
            continue
        # the setting is for the resource: its id stays when the workspace is edited
        p = ctx.params(res["id"], workspaceId=ws["id"])
        ws_name = rid.parse(p["workspaceId"]).name
        body: dict[str, Any] = {"properties": {"workspaceId": p["workspaceId"]}}
        complete(body["properties"])
        ctx.finding(res["id"], "fail", "properties.logs", None, expected,
                    f"{res['name']} has no diagnostic setting; its logs are lost.")
        ctx.create(f"{res['id']}/providers/{DIAG}/to-{ws_name}", body, anchor=res["id"], params=p,
                   fields={"resource": res["name"], "workspace": ws_name}, risk=risk, billable=True)


@check("hub-1h")
def _firewall_logs(ctx: Context) -> None:
    diagnostics(ctx, of(ctx.inv, FW), "Azure Firewall")


# ---- step 2: DDoS protection ---------------------------------------------------------------------
def _plan(ctx: Context) -> tuple[str, dict[str, Any] | None, dict[str, Any] | None]:
    """The DDoS plan in use or to be created: (id, existing plan or None, the VNet it is for).
    A plan to be created carries hub-2a's parameters, edited or not, so hub-2b links the VNets
    to the name the person chose."""
    inv = ctx.inv
    vnets = hubs(inv) or of(inv, VNET)
    anchor = vnets[0] if vnets else None
    plans = of(inv, DDOS)
    if plans:
        return plans[0]["id"], plans[0], anchor
    if anchor is None:
        return "", None, None
    edited = ctx.overrides.get(ctx.create_id(anchor["id"], "hub-2a"), {})
    name = edited.get("name") or f"ddos-{loc(anchor) or 'plan'}"
    group = edited.get("resourceGroup") or rid.parse(anchor["id"]).resource_group or ""
    return f"{_group_id(anchor['id'], group)}/providers/{DDOS}/{name}", None, anchor


@check("hub-2a")
def _ddos_plan(ctx: Context) -> None:
    plan_id, plan, anchor = _plan(ctx)
    if not plan_id or anchor is None:
        ctx.not_applicable("virtual network")
        return
    if plan:
        ctx.finding(anchor["id"], "pass", "properties.ddosProtectionPlan.id", plan_id,
                    message=f"DDoS protection plan {plan['name']} exists.")
        return
    # the plan is for the hub (or first VNet): its id stays when its name or group is edited
    parsed = rid.parse(plan_id)
    p = ctx.params(anchor["id"], name=parsed.name, resourceGroup=parsed.resource_group or "")
    ctx.finding(anchor["id"], "fail", "properties.ddosProtectionPlan.id", None, "a DDoS protection plan",
                "No DDoS protection plan exists; public endpoints get only basic infrastructure protection.")
    ctx.create(f"{_group_id(anchor['id'], p['resourceGroup'])}/providers/{DDOS}/{p['name']}",
               {"location": anchor.get("location"), "properties": {}}, anchor=anchor["id"], params=p,
               risk="Significant fixed monthly cost plus overage per protected resource; one plan can cover every "
                    "VNet in the tenant.", billable=True)


@check("hub-2b")
def _vnets_protected(ctx: Context) -> None:
    inv = ctx.inv
    if ctx.unreadable(DDOS):
        return
    vnets = of(inv, VNET)
    if not vnets:
        ctx.not_applicable("virtual network")
        return
    plan_id, plan, anchor = _plan(ctx)
    deps = [] if plan or anchor is None else [ctx.create_id(anchor["id"], "hub-2a")]
    for vnet in vnets:
        on = get_path(vnet, "properties.enableDdosProtection") is True
        has = ref(get_path(vnet, "properties.ddosProtectionPlan"))
        if on and has:
            ctx.finding(vnet["id"], "pass", "properties.enableDdosProtection", True, True,
                        f"{vnet['name']} is protected by a DDoS plan.")
            continue
        ctx.finding(vnet["id"], "fail", "properties.enableDdosProtection", on, True,
                    f"{vnet['name']} is not linked to a DDoS protection plan.")
        ctx.put(vnet, {"properties.enableDdosProtection": True, "properties.ddosProtectionPlan": {"id": has or plan_id}},
                depends_on=deps, fields={"plan": rid.parse(has or plan_id).name},
                risk="Non-disruptive; each protected public IP beyond the plan's 100 is billed.")


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


@check("hub-2c")
def _public_ips_protected(ctx: Context) -> None:
    inv = ctx.inv
    if ctx.unreadable(VNET):
        return
    pips = of(inv, PIP)
    if not pips:
        ctx.not_applicable("public IP address")
        return
    users = pip_vnets(inv)
    path = "properties.ddosSettings.protectionMode"
    for pip in pips:
        sku = str(get_path(pip, "sku.name") or "Basic")
        mode = get_path(pip, path) or "VirtualNetworkInherited"
        vnet_id = users.get(low(pip["id"]))
        vnet_name = rid.parse(vnet_id).name if vnet_id else ""
        if sku.lower() != "standard":
            ctx.fail_by_hand(pip["id"], "sku.name", sku, "Standard",
                        f"{pip['name']} is a {sku} SKU public IP, which DDoS protection settings do not cover: "
                        f"upgrade it to Standard (dissociate, upgrade, re-associate in a maintenance window).")
        elif mode == "Enabled" or (mode == "VirtualNetworkInherited" and vnet_id and _protected(inv, vnet_id)):
            ctx.finding(pip["id"], "pass", path, mode, mode, f"{pip['name']} is DDoS protected ({mode}).")
        elif mode == "VirtualNetworkInherited" and vnet_id:
            ctx.fail_by_hand(pip["id"], path, mode, "VirtualNetworkInherited in a protected VNet",
                        f"{pip['name']} inherits protection from {vnet_name}, which has none yet: link {vnet_name} "
                        f"to the DDoS plan (hub-2a, hub-2b); nothing changes on the IP itself.")
        elif vnet_id:
            vnet = inv.get(vnet_id)
            deps = [] if _protected(inv, vnet_id) or vnet is None else [ctx.change_id_of(vnet, "hub-2b")]
            ctx.finding(pip["id"], "fail", path, mode, "VirtualNetworkInherited",
                        f"DDoS protection is {mode} on {pip['name']}.")
            ctx.put(pip, {path: "VirtualNetworkInherited"}, depends_on=deps, fields={"vnet": vnet_name},
                    risk="None: covered by the VNet's plan.")
        else:
            ctx.fail_by_hand(pip["id"], path, mode, "Enabled",
                        f"{pip['name']} is attached to nothing the wizard sees in a VNet: delete it if unused, or set "
                        f"its DDoS protection to Enabled (IP Protection, billed per IP) if it fronts a service outside "
                        f"a VNet.")


DDOS_LOGS = ("DDoSProtectionNotifications", "DDoSMitigationFlowLogs", "DDoSMitigationReports")


def is_standard_sku(pip: dict[str, Any], inv: Inventory) -> bool:
    return str(get_path(pip, "sku.name") or "").lower() == "standard"


def _standard_pips(inv: Inventory) -> list[dict[str, Any]]:
    return [p for p in of(inv, PIP) if is_standard_sku(p, inv)]


@check("hub-2d")
def _ddos_logs(ctx: Context) -> None:
    diagnostics(ctx, _standard_pips(ctx.inv), "Standard public IP address", DDOS_LOGS, metrics=True)


@check("hub-2e")
def _ddos_alert(ctx: Context) -> None:
    inv = ctx.inv
    if ctx.unreadable(ALERT):
        return
    pips = _standard_pips(inv)
    if not pips:
        ctx.not_applicable("Standard public IP address")
        return
    alerts = of(inv, ALERT)
    groups = of(inv, ACTION_GROUP)
    for pip in pips:
        mine = [a for a in alerts if low(pip["id"]) in {low(s) for s in get_path(a, "properties.scopes") or []}
                and any(str(c.get("metricName", "")).lower() == "ifunderddosattack"
                        for c in get_path(a, "properties.criteria.allOf") or [])]
        if mine:
            ctx.finding(pip["id"], "pass", "properties.criteria", "IfUnderDDoSAttack",
                        message=f"Alert {mine[0]['name']} fires when {pip['name']} is attacked.")
            continue
        # the alert is for the public IP: its id stays when its name or action group is edited
        p = ctx.params(pip["id"], name=f"alert-ddos-{pip['name']}",
                       **({"actionGroupId": groups[0]["id"]} if groups else {}))
        actions = [{"actionGroupId": p["actionGroupId"]}] if "actionGroupId" in p else []
        body = {"location": "global", "properties": {
            "description": f"DDoS attack under way on {pip['name']}", "severity": 1, "enabled": True,
            "scopes": [pip["id"]], "evaluationFrequency": "PT1M", "windowSize": "PT5M",
            "criteria": {"odata.type": "Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria",
                         "allOf": [{"name": "UnderDDoSAttack", "metricName": "IfUnderDDoSAttack",
                                    "operator": "GreaterThan", "threshold": 0, "timeAggregation": "Maximum",
                                    "criterionType": "StaticThresholdCriterion"}]},
            "actions": actions}}
        ctx.finding(pip["id"], "fail", "properties.criteria", None, "IfUnderDDoSAttack",
                    f"Nobody is alerted when {pip['name']} comes under DDoS attack.")
        ctx.create(f"{rg_of(pip['id'])}/providers/{ALERT}/{p['name']}", body, anchor=pip["id"], params=p,
                   fields={"ip": pip["name"]},
                   risk="Alert rules are billed per monitored metric (cents a month)" +
                        ("" if groups else "; without an action group it shows in the portal only."), billable=True)


# ---- step 3: route gateway traffic through the firewall ---------------------------------------------
def _routes(inv: Inventory, table: dict[str, Any] | None) -> list[dict[str, Any]]:
    return kids(inv, table["id"], f"{RT}/routes") if table else []


def _prefixes(vnet: dict[str, Any]) -> list[str]:
    return [str(p) for p in get_path(vnet, "properties.addressSpace.addressPrefixes") or []]


def _spoke_name(inv: Inventory, prefix: str, vnet: dict[str, Any]) -> str:
    return f"to-{vnet['name']}" + ("" if len(_prefixes(vnet)) == 1 else f"-{prefix.replace('/', '_').replace('.', '-')}")


# hub-3a re-routes traffic that works today: who loses access, said on every change that does it
GATEWAY_REROUTE = ("Re-routes on-premises traffic to the spokes through the firewall: on-premises users lose "
                   "access to every spoke workload no firewall rule allows (hub-3d).")


@check("hub-3a")
def _gateway_routes(ctx: Context) -> None:
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
            ctx.fail_by_hand(sn["id"], path, None, "routes to the firewall",
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
                params=p, risk="None until associated.")
            ctx.put(sn, {"properties.routeTable": {"id": rt_id}}, depends_on=[create.id],
                title=f"Route {hub['name']}'s GatewaySubnet through the firewall", disruptive=True,
                risk=GATEWAY_REROUTE + " Apply with hub-3b so routing stays symmetric.")
            continue
        have = {(str(get_path(r, "properties.addressPrefix")), str(get_path(r, "properties.nextHopIpAddress")))
                for r in _routes(inv, table)
                if str(get_path(r, "properties.nextHopType") or "").lower() == "virtualappliance"}
        missing = [r for r in new_routes if (r["properties"]["addressPrefix"], ip) not in have]
        bgp_off = get_path(table, "properties.disableBgpRoutePropagation") is True
        default = [r["name"] for r in _routes(inv, table) if get_path(r, "properties.addressPrefix") == "0.0.0.0/0"]
        if default:
            ctx.fail_by_hand(sn["id"], path, default, "no 0.0.0.0/0 route",
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
            title=f"Route spoke prefixes in {table['name']} through the firewall", disruptive=True,
            risk=GATEWAY_REROUTE)


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


@check("hub-3b")
def _spoke_default_route(ctx: Context) -> None:
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
                        params={"name": p["name"], "firewallIp": p["firewallIp"]}, fields={"vnet": vnet["name"]},
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
                ctx.fail_by_hand(sn["id"], "properties.routes", None, expected,
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


@check("hub-3c")
def _peer_only_with_hub(ctx: Context) -> None:
    inv = ctx.inv
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
                ctx.fail_by_hand(
                    p["id"], "properties.remoteVirtualNetwork.id", rname, "a hub VNet",
                    f"Spoke {vnet['name']} peers directly with spoke {rname}: remove peering {p['name']} (both sides) "
                    f"and let the two talk through the hub firewall, so that traffic is inspected and logged.")
            elif mine_hub and remote not in hub_ids and low(vnet["id"]) in has_gw \
                    and props.get("allowGatewayTransit") is not True:
                ctx.fail_by_hand(
                    p["id"], "properties.allowGatewayTransit", props.get("allowGatewayTransit"), True,
                    f"Hub peering {p['name']} to {rname} does not offer gateway transit: turn on 'Use this VNet's "
                    f"gateway' so the spoke reaches on-premises through the hub (and its firewall).")
            elif not mine_hub and remote in has_gw and props.get("useRemoteGateways") is not True:
                ctx.fail_by_hand(
                    p["id"], "properties.useRemoteGateways", props.get("useRemoteGateways"), True,
                    f"Spoke peering {p['name']} to {rname} does not use the hub's gateway: turn on 'Use the remote "
                    f"VNet's gateway' so on-premises traffic follows the hub's routes through the firewall.")
            else:
                ctx.finding(p["id"], "pass", "properties.remoteVirtualNetwork.id", rname,
                                            message=f"Peering {p['name']} follows hub-and-spoke.")
    if not judged:
        ctx.not_applicable("VNet peering")


def _any(values: Any) -> bool:
    return list(values or []) == ["*"] or values == "*"


@check("hub-3d")
def _explicit_flows(ctx: Context) -> None:
    inv = ctx.inv
    targets = of(inv, FWP) + [f for f in of(inv, FW) if not ref(get_path(f, "properties.firewallPolicy"))]
    if not targets:
        ctx.not_applicable("firewall or firewall policy")
        return
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
            ctx.fail_by_hand(
                t["id"], "properties.rules", wide, "explicit allow rules",
                f"Network rules {', '.join(wide)} of {t['name']} allow any source to any destination on any port: "
                f"replace them with rules naming the on-premises and spoke prefixes and the ports each flow needs.")
        elif not allow:
            ctx.fail_by_hand(
                t["id"], "properties.rules", None, "explicit allow rules",
                f"{t['name']} has no network rules for spoke↔on-premises flows: write explicit allow rules (source and "
                f"destination prefixes, ports) before routing the gateway and spokes through it (hub-3a/3b), or "
                f"that traffic is dropped.")
        else:
            ctx.finding(t["id"], "pass", "properties.rules", len(allow),
                                        message=f"{t['name']} allows only named flows.")


# ---- step 4: threat protection -------------------------------------------------------------------
@check("hub-4a")
def _defender_plans(ctx: Context) -> None:
    defender_plans(ctx, ("CloudPosture", "VirtualMachines", "Arm"), hub_subs(ctx.inv), "hub virtual network")


@check("hub-4b")
def _benchmark_assigned(ctx: Context) -> None:
    inv = ctx.inv
    subs = hub_subs(inv)
    if not subs:
        ctx.not_applicable("hub virtual network")
        return
    for sub in subs:
        found = [a for a in of(inv, POLICY_ASSIGNMENT)
                 if low(rid.subscription_of(a["id"])) in (low(sub), "")
                 and low(get_path(a, "properties.policyDefinitionId")).endswith(MCSB_INITIATIVE)]
        if found:
            ctx.finding(found[0]["id"], "pass", "properties.policyDefinitionId",
                                        message="The Microsoft cloud security benchmark is assigned.")
            continue
        ctx.finding(
            f"/subscriptions/{sub}", "manual", "properties.policyDefinitionId", None, MCSB_INITIATIVE,
            f"The Microsoft cloud security benchmark initiative is not assigned to {sub} (or is assigned at a "
            f"management group the wizard cannot see): assign it under Defender for Cloud → Environment settings → "
            f"Security policies, then review the NS controls under Regulatory compliance.")


@check("hub-4c")
def _recommendations_worked(ctx: Context) -> None:
    inv = ctx.inv
    subs = hub_subs(inv)
    if not subs:
        ctx.not_applicable("hub virtual network")
        return
    hub_rgs = {low(rg_of(v["id"])) for v in hubs(inv)}
    for sub in subs:
        assessments = [a for a in of(inv, ASSESSMENT) if low(rid.subscription_of(a["id"])) == low(sub)
                       and low(rg_of(a["id"])) in hub_rgs]
        bad = [a for a in assessments if str(get_path(a, "properties.status.code") or "").lower() == "unhealthy"]
        alerts = [a for a in of(inv, SEC_ALERT) if low(rid.subscription_of(a["id"])) == low(sub)
                  and str(get_path(a, "properties.status") or "").lower() == "active"]
        if assessments and not bad and not alerts:
            ctx.finding(f"/subscriptions/{sub}", "pass", "properties.status.code",
                                        "Healthy", "Healthy", "Every hub assessment is healthy and no alert is active.")
            continue
        what = ", ".join(sorted({get_path(a, "properties.displayName") or a["name"] for a in bad})[:5])
        ctx.finding(
            # nothing readable cannot be judged; an unhealthy item or an active alert fails
            f"/subscriptions/{sub}", "fail" if bad or alerts else "manual", "properties.status.code", len(bad), 0,
            (f"{len(bad)} unhealthy hub recommendation(s) ({what}) and {len(alerts)} active alert(s) in {sub}: "
             if assessments or alerts else f"No Defender assessments are readable for the hub in {sub}: ") +
            "open Defender for Cloud → Recommendations filtered to the hub resource groups and Security alerts, "
            "fix or triage each, and use the network map to spot exposed hub resources.")


@check("hub-4d")
def _network_watchers(ctx: Context) -> None:
    inv = ctx.inv
    if ctx.unreadable(WATCHER):
        return
    vnets = of(inv, VNET)
    if not vnets:
        ctx.not_applicable("virtual network")
        return
    planned: set[str] = set()
    for vnet in vnets:
        sub, region = rid.subscription_of(vnet["id"]) or "", loc(vnet)
        have = [w for w in of(inv, WATCHER) if low(rid.subscription_of(w["id"])) == low(sub) and loc(w) == region]
        if have:
            ctx.finding(vnet["id"], "pass", "", have[0]["name"],
                        message=f"Network Watcher {have[0]['name']} covers {region}.")
            continue
        ctx.finding(vnet["id"], "fail", "", None, f"a Network Watcher in {region}",
                    f"No Network Watcher in {region} for {vnet['name']}: no flow logs, "
                    f"connection troubleshooting or topology there.")
        # the watcher is for the subscription's region (spoke-5d waits for it by the same anchor)
        anchor = watcher_anchor(sub, region)
        if anchor in planned:
            continue
        planned.add(anchor)
        default = rid.parse(watcher_id(inv, sub, region, vnet))
        p = ctx.params(anchor, name=default.name, resourceGroup=default.resource_group or "")
        ctx.create(f"{_group_id(vnet['id'], p['resourceGroup'])}/providers/{WATCHER}/{p['name']}",
                   {"location": vnet.get("location"), "properties": {}}, anchor=anchor, params=p,
                   fields={"region": region, "subscription": sub}, risk="None: Network Watcher itself is free.")


STEPS = article_steps(__name__)
